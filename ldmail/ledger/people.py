"""The moves that concern one person: suppress, forget, record a goal event; and what the
ledger holds for them."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, fields
from typing import Any, NamedTuple

from ..states import (
    EnrolmentOp,
    EnrolmentState,
    ExitReason,
    MessageState,
    enrolment_move,
    enrolment_moves_from,
)
from .core import LedgerFile
from .delivery import FORGOTTEN

E = EnrolmentState
SUPPRESSED = ExitReason.SUPPRESSED  # the exit reason of enrolments a suppression ended


@dataclass(frozen=True, slots=True)
class GoalEvent:
    email: str
    event: str
    object: str
    occurred_at: str  # ISO UTC
    statement: str | None = None  # the xAPI statement id, for events pulled from an LRS


class Recorded(NamedTuple):
    """What recording goal events did: how many were new, already known (the same event, or
    the same statement, recorded before) and revoked, and the ones refused: (their index in
    the events given, why)."""

    added: int
    known: int
    revoked: int
    refused: list[tuple[int, str]]


_REQUIRED = {"email": "person (email)", "event": "event name (event)",
             "occurred_at": "date (occurred_at)"}


def _missing(event: GoalEvent) -> str | None:
    """Why `event` cannot be stored (a field the ledger requires is empty), else None."""
    empty = [words for name, words in _REQUIRED.items()
             if not isinstance(getattr(event, name), str) or not getattr(event, name)]
    if not isinstance(event.object, str):
        empty.append("object (object)")
    return f"the event has no {' and no '.join(empty)}; not recorded" if empty else None


# A person's rows, typed; each field is named as its column, so `ldmail history --format json`
# shows the rows as the ledger stores them.


@dataclass(frozen=True, slots=True)
class EnrolmentRecord:
    campaign: str
    email: str
    enrolled_at: str  # ISO UTC, as every moment below
    anchor_at: str
    grp: str  # treatment or holdout
    persona: str | None
    language: str | None
    state: str
    exit_reason: str | None
    exited_at: str | None
    missing_since: str | None
    occurrence: str | None


@dataclass(frozen=True, slots=True)
class MessageRecord:
    id: int
    campaign: str
    step: str
    email: str  # the person the message is about
    due_at: str
    state: str
    attempts: int
    message_id: str | None
    error: str | None
    claimed_at: str | None
    sent_at: str | None
    next_attempt_at: str | None
    run_id: int | None
    bounced_at: str | None
    variant: str | None
    recipient: str | None  # the manager, when the step goes to them instead
    cc: str | None  # the manager copied in


@dataclass(frozen=True, slots=True)
class SuppressionRecord:
    email: str
    reason: str
    source: str | None  # command, inbox, forget, or the name of an imported list
    created_at: str


@dataclass(frozen=True, slots=True)
class EventRecord:
    event: str
    object: str
    occurred_at: str
    source: str | None
    statement: str | None
    voided_at: str | None  # when the LRS voided it


@dataclass(frozen=True)
class PersonHistory:
    """Everything the ledger holds for one address."""

    enrolments: list[EnrolmentRecord]
    messages: list[MessageRecord]  # theirs, and those they got as someone's manager
    suppression: SuppressionRecord | None
    events: list[EventRecord]  # learning events, voided ones with their voided_at

    def __bool__(self) -> bool:
        return bool(self.enrolments or self.messages or self.suppression or self.events)


def _columns(record: type[Any]) -> str:
    return ", ".join(field.name for field in fields(record))


class PersonMoves(LedgerFile):
    def suppress(self, email: str, reason: str, source: str, at: str,
                 exit_reason: str = SUPPRESSED) -> bool:
        """Never mail this address again, and end its active enrolments (`exit_reason` says
        why: the report tells "unsubscribed" and "bounced" from other suppressions); False if
        it already was suppressed (or the address was forgotten: it is not stored again)."""
        with self.transaction(immediate=True) as db:
            if not email.startswith(FORGOTTEN) and self.is_forgotten(email):
                return False  # checked in the write's own transaction: forget wins any race
            added = db.conn.execute(
                "INSERT OR IGNORE INTO suppressions (email, reason, source, created_at) "
                "VALUES (?, ?, ?, ?)", (email, reason, source, at)).rowcount == 1
            for state in enrolment_moves_from(EnrolmentOp.SUPPRESS):
                db.conn.execute(
                    "UPDATE enrolments SET state = ?, exit_reason = ?, exited_at = ? "
                    "WHERE email = ? AND state = ?",
                    (enrolment_move(EnrolmentOp.SUPPRESS, state), exit_reason, at, email, state))
        self.note_intervention()
        return added

    def is_suppressed(self, email: str) -> bool:
        return self._value("SELECT 1 FROM suppressions WHERE email = ?", (email,)) is not None

    def suppressed_among(self, emails: Iterable[str]) -> set[str]:
        """Those of `emails` that are suppressed, or were forgotten on request."""
        hashed = {FORGOTTEN + self.address_hash(email): email for email in emails}
        found = self._suppressed_of([*hashed.values(), *hashed])
        return {hashed.get(email, email) for email in found}

    def staged_rows(self, emails: Iterable[str]) -> dict[str, int]:
        """The export's row of each of `emails` that is in it, as the last sync staged it."""
        wanted = sorted(set(emails))
        rows: dict[str, int] = {}
        for start in range(0, len(wanted), 500):
            chunk = wanted[start:start + 500]
            rows.update(self.db.conn.execute(
                f"SELECT email, row FROM staged_people WHERE email IN"
                f" ({', '.join('?' for _ in chunk)})", chunk).fetchall())
        return rows

    def forgotten_hashes(self) -> set[str]:
        """The keyed address hashes of everyone forgotten on request."""
        return {row[0].removeprefix(FORGOTTEN) for row in self.db.conn.execute(
            "SELECT email FROM suppressions WHERE email LIKE ?", (FORGOTTEN + "%",))}

    def is_forgotten(self, email: str) -> bool:
        return self.is_suppressed(FORGOTTEN + self.address_hash(email))

    def forgotten_as(self, email: str) -> str | None:
        """The keyed hash that stands for `email` if it was forgotten (or is a hash already)."""
        if email.startswith(FORGOTTEN):
            return email
        hashed = FORGOTTEN + self.address_hash(email)
        return hashed if self.is_suppressed(hashed) else None

    def _forgotten_among(self, emails: Iterable[str]) -> dict[str, str]:
        """Each of `emails` that was forgotten, with the keyed hash that stands for it."""
        hashed = {FORGOTTEN + self.address_hash(email): email for email in set(emails)
                  if not email.startswith(FORGOTTEN)}
        found = self._suppressed_of(hashed)
        return {hashed[key]: key for key in found}

    def _suppressed_of(self, emails: Iterable[str]) -> set[str]:
        wanted = list(emails)
        found: set[str] = set()
        for start in range(0, len(wanted), 500):  # SQLite's limit on bound parameters
            chunk = wanted[start:start + 500]
            found.update(row[0] for row in self.db.conn.execute(
                f"SELECT email FROM suppressions WHERE email IN ({', '.join('?' for _ in chunk)})",
                chunk))
        return found

    def has_claimed(self, email: str) -> bool:
        """Whether a message to `email` is claimed: in a running send's hands."""
        return self._value("SELECT 1 FROM messages WHERE (email = ? OR recipient = ? OR cc = ?)"
                           " AND state = ? LIMIT 1",
                           (email, email, email, MessageState.CLAIMED)) is not None

    def known_addresses(self) -> Iterator[str]:
        """Every address the ledger knows (in the staged export, enrolled, or a manager who
        was sent a message or a copy)."""
        for (email,) in self.db.conn.execute(
                "SELECT email FROM main.staged_people UNION SELECT email FROM enrolments"
                " UNION SELECT recipient FROM messages WHERE recipient IS NOT NULL"
                " UNION SELECT cc FROM messages WHERE cc IS NOT NULL"):
            yield str(email)

    def record_events(self, events: Iterable[GoalEvent], source: str) -> Recorded:
        """Record goal events; see record_pulled.

        A new one makes a running send re-check goals at its next claim.
        """
        return self.record_pulled(events, source)

    def record_pulled(self, events: Iterable[GoalEvent], source: str, *,
                      voided: Iterable[str] = (), cursor: tuple[str, str] | None = None,
                      at: str = "") -> Recorded:
        """Record goal events, revoke (mark voided at `at`) those of the `voided` statement
        ids, and write `cursor`
        (a meta key and value: how far an LRS was read), all in one transaction: the events
        and the point they were read up to are kept together or not at all. Returns how many
        events were new, already known, and revoked, and the events refused with why (one
        without a person, an event name or a date).

        A forgotten person's event is stored under the keyed hash: checked in this
        transaction, so a `forget` that commits while a pull reads still wins.
        """
        added = known = revoked = 0
        refused: list[tuple[int, str]] = []
        events = list(events)
        with self.transaction(immediate=True) as db:
            forgotten = self._forgotten_among(event.email for event in events)
            for index, event in enumerate(events):
                why = _missing(event)
                if why is not None:
                    refused.append((index, why))
                    continue
                row = (forgotten.get(event.email, event.email), event.event, event.object,
                       event.occurred_at)
                if db.conn.execute(  # only the same event recorded before is "known"
                        "INSERT INTO events (email, event, object, occurred_at, source,"
                        " statement) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (email, event,"
                        " object, occurred_at) DO NOTHING", (*row, source, event.statement)
                        ).rowcount:
                    added += 1
                else:
                    known += 1
                    if event.statement is not None:  # known from a file: now voidable too
                        db.conn.execute(
                            "UPDATE events SET statement = ? WHERE email = ? AND event = ? AND"
                            " object = ? AND occurred_at = ? AND statement IS NULL",
                            (event.statement, *row))
            for statement in voided:
                revoked += db.conn.execute(
                    "UPDATE events SET voided_at = ? WHERE statement = ? AND voided_at IS NULL",
                    (at, statement)).rowcount
            if cursor is not None:
                db.conn.execute("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key)"
                                " DO UPDATE SET value = excluded.value", cursor)
        if added or revoked:
            self.note_intervention()
        return Recorded(added, known, revoked, refused)

    def pulled_statements(self, statements: Iterable[str]) -> dict[str, GoalEvent]:
        """The events recorded from these xAPI statement ids, by id."""
        found: dict[str, GoalEvent] = {}
        wanted = sorted(set(statements))
        for start in range(0, len(wanted), 500):  # SQLite's limit on bound parameters
            chunk = wanted[start:start + 500]
            for row in self.db.conn.execute(
                    "SELECT email, event, object, occurred_at, statement FROM events WHERE"
                    f" statement IN ({', '.join('?' for _ in chunk)})", chunk):
                found[row[4]] = GoalEvent(*row)
        return found

    def goal_events(self, event: str, until: str) -> list[GoalEvent]:
        """Events of one kind up to `until` (ISO UTC), earliest first."""
        return [GoalEvent(*row) for row in self.db.conn.execute(
            "SELECT email, event, object, occurred_at FROM events WHERE event = ? "
            "AND occurred_at <= ? AND voided_at IS NULL ORDER BY occurred_at", (event, until))]

    def events_of(self, emails: Iterable[str], until: str) -> dict[str, list[GoalEvent]]:
        """Each address's learning events up to `until` (ISO UTC), voided ones left out."""
        found: dict[str, list[GoalEvent]] = {}
        wanted = sorted(set(emails))
        for start in range(0, len(wanted), 500):  # SQLite's limit on bound parameters
            chunk = wanted[start:start + 500]
            for row in self.db.conn.execute(
                    "SELECT email, event, object, occurred_at FROM events WHERE email IN"
                    f" ({', '.join('?' for _ in chunk)}) AND occurred_at <= ? AND voided_at IS"
                    " NULL ORDER BY occurred_at", (*chunk, until)):
                found.setdefault(row[0], []).append(GoalEvent(*row))
        return found

    def voided_goal_events(self, event: str) -> list[GoalEvent]:
        """Events of one kind an LRS voided."""
        return [GoalEvent(*row) for row in self.db.conn.execute(
            "SELECT email, event, object, occurred_at FROM events WHERE event = ? "
            "AND voided_at IS NOT NULL ORDER BY occurred_at", (event,))]

    def history(self, email: str) -> PersonHistory:
        suppression = self._rows(f"SELECT {_columns(SuppressionRecord)} FROM suppressions"
                                 " WHERE email = ?", (email,))
        return PersonHistory(
            [EnrolmentRecord(**row) for row in self._rows(
                f"SELECT {_columns(EnrolmentRecord)} FROM enrolments WHERE email = ?"
                " ORDER BY enrolled_at", (email,))],
            [MessageRecord(**row) for row in self._rows(
                f"SELECT {_columns(MessageRecord)} FROM messages"
                " WHERE email = ? OR recipient = ? OR cc = ?"
                " ORDER BY coalesce(sent_at, claimed_at), id", (email, email, email))],
            SuppressionRecord(**suppression[0]) if suppression else None,
            [EventRecord(**row) for row in self._rows(
                f"SELECT {_columns(EventRecord)} FROM events WHERE email = ?"
                " ORDER BY occurred_at", (email,))])
