"""`ldmail preview` and `ldmail init` as an author uses them."""

from __future__ import annotations

from pathlib import Path

from .conftest import Cli


def test_wiifm_differs_per_persona(project: Path, cli: Cli) -> None:
    result = cli("preview", "-c", "welcome", "--project", project, "--step", "hello")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "A clear path to your certificate" in out          # compelled
    assert "Find your feet faster" in out                     # newcomer
    assert "The skills your role asks for next" in out        # skill builder
    assert "the whole catalogue is open to you" in out        # broad developer


def test_dutch_person_gets_dutch_text(project: Path, cli: Cli) -> None:
    result = cli("preview", "-c", "welcome", "--project", project,
                 "--person", "ann.devries@example.org", "--step", "hello")
    assert result.exit_code == 0, result.output
    assert "Ann, je leerplatform staat voor je klaar" in result.stdout
    assert "Hoi Ann," in result.stdout
    assert "persona skill-builder · nl" in result.stdout


def test_html_written_with_inlined_css_and_escaping(project: Path, cli: Cli) -> None:
    people = project / "people.csv"
    people.write_text(people.read_text(encoding="utf-8").replace(
        "ann.devries@example.org;Ann;", "ann.devries@example.org;<b>Ann</b>;"), encoding="utf-8")
    result = cli("preview", "-c", "welcome", "--project", project, "--person",
                 "ann.devries@example.org", "--step", "hello", "--html")
    assert result.exit_code == 0, result.output
    path = project / ".ldmail/preview/welcome-hello-skill-builder-nl.html"
    assert f"HTML written to {path}" in result.stdout.replace("\n", "")
    html = path.read_text(encoding="utf-8")
    assert "&lt;b&gt;Ann&lt;/b&gt;" in html and "<b>Ann</b>" not in html
    assert 'class="wiifm" style="' in html          # CSS inlined onto the element
    assert "utm_campaign=welcome" in html


def test_unknown_step_and_campaign(project: Path, cli: Cli) -> None:
    result = cli("preview", "-c", "welcom", "--project", project)
    assert result.exit_code == 1
    assert "no campaign 'welcom'; did you mean 'welcome'?" in result.stderr
    result = cli("preview", "-c", "welcome", "--project", project, "--step", "nope")
    assert result.exit_code == 1
    assert "has no step 'nope'; its steps: hello, first-course" in result.stderr


def test_init_refuses_to_overwrite(project: Path, cli: Cli) -> None:
    result = cli("init", project)
    assert result.exit_code == 1
    assert "never overwrites files" in result.stderr


def test_every_command_has_help(cli: Cli) -> None:
    names = ["init", "validate", "audience", "preview", "plan", "send", "run", "history"]
    overview = cli("--help").stdout
    for name in names:
        assert name in overview
        result = cli(name, "--help")
        assert result.exit_code == 0
        assert "--project" in result.stdout or name == "init"
