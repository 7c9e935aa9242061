"""ldmail.measurement.events promises to record goal events from an LMS CSV export (English,
Dutch or German headers, as Excel saves it) or from xAPI statements (an array, an LRS answer,
or JSON Lines), each event once; a bad row or statement is skipped and named by its position
while the good ones are recorded; a file that cannot be read at all is one line naming where."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from ldmail.errors import JsonLimit, LdmailError
from ldmail.ledger import FORGOTTEN, Ledger
from ldmail.measurement.events import (
    actor_lookup,
    import_events,
    load_json,
    parse_timestamp,
    statement_event,
)
from ldmail.project.config import Project

AMSTERDAM = ZoneInfo("Europe/Amsterdam")
UNTIL = "2100-01-01T00:00:00Z"


@pytest.fixture
def ledger(tmp_path: Path) -> Ledger:
    return Ledger(tmp_path / "ledger.db")


def recorded(ledger: Ledger, event: str) -> list[tuple[str, str, str]]:
    return [(e.email, e.object, e.occurred_at) for e in ledger.goal_events(event, UNTIL)]


def statement(email: str = "ann@example.org", verb: str = "registered",
              target: str = "course:1", at: str = "2026-12-02T10:00:00Z",
              **extra: Any) -> dict[str, Any]:
    return {"actor": {"mbox": f"mailto:{email}"},
            "verb": {"id": f"http://adlnet.gov/expapi/verbs/{verb}"},
            "object": {"id": target}, "timestamp": at, **extra}


def test_a_dutch_excel_lms_export_records_good_rows_and_names_the_bad_ones(
        ledger: Ledger, tmp_path: Path) -> None:
    path = tmp_path / "lms.csv"
    path.write_bytes(b"\xef\xbb\xbf" + (
        b"Naam;E-mailadres;Gebeurtenis;Cursuscode;Datum\r\n"
        b"Ann;Ann@Example.org;Registered;course:1 ;02-12-2026 14:05\r\n"
        b"Bob;bob@;registered;course:1;02-12-2026\r\n"
        b"Cid;cid@example.org;;course:1;02-12-2026\r\n"
        b"Dan;dan@example.org;registered;course:1;gisteren\r\n"
        b"Eve;eve@example.org;registered;course:1;02-12-0219\r\n"
        b"Fay;fay@example.org;registered;course:2;03-12-2026\r\n"))
    result = import_events(ledger, path, zone=AMSTERDAM)
    assert (result.kind, result.added, result.already_known) == ("csv", 2, 0)
    assert [(s.position, s.reason.split(";")[0]) for s in result.skipped] == [
        ("row 3", "invalid e-mail address 'bob@': There must be something after the @-sign"),
        ("row 4", "empty event"),
        ("row 5", "unreadable timestamp 'gisteren'"),
        ("row 6", "the event's date 0219-12-02 is outside the years 1900-2200")]
    # A time without a zone is read in the project's zone (14:05 in Amsterdam is 13:05 UTC).
    assert recorded(ledger, "registered") == [
        ("ann@example.org", "course:1", "2026-12-02T13:05:00Z"),
        ("fay@example.org", "course:2", "2026-12-02T23:00:00Z")]
    again = import_events(ledger, path, zone=AMSTERDAM)
    assert (again.added, again.already_known) == (0, 2)


def test_german_headers_are_recognised(ledger: Ledger, tmp_path: Path) -> None:
    path = tmp_path / "lms.csv"
    path.write_text("E-Mail-Adresse,Aktion,Kurs,Zeitpunkt\r\n"
                    "jurgen@example.de,completed,kurs-7,2026-12-02 09:30\r\n", encoding="cp1252")
    assert import_events(ledger, path, zone=UTC).added == 1
    assert recorded(ledger, "completed") == [("jurgen@example.de", "kurs-7",
                                              "2026-12-02T09:30:00Z")]


def test_a_csv_without_an_address_column_stops_and_lists_the_names_it_takes(
        ledger: Ledger, tmp_path: Path) -> None:
    path = tmp_path / "lms.csv"
    path.write_text("Who,Event,Course,Date\r\nann,registered,c,2026-12-02 09:00\r\n",
                    encoding="utf-8")
    with pytest.raises(LdmailError, match=r"lms.csv: no email column; name one of: email, "
                                          r"e-mail, .* \(found: Who, Event, Course, Date\)"):
        import_events(ledger, path, zone=UTC)


def test_control_characters_in_an_event_or_course_refuse_only_that_row(
        ledger: Ledger, tmp_path: Path) -> None:
    path = tmp_path / "lms.csv"
    path.write_text("email,event,course,date\r\n"
                    "ann@example.org,registered\x1b[31m,c,2026-12-02\r\n"
                    "bob@example.org,registered,c\u202e1,2026-12-02\r\n"
                    "cid@example.org,registered,c,2026-12-02\r\n", encoding="utf-8")
    result = import_events(ledger, path, zone=UTC)
    assert result.added == 1
    assert [(s.position, s.reason.split(";")[0]) for s in result.skipped] == [
        ("row 2", "the event name holds control characters (\\x1b)"),
        ("row 3", "the course or activity id holds control characters (\\u202e)")]


def test_an_xapi_array_and_an_lrs_answer_are_recorded_once(ledger: Ledger,
                                                            tmp_path: Path) -> None:
    array = tmp_path / "statements.json"
    array.write_text(json.dumps([statement(), statement(verb="completed")]), encoding="utf-8")
    result = import_events(ledger, array, zone=UTC)
    assert (result.kind, result.added, result.skipped) == ("xapi", 2, [])
    answer = tmp_path / "answer.json"
    answer.write_text(json.dumps({"statements": [statement()], "more": ""}), encoding="utf-8")
    assert (import_events(ledger, answer, zone=UTC).already_known) == 1
    assert recorded(ledger, "registered") == [("ann@example.org", "course:1",
                                               "2026-12-02T10:00:00Z")]


def test_json_lines_skip_a_broken_line_and_keep_the_rest(ledger: Ledger, tmp_path: Path) -> None:
    path = tmp_path / "statements.jsonl"
    path.write_text(f"{json.dumps(statement())}\n{{broken\n\n"
                    f'{{"verb": {{"id": "x/registered"}}, "object": {{"id": "c"}}, '
                    f'"timestamp": "2026-12-02T10:00:00Z"}}\n', encoding="utf-8")
    result = import_events(ledger, path, zone=UTC)
    assert result.added == 1
    assert [(s.position, s.reason) for s in result.skipped] == [
        ("line 2", "invalid JSON (Expecting property name enclosed in double quotes)"),
        ("line 4", "no actor")]


def test_a_cut_off_json_array_or_a_document_of_something_else_is_one_line(
        ledger: Ledger, tmp_path: Path) -> None:
    cut = tmp_path / "cut.json"
    cut.write_text('[\n{"actor": {"mbox": "mailto:a@b.org"},\n"verb": {"id": "x/y"}\n,',
                   encoding="utf-8")
    with pytest.raises(LdmailError, match=r"cut.json:4: invalid JSON \(the file ends before "
                                          r"the JSON does \(cut off\?\)\)"):
        import_events(ledger, cut, zone=UTC)
    other = tmp_path / "other.json"
    other.write_text('{"foo": 1}', encoding="utf-8")
    with pytest.raises(LdmailError, match="other.json: holds an object with keys foo, not xAPI "
                                          "statements"):
        import_events(ledger, other, zone=UTC)


def test_a_missing_file_suggests_the_close_name(ledger: Ledger, tmp_path: Path) -> None:
    (tmp_path / "lms.csv").write_text("email\r\n", encoding="utf-8")
    with pytest.raises(LdmailError) as raised:
        import_events(ledger, tmp_path / "lms.cvs", zone=UTC)
    assert str(raised.value) == (f"{tmp_path / 'lms.cvs'}: file not found; did you mean "
                                 f"{tmp_path / 'lms.csv'}?")


@pytest.mark.parametrize(("change", "reason"), [
    ({"verb": {}}, "no verb.id"),
    ({"object": {"id": " "}}, "no object.id (the course or activity)"),
    ({"timestamp": None}, "no timestamp"),
    ({"actor": {"name": "Ann"}}, "actor has no mbox (mailto:) and no account named by an "
                                 "e-mail address"),
    ({"id": "x" * 65}, "id of 65 characters (at most 64)"),
    ({"object": {"id": "c" * 2049}}, "object.id of 2,049 characters (at most 2,048)"),
])
def test_a_statement_missing_a_part_names_it(change: dict[str, Any], reason: str) -> None:
    with pytest.raises(ValueError) as raised:
        statement_event({**statement(), **change})
    assert str(raised.value).startswith(reason)


def test_an_account_named_by_an_address_and_stored_time_are_enough() -> None:
    event = statement_event({**statement(), "actor": {"account": {"name": "Ann@Example.org"}},
                             "timestamp": None, "stored": "2026-12-02T10:00:00+01:00"})
    assert (event.email, event.event, event.object) == ("ann@example.org", "registered",
                                                        "course:1")
    assert event.occurred_at == datetime(2026, 12, 2, 9, tzinfo=UTC)


def test_an_mbox_sha1sum_is_found_among_the_people_of_the_export(loaded: Project) -> None:
    digest = hashlib.sha1(b"mailto:ann.devries@example.org").hexdigest()
    with Ledger.of(loaded) as ledger:
        lookup = actor_lookup(loaded, ledger)
        found = statement_event({**statement(), "actor": {"mbox_sha1sum": digest.upper()}},
                                lookup)
        assert found.email == "ann.devries@example.org"
        with pytest.raises(ValueError, match="actor's mbox_sha1sum matches no one in the "
                                             "people export or the ledger"):
            statement_event({**statement(), "actor": {"mbox_sha1sum": "0" * 40}}, lookup)


def test_a_forgotten_persons_events_are_not_recorded(ledger: Ledger, tmp_path: Path) -> None:
    ledger.suppress(FORGOTTEN + ledger.address_hash("ann@example.org"), "forgotten on request",
                    "forget", "2026-12-01T00:00:00Z")  # as privacy.forget writes it first
    path = tmp_path / "lms.csv"
    path.write_text("email,event,course,date\r\nann@example.org,registered,c,2026-12-02\r\n"
                    "bob@example.org,registered,c,2026-12-02\r\n", encoding="utf-8")
    result = import_events(ledger, path, zone=UTC)
    assert result.added == 1
    assert [s.reason for s in result.skipped] == [
        "this person was forgotten on request; their events are not recorded"]


def test_timestamps_iso_or_day_first_and_naive_ones_in_the_given_zone() -> None:
    assert parse_timestamp("2026-12-02T10:00:00Z") == datetime(2026, 12, 2, 10, tzinfo=UTC)
    assert parse_timestamp("02/12/2026 10:00", AMSTERDAM) == \
        datetime(2026, 12, 2, 10, tzinfo=AMSTERDAM)
    with pytest.raises(ValueError, match="unreadable timestamp 'yesterday'"):
        parse_timestamp("yesterday")


def test_json_too_deep_or_with_a_huge_number_is_refused_with_its_line() -> None:
    with pytest.raises(JsonLimit) as deep:
        load_json("[" * 100 + "]" * 100)
    assert (deep.value.reason, deep.value.line) == ("nested more than 64 levels deep", 1)
    with pytest.raises(JsonLimit) as huge:
        load_json('{"a":\n' + "1" * 50 + "}")
    assert (huge.value.reason, huge.value.line) == ("a number of 50 digits (at most 40)", 2)
    assert load_json('{"a": [1, 2.5]}') == {"a": [1, 2.5]}
