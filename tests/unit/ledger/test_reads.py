"""ledger/reads.py promises: the report reads a campaign's enrolments and messages as they stood
at a moment (what ended, was sent or bounced later had not yet), with a triggered
campaign's step keys read as their step; the quiet cron path's change counter moves whenever
anything that decides who is due changes; a state no ldmail writes is a clear error."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from ldmail.errors import LedgerError
from ldmail.ledger import (
    EnrolmentFacts,
    GoalEvent,
    Group,
    Ledger,
    MessageFacts,
    MessageKey,
    MessageState,
    Recheck,
)
from tests.unit.ledger.conftest import ANN, BOB, CAMPAIGN, KEY, LATER, NOW, put, sync

M = MessageState
DUE = "2026-03-01T09:00:00Z"


def test_enrolments_are_read_as_they_stood_at_the_moment(ledger: Ledger) -> None:
    sync(ledger, [ANN])
    sync(ledger, [ANN, BOB], LATER)
    ledger.suppress(ANN, "asked", "command", LATER)
    assert ledger.campaign_enrolments(CAMPAIGN, "2026-03-03T09:00:00Z") == [
        EnrolmentFacts(ANN, Group.TREATMENT, "staff", NOW, None)]
    by_address = sorted(ledger.campaign_enrolments(CAMPAIGN, LATER), key=lambda fact: fact.email)
    assert by_address == [
        EnrolmentFacts(ANN, Group.TREATMENT, "staff", NOW, "suppressed"),
        EnrolmentFacts(BOB, Group.TREATMENT, "staff", LATER, None)]
    assert ledger.campaign_enrolments("other", LATER) == []


@pytest.mark.parametrize(("until", "expected"), [
    ("2026-02-28T09:00:00Z", []),  # not yet due
    ("2026-03-01T12:00:00Z", [MessageFacts("hello", M.DEFERRED, None, ANN, "b")]),
    ("2026-03-03T09:00:00Z", [MessageFacts("hello", M.SENT, NOW, ANN, "b")]),
    (LATER, [MessageFacts("hello", M.BOUNCED, NOW, ANN, "b")]),
])
def test_messages_are_read_as_they_stood_at_the_moment(ledger: Ledger, until: str,
                                                       expected: list[MessageFacts]) -> None:
    sync(ledger, [ANN])
    with ledger.delivery(1, NOW, None) as delivery:
        assert delivery.claim(KEY, DUE, "<1@x>", retry=False, variant="b",
                              recheck=Recheck(ledger.address_hash(ANN)))
        delivery.delivered(KEY, last_step=False)
    ledger.bounce(KEY, "550 gone", LATER, mail=None, suppression=None)
    assert ledger.campaign_messages(CAMPAIGN, until) == expected


def test_a_triggered_campaigns_messages_are_read_as_their_step(ledger: Ledger) -> None:
    sync(ledger, [ANN], triggered=[(CAMPAIGN, ANN, NOW, "course:excel")])
    put(ledger, M.SENT, MessageKey(CAMPAIGN, "well-done@course:excel", ANN))
    assert [fact.step for fact in ledger.campaign_messages(CAMPAIGN, LATER)] == ["well-done"]


def test_the_change_counter_moves_with_what_decides_who_is_due(ledger: Ledger) -> None:
    seen = [ledger.change_counter()]
    sync(ledger, [ANN, BOB])
    seen.append(ledger.change_counter())
    put(ledger, M.DEFERRED)
    seen.append(ledger.change_counter())
    ledger.suppress(BOB, "asked", "command", NOW)
    seen.append(ledger.change_counter())
    ledger.record_events([GoalEvent(ANN, "completed", "course:excel", NOW, "st-1")], "lrs")
    seen.append(ledger.change_counter())
    ledger.record_pulled([], "lrs", voided=["st-1"], at=LATER)
    seen.append(ledger.change_counter())
    assert len(set(seen)) == len(seen)
    ledger.set_meta("unrelated", "x")
    assert ledger.change_counter() == seen[-1]


def test_the_next_goal_event_after_a_moment_skips_voided_ones(ledger: Ledger) -> None:
    ledger.record_events([GoalEvent(ANN, "completed", "a", LATER),
                          GoalEvent(BOB, "completed", "b", NOW, "st-1")], "lrs")
    assert ledger.next_event_after(DUE) == NOW
    ledger.record_pulled([], "lrs", voided=["st-1"], at=LATER)
    assert ledger.next_event_after(DUE) == LATER
    assert ledger.next_event_after(LATER) is None


def test_a_state_no_ldmail_writes_is_a_clear_error(ledger: Ledger, path: Path) -> None:
    sync(ledger, [ANN])
    put(ledger, M.SENT)
    editor = sqlite3.connect(path)  # someone edits the ledger by hand
    with editor:
        editor.execute("UPDATE messages SET state = 'sending'")
    editor.close()
    with pytest.raises(LedgerError, match=r"the ledger holds 'sending' as the message state of"
                                          r" welcome/hello to ann@example.org, which ldmail"
                                          r" never writes \(it writes claimed, sent, "):
        ledger.campaign_messages(CAMPAIGN, LATER)
