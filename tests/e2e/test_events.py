"""`ldmail events import`: xAPI statements and LMS exports, recorded once, bad input named."""

from __future__ import annotations

import hashlib
import json
import re
import sqlite3
from pathlib import Path
from typing import Any

from .conftest import REPO, Cli

VERBS = "http://adlnet.gov/expapi/verbs/"


def statement(email: str, verb: str, course: str, when: str) -> dict[str, Any]:
    return {"actor": {"objectType": "Agent", "mbox": f"mailto:{email}"},
            "verb": {"id": VERBS + verb, "display": {"en-US": verb}},
            "object": {"objectType": "Activity", "id": course},
            "timestamp": when}


def events(project: Path) -> list[tuple[str, str, str, str]]:
    db = sqlite3.connect(project / ".ldmail" / "ledger.db")
    try:
        return db.execute("SELECT email, event, object, occurred_at FROM events "
                          "ORDER BY occurred_at, email").fetchall()
    finally:
        db.close()


def test_xapi_array_is_recorded_once(project: Path, cli: Cli, tmp_path: Path) -> None:
    path = tmp_path / "statements.json"
    path.write_text(json.dumps([
        statement("Ann.deVries@Example.org", "registered", "course:excel", "2026-12-02T09:15:00Z"),
        statement("bob.smith@example.org", "completed", "course:gdpr",
                  "2026-12-03T10:00:00.250+01:00"),
        statement("dirk.jansen@example.org", "registered", "course:excel",
                  "2026-12-04T08:00:00Z"),
    ], indent=2), encoding="utf-8")
    first = cli("events", "import", path, "--project", project)
    assert first.exit_code == 0, first.output
    assert "3 event(s) added, 0 already recorded, 0 skipped" in first.stdout
    again = cli("events", "import", path, "--project", project)
    assert again.exit_code == 0, again.output
    assert "0 event(s) added, 3 already recorded, 0 skipped" in again.stdout
    # Addresses normalised, verb ids shortened, times stored in UTC to the second.
    assert events(project) == [
        ("ann.devries@example.org", "registered", "course:excel", "2026-12-02T09:15:00Z"),
        ("bob.smith@example.org", "completed", "course:gdpr", "2026-12-03T09:00:00Z"),
        ("dirk.jansen@example.org", "registered", "course:excel", "2026-12-04T08:00:00Z"),
    ]


def test_lrs_answer_with_statements_key(project: Path, cli: Cli, tmp_path: Path) -> None:
    path = tmp_path / "lrs.json"
    path.write_text(json.dumps({"more": "", "statements": [
        statement("ann.devries@example.org", "registered", "course:excel",
                  "2026-12-02T09:15:00Z")]}, indent=1), encoding="utf-8")
    result = cli("events", "import", path, "--project", project)
    assert result.exit_code == 0, result.output
    assert "1 event(s) added" in result.stdout


def test_malformed_statements_are_listed_by_position(project: Path, cli: Cli,
                                                     tmp_path: Path) -> None:
    good = statement("ann.devries@example.org", "registered", "course:excel",
                     "2026-12-02T09:15:00Z")
    no_actor = {k: v for k, v in good.items() if k != "actor"}
    bad_verb = {**good, "verb": {"display": {"en-US": "registered"}}}
    bad_time = {**good, "timestamp": "yesterday afternoon"}
    no_mbox = {**good, "actor": {"name": "Ann", "openid": "https://id.example.org/ann"}}
    path = tmp_path / "statements.json"
    path.write_text(json.dumps([good, no_actor, bad_verb, bad_time, no_mbox, "oops"]),
                    encoding="utf-8")
    result = cli("events", "import", path, "--project", project)
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "1 event(s) added, 0 already recorded, 5 skipped" in out
    assert "statement 2: no actor" in out
    assert "statement 3: no verb.id" in out
    assert "statement 4: unreadable timestamp 'yesterday afternoon'" in out
    assert "statement 5: actor has no mbox" in out
    assert "statement 6: not a JSON object" in out
    assert "statement 1:" not in out
    assert len(events(project)) == 1


def test_json_lines_with_a_broken_line(project: Path, cli: Cli, tmp_path: Path) -> None:
    lines = [
        json.dumps(statement("ann.devries@example.org", "registered", "course:a",
                             "2026-12-02T09:00:00Z")),
        json.dumps(statement("bob.smith@example.org", "registered", "course:a",
                             "2026-12-02T10:00:00Z")),
        "",  # blank lines are skipped but still counted
        '{"actor": {"mbox": "mailto:chloe.martin@example.org"}, "verb": ',
        json.dumps(statement("dirk.jansen@example.org", "completed", "course:a",
                             "2026-12-09T10:00:00Z")),
    ]
    path = tmp_path / "statements.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = cli("events", "import", path, "--project", project)
    assert result.exit_code == 0, result.output
    assert "3 event(s) added, 0 already recorded, 1 skipped" in result.stdout
    assert "line 4: invalid JSON" in result.stdout
    again = cli("events", "import", path, "--project", project)
    assert "0 event(s) added, 3 already recorded, 1 skipped" in again.stdout


