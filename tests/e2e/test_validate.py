"""`ldmail validate` through the real CLI: clean projects pass, each mistake is located."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ..projects import edit_yaml
from .conftest import Cli


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def test_fresh_init_validates(project: Path, cli: Cli) -> None:
    result = cli("validate", "--project", project)
    assert result.exit_code == 0, result.output
    assert "ok: 1 campaign(s), 16 renders checked" in result.stdout


def test_shipped_example_validates(example: Path, cli: Cli) -> None:
    result = cli("validate", "--project", example, "--now", "2026-12-01")
    assert result.exit_code == 0, result.output
    assert "ok:" in result.stdout


@pytest.mark.parametrize(
    ("file", "old", "new", "expected"),
    [
        ("campaigns/welcome.yaml", "after: 3d", "afer: 3d",
         r"campaigns/welcome\.yaml:14: unknown key 'afer' \(did you mean 'after'\?\)"),
        ("campaigns/welcome.yaml", "after: 3d", "after: 3 days",
         r"campaigns/welcome\.yaml:14: .*'3 days' is not a duration; write a number and a unit"),
        ("campaigns/welcome.yaml", "compelled, newcomer", "compelled, newcomr",
         r"campaigns/welcome\.yaml:6: unknown persona 'newcomr'; did you mean 'newcomer'\?"),
        ("templates/en/welcome/first-course.md", "{{ person.first_name }},",
         "{{ person.frist_name }},",
         r"templates/en/welcome/first-course\.md:5: undefined variable: .*'frist_name'"),
        ("templates/nl/welcome/hello.md", "{% block wiifm %}{{ persona.wiifm }}",
         "{% block wiifm %}{% if persona.id != 'newcomer' %}{{ persona.wiifm }}{% endif %}",
         r"templates/nl/welcome/hello\.md:3: step 'hello' gives persona 'newcomer' \(nl\) no "
         r"WIIFM passage; write one"),
        ("ldmail.yaml", "timezone: Europe/Amsterdam", "timezone: Europe/Amsterdm",
         r"ldmail\.yaml:15: .*'Europe/Amsterdm' is not an IANA time zone \(did you "
         r"mean 'Europe/Amsterdam'\?\)"),
        ("campaigns/welcome.yaml", "holdout: 10%", "holdout: 10",
         r"campaigns/welcome\.yaml:8: .*write it with a % sign"),
        ("campaigns/welcome.yaml", "days: mon-fri", "days: mon-fry",
         r"campaigns/welcome\.yaml:11: .*'mon-fry' is not a weekday"),
        ("audiences.yaml", "match: \"tenure_days < 120\"", "match: \"tenure < 120\"",
         r"audiences\.yaml:\d+: expression uses unknown attribute 'tenure'"),
        ("audiences.yaml", "match: \"tenure_days < 120\"", "match: \"tenure_days <\"",
         r"audiences\.yaml:\d+: .*invalid expression"),
        ("campaigns/welcome.yaml", "template: welcome/first-course", "template: welcome/first",
         r"campaigns/welcome\.yaml:14: template 'welcome/first' not found"),
        ("templates/en/welcome/hello.md", "{% block subject %}", "{% block subject %}{% if %}",
         r"templates/en/welcome/hello\.md:1: template syntax error"),
        ("campaigns/welcome.yaml", "phase: activate", "phase: activate\n  bad: [",
         r"campaigns/welcome\.yaml:\d+: YAML syntax error"),
    ],
)
def test_mistakes_are_located(project: Path, cli: Cli, file: str, old: str, new: str,
                              expected: str) -> None:
    edit(project / file, old, new)
    result = cli("validate", "--project", project)
    assert result.exit_code == 1
    assert re.search(expected, result.stdout), result.stdout
    assert "Traceback" not in result.output


def test_all_errors_reported_at_once(project: Path, cli: Cli) -> None:
    edit(project / "campaigns/welcome.yaml", "after: 3d", "afer: 3d")
    edit(project / "campaigns/welcome.yaml", "compelled, newcomer", "compelled, newcomr")
    edit(project / "campaigns/welcome.yaml", "after: 0d", "after: soon")
    result = cli("validate", "--project", project)
    assert result.exit_code == 1
    assert "unknown key 'afer'" in result.stdout
    assert "unknown persona 'newcomr'" in result.stdout
    assert "'soon' is not a duration" in result.stdout
    assert "error(s)" in result.stdout


def test_subject_too_long(project: Path, cli: Cli) -> None:
    edit(project / "templates/en/welcome/hello.md", "your learning platform is open",
         "x" * 130)
    result = cli("validate", "--project", project)
    assert result.exit_code == 1
    assert "templates/en/welcome/hello.md:1: subject for persona" in result.stdout


def test_sandbox_blocks_python_internals(project: Path, cli: Cli) -> None:
    edit(project / "templates/en/welcome/hello.md", "{{ person.first_name }},",
         "{{ ''.__class__.__mro__[1].__subclasses__() }},")
    result = cli("validate", "--project", project)
    assert result.exit_code == 1
    assert "blocked by the sandbox" in result.stdout
    assert "subclasses" not in result.stdout.split("blocked by the sandbox")[1].split("\n")[0] \
        or "unsafe" in result.stdout


def test_sandbox_blocks_expression_escape(project: Path, cli: Cli) -> None:
    edit(project / "audiences.yaml", "match: \"true\"",
         "match: \"department.__class__.__base__.__subclasses__() != []\"")
    result = cli("audience", "--project", project)
    assert result.exit_code == 1
    assert "blocked by the sandbox" in result.output
    assert "Traceback" not in result.output


BOMB = '"x" * 10**9'
ESCAPE = "[].__class__.__base__.__subclasses__()"
BOMB_REFUSED = "expression '\"x\" * 10**9' repeating 1 item(s) 1000000000 times is too large"
ESCAPE_REFUSED = ("expression '[].__class__.__base__.__subclasses__()' is blocked by the "
                  "sandbox: '__class__' reaches into Python internals; use the person's "
                  "attributes")


@pytest.mark.parametrize("sample_people", [False, True])
@pytest.mark.parametrize(("condition", "refused"), [(BOMB, BOMB_REFUSED),
                                                    (ESCAPE, ESCAPE_REFUSED)])
def test_a_condition_the_sandbox_refuses_is_an_error_before_any_send(
        project: Path, cli: Cli, condition: str, refused: str, sample_people: bool) -> None:
    """A step's when: is tried on the people the campaign is rendered for, as a persona's
    match: is: the bomb (which only running it shows) and the escape are errors naming the
    campaign file, the line and the step, with the words the persona's would get."""
    edit(project / "campaigns/welcome.yaml",
         "  - {id: first-course, after: 3d, template: welcome/first-course}",
         f"  - {{id: first-course, after: 3d, template: welcome/first-course, "
         f"when: {condition!r}}}")
    edit(project / "audiences.yaml", 'match: "true"', f"match: {condition!r}")

    result = cli("validate", "--project", project,
                 *(["--sample-people"] if sample_people else []))

    assert result.exit_code == 1
    assert "Traceback" not in result.output
    errors = [line for line in result.stdout.splitlines() if line.startswith(("campaigns/",
                                                                              "audiences"))]
    assert errors[0].startswith(f"audiences.yaml:35: personas.broad-developer.match: {refused}")
    assert f"campaigns/welcome.yaml:14: steps.when: step 'first-course': {refused}" in errors
    assert len(errors) == 2, result.stdout


