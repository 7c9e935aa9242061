"""A user's first hour: commands find their project from any folder inside it, and say
clearly when there is none."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from .conftest import Cli


def test_commands_work_from_a_subfolder_of_the_project(project: Path, cli: Cli,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(project / "templates" / "en")
    checked = cli("validate")
    assert checked.exit_code == 0, checked.output
    assert "ok: 1 campaign(s)" in checked.stdout
    sent = cli("send", "--now", "2026-12-01T10:00+01:00")
    assert sent.exit_code == 0, sent.output
    # The ledger and the outbox are the project's, not the current folder's.
    assert (project / ".ldmail" / "ledger.db").is_file()
    assert not (project / "templates" / "en" / ".ldmail").exists()


def test_outside_any_project_one_line_names_init(tmp_path: Path, cli: Cli,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.chdir(empty)
    for args in (("validate",), ("send", "--dry-run"), ("schema",)):
        result = cli(*args)
        assert result.exit_code == 1, args
        assert result.stderr.count("\n") == 1, result.stderr
        assert "no ldmail project here or in any folder above it" in result.stderr
        assert "ldmail init" in result.stderr
    assert list(empty.iterdir()) == [], "schema wrote into a folder that is no project"


def test_an_explicit_project_is_not_searched_upwards(project: Path, cli: Cli) -> None:
    result = cli("validate", "--project", project / "campaigns")
    assert result.exit_code == 1
    assert "no ldmail project here (" in result.stderr


def test_a_dry_run_shows_campaign_step_and_people(project: Path, cli: Cli) -> None:
    dry = cli("send", "--project", project, "--dry-run", "--show", "2",
              "--now", "2026-12-01T10:00+01:00")
    assert dry.exit_code == 0, dry.output
    assert re.search(r"│ welcome\s+│ hello\s+│\s+7 │", dry.stdout), dry.stdout
    assert "The first 2 of them" in dry.stdout
    assert dry.stdout.count("@example.org") == 2
    assert "would enrol 8 people (8 enrolments), 0 enrolments would end" in dry.stdout
    assert not (project / ".ldmail" / "outbox").exists()


def test_a_send_says_where_messages_went_and_when_the_window_opens(project: Path,
                                                                  cli: Cli) -> None:
    sent = cli("send", "--project", project, "--now", "2026-12-01T10:00+01:00")
    assert "enrolled 8 people (8 enrolments), 0 enrolments ended" in sent.stdout
    outbox = project / ".ldmail" / "outbox"
    assert f"messages went to the outbox folder {outbox.resolve()}" in sent.stdout
    # The second step is due on Friday evening: it waits for Monday 09:00 in Amsterdam.
    friday = cli("send", "--project", project, "--now", "2026-12-04T18:00+01:00")
    assert friday.exit_code == 0, friday.output
    assert "7 due message(s) wait for the send window, which opens Mon 2026-12-07 " in \
        friday.stdout
    assert "messages went to" not in friday.stdout  # nothing went anywhere


def test_json_for_scripts(project: Path, cli: Cli) -> None:
    now = ("--now", "2026-12-01T10:00+01:00")
    plan = json.loads(cli("plan", "--project", project, "--format", "json", *now).stdout)
    assert plan["total"] == 14 and plan["new_enrolments"] == 8
    assert {(d["step"], d["messages"]) for d in plan["per_day"]} == \
        {("hello", 7), ("first-course", 7)}
    audience = json.loads(cli("audience", "--project", project, "--format", "json",
                              *now).stdout)
    assert audience["people"] == 8
    assert sum(p["people"] for p in audience["personas"].values()) + \
        audience["unmatched"] == 8
    sent = json.loads(cli("send", "--project", project, "--format", "json", *now).stdout)
    assert sent["sent"] == 7 and sent["steps"] == {"welcome/hello": 7}
    assert sent["people_enrolled"] == 8
    assert sent["destination"] == f"outbox {(project / '.ldmail' / 'outbox').resolve()}"


def test_log_lines_carry_iso_times_and_no_padding(project: Path, cli: Cli) -> None:
    """Not on a terminal (cron, a log file): every line says when, in ISO 8601, unpadded."""
    result = cli("-v", "send", "--project", project, "--now", "2026-12-01T10:00+01:00")
    assert result.exit_code == 0, result.output
    stamp = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d{4}"
    logged = result.stderr.splitlines()
    assert logged and all(re.match(stamp + r" DEBUG \S", line) for line in logged), logged
    assert all(line == line.rstrip() for line in logged)
    assert re.match(stamp + r" sent 7 · ", result.stdout), result.stdout


def test_imports_notice_language_names_and_lost_letters(project: Path, cli: Cli) -> None:
    from ..projects import write_people

    write_people(project, {
        "ann@example.org": "Ann;de Vries;Nederlands;Sales;03-02-2019;",
        "bob@example.org": "Bob;Smith;nl-NL;Finance;15-06-2015;",
        "dirk@example.org": "Dirk;Jansen;Deutsch;IT;12-01-2012;",
        "emma@example.org": "Emma;Bakker;Englsh;Support;20-08-2021;",
        "gosia@example.org": "Ma?gorzata;Nowak;EN;Sales;01-02-2020;",
    })
    shown = cli("audience", "--project", project)
    assert shown.exit_code == 0, shown.output
    assert "row 2: language 'Nederlands' read as 'nl'" in shown.stdout
    assert "row 4: language 'Deutsch' (German) is not one of the campaign languages (en, nl)" \
        in shown.stdout
    assert "row 5: language 'Englsh' is not a language (did you mean 'en'?)" in shown.stdout
    assert "row 6: first_name 'Ma?gorzata' has a '?' where a letter was probably lost" in \
        shown.stdout
    assert "row 3" not in shown.stdout  # nl-NL is plain Dutch: nothing to say
    as_json = json.loads(cli("audience", "--project", project, "--format", "json").stdout)
    assert as_json["note_count"] == 4 and as_json["people"] == 5
    for email, language in (("ann@example.org", "nl"), ("bob@example.org", "nl"),
                            ("dirk@example.org", "en")):
        shown = cli("preview", "-c", "welcome", "--project", project, "--person", email)
        assert shown.exit_code == 0, shown.output
        assert f"· {language}" in shown.stdout, (email, shown.stdout)
    checked = cli("validate", "--project", project)
    assert "4 row(s) read with a note, the first: language 'Nederlands' read as 'nl'" in \
        checked.output


def test_ci_needs_no_hr_export_and_shows_no_real_people(project: Path, cli: Cli,
                                                        tmp_path: Path) -> None:
    real = (project / "people.csv").read_text(encoding="utf-8")
    (project / "people.csv").unlink()
    assert cli("validate", "--project", project).exit_code == 1  # without the flag it is missed
    checked = cli("validate", "--project", project, "--sample-people")
    assert checked.exit_code == 0, checked.output
    gallery = tmp_path / "gallery"
    shown = cli("preview", "--project", project, "--out", gallery, "--sample-people")
    assert shown.exit_code == 0, shown.output
    pages = "".join(p.read_text(encoding="utf-8") for p in gallery.rglob("*.html"))
    assert "Sanne" in pages or "Daan" in pages or "Lotte" in pages  # Dutch stand-ins
    for row in real.splitlines()[1:]:
        email, first, last = row.split(";")[:3]
        assert email not in pages, email
        assert f"{first} {last}" not in pages, email
    refused = cli("preview", "-c", "welcome", "--project", project, "--sample-people",
                  "--person", "ann.devries@example.org")
    assert refused.exit_code == 1 and "leave out --sample-people" in refused.stderr


def test_preview_says_when_it_shows_what_nobody_would_get(project: Path, cli: Cli) -> None:
    from ..projects import edit_yaml

    wrong = cli("preview", "-c", "welcome", "--project", project, "--lang", "de")
    assert wrong.exit_code == 1
    assert "--lang de: not one of this project's languages (en, nl)" in wrong.stderr
    edit_yaml(project / "campaigns" / "welcome.yaml",
              lambda c: c["audience"].update(personas=["newcomer"]))
    audience = json.loads(cli("audience", "--project", project, "--format", "json").stdout)
    assert audience["personas"]["compelled"]["people"] >= 1
    rows = (project / "people.csv").read_text(encoding="utf-8").splitlines()[1:]
    found = [row.split(";")[0] for row in rows]
    outside = []
    for email in found:
        shown = cli("preview", "-c", "welcome", "--project", project, "--person", email,
                    "--step", "hello")
        assert shown.exit_code == 0, shown.output
        if shown.stderr:
            assert "note: 'welcome' would not send these to" in shown.stderr
            assert "and the campaign is for newcomer" in shown.stderr
            outside.append(email)
    assert len(outside) == len(found) - audience["personas"]["newcomer"]["people"]


def test_the_calendar_invite_is_shown_in_previews(example: Path, cli: Cli,
                                                  tmp_path: Path) -> None:
    shown = cli("preview", "-c", "learning-habit", "--project", example,
                "--step", "learning-moment", "--persona", "newcomer")
    assert shown.exit_code == 0, shown.output
    invite = "Weekly learning moment: every Friday at 15:00 for 1h, 12 weeks (Europe/Amsterdam)"
    assert f"Invite:    {invite}" in shown.stdout
    gallery = tmp_path / "gallery"
    assert cli("preview", "--project", example, "--out", gallery,
               "--sample-people").exit_code == 0
    page = (gallery / "learning-habit--learning-moment--newcomer--en.html").read_text("utf-8")
    assert f"<dt>Invite</dt><dd>{invite}" in page


def test_messages_carry_the_logo_a_button_and_mailto_links(example: Path, cli: Cli) -> None:
    shown = cli("preview", "-c", "platform-launch", "--project", example, "--step", "kick-off",
                "--persona", "newcomer", "--html")
    assert shown.exit_code == 0, shown.output
    page = (example / ".ldmail" / "preview" /
            "platform-launch-kick-off-newcomer-en.html").read_text(encoding="utf-8")
    assert re.search(r'<img src="https://learning\.hearthandhome\.example/img/learning-kitchen-'
                     r'logo\.png" alt="The Learning Kitchen, Hearth &amp; Home Kitchens" '
                     r'width="200"', page)
    button = re.search(r'<table[^>]*class="button"[^>]*>.*?</table>', page, re.S)
    assert button and 'bgcolor="#1f6f8b"' in button[0]
    assert ">Start your first micro-training</a>" in button[0]
    assert "utm_source=ldmail" in button[0]  # the button's link is tagged like any other
    assert '<a href="mailto:learning@hearthandhome.example"' in page
    # The text part reads the button as a link (the terminal may wrap the line).
    text = re.sub(r"(\s*│\s*)+", " ", shown.stdout)
    assert "Start your first micro-training <https://learning.hearthandhome.example/?" in text


def test_brand_values_are_checked(project: Path, cli: Cli) -> None:
    settings = project / "ldmail.yaml"
    text = settings.read_text(encoding="utf-8")
    settings.write_text(text + "brand: {logo: 'http://example.org/logo.png', colour: red}\n",
                        encoding="utf-8")
    checked = cli("validate", "--project", project)
    assert checked.exit_code == 1
    assert "must be an https:// URL of an image" in checked.output
    assert "brand.colour" in checked.output or "colour" in checked.output


def test_init_says_how_to_go_into_a_folder_with_a_space(tmp_path: Path, cli: Cli) -> None:
    target = tmp_path / "my campaigns"
    result = cli("init", target)
    assert result.exit_code == 0, result.output
    assert f"Next: cd '{target}' && ldmail validate" in result.stdout
