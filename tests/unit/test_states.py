"""ldmail.states promises the delivery state machine as one table of moves: a move that is in
the table gives its target, one that is not raises IllegalTransition (never a silent no-op),
`new` is never stored, and a state read from the ledger that ldmail never writes is a clear
error."""

from __future__ import annotations

import pytest

from ldmail.errors import IllegalTransition, LedgerError
from ldmail.states import (
    DONE_STATES,
    MESSAGE_MOVES,
    EnrolmentOp,
    EnrolmentState,
    Group,
    MessageOp,
    MessageState,
    enrolment_move,
    enrolment_moves_from,
    message_move,
    message_sources,
    retry_sources,
    step_key,
    step_of,
    stored,
)

M, E = MessageState, EnrolmentState


@pytest.mark.parametrize(("op", "start", "end"), [
    (MessageOp.CLAIM, M.NEW, M.CLAIMED), (MessageOp.CLAIM, M.DEFERRED, M.CLAIMED),
    (MessageOp.HOLD, M.HELD, M.HELD), (MessageOp.SKIP, M.NEW, M.SKIPPED),
    (MessageOp.DELIVER, M.CLAIMED, M.SENT), (MessageOp.LOSE_REPLY, M.CLAIMED, M.UNKNOWN),
    (MessageOp.PUT_BACK, M.CLAIMED, M.DEFERRED), (MessageOp.DEFER, M.CLAIMED, M.DEFERRED),
    (MessageOp.FAIL, M.CLAIMED, M.FAILED), (MessageOp.INTERRUPT, M.CLAIMED, M.UNKNOWN),
    (MessageOp.RESEND_UNKNOWN, M.UNKNOWN, M.DEFERRED), (MessageOp.RETRY, M.FAILED, M.DEFERRED),
    (MessageOp.BOUNCE, M.SENT, M.BOUNCED), (MessageOp.BOUNCE, M.UNKNOWN, M.BOUNCED)])
def test_a_message_move_in_the_table_gives_its_target(op: MessageOp, start: MessageState,
                                                      end: MessageState) -> None:
    assert message_move(op, start) is end


@pytest.mark.parametrize(("op", "start"), [
    (MessageOp.DELIVER, M.SENT), (MessageOp.CLAIM, M.CLAIMED), (MessageOp.CLAIM, M.SENT),
    (MessageOp.BOUNCE, M.FAILED), (MessageOp.RETRY, M.UNKNOWN), (MessageOp.DEFER, M.NEW)])
def test_a_message_move_not_in_the_table_is_illegal(op: MessageOp, start: MessageState) -> None:
    with pytest.raises(IllegalTransition,
                       match=f"ledger: cannot {op} an? {start} message;") as info:
        message_move(op, start)
    assert (info.value.kind, info.value.operation, info.value.state) == ("message", op, start)


def test_every_message_state_but_new_is_reachable_and_new_is_never_a_target() -> None:
    targets = {end for moves in MESSAGE_MOVES.values() for end in moves.values()}
    assert targets == set(M) - {M.NEW}


def test_a_sent_or_skipped_message_is_done_and_a_deferred_or_held_one_is_due_again() -> None:
    assert DONE_STATES == {M.CLAIMED, M.SENT, M.UNKNOWN, M.FAILED, M.BOUNCED, M.SKIPPED}
    assert message_sources(MessageOp.CLAIM) == (M.DEFERRED, M.HELD)  # new is no row


def test_retry_requeues_held_messages_and_failed_ones_only_when_asked() -> None:
    assert retry_sources(failed=False) == (M.HELD,)
    assert set(retry_sources(failed=True)) == {M.HELD, M.FAILED}


def test_enrol_must_name_which_of_its_two_targets_it_takes() -> None:
    assert enrolment_move(EnrolmentOp.ENROL, E.NEW, E.CONVERTED) is E.CONVERTED
    assert enrolment_move(EnrolmentOp.ENROL, E.NEW, E.ACTIVE) is E.ACTIVE
    with pytest.raises(IllegalTransition, match="cannot enrol a new enrolment"):
        enrolment_move(EnrolmentOp.ENROL, E.NEW)
    with pytest.raises(IllegalTransition, match="cannot enrol an active enrolment"):
        enrolment_move(EnrolmentOp.ENROL, E.ACTIVE, E.ACTIVE)


def test_an_ended_enrolment_stays_as_it_is_where_the_table_says_so() -> None:
    assert enrolment_move(EnrolmentOp.COMPLETE, E.ACTIVE) is E.COMPLETED
    assert enrolment_move(EnrolmentOp.COMPLETE, E.LEFT) is E.LEFT
    assert enrolment_move(EnrolmentOp.SUPPRESS, E.ACTIVE) is E.LEFT
    assert enrolment_move(EnrolmentOp.SUPPRESS, E.CONVERTED) is E.CONVERTED
    assert enrolment_move(EnrolmentOp.REOPEN, E.COMPLETED) is E.ACTIVE
    assert enrolment_move(EnrolmentOp.REOPEN, E.LEFT) is E.LEFT
    with pytest.raises(IllegalTransition, match="cannot suppress a left enrolment"):
        enrolment_move(EnrolmentOp.SUPPRESS, E.LEFT, E.ACTIVE)  # stays means stays


@pytest.mark.parametrize(("op", "start"), [
    (EnrolmentOp.LEAVE, E.COMPLETED), (EnrolmentOp.REACH_GOAL, E.LEFT),
    (EnrolmentOp.RESUME, E.ACTIVE), (EnrolmentOp.NEXT_ROUND, E.CONVERTED),
    (EnrolmentOp.COMPLETE, E.NEW)])
def test_an_enrolment_move_not_in_the_table_is_illegal(op: EnrolmentOp,
                                                       start: EnrolmentState) -> None:
    with pytest.raises(IllegalTransition, match=f"cannot {op} an? {start} enrolment"):
        enrolment_move(op, start)


def test_the_states_an_operation_really_changes_leave_out_stays_and_new() -> None:
    assert enrolment_moves_from(EnrolmentOp.SUPPRESS) == (E.ACTIVE,)
    assert enrolment_moves_from(EnrolmentOp.REOPEN) == (E.COMPLETED,)
    assert enrolment_moves_from(EnrolmentOp.ENROL) == ()
    assert enrolment_moves_from(EnrolmentOp.RESUME) == (E.CONVERTED,)


def test_a_stored_value_reads_back_as_its_state() -> None:
    assert stored(MessageState, "sent", "x") is M.SENT
    assert stored(Group, "holdout", "x") is Group.HOLDOUT


def test_a_stored_value_ldmail_never_writes_is_a_clear_ledger_error() -> None:
    with pytest.raises(LedgerError) as info:
        stored(MessageState, "snet", "welcome for ann")
    text = str(info.value)
    assert text.startswith("the ledger holds 'snet' as the message state of welcome for ann, "
                           "which ldmail never writes (it writes claimed, sent,")
    assert "'new'" not in text and ", new" not in text
    with pytest.raises(LedgerError, match="as the enrolment state of"):
        stored(EnrolmentState, "", "ann in onboarding")


def test_a_triggered_step_key_carries_its_object_and_gives_back_the_step() -> None:
    assert step_key("welcome", None) == "welcome"
    key = step_key("well-done", "course:excel@2")
    assert key == "well-done@course:excel@2"
    assert step_of(key) == "well-done"
    assert step_of("welcome") == "welcome"