BOMB_TEXT = "'x' * 10**9 == ''"


@pytest.mark.parametrize(("condition", "tried"), [
    (f"reached('registered') and {BOMB_TEXT}", "registered just now"),
    (f"count('completed') > 3 and {BOMB_TEXT}", "completed 50 times, ten years ago"),
    (f"days_since('completed', object='course:*') > 30 and {BOMB_TEXT}",
     "completed course:* 50 times, ten years ago"),
    (f"days_since('completed') < 1 and {BOMB_TEXT}", "completed just now"),
    (f"reached('registered', 'course:ex?el') and not reached('completed') and {BOMB_TEXT}",
     "registered course:ex?el just now"),
], ids=["reached", "count", "days_since long ago", "days_since just now", "one and not other"])
def test_a_bomb_behind_a_learning_event_is_an_error_before_any_send(
        project: Path, cli: Cli, condition: str, tried: str) -> None:
    """The sample people have no learning events; the condition is also tried with made-up
    ones for the events it names (each combination, once just now and often long ago), so a
    branch only an event opens is run too (it once passed validate)."""
    edit(project / "campaigns/welcome.yaml",
         "  - {id: first-course, after: 3d, template: welcome/first-course}",
         f"  - {{id: first-course, after: 3d, template: welcome/first-course, "
         f"when: {condition!r}}}")

    result = cli("validate", "--project", project, "--sample-people")

    assert result.exit_code == 1
    assert "Traceback" not in result.output
    assert (f"campaigns/welcome.yaml:14: steps.when: step 'first-course': expression "
            f"{condition!r} repeating 1 item(s) 1000000000 times is too large (tried with "
            f"made-up events: {tried})") in result.stdout.splitlines()


