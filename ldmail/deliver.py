"""`ldmail send`: enrol, find what is due, and deliver it at most once, never silently lost.

Every message is claimed in the ledger before it is handed to the transport and marked
after. A claim that a later run finds was cut off mid-send: it becomes `unknown` and is
only sent again when the user asks for it (`--resend-unknown`).
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from .audience import AudienceResult, Person, load_audience
from .clock import from_iso, iso
from .config import Project
from .enrolment import Enrolment, sync
from .errors import LdmailError, TransportFatal
from .ledger import (
    ACTIVE,
    CLAIMED,
    COMPLETED,
    DEFERRED,
    FAILED,
    SENT,
    TREATMENT,
    UNKNOWN,
    Ledger,
)
from .lock import SendLock, held_elsewhere
from .message import HeaderInjection, build_message, new_message_id, parse_sender
from .render import Renderer, RenderError
from .schedule import Planned, StepRecord, upcoming
from .transport import Outcome, Transport, open_transport

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class Due:
    enrolment: Enrolment
    person: Person
    planned: Planned
    last_step: bool


@dataclass(frozen=True)
class Failure:
    email: str
    campaign: str
    step: str
    reason: str


@dataclass
class SendSummary:
    dry_run: bool = False
    enrolled: int = 0
    exited: int = 0
    due: int = 0
    sent: int = 0
    waiting_window: int = 0
    deferred: int = 0
    failed: int = 0
    unknown_found: int = 0
    unknown_total: int = 0
    requeued_unknown: int = 0
    held_by_limit: int = 0
    held_by_cap: int = 0
    stopped: str | None = None
    failures: list[Failure] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Cron's view: nothing failed and nothing was lost in an interrupted run."""
        return not self.failed and not self.unknown_found and self.stopped is None

    def to_json(self) -> str:
        return json.dumps(asdict(self))


def ledger_path(project: Project, override: Path | None) -> Path:
    return override if override is not None else project.path(project.settings.ledger)


def history_by_enrolment(ledger: Ledger) -> dict[tuple[str, str], dict[str, StepRecord]]:
    found: dict[tuple[str, str], dict[str, StepRecord]] = {}
    for row in ledger.rows("SELECT campaign, email, step, state, sent_at, claimed_at, "
                           "next_attempt_at, attempts FROM messages"):
        when = row["sent_at"] or row["claimed_at"]
        retry_at = row["next_attempt_at"]
        found.setdefault((row["campaign"], row["email"]), {})[row["step"]] = StepRecord(
            row["state"], from_iso(when) if when else None,
            from_iso(retry_at) if retry_at else None, row["attempts"])
    return found


def find_due(project: Project, enrolments: dict[tuple[str, str], Enrolment],
             audience: AudienceResult, history: dict[tuple[str, str], dict[str, StepRecord]],
             now: datetime, only: str | None = None) -> tuple[list[Due], int, list[Enrolment]]:
    """Messages to send now, how many wait for their window, and enrolments now complete."""
    people = audience.by_email()
    due: list[Due] = []
    waiting = 0
    complete: list[Enrolment] = []
    for (campaign_id, email), enrolment in enrolments.items():
        if enrolment.state != ACTIVE or enrolment.group != TREATMENT:
            continue
        if only is not None and campaign_id != only:
            continue
        person = people.get(email)
        file = project.campaigns.get(campaign_id)
        if person is None or file is None:
            continue
        steps = upcoming(file.model, enrolment.anchor_at, history.get((campaign_id, email), {}),
                         person.timezone, now)
        if not steps:
            complete.append(enrolment)
        elif steps[0].send_at <= now:
            due.append(Due(enrolment, person, steps[0], len(steps) == 1))
        elif steps[0].due_at <= now:
            waiting += 1
    due.sort(key=lambda d: (d.planned.due_at, d.enrolment.campaign, d.person.row))
    return due, waiting, complete


