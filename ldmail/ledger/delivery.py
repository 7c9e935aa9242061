"""The moves of a send: claim, hold, record an outcome, and the run-level moves around them.

A send run writes through one `Delivery`. Its writes are grouped to one commit per message
without weakening the order that makes delivery at most once: a message's claim is committed
before it is handed over, and the outcome of the message before it rides in that same
transaction. The outcomes still unwritten when the run ends are committed when the Delivery
is closed, for whatever reason it ends. A run killed between a handover and the next commit
leaves that message `claimed`, exactly as a run killed between handover and marking would:
the next run reports it as unknown.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import timedelta
from types import TracebackType
from typing import NamedTuple

from ..clock import from_iso, iso
from ..errors import IllegalTransition
from ..states import (
    EnrolmentOp,
    EnrolmentState,
    ExitReason,
    MessageOp,
    MessageState,
    enrolment_move,
    enrolment_moves_from,
    message_move,
    message_sources,
    stored,
)
from .core import INTERVENTIONS, LedgerFile

M, E = MessageState, EnrolmentState
FORGOTTEN = "forgotten:"  # the prefix of a forgotten person's keyed address hash
ALL_STEPS_DONE = ExitReason.ALL_STEPS_DONE


class MessageKey(NamedTuple):
    campaign: str
    step: str
    email: str

    def __str__(self) -> str:
        return f"{self.campaign}/{self.step} to {self.email}"


@dataclass(frozen=True, slots=True)
class Recheck:
    """What a claim checks again in its own transaction, once the ledger changed meanwhile:
    the enrolment is active, the person not suppressed or forgotten (`token`: their keyed
    address hash) and, with a goal, has not reached it by `until`; with a `manager` (who
    gets the message or a copy), neither is the manager (`manager_token`: their hash)."""

    token: str
    goal_event: str | None = None
    goal_object: str = "*"
    manager: str | None = None
    manager_token: str = ""


@dataclass(frozen=True, slots=True)
class _Outcome:
    op: MessageOp
    key: MessageKey
    error: str | None = None
    retry_at: str | None = None
    bounce: str | None = None  # the server said the address does not exist: suppress it
    last_step: bool = False  # the enrolment is complete once this outcome is written
    address: str | None = None  # the address that bounced, when not the person's (a manager's)


# What each outcome writes besides the state (the table's target for a claimed message).
_OUTCOME_SETS = {
    MessageOp.DELIVER: "sent_at = :stamp, error = NULL, next_attempt_at = NULL",
    MessageOp.LOSE_REPLY: "error = :error, next_attempt_at = NULL",
    MessageOp.INTERRUPT: "error = :error, next_attempt_at = NULL",
    # Nothing of it was handed over: due again at once, and not counted as an attempt.
    MessageOp.PUT_BACK: "error = :error, next_attempt_at = :stamp, attempts = attempts - 1",
    MessageOp.DEFER: "error = :error, next_attempt_at = :retry_at",
    MessageOp.FAIL: "error = :error, next_attempt_at = NULL",
}
_OUTCOME_SQL = {
    op: f"UPDATE messages SET state = :to, {sets} WHERE campaign = :campaign AND step = :step"
        " AND email = :email AND state = :from" for op, sets in _OUTCOME_SETS.items()}
# Messages handed over after a moment: sent (or bounced since) when the server accepted them,
# unknown (or bounced since) when they were claimed; only unknown ones have no sent_at.
_HANDED_OVER_STATES = (M.SENT, M.UNKNOWN, M.BOUNCED)
_HANDED_OVER = "state IN (?, ?, ?) AND coalesce(sent_at, claimed_at) > ?"
_COMPLETE_SQL = ("UPDATE enrolments SET state = ?, exit_reason = ?, exited_at = ? WHERE"
                 " campaign = ? AND email = ? AND state = ?")


# SQL on a message row `m`: its step id (a triggered campaign keys step@object), and whether
# it belongs to enrolment {e}'s current round (an earlier round's message is left alone: the
# enrolment has moved on, so requeued it would wait for ever).
_STEP_ID = "substr(m.step, 1, instr(m.step || '@', '@') - 1)"
_THIS_ROUND = ("(instr(m.step, '@') = 0"
               " OR substr(m.step, instr(m.step, '@') + 1) IS {e}.occurrence)")


class Delivery:
    """One send run's writes; use it as a context manager, so the last outcomes are written."""

    def __init__(self, ledger: DeliveryMoves, run_id: int, stamp: str,
                 interventions: str | None) -> None:
        self.ledger = ledger
        self.conn = ledger.db.conn
        self.run_id = run_id
        self.stamp = stamp
        # The intervention counter as the run found it before its sync: only a change after
        # that makes claims re-check everything.
        self.interventions = interventions
        self.pending: list[_Outcome] = []

    def __enter__(self) -> Delivery:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.flush()

    # -- the moves ---------------------------------------------------------------------------

    def claim(self, key: MessageKey, due_at: str, message_id: str, *, retry: bool,
              recheck: Recheck, variant: str | None = None, recipient: str | None = None,
              cc: str | None = None) -> bool:
        """Record the message as being handed over; False when it must not go (any more).

        `retry`: the message has a row already (deferred or held); else it has none. The claim
        checks again, in its own transaction, what may have changed since the run worked out
        who is due (see Recheck). `variant`: the step's A/B variant the message carries;
        `recipient`: where it goes when not to the person (their manager); `cc`: the manager
        copied in. The row keeps the person's key either way.
        """
        allowed, allowed_params = self._still_allowed(key, recheck)
        to = message_move(MessageOp.CLAIM, M.DEFERRED if retry else M.NEW)
        if retry:
            sources = message_sources(MessageOp.CLAIM)
            marks = ", ".join("?" for _ in sources)
            changed = self._commit_with(
                "UPDATE messages SET state = ?, attempts = attempts + 1, message_id = ?,"
                " claimed_at = ?, run_id = ?, error = NULL, variant = ?, recipient = ?, cc = ?"
                f" WHERE campaign = ? AND step = ? AND email = ? AND state IN ({marks}) AND"
                f" {allowed}",
                (to, message_id, self.stamp, self.run_id, variant, recipient, cc, *key,
                 *sources, *allowed_params),
                key, MessageOp.CLAIM)
        else:
            changed = self._commit_with(
                "INSERT INTO messages (campaign, step, email, due_at, state, attempts,"
                " message_id, claimed_at, run_id, variant, recipient, cc) SELECT ?, ?, ?, ?, ?,"
                f" 1, ?, ?, ?, ?, ?, ? WHERE {allowed}",
                (*key, due_at, to, message_id, self.stamp, self.run_id, variant, recipient, cc,
                 *allowed_params),
                key, MessageOp.CLAIM)
        return changed == 1

    def hold(self, key: MessageKey, due_at: str, reason: str, token: str) -> None:
        """A message that could not be rendered or built: held with the reason, not failed.

        Nothing was claimed or sent; a later run renders it again and sends it once the
        project is fixed. Not written for a person suppressed or forgotten meanwhile.
        """
        self._set_aside(MessageOp.HOLD, key, due_at, reason, token)

    def skip(self, key: MessageKey, due_at: str, reason: str, token: str) -> None:
        """A message whose step's condition is false: skipped with the reason, never sent;
        the person's next step goes on. Not written for a person suppressed or forgotten."""
        self._set_aside(MessageOp.SKIP, key, due_at, reason, token)

    def _set_aside(self, op: MessageOp, key: MessageKey, due_at: str, reason: str,
                   token: str) -> None:
        sources = message_sources(op)
        marks = ", ".join("?" for _ in sources)
        self._commit_with(
            "INSERT INTO messages (campaign, step, email, due_at, state, attempts, error,"
            " claimed_at, run_id) SELECT ?, ?, ?, ?, ?, 0, ?, ?, ? WHERE NOT EXISTS (SELECT 1"
            " FROM suppressions WHERE email IN (?, ?)) ON CONFLICT (campaign, step, email) DO"
            " UPDATE SET state = excluded.state, error = excluded.error,"
            f" next_attempt_at = NULL WHERE messages.state IN ({marks})",
            (*key, due_at, message_move(op, M.NEW), reason, self.stamp,
             self.run_id, key.email, FORGOTTEN + token, *sources),
            key, op)

    def delivered(self, key: MessageKey, *, last_step: bool) -> None:
        self.pending.append(_Outcome(MessageOp.DELIVER, key, last_step=last_step))

    def reply_lost(self, key: MessageKey, reason: str, *, last_step: bool) -> None:
        self.pending.append(_Outcome(MessageOp.LOSE_REPLY, key, reason, last_step=last_step))

    def interrupted(self, key: MessageKey, reason: str, *, last_step: bool) -> None:
        """The run stopped (an unexpected error) while the transport had the message: it may
        or may not have gone out, so it is unknown, as a claim a dead run left becomes."""
        self.pending.append(_Outcome(MessageOp.INTERRUPT, key, reason, last_step=last_step))

    def put_back(self, key: MessageKey, reason: str) -> None:
        self.pending.append(_Outcome(MessageOp.PUT_BACK, key, reason))

    def defer(self, key: MessageKey, reason: str, retry_at: str) -> None:
        self.pending.append(_Outcome(MessageOp.DEFER, key, reason, retry_at))

    def fail(self, key: MessageKey, reason: str, *, bounce: str | None, last_step: bool,
             address: str | None = None) -> None:
        """A permanent failure; with `bounce`, the address it went to (`address`, when not
        the person's) is suppressed."""
        self.pending.append(_Outcome(MessageOp.FAIL, key, reason, bounce=bounce,
                                     last_step=last_step, address=address))

    def flush(self) -> None:
        """Write the outcomes not yet written (the last message's, as a rule)."""
        if self.pending:
            self._commit_with(None, (), None, None)

    # -- how they are written ----------------------------------------------------------------

    def _still_allowed(self, key: MessageKey, recheck: Recheck
                       ) -> tuple[str, tuple[str | None, ...]]:
        """SQL that is true while the enrolment may still receive this message.

        The full check runs only once suppress, forget or an event import changed the ledger
        since this run started (SQLite stops at the first true term of an OR).
        """
        sql = ("EXISTS (SELECT 1 FROM enrolments WHERE campaign = ? AND email = ? AND state = ?)"
               " AND NOT EXISTS (SELECT 1 FROM suppressions WHERE email IN (?, ?))")
        params: tuple[str | None, ...] = (key.campaign, key.email, E.ACTIVE, key.email,
                                   FORGOTTEN + recheck.token)
        if recheck.goal_event is not None:
            sql += (" AND NOT EXISTS (SELECT 1 FROM events WHERE email = ? AND event = ?"
                    " AND occurred_at <= ? AND object GLOB ? AND voided_at IS NULL)")
            params += (key.email, recheck.goal_event, self.stamp, recheck.goal_object)
        if recheck.manager is not None:
            sql += " AND NOT EXISTS (SELECT 1 FROM suppressions WHERE email IN (?, ?))"
            params += (recheck.manager, FORGOTTEN + recheck.manager_token)
        return (f"((SELECT value FROM meta WHERE key = ?) IS ? OR ({sql}))",
                (INTERVENTIONS, self.interventions, *params))

    def _commit_with(self, sql: str | None, params: tuple[object, ...], key: MessageKey | None,
                     op: MessageOp | None) -> int:
        """One statement (or none), committed together with every outcome still pending.

        A statement that changes nothing is a refusal when the message is still in a state
        `op` moves from (a re-check said no), and a bug otherwise: it raises after the
        outcomes before it are committed, as they stand whatever the bug.
        """
        conn = self.conn
        conn.execute("BEGIN IMMEDIATE")
        illegal: list[IllegalTransition] = []
        changed = 0
        try:
            for outcome in self.pending:
                problem = self._write_outcome(outcome)
                if problem is not None:
                    illegal.append(problem)
            self.pending.clear()
            if sql is not None and key is not None and op is not None:
                try:
                    changed = conn.execute(sql, params).rowcount
                except sqlite3.IntegrityError:
                    changed = 0
                if changed == 0:
                    state = self.ledger.message_state(key)
                    if state not in (M.NEW, *message_sources(op)):
                        illegal.append(IllegalTransition("message", op, state, str(key)))
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        if illegal:
            raise illegal[0]
        return changed

    def _write_outcome(self, outcome: _Outcome) -> IllegalTransition | None:
        key = outcome.key
        changed = self.conn.execute(_OUTCOME_SQL[outcome.op], {
            "to": message_move(outcome.op, M.CLAIMED), "from": M.CLAIMED, "stamp": self.stamp,
            "error": outcome.error, "retry_at": outcome.retry_at, "campaign": key.campaign,
            "step": key.step, "email": key.email}).rowcount
        if changed != 1:
            return IllegalTransition("message", outcome.op, self.ledger.message_state(key),
                                     str(key))
        if outcome.bounce is not None:
            self.conn.execute(
                "INSERT OR IGNORE INTO suppressions (email, reason, source, created_at) "
                "VALUES (?, ?, ?, ?)", (outcome.address or key.email, outcome.bounce, "bounce",
                                        self.stamp))
        if outcome.last_step:
            self.ledger.complete_in_transaction(key.campaign, key.email, self.stamp)
        return None


