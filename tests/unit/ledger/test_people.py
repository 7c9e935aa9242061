"""ledger/people.py promises: a suppression is written once and ends the person's active
enrolments (only those: an ended one keeps its state), and a forgotten address is never
stored again; goal events are recorded once each, voided ones kept but never counted, and
an LRS's cursor is written with them or not at all; a person's history holds everything the
ledger has for the address, as the person and as someone's manager."""

from __future__ import annotations

import sqlite3
from dataclasses import replace

import pytest

from ldmail.ledger import (
    FORGOTTEN,
    EnrolmentState,
    ExitReason,
    GoalEvent,
    Ledger,
    MessageKey,
    MessageState,
)
from tests.unit.ledger.conftest import ANN, BOB, CAMPAIGN, KEY, LATER, NOW, claim, put, sync

E, M = EnrolmentState, MessageState
BOSS = "boss@example.org"
EXCEL = GoalEvent(ANN, "completed", "course:excel", "2026-03-01T10:00:00Z", "st-1")
WORD = GoalEvent(ANN, "completed", "course:word", "2026-03-03T10:00:00Z", "st-2")
BOBS = GoalEvent(BOB, "completed", "course:excel", "2026-03-02T08:00:00Z")


def test_a_suppression_ends_active_enrolments_and_leaves_ended_ones_as_they_are(
        ledger: Ledger) -> None:
    sync(ledger, [ANN], campaigns=[CAMPAIGN, "onboarding"])
    put(ledger, M.SENT, last_step=True)  # Ann completed the welcome campaign
    assert ledger.suppress(ANN, "asked by phone", "command", LATER)
    assert not ledger.suppress(ANN, "asked again", "command", LATER)
    records = {record.campaign: record for record in ledger.history(ANN).enrolments}
    assert (records[CAMPAIGN].state, records[CAMPAIGN].exit_reason) == (
        E.COMPLETED, ExitReason.ALL_STEPS_DONE)
    assert (records["onboarding"].state, records["onboarding"].exit_reason,
            records["onboarding"].exited_at) == (E.LEFT, ExitReason.SUPPRESSED, LATER)
    suppression = ledger.history(ANN).suppression
    assert suppression is not None and suppression.reason == "asked by phone"


def test_a_forgotten_address_is_not_stored_again_by_a_suppression(ledger: Ledger) -> None:
    ledger.suppress(FORGOTTEN + ledger.address_hash(ANN), "forgotten on request", "forget", NOW)
    assert not ledger.suppress("Ann@example.org".lower(), "bounced", "inbox", LATER)
    assert not ledger.is_suppressed(ANN)
    assert ledger.is_forgotten(ANN) and ledger.forgotten_as(ANN) is not None
    assert ledger.forgotten_as(BOB) is None


def test_suppressed_among_names_suppressed_and_forgotten_addresses(ledger: Ledger) -> None:
    ledger.suppress(BOB, "bounced", "inbox", NOW)
    ledger.suppress(FORGOTTEN + ledger.address_hash(ANN), "forgotten on request", "forget", NOW)
    assert ledger.suppressed_among([ANN, BOB, BOSS]) == {ANN, BOB}
    assert ledger.forgotten_hashes() == {ledger.address_hash(ANN)}


def test_goal_events_are_recorded_once_and_a_new_one_makes_sends_recheck(
        ledger: Ledger) -> None:
    assert ledger.record_events([EXCEL, BOBS], "events.csv") == (2, 0, 0, [])
    counter = ledger.interventions()
    assert ledger.record_events([EXCEL, BOBS], "events.csv") == (0, 2, 0, [])
    assert ledger.interventions() == counter  # nothing new: no re-check needed
    assert ledger.record_events([WORD], "events.csv") == (1, 0, 0, [])
    assert ledger.interventions() != counter