def test_broken_json_array_names_the_line(project: Path, cli: Cli, tmp_path: Path) -> None:
    path = tmp_path / "statements.json"
    path.write_text('[\n  {"actor": {}},\n  {"verb": \n]\n', encoding="utf-8")
    result = cli("events", "import", path, "--project", project)
    assert result.exit_code == 1
    assert f"{path}:4: invalid JSON" in result.stderr
    assert not (project / ".ldmail" / "ledger.db").exists() or events(project) == []


def test_lms_csv_export(project: Path, cli: Cli, tmp_path: Path) -> None:
    """Semicolons, a BOM, Windows-1252, Dutch headers and day-first dates, as Excel saves it."""
    rows = [
        "E-mailadres;Gebeurtenis;Cursus;Datum",
        "ann.devries@example.org;registered;course:excel;02-12-2026 09:15",
        "bob.smith@example.org;Completed;course:gdpr;03-12-2026",
        "chloe.martin@example.org;registered;course:café;2026-12-04 11:00:00",
        "not-an-address;registered;course:excel;04-12-2026 11:00",
        "dirk.jansen@example.org;registered;course:excel;31-02-2026",
        "emma.bakker@example.org;;course:excel;04-12-2026",
    ]
    path = tmp_path / "lms-export.csv"
    path.write_bytes(b"\xef\xbb\xbf" + "\r\n".join(rows).encode("cp1252") + b"\r\n")
    result = cli("events", "import", path, "--project", project)
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "3 event(s) added, 0 already recorded, 3 skipped" in out
    assert "row 5: invalid e-mail address 'not-an-address'" in out
    assert "row 6: unreadable timestamp '31-02-2026'" in out
    assert "row 7: empty event" in out
    # Times without a zone are the project's (Europe/Amsterdam, CET): stored in UTC.
    assert events(project) == [
        ("ann.devries@example.org", "registered", "course:excel", "2026-12-02T08:15:00Z"),
        ("bob.smith@example.org", "completed", "course:gdpr", "2026-12-02T23:00:00Z"),
        ("chloe.martin@example.org", "registered", "course:café", "2026-12-04T10:00:00Z"),
    ]
    again = cli("events", "import", path, "--project", project)
    assert "0 event(s) added, 3 already recorded, 3 skipped" in again.stdout


def test_same_event_from_lms_and_lrs_counts_once(project: Path, cli: Cli,
                                                 tmp_path: Path) -> None:
    csv_file = tmp_path / "lms.csv"
    csv_file.write_text("E-mail;Event;Course;Timestamp\n"
                        "ann.devries@example.org;registered;course:excel;02-12-2026 10:15:00\n",
                        encoding="utf-8")
    xapi_file = tmp_path / "lrs.json"
    xapi_file.write_text(json.dumps([
        statement("ann.devries@example.org", "registered", "course:excel",
                  "2026-12-02T09:15:00.000Z"),
        statement("bob.smith@example.org", "registered", "course:excel",
                  "2026-12-02T09:16:00.000Z")]), encoding="utf-8")
    assert "1 event(s) added" in cli("events", "import", csv_file, "--project", project).stdout
    result = cli("events", "import", xapi_file, "--project", project)
    assert "1 event(s) added, 1 already recorded, 0 skipped" in result.stdout
    assert len(events(project)) == 2


def test_csv_without_an_email_column_stops(project: Path, cli: Cli, tmp_path: Path) -> None:
    path = tmp_path / "lms.csv"
    path.write_text("Learner;Event;Course;Timestamp\nann;registered;x;02-12-2026\n",
                    encoding="utf-8")
    result = cli("events", "import", path, "--project", project)
    assert result.exit_code == 1
    assert "no email column" in result.stderr
    assert "found: Learner, Event, Course, Timestamp" in result.stderr


def test_shipped_example_events_import_cleanly(example: Path, cli: Cli, tmp_path: Path) -> None:
    """events/ at the top level holds the example's goal events: both files are clean."""
    lms, lrs = REPO / "events" / "lms-export.csv", REPO / "events" / "xapi-statements.json"
    first = cli("events", "import", lms, "--project", example)
    assert first.exit_code == 0, first.output
    assert ", 0 already recorded, 0 skipped" in first.stdout
    second = cli("events", "import", lrs, "--project", example)
    assert second.exit_code == 0, second.output
    assert " 0 skipped" in second.stdout
    # A few events are in both files (the LMS and the LRS both saw them): recorded once.
    assert re.search(r" [1-9]\d* already recorded, 0 skipped", second.stdout), second.stdout
    recorded = events(example)
    assert 600 <= len(recorded) <= 1000  # eight weeks of 1,000 people
    people = {line.split(";")[3].lower()
              for line in (example / "people.csv").read_text(encoding="utf-8-sig").splitlines()}
    assert {email for email, *_ in recorded} <= people
    assert {verb for _, verb, _, _ in recorded} == {"registered", "completed"}
    assert min(at for *_, at in recorded) >= "2026-12-02"
    assert max(at for *_, at in recorded) <= "2027-01-26"


