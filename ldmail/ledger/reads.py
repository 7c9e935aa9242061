"""What the report and the quiet cron path read from the ledger."""

from __future__ import annotations

from dataclasses import dataclass

from ..states import EnrolmentState, Group, MessageState, step_of, stored
from .core import LedgerFile

M = MessageState


@dataclass(frozen=True, slots=True)
class EnrolmentFacts:
    email: str
    group: Group
    persona: str | None
    enrolled_at: str  # ISO UTC
    exit_reason: str | None


@dataclass(frozen=True, slots=True)
class MessageFacts:
    step: str
    state: MessageState
    sent_at: str | None
    email: str = ""
    variant: str | None = None  # the step's A/B variant it carried


class Reads(LedgerFile):
    def campaign_enrolments(self, campaign: str, until: str) -> list[EnrolmentFacts]:
        """A campaign's enrolments made up to `until` (ISO UTC), as they stood then: an
        enrolment that ended later had not ended yet."""
        return [EnrolmentFacts(email, stored(Group, group, f"{campaign} for {email}"), persona,
                               enrolled_at, reason if exited_at and exited_at <= until else None)
                for email, group, persona, enrolled_at, reason, exited_at in self.db.conn.execute(
                    "SELECT email, grp, persona, enrolled_at, exit_reason, exited_at"
                    " FROM enrolments WHERE campaign = ? AND enrolled_at <= ?", (campaign, until))]

    def campaign_messages(self, campaign: str, until: str) -> list[MessageFacts]:
        """A campaign's messages as they stood at `until` (ISO UTC): one not yet due then is
        left out; one sent, failed or found unknown after it was still waiting (deferred); one
        whose bounce came back after it was sent (or unknown) then."""
        facts = []
        for step, state, sent_at, claimed_at, bounced_at, email, variant in self.db.conn.execute(
                "SELECT step, state, sent_at, claimed_at, bounced_at, email, variant FROM"
                " messages WHERE campaign = ? AND due_at <= ?", (campaign, until)):
            known = stored(MessageState, state, f"{campaign}/{step} to {email}")
            if known == M.BOUNCED and (bounced_at is None or bounced_at > until):
                known = M.SENT if sent_at else M.UNKNOWN
            happened = sent_at or claimed_at if known in (M.SENT, M.BOUNCED) else claimed_at
            if known != MessageState.DEFERRED and (happened is None or happened > until):
                known, sent_at = MessageState.DEFERRED, None
            # A triggered campaign's step keys carry their round's object (well-done@course:x).
            facts.append(MessageFacts(step_of(step), known, sent_at, email, variant))
        return facts

    def change_counter(self) -> tuple[object, ...]:
        """Counts that change whenever anything that decides who is due changes: the staged
        export, enrolments (and how many are active), messages (and how many are still
        open), suppressions and goal events. The quiet cron path compares them."""
        open_states = (M.CLAIMED, M.DEFERRED, M.UNKNOWN)
        row = self.db.conn.execute(
            "SELECT (SELECT count(*) FROM main.staged_people), (SELECT count(*) FROM enrolments),"
            " (SELECT count(*) FROM enrolments WHERE state = ?),"
            " (SELECT count(*) FROM messages), (SELECT max(id) FROM messages),"
            " (SELECT count(*) FROM messages WHERE state IN (?, ?, ?)),"
            " (SELECT count(*) FROM suppressions), (SELECT count(*) FROM events),"
            " (SELECT max(id) FROM events),"
            " (SELECT count(*) FROM events WHERE voided_at IS NOT NULL)",
            (EnrolmentState.ACTIVE, *open_states)).fetchone()
        return tuple(row)

    def next_event_after(self, moment: str) -> str | None:
        """The earliest goal event dated after `moment` (ISO UTC): it starts to count then."""
        value = self._value("SELECT min(occurred_at) FROM events WHERE occurred_at > ?"
                            " AND voided_at IS NULL",
                            (moment,))
        return None if value is None else str(value)
