"""The ledger's state table, walked pair by pair: every (state, operation) either moves as
ldmail/states.py says or raises IllegalTransition and writes nothing."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ldmail.errors import IllegalTransition
from ldmail.ledger import Ledger, MessageKey, Recheck
from ldmail.states import (
    ENROLMENT_MOVES,
    MESSAGE_MOVES,
    EnrolmentOp,
    EnrolmentState,
    MessageOp,
    MessageState,
    enrolment_move,
    message_move,
)

M, E = MessageState, EnrolmentState
KEY = MessageKey("welcome", "hello", "ann@example.org")
STAMP = "2026-12-01T09:00:00Z"
TOKEN = "0" * 32


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    with Ledger(tmp_path / "ledger.db") as opened:
        yield opened


def enrol(ledger: Ledger, state: EnrolmentState = E.ACTIVE, reason: str | None = None) -> None:
    if state is not E.NEW:
        ledger.db.conn.execute(
            "INSERT INTO enrolments (campaign, email, enrolled_at, anchor_at, grp, state,"
            " exit_reason) VALUES (?, ?, ?, ?, 'treatment', ?, ?)",
            (KEY.campaign, KEY.email, STAMP, STAMP, state, reason))


def put(ledger: Ledger, state: MessageState) -> None:
    """The message KEY in `state` (no row for `new`), its enrolment active."""
    enrol(ledger)
    if state is not M.NEW:
        ledger.db.conn.execute(
            "INSERT INTO messages (campaign, step, email, due_at, state, attempts)"
            " VALUES (?, ?, ?, ?, ?, 1)", (*KEY, STAMP, state))


def snapshot(ledger: Ledger) -> list[tuple[object, ...]]:
    conn = ledger.db.conn
    return [*conn.execute("SELECT * FROM messages ORDER BY id"),
            *conn.execute("SELECT * FROM enrolments"), *conn.execute("SELECT * FROM suppressions")]


def claim(ledger: Ledger, state: MessageState) -> bool:
    with ledger.delivery(1, STAMP, None) as delivery:
        return delivery.claim(KEY, STAMP, "<id@example.org>", retry=state is not M.NEW,
                              recheck=Recheck(TOKEN))


def hold(ledger: Ledger, state: MessageState) -> None:
    with ledger.delivery(1, STAMP, None) as delivery:
        delivery.hold(KEY, STAMP, "a template error", TOKEN)


def skip(ledger: Ledger, state: MessageState) -> None:
    with ledger.delivery(1, STAMP, None) as delivery:
        delivery.skip(KEY, STAMP, "condition false: reached('registered')", TOKEN)


def outcome(op: MessageOp) -> Callable[[Ledger, MessageState], None]:
    def record(ledger: Ledger, state: MessageState) -> None:
        with ledger.delivery(1, STAMP, None) as delivery:
            if op is MessageOp.DELIVER:
                delivery.delivered(KEY, last_step=False)
            elif op is MessageOp.LOSE_REPLY:
                delivery.reply_lost(KEY, "no reply", last_step=False)
            elif op is MessageOp.PUT_BACK:
                delivery.put_back(KEY, "stopped")
            elif op is MessageOp.DEFER:
                delivery.defer(KEY, "451 later", STAMP)
            else:
                delivery.fail(KEY, "550 no", bounce="address rejected", last_step=False)
    return record


def bounce(ledger: Ledger, state: MessageState) -> None:
    """A hard bounce from the sender's mailbox (ldmail inbox): bounced, and suppressed."""
    ledger.bounce(KEY, "hard bounce: 550 5.1.1 no such user", STAMP, mail="mail <b@mx>",
                  suppression="bounced: 550 5.1.1 no such user")