def test_a_condition_validate_cannot_answer_in_a_sends_time_is_an_error(
        project: Path, cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    """Trying every condition stays cheap for CI: once a step's answers took the time a send
    has for all its conditions, that condition is named instead of being tried on and on."""
    from .test_journeys import SLOW_CONDITION

    edit(project / "campaigns/welcome.yaml",
         "  - {id: first-course, after: 3d, template: welcome/first-course}",
         f"  - {{id: first-course, after: 3d, template: welcome/first-course, "
         f"when: {SLOW_CONDITION!r}}}")
    monkeypatch.setenv("LDMAIL_CONDITION_SECONDS", "0.001")  # spent by the first slow answer

    result = cli("validate", "--project", project, "--sample-people")

    assert result.exit_code == 1
    assert [line for line in result.stdout.splitlines() if "steps.when" in line] == [
        "campaigns/welcome.yaml:14: steps.when: step 'first-course': answering it for the "
        "people validate tries it on took longer than 0.001 s (LDMAIL_CONDITION_SECONDS), the "
        "time a send has for the conditions of every person due; make it simpler"]


def test_github_and_json_formats(project: Path, cli: Cli) -> None:
    edit(project / "campaigns/welcome.yaml", "after: 3d", "afer: 3d")
    github = cli("validate", "--project", project, "--format", "github")
    assert github.exit_code == 1
    assert "::error file=campaigns/welcome.yaml,line=14::unknown key 'afer'" in github.stdout
    as_json = cli("validate", "--project", project, "--format", "json")
    assert '"line": 14' in as_json.stdout and '"ok": false' in as_json.stdout


def test_not_a_project(tmp_path: Path, cli: Cli) -> None:
    result = cli("validate", "--project", tmp_path)
    assert result.exit_code == 1
    assert "no ldmail project here (no audiences.yaml, ldmail.yaml or campaigns/)" in result.stderr


def test_a_misspelt_person_field_is_named_with_the_closest_one(project: Path, cli: Cli) -> None:
    edit(project / "templates/en/welcome/hello.md", "person.first_name", "person.frist_name")
    result = cli("validate", "--project", project)
    assert result.exit_code == 1
    assert "person has no 'frist_name' (did you mean 'first_name'?)" in result.output


def test_an_include_outside_the_templates_is_named_as_such(project: Path, cli: Cli) -> None:
    hello = project / "templates/en/welcome/hello.md"
    hello.write_text('{% include "../ldmail.yaml" %}\n' + hello.read_text("utf-8"), "utf-8")
    result = cli("validate", "--project", project)
    assert result.exit_code == 1
    assert "includes '../ldmail.yaml', outside templates/: templates may only use files in " \
        "templates/" in result.output
    assert "create templates/../" not in result.output


def test_an_lrs_endpoint_or_imap_host_with_a_double_dot_is_an_error(project: Path,
                                                                      cli: Cli) -> None:
    edit_yaml(project / "ldmail.yaml", lambda settings: settings.update(
        lrs={"endpoint": "https://lrs..example.org/xAPI", "user": "reader",
             "password_env": "LDMAIL_LRS_PASSWORD"},
        inbox={"kind": "imap", "host": "imap..example.org", "user": "learning@example.org",
               "password_env": "LDMAIL_IMAP_PASSWORD"}))
    result = cli("validate", "--project", project)
    assert result.exit_code == 1
    assert "ldmail.yaml: lrs.endpoint 'https://lrs..example.org/xAPI' is not a usable URL" \
        in result.stdout, result.stdout
    assert "ldmail.yaml: inbox.host 'imap..example.org' is not a host name" in result.stdout
    assert "Traceback" not in result.output
