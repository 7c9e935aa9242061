"""What `ldmail inbox` writes: a bounce of a message that was handed over, an unsubscribe by
mail, and each mail of the sender's mailbox once applied, so that a mail left in the folder
(a move that failed, a second reader) is never applied twice."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import IllegalTransition
from ..states import (
    ExitReason,
    MessageOp,
    MessageState,
    message_move,
    message_sources,
    stored,
)
from .core import _Db
from .delivery import MessageKey
from .erasure import ERASED
from .people import PersonMoves

M = MessageState
BOUNCED = ExitReason.BOUNCED  # the exit reason of enrolments a hard bounce ended
UNSUBSCRIBED = ExitReason.UNSUBSCRIBED  # the exit reason of enrolments an unsubscribe ended
INBOX = "inbox"  # the source of suppressions ldmail inbox writes


@dataclass(frozen=True, slots=True)
class SentMessage:
    """A message of the ledger a bounce may be about."""

    key: MessageKey
    state: MessageState
    recipient: str = ""  # where it went: the person's address, or their manager's
    cc: str | None = None  # the manager copied in, if any

    def __post_init__(self) -> None:
        if not self.recipient:
            object.__setattr__(self, "recipient", self.key.email)


@dataclass(frozen=True, slots=True)
class SenderFailure:
    """A bounce whose reason is on the sending side, for the domain that refused it."""

    domain: str
    reason: str  # the server's words, every address taken out
    address: str = ""  # the address that failed: only its keyed hash is kept


@dataclass(frozen=True, slots=True)
class BounceAction:
    """What one bounce does to one message: `address` (the person's, or the manager's when
    `copy`: only the copy to the manager bounced, and the message stays as it is) failed for
    `reason`; `again`: the message bounced before, and a hard reason replaces the earlier."""

    key: MessageKey
    address: str
    reason: str
    suppression: str | None = None
    sender_failure: SenderFailure | None = None
    copy: bool = False
    again: bool = False


@dataclass(frozen=True, slots=True)
class DomainStop:
    """A receiving domain that `send` skips: how many recipients there had a sender-side
    failure, the last one's time and reason."""

    domain: str
    count: int
    last_at: str
    reason: str


@dataclass(frozen=True, slots=True)
class Applied:
    """What a bounce or unsubscribe did: whether it newly suppressed the address, and whether
    the address was forgotten (then only its keyed hash was written, and no reason)."""

    suppressed: bool
    forgotten: bool = False


