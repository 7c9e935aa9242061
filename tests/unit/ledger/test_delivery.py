"""ledger/delivery.py promises: a message is claimed at most once before it is handed over, and a
claim checks again, in its own transaction, that the person may still receive it; every move
a send makes is the one states.py's table names, and a move not in the table raises
IllegalTransition and writes nothing; outcomes are written at the latest when the run's
Delivery closes, for whatever reason; the run-level moves (interrupted claims, resends,
retries) touch only the messages and people they should."""

from __future__ import annotations

import pytest

from ldmail.errors import IllegalTransition
from ldmail.ledger import (
    ALL_STEPS_DONE,
    FORGOTTEN,
    EnrolmentState,
    GoalEvent,
    Ledger,
    MessageKey,
    MessageOp,
    MessageState,
    Recheck,
)
from ldmail.states import message_move
from tests.unit.ledger.conftest import (
    ANN,
    BOB,
    CAMPAIGN,
    KEY,
    LATER,
    NOW,
    claim,
    put,
    sync,
)

M, E = MessageState, EnrolmentState
BOSS = "boss@example.org"
BOB_KEY = MessageKey(CAMPAIGN, "hello", BOB)


@pytest.fixture
def enrolled(ledger: Ledger) -> Ledger:
    sync(ledger, [ANN, BOB])
    return ledger


def test_a_message_is_claimed_once_and_a_second_claim_is_refused_as_a_bug(
        enrolled: Ledger) -> None:
    assert claim(enrolled, KEY)
    assert enrolled.claimed() == [KEY]
    with pytest.raises(IllegalTransition, match=r"cannot claim a claimed message \(welcome/"
                                                r"hello to ann@example.org\); nothing was"):
        claim(enrolled, KEY, message_id="<2@example.org>")
    (message,) = enrolled.history(ANN).messages
    assert (message.state, message.attempts, message.message_id) == (
        M.CLAIMED, 1, "<1@example.org>")


@pytest.mark.parametrize("state", [M.SENT, M.UNKNOWN, M.FAILED, M.SKIPPED, M.BOUNCED])
def test_a_message_that_is_done_is_never_claimed_again(enrolled: Ledger,
                                                       state: MessageState) -> None:
    put(enrolled, state)
    with pytest.raises(IllegalTransition, match=f"cannot claim an? {state} message"):
        claim(enrolled, KEY, LATER, retry=True, interventions=enrolled.interventions())
    assert enrolled.message_state(KEY) is state


@pytest.mark.parametrize("state", [M.DEFERRED, M.HELD])
def test_a_waiting_message_is_claimed_again_with_one_more_attempt(enrolled: Ledger,
                                                                  state: MessageState) -> None:
    put(enrolled, state)
    before = enrolled.history(ANN).messages[0].attempts
    assert claim(enrolled, KEY, LATER, retry=True, interventions=enrolled.interventions())
    (message,) = enrolled.history(ANN).messages
    assert (message.state, message.attempts, message.error) == (M.CLAIMED, before + 1, None)


def _suppress(ledger: Ledger) -> None:
    ledger.suppress(ANN, "asked by phone", "command", NOW)


def _reach_goal(ledger: Ledger) -> None:
    ledger.record_events([GoalEvent(ANN, "completed", "course:excel", NOW)], "lrs")


def _forget(ledger: Ledger) -> None:
    # What forget writes first: the suppression under the keyed hash, not the address.
    ledger.suppress(FORGOTTEN + ledger.address_hash(ANN), "forgotten on request", "forget", NOW)


@pytest.mark.parametrize("change", [_suppress, _reach_goal, _forget])
def test_a_claim_after_the_person_may_no_longer_receive_it_is_refused(enrolled: Ledger,
                                                                      change: object) -> None:
    started = enrolled.interventions()  # as the run found the ledger before its sync
    assert callable(change)
    change(enrolled)
    recheck = Recheck(enrolled.address_hash(ANN), goal_event="completed", goal_object="course:*")
    assert not claim(enrolled, KEY, LATER, interventions=started, recheck=recheck)
    assert enrolled.message_state(KEY) is M.NEW
    assert enrolled.claimed() == []


def test_a_claim_to_a_manager_who_was_suppressed_meanwhile_is_refused(enrolled: Ledger) -> None:
    started = enrolled.interventions()
    enrolled.suppress(BOSS, "bounced", "inbox", NOW)
    recheck = Recheck(enrolled.address_hash(ANN), manager=BOSS,
                      manager_token=enrolled.address_hash(BOSS))
    assert not claim(enrolled, KEY, interventions=started, recheck=recheck, recipient=BOSS)
    assert claim(enrolled, BOB_KEY, interventions=started)  # Bob's own message still goes