class Sender:
    """Renders, claims, hands over and records messages for one run."""

    def __init__(self, project: Project, ledger: Ledger, transport: Transport | None,
                 now: datetime, run_id: int) -> None:
        self.project = project
        self.ledger = ledger
        self.transport = transport
        self.now = now
        self.run_id = run_id
        self.renderer = Renderer(project)
        self.stamp = iso(now)

    def compose(self, item: Due, message_id: str) -> Any:
        enrolment, person, step = item.enrolment, item.person, item.planned.step
        campaign = self.project.campaign(enrolment.campaign)
        persona = self.project.audiences.personas.get(person.persona or "")
        token = self.ledger.address_hash(person.email)
        from .message import unsubscribe_links

        mailto, https = unsubscribe_links(self.project.settings, parse_sender(campaign.sender),
                                          token)
        rendered = self.renderer.render(enrolment.campaign, campaign, step, person.attributes,
                                        person.persona, persona, person.language,
                                        unsubscribe_url=https or mailto)
        return build_message(rendered=rendered, campaign_id=enrolment.campaign,
                             campaign=campaign, step=step, recipient=person.email,
                             recipient_name=person.display_name,
                             settings=self.project.settings, token=token,
                             message_id=message_id, now=self.now, zone=person.timezone)

    def claim(self, item: Due, message_id: str) -> bool:
        """Record the message as being sent; False when someone else already holds it."""
        e, step = item.enrolment, item.planned.step
        if item.planned.retry:
            return self.ledger.execute(
                "UPDATE messages SET state = ?, attempts = attempts + 1, message_id = ?,"
                " claimed_at = ?, run_id = ?, error = NULL WHERE campaign = ? AND step = ? AND"
                " email = ? AND state = ?",
                (CLAIMED, message_id, self.stamp, self.run_id, e.campaign, step.id, e.email,
                 DEFERRED)) == 1
        try:
            self.ledger.execute(
                "INSERT INTO messages (campaign, step, email, due_at, state, attempts,"
                " message_id, claimed_at, run_id) VALUES (?, ?, ?, ?, ?, 1, ?, ?, ?)",
                (e.campaign, step.id, e.email, iso(item.planned.due_at), CLAIMED, message_id,
                 self.stamp, self.run_id))
        except sqlite3.IntegrityError:
            return False
        return True

    def record_failure(self, item: Due, reason: str) -> None:
        """A message that could not even be built: failed, with the reason, never retried."""
        e, step = item.enrolment, item.planned.step
        self.ledger.execute(
            "INSERT INTO messages (campaign, step, email, due_at, state, attempts, error,"
            " claimed_at, run_id) VALUES (?, ?, ?, ?, ?, 0, ?, ?, ?) ON CONFLICT"
            " (campaign, step, email) DO UPDATE SET state = excluded.state,"
            " error = excluded.error", (e.campaign, step.id, e.email, iso(item.planned.due_at),
                                        FAILED, reason, self.stamp, self.run_id))

    def record(self, item: Due, outcome: Outcome) -> str:
        """Mark a claimed message with what the transport said; returns the new state."""
        e, step = item.enrolment, item.planned.step
        where = (e.campaign, step.id, e.email)
        if outcome.status == "sent":
            state = SENT
            self.ledger.execute(
                "UPDATE messages SET state = ?, sent_at = ?, error = NULL, next_attempt_at = NULL"
                " WHERE campaign = ? AND step = ? AND email = ?", (SENT, self.stamp, *where))
        elif outcome.status == "temporary" and \
                item.planned.attempts + 1 < self.project.settings.retry.max_attempts:
            state = DEFERRED
            backoff = self.project.settings.retry.backoff * (2 ** item.planned.attempts)
            self.ledger.execute(
                "UPDATE messages SET state = ?, error = ?, next_attempt_at = ?"
                " WHERE campaign = ? AND step = ? AND email = ?",
                (DEFERRED, outcome.reason, iso(self.now + backoff), *where))
        else:
            state = FAILED
            reason = outcome.reason if outcome.status == "permanent" else \
                f"gave up after {item.planned.attempts + 1} attempts: {outcome.reason}"
            self.ledger.execute(
                "UPDATE messages SET state = ?, error = ?, next_attempt_at = NULL"
                " WHERE campaign = ? AND step = ? AND email = ?", (FAILED, reason, *where))
            if outcome.user_unknown:
                self.ledger.suppress(e.email, f"address rejected: {outcome.reason}", "bounce",
                                     self.stamp)
        if state != DEFERRED and item.last_step:
            self.ledger.execute(
                "UPDATE enrolments SET state = ?, exit_reason = ?, exited_at = ? WHERE"
                " campaign = ? AND email = ? AND state = ?",
                (COMPLETED, "all steps done", self.stamp, e.campaign, e.email, ACTIVE))
        return state