def test_import_matches_actors_as_pull_does(project: Path, cli: Cli, tmp_path: Path) -> None:
    """An actor without an mbox is found by mbox_sha1sum (against the people export, before
    any send) and by account name through lrs.account_column, as `events pull` finds it."""
    with (project / "ldmail.yaml").open("a", encoding="utf-8") as file:
        file.write("\nlrs:\n  endpoint: https://lrs.example.org/xAPI\n  user: reader\n"
                   "  account_column: last_name\n")
    hashed = statement("x@example.org", "registered", "course:excel", "2026-12-02T09:15:00Z")
    hashed["actor"] = {"objectType": "Agent", "mbox_sha1sum": hashlib.sha1(
        b"mailto:ann.devries@example.org").hexdigest().upper()}
    account = statement("x@example.org", "completed", "course:gdpr", "2026-12-03T10:00:00Z")
    account["actor"] = {"objectType": "Agent",
                        "account": {"homePage": "https://lms.example.org", "name": "Smith"}}
    stranger = statement("x@example.org", "registered", "course:excel", "2026-12-04T10:00:00Z")
    stranger["actor"] = {"objectType": "Agent",
                         "mbox_sha1sum": hashlib.sha1(b"mailto:nobody@example.org").hexdigest()}
    path = tmp_path / "statements.json"
    path.write_text(json.dumps([hashed, account, stranger]), encoding="utf-8")
    result = cli("events", "import", path, "--project", project)
    assert "2 event(s) added, 0 already recorded, 1 skipped" in result.stdout, result.output
    assert "statement 3: actor's mbox_sha1sum matches no one in the people export" \
        in result.stdout
    assert events(project) == [
        ("ann.devries@example.org", "registered", "course:excel", "2026-12-02T09:15:00Z"),
        ("bob.smith@example.org", "completed", "course:gdpr", "2026-12-03T10:00:00Z")]


# Names and ids as a hostile or broken source writes them: a terminal escape, a line break,
# the right-to-left override that makes "course:lecxe" read as "course:excel", an isolate, a
# right-to-left mark, a line separator.
CONTROLLED = [("\x1b[2Jcompleted", "course:excel", "the event name", "\\x1b"),
              ("comp\r\nleted", "course:excel", "the event name", "\\x0d"),
              ("completed", "course:\u202elecxe", "the course or activity id", "\\u202e"),
              ("completed\u2066", "course:excel", "the event name", "\\u2066"),
              ("completed", "course:excel\u200f", "the course or activity id", "\\u200f"),
              ("completed", "course:\u2028excel", "the course or activity id", "\\u2028")]


def refusal(what: str, control: str) -> str:
    return (f"{what} holds control characters ({control}); an export or LRS that writes them "
            "is broken, fix it at its source")


def assert_only_plain_events(project: Path, output: str) -> None:
    """The good event recorded; nothing with a control character in the ledger or shown."""
    assert events(project) == [("ann.devries@example.org", "completed", "course:excel",
                                "2026-12-02T15:00:00Z")]
    assert "Traceback" not in output
    assert not re.search("[\x00-\x09\x0b-\x1f\u200f\u2028\u202e\u2066]", output)


def test_event_names_and_objects_with_control_characters_are_refused_by_row(
        project: Path, cli: Cli, tmp_path: Path) -> None:
    path = tmp_path / "events.csv"
    rows = [("completed", "course:excel")] + [(event, course) for event, course, _, _ in
                                              CONTROLLED]
    path.write_text("E-mail;Event;Course;Timestamp\r\n" + "".join(
        f'ann.devries@example.org;"{event}";{course};2026-12-02T15:00:00Z\r\n'
        for event, course in rows), encoding="utf-8", newline="")

    result = cli("events", "import", path, "--project", project)

    assert result.exit_code == 0, result.output
    assert f"1 event(s) added, 0 already recorded, {len(CONTROLLED)} skipped" in result.stdout
    row = 3  # the line each row starts on: after the header and the good row
    for event, _, what, control in CONTROLLED:
        assert f"row {row}: {refusal(what, control)}" in result.stdout
        row += 1 + event.count("\n")
    assert_only_plain_events(project, result.output)


def test_xapi_verbs_and_objects_with_control_characters_are_refused_by_statement(
        project: Path, cli: Cli, tmp_path: Path) -> None:
    path = tmp_path / "statements.json"
    path.write_text(json.dumps([
        statement("ann.devries@example.org", event, course, "2026-12-02T15:00:00Z")
        for event, course in [("completed", "course:excel"),
                              *((e, c) for e, c, _, _ in CONTROLLED)]]), encoding="utf-8")

    result = cli("events", "import", path, "--project", project)

    assert result.exit_code == 0, result.output
    for number, (_, _, what, control) in enumerate(CONTROLLED, start=2):
        assert f"statement {number}: {refusal(what, control)}" in result.stdout
    assert_only_plain_events(project, result.output)

