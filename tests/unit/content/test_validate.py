"""content.validate promises every problem of a project in one report, each located (file and
line) and said once: templates rendered for every persona and language, a missing translation
an error (a warning with fallback_language), empty or over-long subjects, conditions and
audience rules tried on people, events nobody produces, hosts no request could reach, and
personal data that git tracks; a project that does not load is a report, not an exception."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import yaml

from ldmail.content.render import Renderer
from ldmail.content.validate import Report, broken_campaigns, first_failure, validate
from ldmail.errors import LdmailError
from ldmail.project.config import load_project

TODAY = date(2026, 12, 1)
HELLO = "templates/en/welcome/hello.md"


def no_git(root: str) -> list[str] | None:
    """validate asks git which files it tracks (a subprocess): here, no git work tree."""
    return None


def check(root: Path, *, sample_people: bool = False,
          tracked: Callable[[str], list[str] | None] = no_git) -> Report:
    """validate as of TODAY, with git's answer given."""
    return validate(root, TODAY, sample_people=sample_people, tracked=tracked)


def edit_yaml(path: Path, change: Callable[[dict[str, Any]], None]) -> None:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    change(data)
    path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")


def messages(report: Report) -> list[str]:
    return [str(problem) for problem in report.problems]


def test_a_fresh_project_is_clean_with_every_step_rendered(scaffold: Path) -> None:
    report = check(scaffold)
    assert (report.problems, report.warnings) == ([], [])
    assert (report.campaigns, report.renders) == (1, 2 * 4 * 2)  # steps x personas x languages
    assert [found.campaign for found in report.sensitivities] == ["welcome"]


def test_sample_people_need_no_export(scaffold: Path) -> None:
    (scaffold / "people.csv").unlink()
    assert check(scaffold, sample_people=True).problems == []
    assert any("people.csv" in message for message in messages(check(scaffold)))


def test_a_template_error_is_located_and_reported_once(scaffold: Path) -> None:
    (scaffold / HELLO).write_text(
        "{% block subject %}Hi{% endblock %}\n{% block preheader %}p{% endblock %}\n"
        "{% block wiifm %}{{ persona.wiifm }}{% endblock %}\n"
        "{% block body %}{{ person.frist_name }}{% endblock %}\n", encoding="utf-8")
    report = check(scaffold)
    assert messages(report) == [
        f"{HELLO}:4: undefined variable: person has no 'frist_name' (did you mean "
        "'first_name'?); available: person, persona, campaign, step, vars, organisation, "
        "language"]


def test_empty_and_over_long_subjects_are_errors_at_the_subject_block(scaffold: Path) -> None:
    nl = "templates/nl/welcome/hello.md"
    text = (scaffold / nl).read_text(encoding="utf-8")
    (scaffold / nl).write_text("{% block subject %}{% endblock %}\n" + text.split("\n", 1)[1],
                               encoding="utf-8")
    text = (scaffold / HELLO).read_text(encoding="utf-8")
    (scaffold / HELLO).write_text("\n{% block subject %}" + "x" * 130 + "{% endblock %}\n"
                                  + text.split("\n", 1)[1], encoding="utf-8")
    found = messages(check(scaffold))
    assert f"{nl}:1: step 'hello' has an empty subject for persona 'compelled' (nl); write " \
        "one in {% block subject %}" in found
    assert f"{HELLO}:2: subject for persona 'compelled' (en) is 130 characters; keep it under " \
        "120 (inboxes cut it at ~60)" in found


def test_a_missing_translation_is_an_error_unless_the_campaign_falls_back(
        scaffold: Path) -> None:
    (scaffold / "templates" / "nl" / "welcome" / "first-course.md").unlink()
    report = check(scaffold)
    assert messages(report) == [
        "campaigns/welcome.yaml:14: step 'first-course' has no 'nl' template: create "
        "templates/nl/welcome/first-course.md (its readers' messages are held until it exists)"]
    edit_yaml(scaffold / "campaigns" / "welcome.yaml",
              lambda c: c.update(fallback_language="en"))
    report = check(scaffold)
    assert report.problems == []
    assert [problem.message for problem in report.warnings] == [
        "step 'first-course' has no 'nl' template: its readers get "
        "templates/en/welcome/first-course.md (fallback_language)"]


