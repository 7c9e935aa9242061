"""Values that broke every later run are rejected rows, and every command keeps working."""

from __future__ import annotations

from pathlib import Path

from .conftest import Cli
from .smtp_server import ledger_rows

DAY1 = "2026-12-01T10:00+01:00"


def test_year_0001_events_and_a_year_0219_start_date_are_rejected_rows(project: Path,
                                                                      cli: Cli) -> None:
    people = project / "people.csv"
    people.write_text(people.read_text("utf-8").replace("03-02-2019", "03-02-0219"), "utf-8")
    campaign = project / "campaigns" / "welcome.yaml"
    campaign.write_text(campaign.read_text("utf-8").replace(
        "goal: {event: registered}", "goal: {event: registered}\nanchor: start_date"), "utf-8")
    audience = cli("audience", "--project", project, "--now", DAY1)
    assert audience.exit_code == 0, audience.output
    assert "row 2: start_date: the date 0219-02-03 is outside the years 1900-2200" in \
        audience.stdout

    events = project / "lms.csv"
    events.write_text("E-mail;Event;Course;Timestamp\n"
                      "bob.smith@example.org;registered;course:x;0001-01-01 00:00:00\n"
                      "bob.smith@example.org;registered;course:x;02-12-2026 09:15:00\n",
                      "utf-8")
    imported = cli("events", "import", events, "--project", project)
    assert imported.exit_code == 0, imported.output
    assert "1 event(s) added, 0 already recorded, 1 skipped" in imported.stdout
    assert "row 2: the event's date 0001-01-01 is outside the years 1900-2200" in \
        imported.stdout
    stored = ledger_rows(project, "SELECT occurred_at FROM events")
    assert [row["occurred_at"][:4] for row in stored] == ["2026"]

    only_bad = project / "bad.csv"
    only_bad.write_text("E-mail;Event;Course;Timestamp\n"
                        "bob.smith@example.org;registered;course:x;0001-01-01\n", "utf-8")
    failed = cli("events", "import", only_bad, "--project", project)
    assert failed.exit_code == 1 and "no row of" in failed.stderr

    for args in (("send",), ("plan",), ("report",), ("send", "--dry-run")):
        result = cli(*args, "--project", project, "--now", "2026-12-03T10:00+01:00")
        assert result.exit_code == 0, (args, result.output)
        assert "isoformat" not in result.output and "Traceback" not in result.output


def test_the_year_range_is_a_setting(project: Path, cli: Cli) -> None:
    settings = project / "ldmail.yaml"
    settings.write_text(settings.read_text("utf-8") + "dates: {earliest_year: 2016}\n", "utf-8")
    audience = cli("audience", "--project", project, "--now", DAY1)
    assert "the date 2015-06-15 is outside the years 2016-2200" in audience.stdout


def test_events_of_a_forgotten_person_are_not_recorded(project: Path, cli: Cli) -> None:
    assert cli("send", "--project", project, "--now", DAY1).exit_code == 0
    assert cli("forget", "bob.smith@example.org", "--project", project).exit_code == 0
    events = project / "lms.csv"
    events.write_text("E-mail;Event;Course;Timestamp\n"
                      "bob.smith@example.org;registered;course:x;02-12-2026 09:15:00\n"
                      "ann.devries@example.org;registered;course:x;02-12-2026 09:15:00\n",
                      "utf-8")
    imported = cli("events", "import", events, "--project", project)
    assert imported.exit_code == 0
    assert "1 event(s) added" in imported.stdout
    assert "row 2: this person was forgotten on request" in imported.stdout
    assert not ledger_rows(project, "SELECT 1 FROM events WHERE email LIKE 'bob%'")
