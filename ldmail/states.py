"""The delivery state machine: every state a message or an enrolment can be in, and the one
table of the moves between them.

The tables below are the whole of it. The ledger's operations look their target state up here
and write nothing that is not in them: a move that is not in a table is a bug, and raises
IllegalTransition instead of silently changing nothing. README.md's "Delivery and the ledger"
tells the same story in words.

A message is one step of one campaign for one person. `new` means the ledger has no row for
it yet; it is never stored.

    operation       from                        to         when
    claim           new, deferred, held         claimed    a send is about to hand it over
    hold            new, deferred, held         held       it cannot be rendered or built
    skip            new, deferred, held         skipped    its step's when: is false (or still
                                                           false when wait_until timed out),
                                                           or it goes to a manager who cannot
                                                           be mailed (none, or suppressed)
    deliver         claimed                     sent       the server accepted it
    lose_reply      claimed                     unknown    all of it went out, no reply came
    put_back        claimed                     deferred   stopped before any of it went out
    defer           claimed                     deferred   a temporary failure; tried again
    fail            claimed                     failed     a permanent failure, or out of tries
    interrupt       claimed                     unknown    a later send finds a dead run's claim,
                                                           or the transport raised an unexpected
                                                           error (a bug, Ctrl-C) while it had it
    resend_unknown  unknown                     deferred   send --resend-unknown
    retry           held, failed                deferred   ldmail retry [--failed]
    bounce          sent, unknown               bounced    its bounce arrived (ldmail inbox); a
                                                           bounce shows an unknown one arrived

An enrolment is one person in one campaign (`new`: not enrolled; never stored). "stays" rows
are written down on purpose: an enrolment that ended for another reason meanwhile keeps its
state (a person suppressed while their last step was on the wire stays `left`).

    operation       from                        to
    enrol           new                         active, or converted (goal already reached)
    complete        active                      completed  (its last step has an outcome)
                    completed, converted, left  stays
    reach_goal      active                      converted
    leave           active                      left       (not in the export or audience)
    suppress        active                      left       (the reason: suppressed, or
                                                           unsubscribed or bounced by mail)
                    new, completed, converted,  stays
                    left
    reopen          completed                   active     (its last step is sent again)
                    new, active, converted,     stays      (nothing of theirs is requeued)
                    left
    resume          converted                   active     (the LRS voided the goal event and
                                                           the campaign's goal says
                                                           resume_when_voided)
    next_round      completed                   active     (a triggered campaign, for the next
                                                           object: another finished course)
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import TypeVar

from .errors import IllegalTransition, LedgerError

_Stored = TypeVar("_Stored", bound=StrEnum)


class MessageState(StrEnum):
    NEW = "new"  # no row yet: never stored
    CLAIMED = "claimed"  # recorded as being handed over; a later run finding it: unknown
    SENT = "sent"
    UNKNOWN = "unknown"  # may or may not have arrived; resent only on request
    DEFERRED = "deferred"  # waiting for its next attempt (next_attempt_at)
    HELD = "held"  # could not be rendered or built: nothing was claimed or sent
    FAILED = "failed"
    BOUNCED = "bounced"  # handed over, then a bounce (hard or soft) came back for it
    SKIPPED = "skipped"  # its when: was false, or its manager unmailable: never sent; next goes on


class EnrolmentState(StrEnum):
    NEW = "new"  # not enrolled: never stored
    ACTIVE = "active"
    COMPLETED = "completed"
    CONVERTED = "converted"
    LEFT = "left"


class ExitReason(StrEnum):
    """Why an enrolment ended, as the ledger writes it in `exit_reason` (the report words
    each in the reader's language)."""

    ALL_STEPS_DONE = "all steps done"  # complete: its last step has an outcome
    GOAL_REACHED = "goal reached"  # reach_goal
    GOAL_REACHED_BEFORE = "goal reached before enrolment"  # enrol, straight to converted
    SUPPRESSED = "suppressed"  # suppress: ldmail suppress, or forget
    UNSUBSCRIBED = "unsubscribed"  # suppress: an unsubscribe link or mail
    BOUNCED = "bounced"  # suppress: a hard bounce
    NOT_IN_EXPORT = "no longer in the people export"  # leave: missing for the grace period
    NOT_IN_AUDIENCE = "no longer in the audience"  # leave: " (persona x)" follows


class Group(StrEnum):
    TREATMENT = "treatment"
    HOLDOUT = "holdout"


class MessageOp(StrEnum):
    CLAIM = "claim"
    HOLD = "hold"
    DELIVER = "deliver"
    LOSE_REPLY = "lose_reply"
    PUT_BACK = "put_back"
    DEFER = "defer"
    FAIL = "fail"
    INTERRUPT = "interrupt"
    RESEND_UNKNOWN = "resend_unknown"
    RETRY = "retry"
    BOUNCE = "bounce"
    SKIP = "skip"


class EnrolmentOp(StrEnum):
    ENROL = "enrol"
    COMPLETE = "complete"
    REACH_GOAL = "reach_goal"
    LEAVE = "leave"
    SUPPRESS = "suppress"
    REOPEN = "reopen"
    RESUME = "resume"  # the goal event that ended it was voided, and the campaign resumes
    NEXT_ROUND = "next_round"  # a triggered campaign starts again for a new object


M, E = MessageState, EnrolmentState
_WAITING = {M.NEW: M.CLAIMED, M.DEFERRED: M.CLAIMED, M.HELD: M.CLAIMED}

MESSAGE_MOVES: Mapping[MessageOp, Mapping[MessageState, MessageState]] = {
    MessageOp.CLAIM: _WAITING,
    MessageOp.HOLD: dict.fromkeys(_WAITING, M.HELD),
    MessageOp.SKIP: dict.fromkeys(_WAITING, M.SKIPPED),
    MessageOp.DELIVER: {M.CLAIMED: M.SENT},
    MessageOp.LOSE_REPLY: {M.CLAIMED: M.UNKNOWN},
    MessageOp.PUT_BACK: {M.CLAIMED: M.DEFERRED},
    MessageOp.DEFER: {M.CLAIMED: M.DEFERRED},
    MessageOp.FAIL: {M.CLAIMED: M.FAILED},
    MessageOp.INTERRUPT: {M.CLAIMED: M.UNKNOWN},
    MessageOp.RESEND_UNKNOWN: {M.UNKNOWN: M.DEFERRED},
    MessageOp.RETRY: {M.HELD: M.DEFERRED, M.FAILED: M.DEFERRED},
    MessageOp.BOUNCE: {M.SENT: M.BOUNCED, M.UNKNOWN: M.BOUNCED},
}

_ENDED = (E.COMPLETED, E.CONVERTED, E.LEFT)
# ENROL's target depends on the goal: both are allowed, the operation names the one it takes.
ENROLMENT_MOVES: Mapping[EnrolmentOp, Mapping[EnrolmentState, frozenset[EnrolmentState]]] = {
    EnrolmentOp.ENROL: {E.NEW: frozenset({E.ACTIVE, E.CONVERTED})},
    EnrolmentOp.COMPLETE: {E.ACTIVE: frozenset({E.COMPLETED}),
                           **{state: frozenset({state}) for state in _ENDED}},
    EnrolmentOp.REACH_GOAL: {E.ACTIVE: frozenset({E.CONVERTED})},
    EnrolmentOp.LEAVE: {E.ACTIVE: frozenset({E.LEFT})},
    EnrolmentOp.SUPPRESS: {E.ACTIVE: frozenset({E.LEFT}),
                           **{state: frozenset({state}) for state in (E.NEW, *_ENDED)}},
    EnrolmentOp.RESUME: {E.CONVERTED: frozenset({E.ACTIVE})},
    EnrolmentOp.NEXT_ROUND: {E.COMPLETED: frozenset({E.ACTIVE})},
    EnrolmentOp.REOPEN: {E.COMPLETED: frozenset({E.ACTIVE}),
                         **{state: frozenset({state}) for state in (E.NEW, E.ACTIVE, E.CONVERTED,
                                                                    E.LEFT)}},
}


def message_move(op: MessageOp, state: MessageState) -> MessageState:
    """Where `op` takes a message in `state`; IllegalTransition if the table has no such move."""
    target = MESSAGE_MOVES[op].get(state)
    if target is None:
        raise IllegalTransition("message", op, state)
    return target


def message_sources(op: MessageOp) -> tuple[MessageState, ...]:
    """The stored states `op` moves a message from (the `new` of a first claim is no row)."""
    return tuple(state for state in MESSAGE_MOVES[op] if state is not M.NEW)


# A step whose message is in one of these states is not planned again: every stored state
# but the ones a claim starts from (deferred and held messages are due again).
DONE_STATES: frozenset[MessageState] = frozenset(M) - {M.NEW, *message_sources(MessageOp.CLAIM)}


def retry_sources(failed: bool) -> tuple[MessageState, ...]:
    """The states `ldmail retry` requeues: held messages, and with --failed failed ones too."""
    return tuple(state for state in message_sources(MessageOp.RETRY)
                 if failed or state is not M.FAILED)


def enrolment_move(op: EnrolmentOp, state: EnrolmentState,
                   target: EnrolmentState | None = None) -> EnrolmentState:
    """Where `op` takes an enrolment in `state` (to `target`, where the table allows two)."""
    allowed = ENROLMENT_MOVES[op].get(state, frozenset())
    if target is None and len(allowed) == 1:
        (target,) = allowed
    if target is None or target not in allowed:
        raise IllegalTransition("enrolment", op, state)
    return target


def enrolment_moves_from(op: EnrolmentOp) -> tuple[EnrolmentState, ...]:
    """The stored states `op` really changes (not the ones it leaves as they are)."""
    return tuple(state for state, targets in ENROLMENT_MOVES[op].items()
                 if state is not E.NEW and targets != {state})


_NAMES = {"MessageState": "message state", "EnrolmentState": "enrolment state",
          "Group": "group"}


def stored(kind: type[_Stored], value: str, where: str) -> _Stored:
    """A state (or group) as read from the ledger; one no ldmail writes is a clear error."""
    try:
        return kind(value)
    except ValueError:
        allowed = ", ".join(member.value for member in kind if member.value != "new")
        raise LedgerError(
            f"the ledger holds {value!r} as the {_NAMES.get(kind.__name__, kind.__name__)} of "
            f"{where}, which ldmail never writes (it writes {allowed}); was the ledger edited "
            "by hand? Restore it from a backup, or set that row back to a valid value") from None


# A triggered campaign's message key: the step id, this separator and the object its round
# is for (a step id is a slug, so it never holds one): each round is a message of its own.
OCCURRENCE = "@"


def step_key(step: str, occurrence: str | None) -> str:
    """The step as the ledger keys it: `well-done@course:excel` in a triggered campaign."""
    return step if occurrence is None else f"{step}{OCCURRENCE}{occurrence}"


def step_of(key: str) -> str:
    """The step id of a ledger step key."""
    return key.split(OCCURRENCE, 1)[0]