def test_an_event_missing_a_required_field_is_refused_with_why_not_counted_as_known(
        ledger: Ledger) -> None:
    undated = replace(WORD, occurred_at=None)  # type: ignore[arg-type]
    nameless = replace(BOBS, event="")
    recorded = ledger.record_pulled([undated, EXCEL, nameless], "lrs")
    assert (recorded.added, recorded.known) == (1, 0)
    assert recorded.refused == [
        (0, "the event has no date (occurred_at); not recorded"),
        (2, "the event has no event name (event); not recorded")]
    assert [event.object for event in ledger.history(ANN).events] == ["course:excel"]
    assert ledger.record_pulled([EXCEL, undated], "lrs").known == 1  # the true duplicate


def test_voided_events_are_kept_but_never_counted(ledger: Ledger) -> None:
    ledger.record_events([EXCEL, WORD, BOBS], "lrs")
    assert ledger.record_pulled([], "lrs", voided=["st-1", "st-unknown"], at=LATER) == (
        0, 0, 1, [])
    assert ledger.goal_events("completed", LATER) == [
        GoalEvent(BOB, "completed", "course:excel", BOBS.occurred_at),
        GoalEvent(ANN, "completed", "course:word", WORD.occurred_at)]
    assert [event.object for event in ledger.voided_goal_events("completed")] == ["course:excel"]
    assert ledger.events_of([ANN], LATER) == {ANN: [replace(WORD, statement=None)]}
    (excel, _) = ledger.history(ANN).events
    assert excel.voided_at == LATER


def test_an_event_known_from_a_file_becomes_voidable_once_pulled(ledger: Ledger) -> None:
    ledger.record_events([replace(EXCEL, statement=None)], "events.csv")
    assert ledger.record_pulled([EXCEL], "lrs", cursor=("lrs:since", NOW)) == (0, 1, 0, [])
    assert ledger.pulled_statements(["st-1", "st-9"]) == {"st-1": EXCEL}
    assert ledger.meta("lrs:since") == NOW


def test_events_and_the_cursor_are_written_together_or_not_at_all(ledger: Ledger) -> None:
    ledger.set_meta("lrs:since", NOW)
    broken = ("lrs:since", None)  # a cursor that cannot be written, after the events were
    with pytest.raises(sqlite3.IntegrityError):
        ledger.record_pulled([EXCEL, BOBS], "lrs", cursor=broken)  # type: ignore[arg-type]
    assert ledger.meta("lrs:since") == NOW
    assert ledger.goal_events("completed", LATER) == []


def test_a_forgotten_persons_event_is_stored_under_the_hash(ledger: Ledger) -> None:
    hashed = FORGOTTEN + ledger.address_hash(ANN)
    ledger.suppress(hashed, "forgotten on request", "forget", NOW)
    ledger.record_pulled([EXCEL], "lrs")
    assert ledger.events_of([ANN], LATER) == {}
    assert [event.email for event in ledger.goal_events("completed", LATER)] == [hashed]


def test_events_up_to_a_moment_earliest_first(ledger: Ledger) -> None:
    ledger.record_events([WORD, EXCEL, BOBS], "events.csv")
    assert [event.object for event in ledger.goal_events("completed", NOW)] == [
        "course:excel", "course:excel"]
    assert ledger.goal_events("registered", LATER) == []
    assert {email: len(found) for email, found in ledger.events_of([ANN, BOB], NOW).items()} == {
        ANN: 1, BOB: 1}


def test_history_holds_the_messages_someone_got_as_a_manager(ledger: Ledger) -> None:
    assert not ledger.history(BOSS)
    sync(ledger, [ANN, BOB])
    assert claim(ledger, KEY, cc=BOSS)
    assert ledger.has_claimed(BOSS) and not ledger.has_claimed(BOB)
    with ledger.delivery(1, NOW, None) as delivery:
        delivery.delivered(KEY, last_step=False)
    assert not ledger.has_claimed(BOSS)
    put(ledger, M.SENT, MessageKey(CAMPAIGN, "hello", BOB), recipient=BOSS)
    history = ledger.history(BOSS)
    assert [(message.email, message.recipient, message.cc) for message in history.messages] == [
        (ANN, None, BOSS), (BOB, BOSS, None)]
    assert history.enrolments == [] and history.suppression is None
    assert set(ledger.known_addresses()) == {ANN, BOB, BOSS}