@pytest.mark.parametrize("op", [MessageOp.DELIVER, MessageOp.LOSE_REPLY, MessageOp.PUT_BACK,
                                MessageOp.DEFER, MessageOp.FAIL, MessageOp.INTERRUPT])
def test_each_outcome_moves_a_claimed_message_where_the_table_says(enrolled: Ledger,
                                                                   op: MessageOp) -> None:
    assert claim(enrolled, KEY)
    with enrolled.delivery(1, NOW, None) as delivery:
        {MessageOp.DELIVER: lambda: delivery.delivered(KEY, last_step=False),
         MessageOp.LOSE_REPLY: lambda: delivery.reply_lost(KEY, "timeout", last_step=False),
         MessageOp.PUT_BACK: lambda: delivery.put_back(KEY, "stopped"),
         MessageOp.DEFER: lambda: delivery.defer(KEY, "421 busy", LATER),
         MessageOp.FAIL: lambda: delivery.fail(KEY, "550 no", bounce=None, last_step=False),
         MessageOp.INTERRUPT: lambda: delivery.interrupted(KEY, "a bug", last_step=False),
         }[op]()
    assert enrolled.message_state(KEY) is message_move(op, M.CLAIMED)


def test_an_outcome_for_a_message_that_is_not_claimed_raises_and_changes_nothing(
        enrolled: Ledger) -> None:
    put(enrolled, M.SENT)
    with pytest.raises(IllegalTransition, match="cannot fail a sent message"):
        with enrolled.delivery(1, LATER, None) as delivery:
            delivery.fail(KEY, "550 late", bounce="550 late", last_step=False)
    assert enrolled.message_state(KEY) is M.SENT
    assert not enrolled.is_suppressed(ANN)


def test_an_outcome_rides_with_the_next_claim_and_the_last_is_written_on_close(
        enrolled: Ledger) -> None:
    with pytest.raises(RuntimeError):
        with enrolled.delivery(1, NOW, None) as delivery:
            recheck = Recheck(enrolled.address_hash(ANN))
            assert delivery.claim(KEY, NOW, "<1@x>", retry=False, recheck=recheck)
            delivery.delivered(KEY, last_step=False)
            assert enrolled.message_state(KEY) is M.CLAIMED  # not yet: one commit per message
            assert delivery.claim(BOB_KEY, NOW, "<2@x>", retry=False, recheck=recheck)
            assert enrolled.message_state(KEY) is M.SENT
            delivery.delivered(BOB_KEY, last_step=False)
            raise RuntimeError("the run stops")
    assert enrolled.message_state(BOB_KEY) is M.SENT


def test_put_back_is_due_again_at_once_and_not_counted_as_an_attempt(enrolled: Ledger) -> None:
    assert claim(enrolled, KEY)
    with enrolled.delivery(1, NOW, None) as delivery:
        delivery.put_back(KEY, "stopped before it went out")
    (message,) = enrolled.history(ANN).messages
    assert (message.state, message.attempts, message.next_attempt_at) == (M.DEFERRED, 0, NOW)


def test_a_hard_bounce_on_the_wire_suppresses_the_address_it_went_to(enrolled: Ledger) -> None:
    assert claim(enrolled, KEY, recipient=BOSS)
    with enrolled.delivery(1, NOW, None) as delivery:
        delivery.fail(KEY, "550 no such user", bounce="550 no such user", last_step=False,
                      address=BOSS)
    assert enrolled.is_suppressed(BOSS) and not enrolled.is_suppressed(ANN)


def test_the_last_steps_outcome_completes_the_enrolment_unless_it_ended_meanwhile(
        enrolled: Ledger) -> None:
    put(enrolled, M.SENT, last_step=True)
    (enrolment,) = enrolled.history(ANN).enrolments
    assert (enrolment.state, enrolment.exit_reason) == (E.COMPLETED, ALL_STEPS_DONE)
    assert claim(enrolled, BOB_KEY)
    enrolled.suppress(BOB, "left the company", "command", NOW)  # while it was on the wire
    with enrolled.delivery(1, NOW, None) as delivery:
        delivery.delivered(BOB_KEY, last_step=True)
    assert enrolled.enrolment_state(CAMPAIGN, BOB) is E.LEFT