class DeliveryMoves(LedgerFile):
    """The moves around a send: interrupted claims, resends, requeues and completions."""

    def delivery(self, run_id: int, stamp: str, interventions: str | None) -> Delivery:
        return Delivery(self, run_id, stamp, interventions)

    def message_state(self, key: MessageKey) -> MessageState:
        """The state of one message (`new` when the ledger has no row for it)."""
        state = self._value("SELECT state FROM messages WHERE campaign = ? AND step = ? AND"
                            " email = ?", tuple(key))
        return M.NEW if state is None else stored(MessageState, state, str(key))

    def enrolment_state(self, campaign: str, email: str) -> EnrolmentState:
        state = self._value("SELECT state FROM enrolments WHERE campaign = ? AND email = ?",
                            (campaign, email))
        return E.NEW if state is None else stored(EnrolmentState, state,
                                                  f"{campaign} for {email}")

    def claimed(self) -> list[MessageKey]:
        """Messages claimed and not yet recorded: in flight, or left by a run that died."""
        return [MessageKey(*row) for row in self.db.conn.execute(
            "SELECT campaign, step, email FROM messages WHERE state = ?", (M.CLAIMED,))]

    def mark_interrupted(self, reason: str) -> int:
        """Claims a dead run left: they may or may not have arrived (unknown)."""
        return self._move_all(MessageOp.INTERRUPT, "error = ?", (reason,))

    def resend_unknown(self, at: str, reason: str) -> int:
        """Queue unknown messages again (send --resend-unknown); returns how many.

        Only for people still in the campaign: someone who left or reached the goal since
        keeps the unknown mark, and is not counted as queued.
        """
        return self._requeue(MessageOp.RESEND_UNKNOWN, message_sources(MessageOp.RESEND_UNKNOWN),
                             at, "error = ?", (reason,), (), check_suppressed=False)

    def retry(self, states: tuple[MessageState, ...], at: str, *, campaign: str | None = None,
              step: str | None = None) -> int:
        """Put held (or failed) messages back in the queue, due at once; returns how many.

        Only for people still enrolled and not suppressed.
        """
        for state in states:
            message_move(MessageOp.RETRY, state)  # asking to retry a sent message is a bug
        chosen = [(column, value) for column, value in (("campaign", campaign), ("step", step))
                  if value is not None]
        return self._requeue(
            MessageOp.RETRY, states, at,
            "attempts = 0, error = coalesce(error || ' (requeued by ldmail retry)',"
            " 'requeued by ldmail retry')", (),
            tuple(chosen), check_suppressed=True)

    def _requeue(self, op: MessageOp, states: tuple[MessageState, ...], at: str, sets: str,
                 set_params: tuple[str, ...], scope: tuple[tuple[str, str], ...], *,
                 check_suppressed: bool) -> int:
        """`op` (to deferred, due at `at`) for messages in `states` of active enrolments.

        An enrolment that counted such a message as its last step was completed by the run
        that recorded it; it is reopened first, or nothing would pick the message up.
        """
        marks = ", ".join("?" for _ in states)
        # A triggered campaign keys a step step@object: --step names the step id.
        where = "".join(f" AND {_STEP_ID} = ?" if column == "step" else f" AND m.{column} = ?"
                        for column, _ in scope)
        where_params = tuple(value for _, value in scope)
        reopen_from = enrolment_moves_from(EnrolmentOp.REOPEN)
        suppressed = " AND NOT EXISTS (SELECT 1 FROM suppressions s WHERE s.email = m.email)" \
            if check_suppressed else ""
        with self.transaction(immediate=True) as db:
            db.conn.execute(
                "UPDATE enrolments SET state = ?, exit_reason = NULL, exited_at = NULL"
                f" WHERE state IN ({', '.join('?' for _ in reopen_from)}) AND exit_reason = ?"
                f" AND EXISTS (SELECT 1 FROM messages m WHERE m.state IN ({marks})"
                f" AND m.campaign = enrolments.campaign AND m.email = enrolments.email"
                f" AND {_THIS_ROUND.format(e='enrolments')}{where})",
                (enrolment_move(EnrolmentOp.REOPEN, E.COMPLETED), *reopen_from, ALL_STEPS_DONE,
                 *states, *where_params))
            return int(db.conn.execute(
                f"UPDATE messages AS m SET state = ?, next_attempt_at = ?, {sets}"
                f" WHERE m.state IN ({marks}){where} AND EXISTS (SELECT 1 FROM enrolments e"
                f" WHERE e.campaign = m.campaign AND e.email = m.email AND e.state = ?"
                f" AND {_THIS_ROUND.format(e='e')}){suppressed}",
                (message_move(op, states[0]), at, *set_params, *states, *where_params,
                 E.ACTIVE)).rowcount)

    def _move_all(self, op: MessageOp, sets: str, params: tuple[str, ...]) -> int:
        """`op` for every message in a state it moves from (each to the table's target)."""
        changed = 0
        with self.transaction(immediate=True) as db:
            for state in message_sources(op):
                changed += db.conn.execute(
                    f"UPDATE messages SET state = ?, {sets} WHERE state = ?",
                    (message_move(op, state), *params, state)).rowcount
        return changed

    def complete(self, enrolments: list[tuple[str, str]], at: str) -> None:
        """Enrolments whose steps all have an outcome (an ended one stays as it is)."""
        with self.transaction():
            for campaign, email in enrolments:
                self.complete_in_transaction(campaign, email, at)

    def complete_in_transaction(self, campaign: str, email: str, at: str) -> None:
        changed = self.db.conn.execute(_COMPLETE_SQL, (
            enrolment_move(EnrolmentOp.COMPLETE, E.ACTIVE), ALL_STEPS_DONE, at, campaign, email,
            E.ACTIVE)).rowcount
        if not changed:
            # Ended meanwhile stays ended; an enrolment that is not there at all is a bug.
            enrolment_move(EnrolmentOp.COMPLETE, self.enrolment_state(campaign, email))

    def sent_since(self, since: str) -> int:
        """Messages handed over after `since` (ISO UTC): what counts against the daily cap.
        An unknown message may have arrived, so it counts too, and so does one whose bounce
        came back since (the relay took it)."""
        return int(self._value(f"SELECT count(*) FROM messages WHERE {_HANDED_OVER}",
                               (*_HANDED_OVER_STATES, since)))

    def cap_frees_at(self, since: str) -> str | None:
        """When the oldest hand-over counted by `sent_since(since)` leaves the 24-hour window
        (ISO UTC), making room under the daily cap."""
        oldest = self._value(
            f"SELECT min(coalesce(sent_at, claimed_at)) FROM messages WHERE {_HANDED_OVER}",
            (*_HANDED_OVER_STATES, since))
        return None if oldest is None else iso(from_iso(oldest) + timedelta(days=1))

    def last_handover(self) -> tuple[bool, str | None]:
        """Whether any run has handed a message over, and when the newest such run finished
        (wall-clock ISO; None when it did not finish: it was killed, or runs still)."""
        newest = self._value("SELECT max(run_id) FROM messages WHERE claimed_at IS NOT NULL")
        if not newest:
            return False, None
        return True, self._value("SELECT finished_at FROM runs WHERE id = ?", (newest,))

    def unknown_count(self) -> int:
        return int(self._value("SELECT count(*) FROM messages WHERE state = ?", (M.UNKNOWN,)))