# Each operation on the one message KEY; set operations act on every message in a state they
# move from, so for the others they change nothing (they cannot be asked for a single one).
SINGLE: dict[MessageOp, Callable[[Ledger, MessageState], object]] = {
    MessageOp.CLAIM: claim,
    MessageOp.HOLD: hold,
    MessageOp.SKIP: skip,
    MessageOp.RETRY: lambda ledger, state: ledger.retry((state,), STAMP),
    MessageOp.BOUNCE: bounce,
    **{op: outcome(op) for op in (MessageOp.DELIVER, MessageOp.LOSE_REPLY, MessageOp.PUT_BACK,
                                  MessageOp.DEFER, MessageOp.FAIL)},
}
SET: dict[MessageOp, Callable[[Ledger], int]] = {
    MessageOp.INTERRUPT: lambda ledger: ledger.mark_interrupted("interrupted"),
    MessageOp.RESEND_UNKNOWN: lambda ledger: ledger.resend_unknown(STAMP, "resend"),
}


def test_every_message_operation_is_covered() -> None:
    assert set(SINGLE) | set(SET) == set(MessageOp)
    assert not set(SINGLE) & set(SET)


@pytest.mark.parametrize("op", list(MessageOp))
@pytest.mark.parametrize("state", list(MessageState))
def test_message_table(op: MessageOp, state: MessageState) -> None:
    target = MESSAGE_MOVES[op].get(state)
    if target is None:
        with pytest.raises(IllegalTransition):
            message_move(op, state)
    else:
        assert message_move(op, state) is target


@pytest.mark.parametrize("op", list(SINGLE))
@pytest.mark.parametrize("state", list(MessageState))
def test_single_message_operation(ledger: Ledger, op: MessageOp, state: MessageState) -> None:
    put(ledger, state)
    target = MESSAGE_MOVES[op].get(state)
    before = snapshot(ledger)
    if target is None:
        with pytest.raises(IllegalTransition) as raised:
            SINGLE[op](ledger, state)
        assert raised.value.operation == op
        assert snapshot(ledger) == before, "an illegal move wrote something"
        assert ledger.message_state(KEY) is state
    else:
        SINGLE[op](ledger, state)
        assert ledger.message_state(KEY) is target


@pytest.mark.parametrize("op", list(SET))
@pytest.mark.parametrize("state", [s for s in MessageState if s is not M.NEW])
def test_set_message_operation(ledger: Ledger, op: MessageOp, state: MessageState) -> None:
    put(ledger, state)
    target = MESSAGE_MOVES[op].get(state)
    moved = SET[op](ledger)
    assert ledger.message_state(KEY) is (target or state)
    assert moved == (1 if target is not None else 0)


@pytest.mark.parametrize("state", [s for s in MessageState
                                   if MESSAGE_MOVES[MessageOp.BOUNCE].get(s)])
def test_a_hard_bounce_suppresses_and_ends_the_enrolment_as_bounced(
        ledger: Ledger, state: MessageState) -> None:
    put(ledger, state)
    bounce(ledger, state)
    assert ledger.is_suppressed(KEY.email)
    assert ledger.enrolment_state(KEY.campaign, KEY.email) is E.LEFT
    assert ledger.db.conn.execute("SELECT exit_reason FROM enrolments").fetchone()[0] == \
        "bounced"
    assert ledger.mail_applied("mail <b@mx>") == "bounce"


def test_an_illegal_bounce_records_no_mail_and_no_suppression(ledger: Ledger) -> None:
    put(ledger, M.FAILED)
    with pytest.raises(IllegalTransition):
        bounce(ledger, M.FAILED)
    assert ledger.mail_applied("mail <b@mx>") is None
    assert not ledger.is_suppressed(KEY.email)


def test_a_refused_claim_is_not_a_bug(ledger: Ledger) -> None:
    """A claim the re-check refuses (the person was suppressed meanwhile) returns False."""
    put(ledger, M.DEFERRED)
    ledger.suppress(KEY.email, "opted out", "test", STAMP)
    with ledger.delivery(1, STAMP, None) as delivery:
        assert not delivery.claim(KEY, STAMP, "<id@example.org>", retry=True,
                                  recheck=Recheck(TOKEN))
    assert ledger.message_state(KEY) is M.DEFERRED


