"""ldmail.delivery.plan promises the sends to come without sending or writing anything: every
send until `days` from now counted by local day, campaign and step, the earliest `show` of them
in full (time, then campaign, address and step order), the holdout counted apart, steps the
business calendar moved with the reason; what the transport's rate and daily cap do to it; and
one person's journey (found by address or unsubscribe token), each condition answered now.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from datetime import date, timedelta
from pathlib import Path

import pytest

from ldmail.delivery.plan import (
    Plan,
    build_plan,
    journey_of,
    manager_note,
    moved_line,
    pace_notes,
)
from ldmail.delivery.send import send
from ldmail.delivery.transport import MemoryTransport
from ldmail.errors import ConfigError
from ldmail.ledger import Ledger
from ldmail.project.config import Project, load_project
from ldmail.project.models import Transport

from ...projects import NOW, PEOPLE, edit_yaml
from .conftest import hello

ANN, BOB, CHLOE = sorted(PEOPLE)[:3]
TUESDAY, FRIDAY = date(2026, 12, 1), date(2026, 12, 4)


def test_a_plan_counts_each_send_by_day_and_step_and_writes_nothing(
        people: Path, project: Project) -> None:
    plan = build_plan(project, NOW, 14)
    assert plan.per_day == Counter({(TUESDAY, "welcome", "hello"): 5,
                                    (FRIDAY, "welcome", "first-course"): 5})
    assert (plan.total, plan.new_enrolments, plan.holdout) == (10, 5, 0)
    assert plan.until == NOW + timedelta(days=14)
    assert not (people / ".ldmail" / "ledger.db").exists()


def test_days_bound_the_plan(project: Project) -> None:
    plan = build_plan(project, NOW, 2)
    assert plan.per_day == Counter({(TUESDAY, "welcome", "hello"): 5})
    assert plan.total == 5


def test_show_keeps_the_earliest_sends_in_time_then_address_order(project: Project) -> None:
    three = build_plan(project, NOW, 14, show=3).first
    assert [(s.email, s.step) for s in three] == [(ANN, "hello"), (BOB, "hello"),
                                                  (CHLOE, "hello")]
    assert three[0].local.hour == 10 and three[0].language == "en"
    seven = build_plan(project, NOW, 14, show=7).first
    assert [s.step for s in seven] == ["hello"] * 5 + ["first-course"] * 2
    assert [s.send_at for s in seven] == sorted(s.send_at for s in seven)


def test_the_holdout_is_counted_apart_and_never_planned(loaded: Project) -> None:
    """The shipped scaffold holds 10% of its people out of the welcome campaign."""
    plan = build_plan(loaded, NOW, 14)
    hellos = sum(count for (_, _, step), count in plan.per_day.items() if step == "hello")
    assert hellos + plan.holdout == plan.new_enrolments > 0
    mailed = {s.email for s in build_plan(loaded, NOW, 14, show=100).first}
    assert len(mailed) == hellos


def test_a_blackout_moves_the_step_and_the_plan_says_why(people: Path) -> None:
    edit_yaml(people / "campaigns" / "welcome.yaml",
              lambda c: c.update(holidays={"blackout": ["2026-12-01..2026-12-02"]}))
    plan = build_plan(load_project(people), NOW, 14, show=1)
    reason = "blackout 2026-12-01..2026-12-02"
    assert plan.moved == Counter({("welcome", "hello", TUESDAY, date(2026, 12, 3), reason): 5})
    (first,) = plan.first
    assert first.local.date() == date(2026, 12, 3) and first.shift is not None
    assert moved_line(first.shift.was.date(), first.local.date(), first.shift.reason) == \
        "moved from Tue 1 Dec (blackout 2026-12-01..2026-12-02) to Thu 3 Dec"


def test_an_unknown_campaign_is_refused(project: Project) -> None:
    with pytest.raises(ConfigError, match="no campaign 'nope'"):
        build_plan(project, NOW, 14, campaign="nope")


def _plan(per_day: dict[date, int]) -> Plan:
    counts = Counter({(day, "welcome", "hello"): n for day, n in per_day.items()})
    return Plan([], counts, sum(counts.values()), 0, 0, NOW, [], Counter())


def test_pace_notes_name_the_days_over_the_cap_and_the_busiest_days_length() -> None:
    smtp = Transport(kind="smtp", host="smtp.example.org", rate="30/min", daily_cap=100)
    notes = pace_notes(_plan({TUESDAY: 121, FRIDAY: 40}), smtp)
    assert notes == [
        "Tue 2026-12-01: 121 sends but the daily cap is 100; the other 21 wait for the next "
        "day(s)",
        "at 30 a minute the busiest day (Tue 2026-12-01, 100 sends) takes 0 h 03 min from "
        "the first to the last"]
    assert pace_notes(_plan({TUESDAY: 121}), Transport(kind="outbox", rate="30/min")) == []


def test_a_journey_shows_what_was_sent_and_what_is_planned_with_its_condition(
        people: Path) -> None:
    edit_yaml(people / "campaigns" / "welcome.yaml",
              lambda c: c["steps"][1].update(when="department == 'Sales'"))
    project = load_project(people)
    send(project, NOW, transports=[MemoryTransport()])
    later = NOW + timedelta(hours=1)
    ann = journey_of(project, later, ANN)
    assert [(s.step, s.status, s.note) for s in ann.steps] == [
        ("hello", "sent", ""),
        ("first-course", "planned", "if department == 'Sales': true now")]
    bob = journey_of(project, later, BOB)
    assert bob.steps[1].note == \
        "if department == 'Sales': false now, so skipped unless it changes"
    with Ledger.of(project, readonly=True) as ledger:
        token = ledger.address_hash(ANN)
    assert journey_of(project, later, token).address == ANN
    # Seen from before the send, the ledger's row is in the future: shown as planned.
    before = journey_of(project, NOW - timedelta(hours=1), ANN).steps[0]
    assert (before.status, before.note) == \
        ("planned", "the ledger has it sent at Tue 2026-12-01 10:00 CET, after --now")


def test_a_manager_note_reads_from_the_persons_side_or_the_managers(project: Project) -> None:
    send(project, NOW, transports=[MemoryTransport()])
    row = hello(project, ANN)
    assert row is not None and manager_note(row, ANN) == ""
    boss = "boss@example.org"
    assert manager_note(replace(row, recipient=boss), ANN) == f"to the manager {boss}"
    assert manager_note(replace(row, recipient=boss), boss) == \
        f"to you as the manager of {ANN}"
    assert manager_note(replace(row, cc=boss), ANN) == f"cc the manager {boss}"
    assert manager_note(replace(row, cc=boss), boss) == f"a copy to you as the manager of {ANN}"