def test_every_problem_comes_sorted_by_file_and_line(scaffold: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LDMAIL_DATA_DIRS", raising=False)
    edit_yaml(scaffold / "ldmail.yaml", lambda s: s.update(ledger="../ledger.db"))
    (scaffold / "templates" / "nl" / "welcome" / "first-course.md").unlink()
    assert [problem.file for problem in check(scaffold).problems] == [
        "campaigns/welcome.yaml", "ldmail.yaml"]


def test_an_event_nobody_produces_is_a_warning_with_the_close_name(scaffold: Path) -> None:
    edit_yaml(scaffold / "campaigns" / "welcome.yaml", lambda c: c["steps"][1].update(
        when="not reached('registred', 'platform')"))
    report = check(scaffold)
    assert report.problems == []
    assert len(report.warnings) == 1
    assert report.warnings[0].message.startswith(
        "event 'registred' is not a goal, trigger or common xAPI verb; did you mean "
        "'registered'?")


def test_a_condition_that_fails_for_people_is_an_error_at_its_line(scaffold: Path) -> None:
    edit_yaml(scaffold / "campaigns" / "welcome.yaml", lambda c: c["steps"][1].update(
        when="tenure_days / 0 > 1"))
    problems = check(scaffold).problems
    assert len(problems) == 1
    assert problems[0].file == "campaigns/welcome.yaml" and problems[0].line is not None
    assert problems[0].message == "steps.when: step 'first-course': expression " \
        "'tenure_days / 0 > 1' failed: division by zero"


def test_an_audience_rule_that_the_budget_stops_is_an_error(scaffold: Path) -> None:
    edit_yaml(scaffold / "campaigns" / "welcome.yaml",
              lambda c: c["audience"].update(where="first_name * 100000000 == ''"))
    problems = check(scaffold, sample_people=True).problems
    assert len(problems) == 1 and problems[0].line is not None
    assert problems[0].message.startswith("audience.where: expression")
    assert problems[0].message.endswith("100000000 times is too large")


def test_a_project_that_does_not_load_is_reported_not_raised(scaffold: Path) -> None:
    (scaffold / "ldmail.yaml").write_text("languages: [en, nl\n", encoding="utf-8")
    report = check(scaffold)
    assert report.problems and report.problems[0].file == "ldmail.yaml"
    assert report.renders == 0


def test_an_imap_host_no_resolver_could_be_asked_for_is_an_error(scaffold: Path) -> None:
    edit_yaml(scaffold / "ldmail.yaml", lambda s: s.update(inbox={
        "kind": "imap", "host": "imap..example.org", "user": "learning@example.org"}))
    assert [message.split(" (")[0] for message in messages(check(scaffold))] == \
        ["ldmail.yaml: inbox.host 'imap..example.org' is not a host name"]


def test_personal_data_that_git_tracks_is_a_warning(scaffold: Path) -> None:
    report = check(scaffold, tracked=lambda root: ["ldmail.yaml", ".ldmail/ledger.db"])
    assert [str(problem) for problem in report.warnings] == [
        ".ldmail/ledger.db: git tracks 1 file(s) in .ldmail, which hold names and addresses; "
        "untrack them (git rm -r --cached .ldmail) and list .ldmail in .gitignore"]


def test_first_failure_names_the_first_person_an_expression_fails_for() -> None:
    def answer(expression: str, person: Any) -> object:
        if person["n"] == 2:
            raise LdmailError(f"{expression} fails for {person['n']}")
        return True

    assert first_failure("x", [{"n": 1}, {"n": 2}, {"n": 3}], answer) == "x fails for 2"
    assert first_failure("x", [{"n": 1}], answer) is None


def test_broken_campaigns_names_the_first_problem_of_each(scaffold: Path) -> None:
    project = load_project(scaffold)
    assert broken_campaigns(project, Renderer(project), ["welcome"], TODAY) == {}
    (scaffold / HELLO).write_text("{% block subject %}", encoding="utf-8")
    project = load_project(scaffold)
    broken = broken_campaigns(project, Renderer(project), ["welcome"], TODAY)
    assert list(broken) == ["welcome"] and broken["welcome"].file == HELLO
    assert "template syntax error" in broken["welcome"].message