def test_outcomes_before_an_illegal_one_are_written(ledger: Ledger) -> None:
    """Outcomes wait for the next commit; one illegal outcome does not lose the others."""
    other = KEY._replace(step="first-course")
    put(ledger, M.CLAIMED)
    ledger.db.conn.execute("INSERT INTO messages (campaign, step, email, due_at, state)"
                           " VALUES (?, ?, ?, ?, 'sent')", (*other, STAMP))
    with pytest.raises(IllegalTransition), ledger.delivery(1, STAMP, None) as delivery:
        delivery.delivered(KEY, last_step=False)
        delivery.delivered(other, last_step=False)  # already sent: a bug
    assert ledger.message_state(KEY) is M.SENT


# -- enrolments -----------------------------------------------------------------------------

@pytest.mark.parametrize("op", list(EnrolmentOp))
@pytest.mark.parametrize("state", list(EnrolmentState))
def test_enrolment_table(op: EnrolmentOp, state: EnrolmentState) -> None:
    targets = ENROLMENT_MOVES[op].get(state, frozenset())
    for target in EnrolmentState:
        if target in targets:
            assert enrolment_move(op, state, target) is target
        else:
            with pytest.raises(IllegalTransition):
                enrolment_move(op, state, target)


def complete(ledger: Ledger) -> None:
    ledger.complete([(KEY.campaign, KEY.email)], STAMP)


def suppress(ledger: Ledger) -> None:
    ledger.suppress(KEY.email, "opted out", "test", STAMP)


def reopen(ledger: Ledger) -> None:
    """Reopening happens when a message of the enrolment is requeued."""
    ledger.db.conn.execute("INSERT INTO messages (campaign, step, email, due_at, state)"
                           " VALUES (?, ?, ?, ?, 'held')", (*KEY, STAMP))
    ledger.retry((M.HELD,), STAMP)


# The sync (EnrolmentSync, ledger/enrolments.py) enrols, records goals and lets people leave
# in set-based SQL over the whole export, with the table's moves bound as parameters; those
# moves are checked by the sync's tests and the table test above.
ENROLMENT_OPERATIONS: dict[EnrolmentOp, Callable[[Ledger], None]] = {
    EnrolmentOp.COMPLETE: complete, EnrolmentOp.SUPPRESS: suppress, EnrolmentOp.REOPEN: reopen}


@pytest.mark.parametrize("op", list(ENROLMENT_OPERATIONS))
@pytest.mark.parametrize("state", list(EnrolmentState))
def test_enrolment_operation(ledger: Ledger, op: EnrolmentOp, state: EnrolmentState) -> None:
    # A completed enrolment always says why; reopening keys on that reason.
    enrol(ledger, state, "all steps done" if state is E.COMPLETED else None)
    targets = ENROLMENT_MOVES[op].get(state)
    if targets is None:
        with pytest.raises(IllegalTransition):
            ENROLMENT_OPERATIONS[op](ledger)
        assert ledger.enrolment_state(KEY.campaign, KEY.email) is state
    else:
        ENROLMENT_OPERATIONS[op](ledger)
        (target,) = targets
        assert ledger.enrolment_state(KEY.campaign, KEY.email) is target


def test_the_table_is_in_the_docstring() -> None:
    """The docstring a reader checks against the README is the table the code enforces."""
    import ldmail.states as states

    doc = states.__doc__ or ""
    for op, moves in MESSAGE_MOVES.items():
        line = next(text for text in doc.splitlines() if text.strip().startswith(op.value + " "))
        for source, target in moves.items():
            assert source.value in line and target.value in line, (op, line)


def test_a_state_no_ldmail_writes_is_a_clear_error(tmp_path: Path, project: Path,
                                                    cli: Callable[..., Any]) -> None:
    """A ledger edited by hand: one located line and exit 1, not a traceback."""
    assert cli("send", "--project", project, "--now", "2026-12-01T10:00").exit_code == 0
    with sqlite3.connect(project / ".ldmail" / "ledger.db") as db:
        db.execute("UPDATE messages SET state = 'weird' WHERE id = 1")
    result = cli("report", "--project", project, "--now", "2026-12-20T10:00")
    assert result.exit_code == 1
    assert "holds 'weird' as the message state of welcome/" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