def _label(now: datetime, item: Due, message_id: str) -> str:
    # No personal data in file names: the message id's random part tells files apart.
    return (f"{now.strftime('%Y%m%dT%H%M%S')}-{item.enrolment.campaign}-{item.planned.step.id}"
            f"-{message_id[1:13]}")


def send(project: Project, now: datetime, *, db: Path | None = None, dry_run: bool = False,
         campaign: str | None = None, limit: int | None = None, resend_unknown: bool = False,
         wait: float = 0.0, progress: Progress | None = None,
         stop: threading.Event | None = None) -> SendSummary:
    """One complete send run; safe to start from cron every few minutes."""
    if campaign is not None:
        project.campaign(campaign)  # unknown ids fail before anything happens
    path = ledger_path(project, db)
    lock = path.with_name(path.name + ".lock")
    if dry_run:
        # While another send runs, its open claims are in flight, not left by a dead run.
        in_flight = held_elsewhere(lock)
        ledger = Ledger(path, readonly=True)
        try:
            return _run(project, ledger, now, dry_run=True, campaign=campaign, limit=limit,
                        resend_unknown=resend_unknown, progress=progress, stop=stop,
                        claims_in_flight=in_flight)
        finally:
            ledger.close()
    with SendLock(lock, wait=wait):
        ledger = Ledger(path)
        try:
            return _run(project, ledger, now, dry_run=False, campaign=campaign, limit=limit,
                        resend_unknown=resend_unknown, progress=progress, stop=stop)
        finally:
            ledger.close()


