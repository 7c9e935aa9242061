"""What `ldmail inbox` writes: a bounce of a message that was handed over, an unsubscribe by
mail, and each mail of the sender's mailbox once applied, so that a mail left in the folder
(a move that failed, a second reader) is never applied twice."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import IllegalTransition
from .core import _Db
from .delivery import MessageKey
from .erasure import ERASED
from .people import PersonMoves
from .states import MessageOp, MessageState, message_move, message_sources, stored

M = MessageState
BOUNCED = "bounced"  # the exit reason of enrolments a hard bounce ended
UNSUBSCRIBED = "unsubscribed"  # the exit reason of enrolments an unsubscribe mail ended
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
    reason: str  # the server's words, the recipient's address taken out


@dataclass(frozen=True, slots=True)
class DomainStop:
    """A receiving domain that `send` skips: its sender-side failures, the last one's time
    and reason."""

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
        """Receiving domains with at least `threshold` sender-side failures since `since`
        (not cleared): the one query a send makes for them."""
        rows = self.db.conn.execute(
            "SELECT domain, count(*), max(at), (SELECT reason FROM sender_failures AS last"
            " WHERE last.domain = f.domain AND last.cleared_at IS NULL ORDER BY at DESC, id"
            " DESC LIMIT 1) FROM sender_failures AS f WHERE at >= ? AND cleared_at IS NULL"
            " GROUP BY domain HAVING count(*) >= ? ORDER BY domain", (since, threshold))
        return [DomainStop(*row) for row in rows.fetchall()]

    def resume_domain(self, domain: str, at: str) -> int:
        """Clear the sender-side failures counted for `domain`: sending there resumes.
        Returns how many were cleared."""
        with self.transaction(immediate=True) as db:
            return int(db.conn.execute(
                "UPDATE sender_failures SET cleared_at = ? WHERE domain = ? AND cleared_at IS"
                " NULL", (at, domain.lower())).rowcount)

    def mail_applied(self, mail: str) -> str | None:
        """What an earlier run made of this mail (its keyed id), or None if it was not applied."""
        value = self._value("SELECT outcome FROM inbox_mails WHERE mail = ?", (mail,))
        return None if value is None else str(value)

    def bounce(self, key: MessageKey, reason: str, at: str, *, mail: str | None,
               suppression: str | None, address: str | None = None,
               sender_failure: SenderFailure | None = None) -> Applied:
        """The message bounced: `bounced` with the reason; with `suppression` (a hard bounce)
        the address it went to (`address`: a manager's; the person's by default) is
        suppressed and its enrolments end as "bounced". The mail is recorded as applied in
        the same transaction, and so is a `sender_failure` (counted for its domain). A
        forgotten address (checked in that transaction: forget wins any race) is neither
        suppressed again nor named: the reason is erased.

        IllegalTransition (nothing written) for a message the table does not let bounce.
        """
        sources = message_sources(MessageOp.BOUNCE)
        marks = ", ".join("?" for _ in sources)
        with self.transaction(immediate=True) as db:
            forgotten = self._forgotten(address or key.email)
            changed = db.conn.execute(
                "UPDATE messages SET state = ?, error = ?, bounced_at = ? WHERE campaign = ?"
                f" AND step = ? AND email = ? AND state IN ({marks})",
                (message_move(MessageOp.BOUNCE, M.SENT), ERASED if forgotten else reason, at,
                 *key, *sources)).rowcount
            if changed != 1:
                found = self._message("campaign = ? AND step = ? AND email = ?", tuple(key))
                raise IllegalTransition("message", MessageOp.BOUNCE,
                                        M.NEW if found is None else found.state, str(key))
            added = not forgotten and self._suppress_for(db, address or key.email, suppression,
                                                         BOUNCED, at)
            self._count_sender_failure(db, sender_failure, at)
            self._applied(db, mail, "bounce", at)
        return Applied(added, forgotten)

    def bounced_again(self, email: str, at: str, *, mail: str | None,
                      suppression: str | None, sender_failure: SenderFailure | None = None,
                      harder: tuple[MessageKey, str] | None = None) -> Applied:
        """Another bounce of a message already `bounced` (a delay warning, then the failure),
        or the bounce of its copy to a manager: no move; a hard one suppresses the address
        (unless it was forgotten), and `harder` (the message and its new reason) replaces the
        reason the message bounced with."""
        with self.transaction(immediate=True) as db:
            forgotten = self._forgotten(email)
            added = not forgotten and self._suppress_for(db, email, suppression, BOUNCED, at)
            if harder is not None:
                db.conn.execute(
                    "UPDATE messages SET error = ? WHERE campaign = ? AND step = ? AND email = ?"
                    " AND state = ?", (ERASED if forgotten else harder[1], *harder[0],
                                       M.BOUNCED))
            self._count_sender_failure(db, sender_failure, at)
            self._applied(db, mail, "bounce", at)
        return Applied(added, forgotten)

    @staticmethod
    def _count_sender_failure(db: _Db, failure: SenderFailure | None, at: str) -> None:
        if failure is not None:
            db.conn.execute("INSERT INTO sender_failures (domain, reason, at) VALUES (?, ?, ?)",
                            (failure.domain.lower(), failure.reason, at))

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