def test_hold_and_skip_are_not_written_for_a_suppressed_person(enrolled: Ledger) -> None:
    enrolled.suppress(ANN, "asked", "command", NOW)
    put(enrolled, M.HELD, BOB_KEY)
    with enrolled.delivery(1, NOW, None) as delivery:
        delivery.hold(KEY, NOW, "template error", enrolled.address_hash(ANN))
        delivery.skip(KEY, NOW, "condition false", enrolled.address_hash(ANN))
    assert enrolled.message_state(KEY) is M.NEW
    assert enrolled.history(BOB).messages[0].error == "a reason"


def test_interrupted_claims_become_unknown_and_are_resent_only_for_active_people(
        enrolled: Ledger) -> None:
    assert claim(enrolled, KEY) and claim(enrolled, BOB_KEY)
    assert enrolled.mark_interrupted("the run that claimed it died") == 2
    assert enrolled.unknown_count() == 2 and enrolled.claimed() == []
    enrolled.suppress(BOB, "left", "command", NOW)
    assert enrolled.resend_unknown(LATER, "resent on request") == 1
    assert enrolled.message_state(KEY) is M.DEFERRED
    assert enrolled.message_state(BOB_KEY) is M.UNKNOWN  # keeps its mark


def test_retry_requeues_held_and_on_request_failed_messages(enrolled: Ledger) -> None:
    put(enrolled, M.HELD)
    put(enrolled, M.FAILED, BOB_KEY)
    assert enrolled.retry((M.HELD,), LATER) == 1
    assert enrolled.message_state(BOB_KEY) is M.FAILED
    assert enrolled.retry((M.HELD, M.FAILED), LATER, step="hello") == 1
    (message,) = enrolled.history(BOB).messages
    assert (message.state, message.attempts, message.next_attempt_at, message.error) == (
        M.DEFERRED, 0, LATER, "550 rejected (requeued by ldmail retry)")


def test_retry_of_a_failed_last_step_reopens_the_completed_enrolment(enrolled: Ledger) -> None:
    put(enrolled, M.FAILED, last_step=True)
    assert enrolled.enrolment_state(CAMPAIGN, ANN) is E.COMPLETED
    assert enrolled.retry((M.FAILED,), LATER, campaign=CAMPAIGN) == 1
    (enrolment,) = enrolled.history(ANN).enrolments
    assert (enrolment.state, enrolment.exit_reason) == (E.ACTIVE, None)
    assert enrolled.message_state(KEY) is M.DEFERRED


def test_asking_to_retry_sent_messages_is_a_bug(enrolled: Ledger) -> None:
    put(enrolled, M.SENT)
    with pytest.raises(IllegalTransition, match="cannot retry a sent message"):
        enrolled.retry((M.SENT,), LATER)
    assert enrolled.message_state(KEY) is M.SENT


def test_completing_an_enrolment_that_does_not_exist_is_a_bug(ledger: Ledger) -> None:
    with pytest.raises(IllegalTransition, match="cannot complete a new enrolment"):
        ledger.complete([(CAMPAIGN, ANN)], NOW)


def test_the_daily_cap_counts_what_was_handed_over_and_frees_a_day_later(
        enrolled: Ledger) -> None:
    put(enrolled, M.SENT, stamp="2026-03-02T08:00:00Z")
    put(enrolled, M.UNKNOWN, BOB_KEY, stamp="2026-03-02T10:00:00Z")
    put(enrolled, M.HELD, MessageKey(CAMPAIGN, "later", ANN))
    assert enrolled.sent_since("2026-03-01T09:00:00Z") == 2
    assert enrolled.sent_since("2026-03-02T09:00:00Z") == 1
    assert enrolled.cap_frees_at("2026-03-01T09:00:00Z") == "2026-03-03T08:00:00Z"
    assert enrolled.cap_frees_at(LATER) is None


def test_the_last_handover_is_the_newest_claiming_runs_end(enrolled: Ledger) -> None:
    assert enrolled.last_handover() == (False, None)
    run = enrolled.start_run("send", NOW, NOW)
    with enrolled.delivery(run, NOW, None) as delivery:
        assert delivery.claim(KEY, NOW, "<1@x>", retry=False,
                              recheck=Recheck(enrolled.address_hash(ANN)))
    assert enrolled.last_handover() == (True, None)  # still running, or killed
    enrolled.finish_run(run, LATER, "ok", "{}")
    assert enrolled.last_handover() == (True, LATER)