def _run(project: Project, ledger: Ledger, now: datetime, *, dry_run: bool, campaign: str | None,
         limit: int | None, resend_unknown: bool, progress: Progress | None,
         stop: threading.Event | None, claims_in_flight: bool = False) -> SendSummary:
    summary = SendSummary(dry_run=dry_run)
    run_id = 0 if dry_run else ledger.start_run("send", iso(datetime.now(now.tzinfo)), iso(now))
    # Holding the send lock, any claim still open belongs to a run that died mid-send.
    if dry_run:
        claimed = len(ledger.rows("SELECT id FROM messages WHERE state = ?", (CLAIMED,)))
        summary.unknown_found = 0 if claims_in_flight else claimed
    else:
        summary.unknown_found = ledger.execute(
            "UPDATE messages SET state = ?, error = ? WHERE state = ?",
            (UNKNOWN, "a run was interrupted while sending this; it may or may not have arrived",
             CLAIMED))
        if resend_unknown:
            # A run after the interrupted one counts an unknown step as done, so an enrolment
            # whose last step was in flight is already 'completed'; reopen it, or find_due
            # would skip it and the requeued message would wait forever.
            ledger.execute(
                "UPDATE enrolments SET state = ?, exit_reason = NULL, exited_at = NULL"
                " WHERE state = ? AND EXISTS (SELECT 1 FROM messages m WHERE m.state = ?"
                " AND m.campaign = enrolments.campaign AND m.email = enrolments.email)",
                (ACTIVE, COMPLETED, UNKNOWN))
            # Only for people still in the campaign: someone who left or reached the goal
            # since keeps the unknown mark, and is not counted as queued.
            summary.requeued_unknown = ledger.execute(
                "UPDATE messages SET state = ?, next_attempt_at = ?, error = ? WHERE state = ?"
                " AND EXISTS (SELECT 1 FROM enrolments e WHERE e.campaign = messages.campaign"
                " AND e.email = messages.email AND e.state = ?)",
                (DEFERRED, iso(now), "resend requested after unknown outcome", UNKNOWN, ACTIVE))
    summary.unknown_total = len(ledger.rows("SELECT id FROM messages WHERE state = ?",
                                            (UNKNOWN,)))
    audience = load_audience(project, now.date())
    synced = sync(project, ledger, audience, now, persist=not dry_run, only=campaign)
    summary.enrolled, summary.exited = len(synced.enrolled), len(synced.exited)
    due, summary.waiting_window, complete = find_due(
        project, synced.enrolments, audience, history_by_enrolment(ledger), now, campaign)
    if not dry_run:
        for enrolment in complete:
            ledger.execute("UPDATE enrolments SET state = ?, exit_reason = ?, exited_at = ? WHERE"
                           " campaign = ? AND email = ? AND state = ?",
                           (COMPLETED, "all steps done", iso(now), enrolment.campaign,
                            enrolment.email, ACTIVE))
    summary.due = len(due)
    cap = project.settings.transport.daily_cap
    if cap is not None:
        sent_today = len(ledger.rows("SELECT id FROM messages WHERE state = ? AND sent_at > ?",
                                     (SENT, iso(now - timedelta(days=1)))))
        allowed = max(cap - sent_today, 0)
        summary.held_by_cap = max(len(due) - allowed, 0)
        due = due[:allowed]
    if limit is not None and len(due) > limit:
        summary.held_by_limit = len(due) - limit
        due = due[:limit]
    transport = None if dry_run else open_transport(
        project.settings.transport, project.path(project.settings.transport.outbox))
    sender = Sender(project, ledger, transport, now, run_id)
    try:
        _deliver(sender, due, summary, dry_run, progress, stop)
    finally:
        if transport is not None:
            transport.close()
        if not dry_run:
            status = "ok" if summary.ok else ("stopped" if summary.stopped else "failures")
            ledger.finish_run(run_id, iso(datetime.now(now.tzinfo)), status, summary.to_json())
    return summary


def _deliver(sender: Sender, due: list[Due], summary: SendSummary, dry_run: bool,
             progress: Progress | None, stop: threading.Event | None) -> None:
    if due and sender.transport is not None:
        try:
            sender.transport.open()
        except ConnectionError as exc:
            summary.stopped = f"transport unavailable: {exc}; all {len(due)} due message(s) wait"
            return
    for done, item in enumerate(due):
        if stop is not None and stop.is_set():
            summary.stopped = "stopped on request; the rest waits for the next run"
            break
        if progress is not None:
            progress(done, len(due))
        e, step = item.enrolment, item.planned.step
        message_id = new_message_id(parse_sender(sender.project.campaign(e.campaign).sender))
        try:
            message = sender.compose(item, message_id)
        except (RenderError, HeaderInjection) as exc:
            summary.failed += 1
            summary.failures.append(Failure(e.email, e.campaign, step.id, str(exc)))
            if not dry_run:
                sender.record_failure(item, str(exc))
            continue
        if dry_run:
            summary.sent += 1
            continue
        if not sender.claim(item, message_id):
            continue
        assert sender.transport is not None
        try:
            outcome = sender.transport.send(message, parse_sender(message["From"]).addr_spec,
                                            e.email, _label(sender.now, item, message_id))
        except ConnectionError as exc:
            # Nothing was handed over: keep the message for a later run and stop this one.
            sender.record(item, Outcome("temporary", str(exc)))
            summary.deferred += 1
            summary.stopped = f"transport unavailable: {exc}"
            break
        except TransportFatal:
            sender.record(item, Outcome("temporary", "transport failed before sending"))
            raise
        state = sender.record(item, outcome)
        if state == SENT:
            summary.sent += 1
        elif state == DEFERRED:
            summary.deferred += 1
        else:
            summary.failed += 1
            summary.failures.append(Failure(e.email, e.campaign, step.id, outcome.reason))
    if progress is not None:
        progress(len(due), len(due))


__all__ = ["LdmailError", "SendSummary", "send"]