class InboxMoves(PersonMoves):
    def _message(self, where: str, params: tuple[str, ...]) -> SentMessage | None:
        row = self.db.conn.execute(
            "SELECT campaign, step, email, state, coalesce(recipient, email), cc FROM messages"
            f" WHERE {where}", params).fetchone()
        if row is None:
            return None
        key = MessageKey(*row[:3])
        return SentMessage(key, stored(MessageState, row[3], str(key)), row[4], row[5])

    def messages_with_ids(self, message_ids: list[str]) -> list[SentMessage]:
        """The messages a send gave any of these Message-IDs (`<…@…>`), in whatever state;
        one look-up (callers bound the list)."""
        if not message_ids:
            return []
        marks = ", ".join("?" for _ in message_ids)
        rows = self.db.conn.execute(
            "SELECT campaign, step, email, state, coalesce(recipient, email), cc FROM messages"
            f" WHERE message_id IN ({marks}) ORDER BY id", tuple(message_ids)).fetchall()
        return [SentMessage(key, stored(MessageState, row[3], str(key)), row[4], row[5])
                for row in rows for key in [MessageKey(*row[:3])]]

    def stopped_domains(self, since: str, threshold: int) -> list[DomainStop]:
        """Receiving domains where at least `threshold` distinct recipients had a sender-side
        failure since `since` (not cleared): the one query a send makes for them. Every row
        names its recipient (the keyed hash of the failed address, else the message's)."""
        rows = self.db.conn.execute(
            "SELECT domain, count(DISTINCT recipient), max(at),"
            " (SELECT reason FROM sender_failures AS last WHERE last.domain = f.domain AND"
            " last.cleared_at IS NULL ORDER BY at DESC, id DESC LIMIT 1) FROM sender_failures"
            " AS f WHERE at >= ? AND cleared_at IS NULL GROUP BY domain HAVING"
            " count(DISTINCT recipient) >= ? ORDER BY domain",
            (since, threshold))
        return [DomainStop(*row) for row in rows.fetchall()]

    def sender_failures_of(self, domain: str, since: str) -> int:
        """How many sender-side failures since `since` are counted for `domain` (not cleared)."""
        return int(self._value(
            "SELECT count(*) FROM sender_failures WHERE domain = ? AND at >= ? AND cleared_at"
            " IS NULL", (domain.lower(), since)) or 0)

    def resume_domain(self, domain: str, at: str) -> int:
        """Clear the sender-side failures counted for `domain`: sending there resumes.
        Returns how many were cleared."""
        with self.transaction(immediate=True) as db:
            return int(db.conn.execute(
                "UPDATE sender_failures SET cleared_at = ? WHERE domain = ? AND cleared_at IS"
                " NULL", (at, domain.lower())).rowcount)

    def prune_sender_failures(self, before: str) -> int:
        """Delete the sender-side failures older than the stop's window: they count for
        nothing any more, and their reasons are not kept longer than needed."""
        with self.transaction(immediate=True) as db:
            return int(db.conn.execute("DELETE FROM sender_failures WHERE at < ?",
                                       (before,)).rowcount)

    def mail_applied(self, mail: str) -> str | None:
        """What an earlier run made of this mail (its keyed id), or None if it was not applied."""
        value = self._value("SELECT outcome FROM inbox_mails WHERE mail = ?", (mail,))
        return None if value is None else str(value)

    def bounce(self, key: MessageKey, reason: str, at: str, *, mail: str | None,
               suppression: str | None, address: str | None = None,
               sender_failure: SenderFailure | None = None) -> Applied:
        """One message bounced (see apply_bounce); IllegalTransition (nothing written) for a
        message the table does not let bounce."""
        with self.transaction(immediate=True) as db:
            applied = self._bounce(db, BounceAction(
                key, address or key.email, reason, suppression, sender_failure), at)
            self._applied(db, mail, "bounce", at)
        return applied

    def apply_bounce(self, actions: list[BounceAction], at: str, *, mail: str
                     ) -> list[Applied | str]:
        """Apply every action of one bounce mail and record the mail as applied, in ONE
        transaction (a crash applies all or none; a rerun finds the mail applied). A message
        the table does not let bounce (changed meanwhile) gets its state's name instead and nothing
        is written for it; when no action applies, the mail is not recorded either."""
        results: list[Applied | str] = []
        with self.transaction(immediate=True) as db:
            for action in actions:
                try:
                    results.append(self._bounce(db, action, at))
                except IllegalTransition as exc:  # its UPDATE changed nothing
                    results.append(str(exc.state))
            if any(isinstance(result, Applied) for result in results):
                self._applied(db, mail, "bounce", at)
        return results

    def _bounce(self, db: _Db, action: BounceAction, at: str) -> Applied:
        """The message bounced: `bounced` with the reason (a copy's bounce, or one of a
        message bounced before, moves nothing; a harder reason replaces the earlier); with
        `suppression` (a hard bounce) the address is suppressed and its enrolments end as
        "bounced"; a `sender_failure` is counted for its domain. A forgotten address (checked
        here: forget wins any race) is neither suppressed again nor named: the reason is
        erased."""
        key = action.key
        forgotten = self._forgotten(action.address)
        error = ERASED if forgotten else action.reason
        if action.again and action.suppression is not None:
            db.conn.execute(
                "UPDATE messages SET error = ? WHERE campaign = ? AND step = ? AND email = ?"
                " AND state = ?", (error, *key, M.BOUNCED))
        elif not action.again and not action.copy:
            sources = message_sources(MessageOp.BOUNCE)
            marks = ", ".join("?" for _ in sources)
            changed = db.conn.execute(
                "UPDATE messages SET state = ?, error = ?, bounced_at = ? WHERE campaign = ?"
                f" AND step = ? AND email = ? AND state IN ({marks})",
                (message_move(MessageOp.BOUNCE, M.SENT), error, at, *key, *sources)).rowcount
            if changed != 1:
                found = self._message("campaign = ? AND step = ? AND email = ?", tuple(key))
                raise IllegalTransition("message", MessageOp.BOUNCE,
                                        M.NEW if found is None else found.state, str(key))
        added = not forgotten and self._suppress_for(db, action.address, action.suppression,
                                                     BOUNCED, at)
        if not forgotten:
            self._count_sender_failure(db, key, action.sender_failure, at)
        return Applied(added, forgotten)

    def _count_sender_failure(self, db: _Db, key: MessageKey, failure: SenderFailure | None,
                              at: str) -> None:
        """Count a sender-side failure once per message: a repeat bounce of the same message,
        or its delay notice then its failure, adds nothing (the unique index on message)."""
        if failure is not None:
            db.conn.execute(
                "INSERT OR IGNORE INTO sender_failures (domain, reason, at, message, recipient)"
                " VALUES (?, ?, ?, (SELECT id FROM messages WHERE campaign = ? AND step = ? AND"
                " email = ?), ?)", (failure.domain.lower(), failure.reason, at, *key,
                                    self.address_hash(failure.address or key.email)))

    def unverified(self, mail: str, at: str) -> None:
        """Record a bounce that proved nothing, so that it is counted and moved once."""
        with self.transaction(immediate=True) as db:
            self._applied(db, mail, "unverified", at)

    def unsubscribed(self, email: str, reason: str, at: str, *, mail: str) -> Applied:
        """An unsubscribe mail: suppressed for good, enrolments end as "unsubscribed" (a
        forgotten address is suppressed already); the mail recorded as applied."""
        with self.transaction(immediate=True) as db:
            forgotten = self._forgotten(email)
            added = not forgotten and self._suppress_for(db, email, reason, UNSUBSCRIBED, at)
            self._applied(db, mail, "unsubscribe", at)
        return Applied(added, forgotten)

    def _forgotten(self, email: str) -> bool:
        return self.forgotten_as(email) is not None

    def _suppress_for(self, db: _Db, email: str, reason: str | None, exit_reason: str,
                      at: str) -> bool:
        if reason is None or self.is_suppressed(email):
            return False
        return self.suppress(email, reason, INBOX, at, exit_reason=exit_reason)

    @staticmethod
    def _applied(db: _Db, mail: str | None, outcome: str, at: str) -> None:
        """Record the mail as applied (None: a later change of the same mail records it)."""
        if mail is not None:
            db.conn.execute("INSERT OR IGNORE INTO inbox_mails (mail, outcome, applied_at)"
                            " VALUES (?, ?, ?)", (mail, outcome, at))
