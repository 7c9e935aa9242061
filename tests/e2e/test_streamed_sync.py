"""The streamed sync: the export is staged in the ledger and read again only when it changed.

A sync reads the people export row by row into the ledger and changes enrolments in SQL; a
run that finds the same export, audiences, campaigns and day uses the staged rows instead.
These tests pin down that the staged rows are only trusted while they are exact, and that
`plan`, which counts sends instead of keeping them, lists the same sends a full list holds.
"""

from __future__ import annotations

import sqlite3
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from ldmail.delivery.plan import build_plan
from ldmail.project.config import load_project

from ..projects import LEDGER, NOW, edit_yaml
from .conftest import Cli
from .smtp_server import ledger_rows, send

EXAMPLE_NOW = datetime.fromisoformat("2026-12-01T10:00+01:00")


def _export_reads(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the times a sync reads the people export."""
    import ldmail.audience.enrolment

    reads: list[int] = []
    real = vars(ldmail.audience.enrolment)["PeopleStream"]  # the name the sync looks up

    def counting(*args: Any, **kwargs: Any) -> Any:
        reads.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(ldmail.audience.enrolment, "PeopleStream", counting)
    return reads


def _plan(cli: Cli, project: Path, now: datetime) -> str:
    result = cli("plan", "--project", project, "--now", now.isoformat(), "--days", "30",
                 "--show", "20")
    assert result.exit_code == 0, result.output
    return result.stdout


def _forget_the_staged_export(project: Path) -> None:
    with sqlite3.connect(project / LEDGER) as conn:
        assert conn.execute("DELETE FROM meta WHERE key = 'staged'").rowcount == 1


def test_a_plan_after_a_send_reads_no_export_and_says_the_same(
        example: Path, cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    assert send(cli, example, EXAMPLE_NOW).exit_code == 0
    reads = _export_reads(monkeypatch)
    later = EXAMPLE_NOW + timedelta(hours=1)
    staged = _plan(cli, example, later)
    assert reads == []
    _forget_the_staged_export(example)
    read = _plan(cli, example, later)
    assert reads == [1]
    assert staged == read
    assert "sends planned" in staged and not staged.startswith("0 sends")


@pytest.mark.parametrize("change", ["export", "audiences", "campaign", "new day"])
def test_a_changed_export_audiences_campaign_or_day_is_read_again(
        project: Path, cli: Cli, monkeypatch: pytest.MonkeyPatch, change: str) -> None:
    assert send(cli, project, NOW).exit_code == 0
    reads = _export_reads(monkeypatch)
    later = NOW + timedelta(hours=1)
    assert send(cli, project, later, "--dry-run").exit_code == 0
    assert reads == []
    if change == "export":
        with (project / "people.csv").open("a", encoding="utf-8") as export:
            export.write("new.person@example.org;New;Person;EN;Sales;01-01-2020;\n")
    elif change == "audiences":
        def newcomers_later(audiences: dict[str, Any]) -> None:
            audiences["personas"]["newcomer"]["match"] = "tenure_days < 3650"

        edit_yaml(project / "audiences.yaml", newcomers_later)
    elif change == "campaign":
        def only_sales(campaign: dict[str, Any]) -> None:
            campaign.setdefault("audience", {})["where"] = "department == 'Sales'"

        edit_yaml(project / "campaigns" / "welcome.yaml", only_sales)
    else:
        later = NOW + timedelta(days=1)
    result = send(cli, project, later)
    assert result.exit_code == 0, result.output
    assert reads == [1]
    if change == "export":
        assert "enrolled 1" in result.stdout
        assert ledger_rows(project, "SELECT name FROM staged_people WHERE email = ?",
                           ("new.person@example.org",)) == [{"name": "New Person"}]
    if change == "campaign":
        left = ledger_rows(project, "SELECT exit_reason FROM enrolments WHERE state = 'left'")
        assert left and all(row["exit_reason"].startswith("no longer in the audience")
                            for row in left)


def test_a_duplicate_address_keeps_its_first_row(project: Path, cli: Cli) -> None:
    export = project / "people.csv"
    lines = export.read_text(encoding="utf-8").splitlines()
    first, second = lines[1].split(";"), lines[2].split(";")
    again = [";".join([first[0].upper(), "Other", *first[2:]]),
             ";".join([second[0], "Else", *second[2:]]),
             ";".join([first[0], "Third", *first[2:]])]
    export.write_text("\n".join([*lines, *again]) + "\n", encoding="utf-8")
    assert send(cli, project, NOW).exit_code == 0
    staged = ledger_rows(project, "SELECT row, email, name FROM staged_people ORDER BY row")
    assert [row["row"] for row in staged] == list(range(2, len(lines) + 1))
    email = first[0].lower()
    assert staged[0] == {"row": 2, "email": email, "name": f"{first[1]} {first[2]}"}
    assert len(ledger_rows(project, "SELECT 1 FROM enrolments WHERE email = ?", (email,))) == 1
    audience = cli("audience", "--project", project)
    for row, address, seen in ((len(lines) + 1, email, 2), (len(lines) + 2, second[0], 3),
                               (len(lines) + 3, email, 2)):
        assert f"row {row}: duplicate address {address} (first seen on row {seen})" in \
            audience.stdout


def test_a_plan_counts_once_whom_a_send_enrols_while_it_runs(project: Path, cli: Cli) -> None:
    from ldmail.audience.enrolment import active_enrolments, sync
    from ldmail.ledger import Ledger

    # A ledger with nobody enrolled yet (a plan on no ledger works in memory).
    assert cli("suppress", "nobody@example.org", "--project", project).exit_code == 0
    loaded = load_project(project)
    with Ledger.of(loaded, readonly=True) as ledger:  # a plan: it writes nothing
        synced = sync(loaded, ledger, NOW, persist=False)
        assert synced.enrolled == 8
        # Between the plan's sync and its walk, a send enrols the same people.
        assert send(cli, project, NOW).exit_code == 0
        walked = [(e.campaign, e.email) for e, _ in active_enrolments(loaded, ledger, NOW)]
    assert sorted(walked) == sorted(set(walked)) and len(walked) == 8


@pytest.mark.parametrize("sent_first", [False, True])
def test_plan_lists_the_earliest_sends_of_the_full_list(example: Path, cli: Cli,
                                                        sent_first: bool) -> None:
    if sent_first:  # histories differ: some steps sent, later ones due at other moments
        assert send(cli, example, EXAMPLE_NOW).exit_code == 0
    loaded = load_project(example)
    now = EXAMPLE_NOW + timedelta(hours=1)
    everything = build_plan(loaded, now, 60, show=1_000_000)
    keys = [(s.send_at, s.campaign, s.email) for s in everything.first]
    assert len(everything.first) == everything.total > 100
    assert keys == sorted(keys)
    counted = Counter((s.local.date(), s.campaign, s.step) for s in everything.first)
    assert counted == everything.per_day
    for show in (0, 1, 7, 50):
        few = build_plan(loaded, now, 60, show=show)
        assert few.first == everything.first[:show]
        assert few.total == everything.total and few.per_day == everything.per_day


def test_a_ledger_from_before_the_staged_export_is_upgraded_in_place(project: Path,
                                                                     cli: Cli) -> None:
    from sqlite_utils import Database, Migrations

    from ldmail.ledger import MIGRATION_SET, m001_initial

    (project / LEDGER).parent.mkdir()
    first_only = Migrations(MIGRATION_SET)
    first_only()(m001_initial)
    database = Database(project / LEDGER)
    first_only.apply(database)
    email = (project / "people.csv").read_text(encoding="utf-8").splitlines()[1].split(";")[0]
    database.execute(
        "INSERT INTO people (email, name, first_seen, last_seen) VALUES (?, 'Old Row', ?, ?)",
        (email, "2026-11-01T09:00:00Z", "2026-11-01T09:00:00Z"))
    database.execute(
        "INSERT INTO enrolments (campaign, email, enrolled_at, anchor_at, grp, state) VALUES"
        " ('welcome', ?, '2026-11-01T09:00:00Z', '2026-11-01T09:00:00Z', 'treatment',"
        " 'active')", (email,))
    database.execute(
        "INSERT INTO messages (campaign, step, email, due_at, state, attempts, sent_at) VALUES"
        " ('welcome', 'hello', ?, '2026-11-01T09:00:00Z', 'sent', 1, '2026-11-01T09:00:00Z')",
        (email,))
    database.conn.commit()
    database.close()
    result = send(cli, project, NOW)
    assert result.exit_code == 0, result.output
    tables = {row["name"] for row in ledger_rows(
        project, "SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert "people" not in tables and {"staged_people", "staged_targets"} <= tables
    assert [row["name"] for row in ledger_rows(
        project, "SELECT name FROM _sqlite_migrations ORDER BY id")] == \
        ["m001_initial", "m002_streamed_sync", "m003_missing_since",
         "m004_staged_rejected", "m005_survey_answers", "m006_inbox",
         "m007_event_statements", "m008_voided_events", "m009_message_variants",
         "m010_staged_country", "m011_message_manager", "m012_enrolment_rounds",
         "m013_sender_failures"]
    # The person enrolled before the upgrade keeps their enrolment and history: no second
    # hello, and the next step, long due, goes out now.
    assert ledger_rows(project, "SELECT step, sent_at FROM messages WHERE email = ?"
                       " ORDER BY step", (email,)) == [
        {"step": "first-course", "sent_at": "2026-12-01T09:00:00Z"},
        {"step": "hello", "sent_at": "2026-11-01T09:00:00Z"}]
    assert ledger_rows(project, "SELECT enrolled_at FROM enrolments WHERE email = ?",
                       (email,)) == [{"enrolled_at": "2026-11-01T09:00:00Z"}]
