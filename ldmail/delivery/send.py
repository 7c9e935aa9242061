"""`ldmail send`: enrol, find what is due, and deliver it at most once, never silently lost.

Every message is claimed in the ledger before it is handed to the transport and marked
after. A claim that a later run finds was cut off mid-send becomes `unknown`, and so does,
at once, a message whose transport raised something unexpected (a bug, Ctrl-C): either may
have gone out, so it is only sent again when the user asks for it (`--resend-unknown`).
"""

from __future__ import annotations

import json
import logging
import queue
import threading
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime, timedelta, tzinfo
from pathlib import Path

from ..audience.enrolment import Enrolment, active_enrolments, sync
from ..audience.export import PeopleStream, Person
from ..clock import from_iso, iso, shown, wall_now
from ..content.message import Built, MessageBuilder, new_message_id, unsubscribe_links
from ..content.render import Renderer
from ..content.validate import broken_campaigns
from ..errors import (
    HeaderInjection,
    LdmailError,
    LedgerReplaced,
    Problem,
    RenderError,
    StopRequested,
    TransportFatal,
    TransportUnavailable,
    describe,
)
from ..ledger import (
    Delivery,
    GoalEvent,
    Group,
    Ledger,
    MessageKey,
    MessageState,
    Recheck,
    identity_path,
    ledger_path,
    read_identity,
    record_identity,
    step_key,
)
from ..ledger.lock import SendLock, held_elsewhere, send_lock_path
from ..project.config import OUTBOX_SETTING, Project
from ..project.models import MANAGER_EMAIL, SenderStop, Variant
from ..project.schedule import Planned, assign_variant
from ..sandbox.budget import CONDITION_SECONDS_ENV, RunAllowance
from ..units import format_duration
from . import quiet
from .transport import Outcome, Transport, open_transports

log = logging.getLogger("ldmail.send")
Progress = Callable[[int, int], None]


@dataclass(frozen=True, slots=True)
class Manager:
    """A person's manager, as a step to the manager (or copying them in) needs them."""

    email: str
    token: str  # their keyed address hash: their own unsubscribe links
    name: str = ""  # from their own row of the export ('' when they are not in it)
    first_name: str = ""
    language: str | None = None  # their own; None: not in the export (the person's is used)

    def context(self) -> dict[str, str]:
        """What a template to the manager sees as `manager`."""
        return {"email": self.email, "name": self.name, "first_name": self.first_name}


@dataclass(frozen=True, slots=True)
class Due:
    enrolment: Enrolment
    person: Person
    planned: Planned
    last_step: bool
    variant: Variant | None = None  # the step's A/B variant this person gets
    manager: Manager | None = None  # who gets the step (to: manager) or a copy (cc_manager)

    @property
    def to_manager(self) -> bool:
        return self.manager is not None and self.planned.step.to == "manager"

    @property
    def copied(self) -> Manager | None:
        """The manager copied in on the person's message, if any."""
        return self.manager if self.planned.step.cc_manager else None


@dataclass(frozen=True)
class Failure:
    email: str
    campaign: str
    step: str
    reason: str


@dataclass(frozen=True)
class Recipient:
    email: str
    campaign: str
    step: str
    name: str


@dataclass(frozen=True)
class DomainHold:
    """A receiving domain not sent to in this run: its sender-side bounces (SPF, DKIM, DMARC,
    blocks), the last one's reason, the messages that stay due, when the stop ends by itself."""

    domain: str
    bounces: int
    reason: str
    held: int
    resumes_by: str

    def line(self, resumes_by: str) -> str:
        """What the operator reads (`resumes_by` as the caller shows times)."""
        return (f"not sending to {self.domain}: {self.bounces} sender-side bounces from it "
                f"(last: {self.reason}); {self.held} message(s) stay due. Fix the sending "
                "domain's SPF, DKIM and DMARC; sending there resumes by itself by "
                f"{resumes_by}, or now with 'ldmail inbox --resume {self.domain}'")


@dataclass(frozen=True)
class Destination:
    """Where a run's messages went."""

    kind: str  # the transport's kind: smtp, graph or outbox
    where: str  # host:port, the Graph endpoint, or the outbox folder

    def __str__(self) -> str:
        return f"{self.kind} {self.where}"


@dataclass
class SendSummary:
    dry_run: bool = False
    destination: Destination | None = None  # None in a dry run
    enrolled: int = 0  # enrolments begun in this run
    people_enrolled: int = 0  # the people they are for
    exited: int = 0
    due: int = 0
    sent: int = 0
    waiting_window: int = 0
    window_opens: str | None = None  # when the first of those may go (ISO, UTC)
    deferred: int = 0
    failed: int = 0
    unknown_found: int = 0
    unknown_total: int = 0
    requeued_unknown: int = 0
    missing: int = 0  # enrolments whose person went missing from the export in this run
    # Messages that could not be rendered or built this run: held, sent once fixed.
    held: list[Failure] = field(default_factory=list)
    # Campaigns whose templates fail to render, by id: the first problem of each.
    broken: dict[str, str] = field(default_factory=dict)
    held_by_limit: int = 0
    skipped: int = 0  # steps skipped because their when: condition was false
    skips: list[Failure] = field(default_factory=list)  # the first 100 of them, with reasons
    waiting_condition: int = 0  # steps due that wait (wait_until) for their condition
    # Steps due whose when: was not answered, the run's time for conditions (condition_seconds)
    # being spent: held, tried again at the next run.
    conditions_held: int = 0
    condition_seconds: float = 0.0
    held_by_cap: int = 0
    domain_holds: list[DomainHold] = field(default_factory=list)
    # With a rate: when the last of the messages due goes out at that pace (ISO, UTC).
    last_due_at: str | None = None
    # With a daily cap that holds messages back: when the cap next makes room (ISO, UTC).
    cap_frees_at: str | None = None
    stopped: str | None = None
    failures: list[Failure] = field(default_factory=list)
    # Messages that became unknown in this run: a claim a killed run left, or a message whose
    # reply was lost after the whole of it went out.
    unknown: list[Failure] = field(default_factory=list)
    # Messages sent (or, in a dry run, that would be) by "campaign/step".
    steps: dict[str, int] = field(default_factory=dict)
    # In a dry run, the first --show people who would get a message.
    first: list[Recipient] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Cron's view (exit 0): nothing failed, nothing became unknown, nothing stopped it,
        no receiving domain is stopped (the sending domain needs fixing: cron mails the line).

        Unknown messages that an earlier run already reported are counted again in
        `unknown_total` but do not make every later run fail.
        """
        return not self.failed and not self.unknown and not self.held and \
            not self.conditions_held and not self.domain_holds and self.stopped is None

    def held_alike(self) -> list[tuple[Failure, list[str]]]:
        """Held messages of campaigns that render, one group per step and reason (a missing
        translation holds a whole language at once), in the order first met: the first of
        each group and every address in it."""
        groups: dict[tuple[str, str, str], tuple[Failure, list[str]]] = {}
        for item in self.held:
            if item.campaign not in self.broken:
                key = (item.campaign, item.step, item.reason)
                groups.setdefault(key, (item, []))[1].append(item.email)
        return list(groups.values())

    def step_counts(self) -> list[tuple[str, str, int]]:
        """Messages sent (or, in a dry run, that would be) per campaign and step, sorted."""
        counts = []
        for key, count in sorted(self.steps.items()):
            campaign, _, step = key.partition("/")
            counts.append((campaign, step, count))
        return counts

    def to_json(self) -> str:
        # The destination as one string, "outbox <folder>" or "smtp <host>:<port>" ("" in a
        # dry run), as scripts have always read it.
        return json.dumps({**asdict(self), "destination": str(self.destination or "")})


@dataclass
class DueNow:
    """What find_due found."""

    due: list[Due]
    waiting: int  # steps due whose send window is closed
    window_opens: datetime | None  # when the first of those may go
    complete: list[Enrolment]  # enrolments with no step left
    next_change: datetime | None  # the earliest later moment a step becomes due or may go
    # Steps due whose when: is false: skipped with the reason (see _decide_conditions).
    skipped: list[tuple[Due, str]] = field(default_factory=list)
    # Steps due whose when: failed for the person: held with the reason, for `ldmail retry`.
    unanswered: list[tuple[Due, str]] = field(default_factory=list)
    # Steps due whose when: was not answered: the run's time for conditions ran out.
    out_of_time: list[Due] = field(default_factory=list)
    waiting_condition: int = 0  # steps due that wait (wait_until) for their condition


def find_due(project: Project, ledger: Ledger, now: datetime,
             conditions: RunConditions | None = None) -> DueNow:
    """Messages to send now, and what waits for later; `conditions` is the run's time for
    answering when: conditions (shared by every call of one run)."""
    found: list[tuple[Enrolment, Planned, bool]] = []
    waiting = 0
    window_opens: datetime | None = None
    complete: list[Enrolment] = []
    next_change: datetime | None = None
    for enrolment, steps in active_enrolments(project, ledger, now):
        if enrolment.group != Group.TREATMENT:
            continue
        if not steps:
            complete.append(enrolment)
            if enrolment.occurrence is not None:
                # A round done: the next sync may start the person's next one.
                next_change = now
            continue
        first = steps[0]
        if first.send_at <= now:
            found.append((enrolment, first, len(steps) == 1))
            continue
        if first.due_at <= now:
            waiting += 1
            change = first.send_at
            if window_opens is None or change < window_opens:
                window_opens = change
        else:
            change = first.due_at
        if next_change is None or change < next_change:
            next_change = change
    due: list[Due] = []
    if found:
        # Only the people with a message due are built in full, from a second read of the
        # export; a row that changed meanwhile (another address on it) waits for a later run.
        people = {person.row: person for person in
                  PeopleStream(project, now.date(), rows={e.row for e, _, _ in found})}
        for enrolment, planned, last in found:
            person = people.get(enrolment.row)
            if person is not None and person.email == enrolment.email:
                due.append(Due(enrolment, person, planned, last, assign_variant(
                    enrolment.campaign, planned.step, enrolment.email)))
            else:
                next_change = now  # due, but not sent now: the next run must look again
    due.sort(key=lambda d: (d.planned.due_at, d.enrolment.campaign, d.person.row))
    found_now = DueNow(due, waiting, window_opens, complete, next_change)
    _decide_conditions(ledger, now, found_now, conditions or RunConditions(RunAllowance()))
    _decide_managers(project, ledger, now, found_now)
    return found_now


def _decide_managers(project: Project, ledger: Ledger, now: datetime, found: DueNow) -> None:
    """Steps to the manager, or copying them in, find the manager in the person's row (and
    the manager's own row, for their name and language). A step to a manager with no address,
    whose address is the person's own or is suppressed, is skipped with the reason; a copy to
    such a manager is left out and the person's message goes."""
    involved = [item for item in found.due if item.planned.step.involves_manager]
    if not involved:
        return
    addresses = {_manager_address(item) for item in involved} - {""}
    blocked = ledger.suppressed_among(addresses)
    managers = _managers(project, ledger, now, addresses - blocked)
    keep: list[Due] = []
    for item in found.due:
        step = item.planned.step
        if not step.involves_manager:
            keep.append(item)
            continue
        address = _manager_address(item)
        problem = (f"the export gives no {MANAGER_EMAIL} for this person" if not address else
                   "the manager's address is the person's own" if address == item.person.email
                   else "the manager's address is suppressed (unsubscribed, bounced or "
                   "forgotten)" if address in blocked else None)
        if problem is None:
            keep.append(replace(item, manager=managers[address]))
        elif step.to == "manager":
            found.skipped.append((item, f"not sent to the manager: {problem}"))
        else:
            keep.append(item)  # the person's message goes, without the copy
    found.due = keep


def _manager_address(item: Due) -> str:
    """The manager's address as the export gives it (checked and lower-cased when read)."""
    return str(item.person.attributes.get(MANAGER_EMAIL) or "")


def _managers(project: Project, ledger: Ledger, now: datetime, addresses: set[str]
              ) -> dict[str, Manager]:
    """Each manager, with their name and language from their own row when the export has one
    (those rows are read in a pass of their own, only when a step involving them is due)."""
    managers = {address: Manager(address, ledger.address_hash(address))
                for address in addresses}
    rows = ledger.staged_rows(addresses)
    if rows:
        for person in PeopleStream(project, now.date(), rows=set(rows.values())):
            if person.email in managers:
                managers[person.email] = Manager(
                    person.email, managers[person.email].token, person.display_name,
                    str(person.attributes.get("first_name") or ""), person.language)
    return managers


# How often a step that waits for its condition (wait_until) is looked at again, at most:
# conditions also change with time (days_since), which no ledger change announces.
CONDITION_RECHECK = timedelta(hours=1)
# The ledger's reason for a step held because the run's time for conditions ran out.
CONDITIONS_OUT_OF_TIME = ("condition not answered: the run's time for when: conditions "
                          f"({CONDITION_SECONDS_ENV}) ran out; tried again at the next run")
# The ledger's meta key for where the next send starts answering conditions (RunConditions).
CONDITIONS_FROM = "conditions_from"

# A step's condition for one person this run: True or False, the reason it failed for
# them (a text), or None when the run's time for conditions was spent before it.
Answer = bool | str | None


class RunConditions:
    """The when: answers of one send, shared by its find_due passes, within the run's time.

    Only the time spent answering counts (RunAllowance.measuring), and each answer is kept
    for the run: the passes after skips ask only about the steps those skips made due.

    When the time answers only some of the steps due, progress must still be fair: steps that
    wait (wait_until) stay due for weeks, so answering in due-date order would give the same
    oldest people the time every run and hold the others run after run. The steps are answered
    instead in the order of a keyed hash of who and which step, starting where the last run ran
    out (kept in the ledger) and going round: runs that answer at least k of n steps answer
    every one within n/k runs (rounded up), whatever the due dates. A rotation rather than
    "held ones first": a held step keeps its hold's reason after a later run answered it (and
    it waits on), so the ledger alone cannot tell who has waited longest.
    """

    def __init__(self, allowance: RunAllowance, start_at: str | None = None) -> None:
        self.allowance = allowance
        self.start_at = start_at  # the place of the first step the last run had no time for
        self.ran_out_at: str | None = None
        self._answers: dict[MessageKey, bool | str] = {}
        self._places: dict[MessageKey, str] = {}

    def new(self, items: list[Due]) -> list[Due]:
        """The items not answered yet this run."""
        return [item for item in items if _key(item) not in self._answers]

    def in_turn(self, ledger: Ledger, items: list[Due]) -> list[tuple[str, Due]]:
        """`items` with their place in the rotation, in the order this run answers them."""
        placed = sorted(((self._place(ledger, item), item) for item in items),
                        key=lambda pair: pair[0])
        if self.start_at is None:
            return placed
        start = self.start_at
        return [pair for pair in placed if pair[0] >= start] + \
            [pair for pair in placed if pair[0] < start]

    def _place(self, ledger: Ledger, item: Due) -> str:
        """Where `item` stands in the rotation: its person's keyed hash, campaign and step
        (no address, so `forget` leaves none in the ledger's meta)."""
        key = _key(item)
        place = self._places.get(key)
        if place is None:
            place = self._places[key] = \
                f"{ledger.address_hash(key.email)} {key.campaign} {key.step}"
        return place

    def answer(self, place: str, item: Due, history: Iterable[GoalEvent], now: datetime
               ) -> Answer:
        """The answer of `item`'s condition, with the person's events in `history`."""
        key = _key(item)
        if key in self._answers:
            return self._answers[key]
        if self.allowance.spent():
            if self.ran_out_at is None:
                self.ran_out_at = place
            return None
        from ..sandbox.conditions import (  # the sandbox, only when needed
            LearningEvent,
            condition_holds,
        )

        events = [LearningEvent(e.event, e.object, from_iso(e.occurred_at)) for e in history]
        condition = item.planned.step.when
        assert condition is not None
        answer: bool | str
        with self.allowance.measuring():
            try:
                answer = condition_holds(condition, item.person.attributes, events, now)
            except LdmailError as exc:  # validate catches most; a person's values may not
                answer = f"condition failed: {exc}"
        self._answers[key] = answer
        return answer

    def remember(self, ledger: Ledger) -> None:
        """Record where the next run starts: at the first step this one had no time for."""
        if self.ran_out_at == self.start_at:
            return
        if self.ran_out_at is None:
            ledger.drop_meta(CONDITIONS_FROM)
        else:
            ledger.set_meta(CONDITIONS_FROM, self.ran_out_at)


def _decide_conditions(ledger: Ledger, now: datetime, found: DueNow,
                       conditions: RunConditions) -> None:
    """Steps due with a when: condition go only when it holds; otherwise they wait (wait_until,
    until their timeout) or are skipped with the reason. Once the run's time for conditions
    is spent, the rest are not answered (out_of_time): they are held for the next run."""
    conditional = [item for item in found.due if item.planned.step.when is not None]
    if not conditional:
        return
    history = ledger.events_of((item.enrolment.email for item in conditions.new(conditional)),
                               iso(now))
    going: set[MessageKey] = set()
    for place, item in conditions.in_turn(ledger, conditional):
        answer = conditions.answer(place, item, history.get(item.enrolment.email, ()), now)
        if answer is True:
            going.add(_key(item))
        else:
            _kept_back(found, item, answer, now)
    found.due = [item for item in found.due
                 if item.planned.step.when is None or _key(item) in going]


def _kept_back(found: DueNow, item: Due, answer: Answer, now: datetime) -> None:
    """A step whose condition did not let it go: out of time, failed, waiting or skipped."""
    step = item.planned.step
    if answer is None:
        found.out_of_time.append(item)
        found.next_change = now  # the next run must answer it (no quiet spell)
    elif isinstance(answer, str):
        found.unanswered.append((item, answer))
    elif step.wait_until and now < item.planned.due_at + step.timeout:
        found.waiting_condition += 1
        recheck = min(item.planned.due_at + step.timeout, now + CONDITION_RECHECK)
        found.next_change = recheck if found.next_change is None else \
            min(found.next_change, recheck)
    elif step.wait_until:
        found.skipped.append((item, f"condition still false after "
                                    f"{format_duration(step.timeout)}: {step.when}"))
    else:
        found.skipped.append((item, f"condition false: {step.when}"))


class Sender:
    """Renders messages, and decides what a transport's outcome means for the ledger.

    The ledger's writes go through one Delivery (see ldmail/ledger/delivery.py), which
    groups them to one commit per message without weakening at-most-once delivery.
    """

    def __init__(self, project: Project, ledger: Ledger, transports: list[Transport],
                 now: datetime, run_id: int, interventions: str | None = None) -> None:
        self.project = project
        self.ledger = ledger
        self.transports = transports
        self.now = now
        self.renderer = Renderer(project)
        self.builder = MessageBuilder(project.settings, now)
        self.delivery = ledger.delivery(run_id, iso(now), interventions)
        # Campaigns that fail to render for sample people: their messages are held, unsent.
        self.broken: dict[str, Problem] = {}

    def message_id(self, item: Due) -> str:
        campaign_id = item.enrolment.campaign
        return new_message_id(self.builder.sender(campaign_id, self.project.campaign(campaign_id)))

    def compose(self, item: Due, message_id: str, token: str) -> Built:
        """The message's bytes; `token` is the person's keyed address hash.

        A step to the manager is rendered with the person's data, in the manager's language,
        and its unsubscribe links carry the manager's token: they unsubscribe the manager.
        """
        enrolment, person, step = item.enrolment, item.person, item.planned.step
        campaign = self.project.campaign(enrolment.campaign)
        persona = self.project.audiences.personas.get(person.persona or "")
        reader = item.manager if item.to_manager else None
        if reader is not None:
            token = reader.token
            recipient, name = reader.email, reader.name
            language = reader.language or person.language
        else:
            recipient, name, language = person.email, person.display_name, person.language
        mailto, https = unsubscribe_links(self.project.settings,
                                          self.builder.sender(enrolment.campaign, campaign), token)
        rendered = self.renderer.render(enrolment.campaign, campaign, step, person.attributes,
                                        person.persona, persona, language,
                                        unsubscribe_url=https or mailto, token=token,
                                        variant=item.variant,
                                        manager=reader.context() if reader else None)
        copied = item.copied
        return self.builder.build(rendered=rendered, campaign_id=enrolment.campaign,
                                  campaign=campaign, step=step, recipient=recipient,
                                  recipient_name=name, token=token,
                                  message_id=message_id, zone=person.timezone,
                                  links=(mailto, https),
                                  cc=(copied.name, copied.email) if copied else None)

    def claim(self, item: Due, message_id: str, token: str) -> bool:
        """Record the message as being sent; False when it must not go (any more): the
        person was suppressed or forgotten (`token` is their keyed hash), left the campaign,
        or reached its goal since this run worked out who is due."""
        goal = self.project.campaign(item.enrolment.campaign).goal
        manager = item.manager
        recheck = Recheck(token, None if goal is None else goal.event,
                          "*" if goal is None else goal.object or "*",
                          None if manager is None else manager.email,
                          "" if manager is None else manager.token)
        copied = item.copied
        return self.delivery.claim(_key(item), iso(item.planned.due_at), message_id,
                                   retry=item.planned.retry, recheck=recheck,
                                   variant=None if item.variant is None else item.variant.id,
                                   recipient=manager.email if manager and item.to_manager
                                   else None,
                                   cc=None if copied is None else copied.email)

    def hold(self, item: Due, reason: str, token: str) -> None:
        self.delivery.hold(_key(item), iso(item.planned.due_at), reason, token)

    def interrupted(self, item: Due, error: BaseException) -> str:
        """The transport raised something unexpected (a bug, Ctrl-C) while it had the
        message: it may have gone out, so it is unknown, never sent again by itself. Returns
        the reason recorded."""
        reason = (f"the run stopped on an unexpected error ({describe(error)}) while sending "
                  "this; it may or may not have arrived")
        self.delivery.interrupted(_key(item), reason, last_step=item.last_step)
        return reason

    def release(self, item: Due) -> None:
        """A message claimed and never handed over (the run stopped in between): due again at
        once, the attempt not counted. A claim that was never written changes nothing."""
        key = _key(item)
        if self.ledger.message_state(key) is MessageState.CLAIMED:
            self.delivery.put_back(key, "the run stopped before handing this over")

    def record(self, item: Due, outcome: Outcome) -> MessageState:
        """Note what the transport said about a claimed message; returns the new state."""
        key, last = _key(item), item.last_step
        attempts = item.planned.attempts
        retry = self.project.settings.retry
        if outcome.status == "sent":
            self.delivery.delivered(key, last_step=last)
            return MessageState.SENT
        if outcome.status == "unknown":
            self.delivery.reply_lost(key, outcome.reason, last_step=last)
            return MessageState.UNKNOWN
        if outcome.status == "stopped":
            self.delivery.put_back(key, outcome.reason)
            return MessageState.DEFERRED
        if outcome.status == "temporary" and attempts + 1 < retry.max_attempts:
            self.delivery.defer(key, outcome.reason,
                                iso(self.now + retry.backoff * (2 ** attempts)))
            return MessageState.DEFERRED
        reason = outcome.reason if outcome.status == "permanent" else \
            f"gave up after {attempts + 1} attempts: {outcome.reason}"
        self.delivery.fail(key, reason, last_step=last, bounce=(
            f"address rejected: {outcome.reason}" if outcome.user_unknown else None),
            address=item.manager.email if item.manager and item.to_manager else None)
        return MessageState.FAILED


def _recipient(item: Due) -> Recipient:
    """Who a dry run says gets the message: the person, or their manager."""
    e, person, step = item.enrolment, item.person, item.planned.step
    if item.manager is not None and item.to_manager:
        return Recipient(item.manager.email, e.campaign, f"{step.id} (to manager)",
                         f"{item.manager.name or 'the manager'} of {person.display_name}")
    return Recipient(person.email, e.campaign, step.id, person.display_name)


def _hold_stopped_domains(project: Project, ledger: Ledger, now: datetime, due: list[Due],
                          summary: SendSummary) -> list[Due]:
    """Leave due the messages to a domain whose sender-side bounces passed the inbox's
    sender_stop: sending on would only burn the sender's reputation there (one query a run)."""
    inbox = project.settings.inbox
    stop = inbox.sender_stop if inbox is not None else SenderStop()
    stopped = {found.domain: found for found in ledger.stopped_domains(
        iso(now - stop.within), stop.after)}
    if not stopped:
        return due
    held: dict[str, int] = dict.fromkeys(stopped, 0)
    kept = []
    for item in due:
        domain = _recipient(item).email.rpartition("@")[2].lower()
        if domain in held:
            held[domain] += 1
        else:
            kept.append(item)
    summary.domain_holds = [
        DomainHold(domain, found.count, found.reason, held[domain],
                   iso(from_iso(found.last_at) + stop.within))
        for domain, found in stopped.items()]
    return kept


def _key(item: Due) -> MessageKey:
    return MessageKey(item.enrolment.campaign,
                      step_key(item.planned.step.id, item.enrolment.occurrence),
                      item.enrolment.email)


def _count_step(summary: SendSummary, item: Due) -> None:
    key = f"{item.enrolment.campaign}/{item.planned.step.id}"
    summary.steps[key] = summary.steps.get(key, 0) + 1


def _destination(project: Project) -> Destination:
    transport = project.settings.transport
    if transport.kind == "smtp":
        return Destination("smtp", f"{transport.host}:{transport.port}")
    if transport.kind == "graph":
        return Destination("graph", transport.graph_url)
    return Destination("outbox", str(project.path(transport.outbox, OUTBOX_SETTING)))


def _label(now: datetime, item: Due, message_id: str) -> str:
    # No personal data in file names: the message id's random part tells files apart.
    return (f"{now.strftime('%Y%m%dT%H%M%S')}-{item.enrolment.campaign}-{item.planned.step.id}"
            f"-{message_id[1:13]}")



def _pace_start(ledger: Ledger, rate: float | None) -> float | None:
    """When (wall-clock seconds) this run's first message may go so that the rate holds
    across runs: one interval after the newest run that handed a message over finished, or
    after now if it never finished (killed: its last hand-over was before this run began)."""
    if not rate:
        return None
    handed_over, finished = ledger.last_handover()
    if not handed_over:
        return None
    # The ledger keeps whole seconds: the run finished up to a second after its stamp.
    since = from_iso(finished).timestamp() + 1 if finished else wall_now().timestamp()
    return since + 1 / rate


def send(project: Project, now: datetime, *, db: Path | None = None, dry_run: bool = False,
         campaign: str | None = None, limit: int | None = None, resend_unknown: bool = False,
         wait: float = 0.0, progress: Progress | None = None,
         stop: threading.Event | None = None, accept_exits: bool = False,
         new_ledger: bool = False, transports: list[Transport] | None = None,
         show: int = 0, allow_past: bool = False) -> SendSummary:
    """One complete send run; safe to start from cron every few minutes.

    `transports`: where messages go instead of the project's transport setting (a
    MemoryTransport in tests, say). `show`: in a dry run, list the first `show` recipients.
    `allow_past`: send at a moment before an earlier run's (a rehearsal on a copy).
    """
    if campaign is not None:
        project.campaign(campaign)  # unknown ids fail before anything happens
    path = ledger_path(project, db)
    lock = send_lock_path(path)
    if dry_run:
        # While another send runs, its open claims are in flight, not left by a dead run.
        in_flight = held_elsewhere(lock)
        with Ledger(path, readonly=True) as ledger:
            return _run(project, ledger, now, dry_run=True, campaign=campaign, limit=limit,
                        resend_unknown=resend_unknown, progress=progress, stop=stop,
                        claims_in_flight=in_flight, accept_exits=accept_exits, show=show)
    with SendLock(lock, wait=wait):
        _refuse_fresh_start(project, path, new_ledger)
        with Ledger(path, new=new_ledger) as ledger:
            _check_identity(ledger)
            if not allow_past:
                _refuse_going_back(ledger, now, project.settings.timezone)
            return _run(project, ledger, now, dry_run=False, campaign=campaign, limit=limit,
                        resend_unknown=resend_unknown, progress=progress, stop=stop,
                        accept_exits=accept_exits, transports=transports)


def _refuse_fresh_start(project: Project, path: Path, new_ledger: bool) -> None:
    """Before a ledger file is created: refuse when the outbox shows earlier runs.

    (A missing ledger whose id file is there is refused by Ledger itself, for every command.)
    """
    if new_ledger:
        identity_path(path).unlink(missing_ok=True)
        return
    outbox = project.path(project.settings.transport.outbox, OUTBOX_SETTING)
    if not path.exists() and read_identity(path) is None and outbox.is_dir() and \
            any(outbox.glob("*.eml")):
        raise LedgerReplaced(
            f"{path} is missing, but {outbox} holds messages of earlier runs: a new ledger "
            "would mail everyone again. Restore the ledger from a backup, or run 'ldmail send "
            "--new-ledger' to really start over")


# How far a run's moment may lie before an earlier run's: clocks of two machines that share
# a ledger, or an NTP step, differ by seconds; a mistyped --now by days or years.
CLOCK_SKEW = timedelta(minutes=5)


def _refuse_going_back(ledger: Ledger, now: datetime, zone: tzinfo) -> None:
    """Time only moves forward in a ledger: a send at a moment before an earlier run would
    work out tenure, windows and exits against that moment (a year typo in --now ends
    enrolments) and record sends out of order."""
    latest = ledger.latest_run_moment()
    if latest is None or from_iso(latest[1]) - now <= CLOCK_SKEW:
        return
    raise LdmailError(
        f"it is {shown(now, zone)} for this run, before run {latest[0]} of this ledger, which "
        f"ran at {shown(from_iso(latest[1]), zone)}: time only moves forward in a ledger. Check "
        "--now (and this machine's clock); to rehearse on a copy of the ledger on purpose, add "
        "--allow-past")


def _check_identity(ledger: Ledger) -> None:
    """The ledger is the one earlier sends wrote, and not an older copy of it.

    A replaced ledger.db would otherwise mean a silent resend: an older copy does not know
    what was sent since.
    """
    recorded = read_identity(ledger.path)
    if recorded is None:
        return
    ledger_id, last_run = recorded
    found = ledger.recorded_identity()
    runs = ledger.last_run()
    if found is not None and found != ledger_id:
        raise LedgerReplaced(
            f"{ledger.path} is not the ledger earlier runs wrote (it is {found}, "
            f"they wrote {ledger_id}): it was replaced. Put the right file back, or run "
            "'ldmail send --new-ledger' to go on with this one")
    if runs < last_run:
        raise LedgerReplaced(
            f"{ledger.path} is an older copy: it ends at run {runs}, but run {last_run} was "
            "recorded since, so it does not know what was sent after it and would send it "
            "again. Put the newest ledger back; to go on with this copy anyway (messages sent "
            "since may go out twice), run 'ldmail send --new-ledger'")


def _run(project: Project, ledger: Ledger, now: datetime, *, dry_run: bool, campaign: str | None,
         limit: int | None, resend_unknown: bool, progress: Progress | None,
         stop: threading.Event | None, claims_in_flight: bool = False,
         accept_exits: bool = False, transports: list[Transport] | None = None,
         show: int = 0) -> SendSummary:
    """One send, phase by phase: begin (the run's record and what a dead run left), the quiet
    path, enrol, decide what is due, apply the caps, and deliver."""
    summary = SendSummary(dry_run=dry_run)
    # Read first: a bad LDMAIL_CONDITION_SECONDS stops the run.
    conditions = RunConditions(RunAllowance(), ledger.meta(CONDITIONS_FROM))
    # Read before the sync: whatever suppress or an import changes after it is re-checked.
    interventions = ledger.interventions()
    run_id = _begin(project, ledger, now, summary, resend_unknown=resend_unknown,
                    claims_in_flight=claims_in_flight)
    # A plain cron run (the whole project, no limit) may find that nothing changed since a
    # run that found nothing due; see quiet.py.
    plain = not dry_run and campaign is None and limit is None and not resend_unknown
    if plain and not summary.unknown_found and _quiet(project, ledger, now, run_id, summary):
        return summary
    _enrol(project, ledger, now, summary, campaign=campaign, accept_exits=accept_exits)
    found = _decide(project, ledger, now, summary, conditions, None if dry_run else
                    lambda: ledger.delivery(run_id, iso(now), interventions))
    if plain and not found.due and not summary.unknown_found:
        quiet.remember(project, ledger, now, found.next_change, summary.waiting_window,
                       summary.window_opens)
    settings = project.settings.transport
    # Read once: the dry run's estimate and the real run's pacer start from the same moment.
    not_before = _pace_start(ledger, settings.rate)
    due = _within_caps(project, ledger, now, found.due, summary, limit, not_before)
    if dry_run:
        summary.first = [_recipient(item) for item in due[:show]]
        transports = []
    elif transports is None:
        transports = open_transports(
            settings, project.path(settings.outbox, OUTBOX_SETTING), stop, not_before,
            resolve=project.path)
    sender = Sender(project, ledger, transports, now, run_id, interventions)
    try:
        _check_and_deliver(sender, due, summary, progress, stop)
    finally:
        for transport in transports:
            transport.close()
        if not dry_run:
            status = "ok" if summary.ok else ("stopped" if summary.stopped else "failures")
            ledger.finish_run(run_id, iso(wall_now()), status, summary.to_json())
    return summary


def _begin(project: Project, ledger: Ledger, now: datetime, summary: SendSummary, *,
           resend_unknown: bool, claims_in_flight: bool) -> int:
    """The run's record (0 in a dry run), and what an earlier run left: claims of a run that
    died mid-send become unknown; --resend-unknown queues the unknown ones again."""
    dry_run = summary.dry_run
    if not dry_run:
        summary.destination = _destination(project)
    run_id = 0 if dry_run else ledger.start_run("send", iso(wall_now()), iso(now))
    if not dry_run:
        record_identity(ledger, run_id)
    # Holding the send lock, any claim still open belongs to a run that died mid-send.
    interrupted = ledger.claimed()
    if not (dry_run and claims_in_flight):
        summary.unknown += [Failure(key.email, key.campaign, key.step, _INTERRUPTED)
                            for key in interrupted]
    summary.unknown_found = len(summary.unknown)
    if not dry_run:
        ledger.mark_interrupted(_INTERRUPTED)
        if resend_unknown:
            summary.requeued_unknown = ledger.resend_unknown(
                iso(now), "resend requested after unknown outcome")
    summary.unknown_total = ledger.unknown_count()
    return run_id


def _quiet(project: Project, ledger: Ledger, now: datetime, run_id: int,
           summary: SendSummary) -> bool:
    """True when nothing changed since a run that found nothing due: the run is then done."""
    spell = quiet.find(project, ledger, now)
    if spell is None:
        return False
    summary.waiting_window = spell.waiting
    summary.window_opens = spell.opens
    ledger.finish_run(run_id, iso(wall_now()), "ok", summary.to_json())
    return True


def _enrol(project: Project, ledger: Ledger, now: datetime, summary: SendSummary, *,
           campaign: str | None, accept_exits: bool) -> None:
    if not summary.dry_run:
        quiet.forget(ledger)
    synced = sync(project, ledger, now, persist=not summary.dry_run, only=campaign,
                  accept_exits=accept_exits)
    summary.enrolled, summary.exited = synced.enrolled, synced.exited
    summary.people_enrolled = synced.people
    summary.missing = synced.vanished


def _decide(project: Project, ledger: Ledger, now: datetime, summary: SendSummary,
            conditions: RunConditions, record: Callable[[], Delivery] | None) -> DueNow:
    """What is due now, after the steps whose when: is false are skipped (each skip lets the
    person's next step be decided in the same run); `record` opens the ledger's delivery
    operations, None in a dry run, which records nothing."""
    found = find_due(project, ledger, now, conditions)
    # Each pass skips at least one step of someone: at most as many passes as steps.
    for _ in range(max((len(file.model.steps) for file in project.campaigns.values()),
                       default=0)):
        if not found.skipped:
            break
        summary.skipped += len(found.skipped)
        summary.skips += [Failure(item.enrolment.email, item.enrolment.campaign,
                                  item.planned.step.id, reason)
                          for item, reason in found.skipped[:100 - len(summary.skips)]]
        if record is None:
            break
        with record() as delivery:
            for item, reason in found.skipped:
                delivery.skip(_key(item), iso(item.planned.due_at), reason,
                              ledger.address_hash(item.enrolment.email))
        found = find_due(project, ledger, now, conditions)
    summary.waiting_condition = found.waiting_condition
    summary.conditions_held = len(found.out_of_time)
    summary.condition_seconds = conditions.allowance.seconds
    if record is not None:
        _hold_unanswered(ledger, record(), found)
        conditions.remember(ledger)
    for item, reason in found.unanswered:  # held, as a template that fails is: not lost
        summary.held.append(Failure(item.enrolment.email, item.enrolment.campaign,
                                    item.planned.step.id, reason))
    summary.waiting_window = found.waiting
    summary.window_opens = None if found.window_opens is None else iso(found.window_opens)
    if record is not None and found.complete:
        ledger.complete([(enrolment.campaign, enrolment.email) for enrolment in found.complete],
                        iso(now))
    return found


def _within_caps(project: Project, ledger: Ledger, now: datetime, due: list[Due],
                 summary: SendSummary, limit: int | None, not_before: float | None
                 ) -> list[Due]:
    """What may go out of `due`: not to a domain whose sender-side bounces stopped it, within
    the daily cap and --limit; and, at the transport's rate, when the last of it goes."""
    summary.due = len(due)
    due = _hold_stopped_domains(project, ledger, now, due, summary)
    settings = project.settings.transport
    if settings.daily_cap is not None:
        day_ago = iso(now - timedelta(days=1))
        allowed = max(settings.daily_cap - ledger.sent_since(day_ago), 0)
        summary.held_by_cap = max(len(due) - allowed, 0)
        due = due[:allowed]
        if summary.held_by_cap:
            summary.cap_frees_at = ledger.cap_frees_at(day_ago)
    if limit is not None and len(due) > limit:
        summary.held_by_limit = len(due) - limit
        due = due[:limit]
    if settings.pace and due:
        first = max(wall_now().timestamp(), not_before or 0.0)
        summary.last_due_at = iso(datetime.fromtimestamp(
            first + (len(due) - 1) / settings.pace, UTC))
    return due


def _check_and_deliver(sender: Sender, due: list[Due], summary: SendSummary,
                       progress: Progress | None, stop: threading.Event | None) -> None:
    """What is about to go out is validated first: a campaign whose templates do not render
    is not sent at all (its messages are held), instead of failing person by person."""
    sender.broken = broken_campaigns(sender.project, sender.renderer,
                                     sorted({item.enrolment.campaign for item in due}),
                                     sender.now.date())
    summary.broken = {campaign_id: str(problem) for campaign_id, problem in
                      sender.broken.items()}
    _deliver(sender, due, summary, summary.dry_run, progress, stop)


def _hold_unanswered(ledger: Ledger, delivery: Delivery, found: DueNow) -> None:
    """Hold the steps whose condition failed or was not answered: tried again next run."""
    held = found.unanswered + [(item, CONDITIONS_OUT_OF_TIME) for item in found.out_of_time]
    if held:
        with delivery:
            for item, reason in held:
                delivery.hold(_key(item), iso(item.planned.due_at), reason,
                              ledger.address_hash(item.enrolment.email))


def _deliver(sender: Sender, due: list[Due], summary: SendSummary, dry_run: bool,
             progress: Progress | None, stop: threading.Event | None) -> None:
    if due and sender.transports:
        try:
            sender.transports[0].open()
        except TransportUnavailable as exc:
            summary.stopped = f"transport unavailable: {exc}; all {len(due)} due message(s) wait"
            return
        except StopRequested:
            summary.stopped = _STOPPING
            return
        # More connections only help with more messages than lanes; one the server refuses
        # (a per-client connection limit, say) is simply not used.
        usable = sender.transports[:1]
        for extra in sender.transports[1:len(due)]:
            try:
                extra.open()
            except (TransportUnavailable, StopRequested):
                continue
            usable.append(extra)
        sender.transports = usable
    with sender.delivery:  # every outcome recorded is written, however the run ends
        _deliver_each(sender, due, summary, dry_run, progress, stop)
    if progress is not None:
        progress(len(due), len(due))


class _Lane:
    """One transport (one SMTP connection), used by one message at a time.

    A threaded lane hands its message over in the background, so the next message is
    rendered while this one is on the wire; waiting for a server's replies costs nothing then.
    Either way, whatever the transport raises is the lane's result, for the main thread to
    record: a lane always answers for the message it took.
    """

    def __init__(self, transport: Transport, results: queue.SimpleQueue[_Result],
                 threaded: bool) -> None:
        self.transport = transport
        self.results = results
        self.jobs: queue.SimpleQueue[tuple[Due, Built, str] | None] = queue.SimpleQueue()
        self.thread = threading.Thread(target=self._work, daemon=True,
                                       name="ldmail-send") if threaded else None
        if self.thread is not None:
            self.thread.start()

    def hand_over(self, item: Due, message: Built, label: str) -> None:
        if self.thread is None:
            self.results.put((self, item, self._send(item, message, label)))
        else:
            self.jobs.put((item, message, label))

    def _send(self, item: Due, message: Built, label: str) -> Outcome | BaseException:
        try:
            return self.transport.send(message.data, message.sender, message.recipient, label,
                                       cc=message.cc)
        except BaseException as exc:  # noqa: BLE001 - the main thread records it, then raises
            return exc

    def _work(self) -> None:
        while True:
            job = self.jobs.get()
            if job is None:
                return
            self.results.put((self, job[0], self._send(*job)))

    def stop(self) -> None:
        if self.thread is not None:
            self.jobs.put(None)
            self.thread.join()


_Result = tuple[_Lane, Due, "Outcome | BaseException"]


class _Lanes:
    """The transports of a run; claims wait for a free lane, so at most len(lanes) messages
    are ever claimed and not yet recorded.

    `claimed` is the message claimed and not yet handed to a lane: should the run stop in
    between, it goes back to due. `busy` counts only the messages a lane took, so waiting
    for their results never waits for one that cannot come.
    """

    def __init__(self, transports: list[Transport], threaded: bool) -> None:
        self.results: queue.SimpleQueue[_Result] = queue.SimpleQueue()
        self.idle = [_Lane(t, self.results, threaded) for t in transports]
        self.lanes = list(self.idle)
        self.threaded = threaded
        self.busy = 0
        self.claimed: Due | None = None

    def hand_over(self, item: Due, message: Built, label: str) -> None:
        lane = self.idle.pop()
        log.debug("lane %d (%s): %s/%s to %s", self.lanes.index(lane), lane.transport.name,
                  item.enrolment.campaign, item.planned.step.id, item.enrolment.email)
        # From here on the message counts as handed over: a run stopped now leaves it
        # claimed (unknown to the next run), never put back to be sent twice.
        self.claimed = None
        lane.hand_over(item, message, label)
        self.busy += 1  # after: its result is on its way (an unthreaded lane's is there)

    def collect(self) -> tuple[Due, Outcome | BaseException]:
        lane, item, result = self.results.get()
        self.idle.append(lane)
        self.busy -= 1
        return item, result

    def stop(self) -> None:
        for lane in self.lanes:
            lane.stop()


def _settle(sender: Sender, lanes: _Lanes, summary: SendSummary) -> BaseException | None:
    """Record the outcome of one message handed over; returns what stops the run, if any."""
    item, result = lanes.collect()
    e, step = item.enrolment, item.planned.step
    if isinstance(result, TransportUnavailable):
        # Nothing was handed over: keep the message for a later run and stop this one.
        sender.record(item, Outcome("temporary", str(result)))
        summary.deferred += 1
        summary.stopped = f"transport unavailable: {result}"
        return result
    if isinstance(result, TransportFatal):
        sender.record(item, Outcome("temporary", "transport failed before sending"))
        return result
    if isinstance(result, BaseException):
        # A bug, Ctrl-C, no memory: it may have gone out. Unknown, and the run stops.
        reason = sender.interrupted(item, result)
        summary.unknown.append(Failure(e.email, e.campaign, step.id, reason))
        summary.unknown_total += 1
        return result
    state = sender.record(item, result)
    if result.status == "stopped":
        summary.stopped = _STOPPING
    if state == MessageState.SENT:
        summary.sent += 1
        _count_step(summary, item)
    elif state == MessageState.UNKNOWN:
        summary.unknown.append(Failure(e.email, e.campaign, step.id, result.reason))
        summary.unknown_total += 1
    elif state == MessageState.DEFERRED:
        summary.deferred += 1
    else:
        summary.failed += 1
        summary.failures.append(Failure(e.email, e.campaign, step.id, result.reason))
    return None


_STOPPING = "stopped on request; the rest waits for the next run"
_INTERRUPTED = "a run was interrupted while sending this; it may or may not have arrived"


def _deliver_each(sender: Sender, due: list[Due], summary: SendSummary, dry_run: bool,
                  progress: Progress | None, stop: threading.Event | None) -> None:
    transports = sender.transports
    # SMTP and Graph wait on the network; their lanes work in threads. The outbox waits on
    # nothing.
    lanes = _Lanes(transports, threaded=bool(transports) and
                   transports[0].name in ("smtp", "graph"))
    problem: BaseException | None = None
    try:
        for done, item in enumerate(due):
            if stop is not None and stop.is_set():
                summary.stopped = _STOPPING
                break
            if progress is not None and not done % 64:
                progress(done, len(due))
            problem = _deliver_one(sender, lanes, item, summary, dry_run, stop)
            if problem is not None or summary.stopped is not None:
                break
    finally:
        problem = _wind_down(sender, lanes, summary) or problem
    if problem is not None and not isinstance(problem, TransportUnavailable):
        raise problem


def _deliver_one(sender: Sender, lanes: _Lanes, item: Due, summary: SendSummary,
                 dry_run: bool, stop: threading.Event | None) -> BaseException | None:
    """Render one message, wait for a free lane, claim it and hand it over (in a dry run,
    count it); returns what stops the run, if anything does (summary.stopped says why)."""
    e, step = item.enrolment, item.planned.step
    message_id = sender.message_id(item)
    # One keyed hash a message: the unsubscribe token, and the forgotten-check key.
    token = sender.ledger.address_hash(e.email)
    blocked = sender.broken.get(e.campaign)
    try:
        if blocked is not None:
            raise RenderError(blocked.file, blocked.line, blocked.message)
        message = sender.compose(item, message_id, token)
    except (RenderError, HeaderInjection) as exc:
        summary.held.append(Failure(e.email, e.campaign, step.id, str(exc)))
        if not dry_run:
            sender.hold(item, str(exc), token)
        return None
    if dry_run:
        summary.sent += 1
        _count_step(summary, item)
        return None
    problem: BaseException | None = None
    while not lanes.idle and problem is None:
        problem = _settle(sender, lanes, summary)
    if problem is not None or summary.stopped is not None:  # a lane stopped mid-message
        return problem
    if stop is not None and stop.is_set():  # asked while we waited for a lane
        summary.stopped = _STOPPING
    elif not sender.ledger.still_on_disk():
        # Written to a deleted file, claims and outcomes would be lost with it.
        summary.stopped = (f"the ledger {sender.ledger.path} was deleted or replaced while "
                           "this run was sending; restore it (this run's sends are recorded "
                           "only in the deleted file)")
    else:
        lanes.claimed = item
        if sender.claim(item, message_id, token):
            lanes.hand_over(item, message, _label(sender.now, item, message_id))
        lanes.claimed = None
        if not lanes.threaded:  # its outcome is there already: a bug stops the run at once
            return _settle(sender, lanes, summary) if lanes.busy else None
    return None


def _wind_down(sender: Sender, lanes: _Lanes, summary: SendSummary) -> BaseException | None:
    """However the run ends: the message claimed and not handed over goes back to due, every
    message handed over gets its outcome recorded, and the lanes stop."""
    problem: BaseException | None = None
    try:
        if lanes.claimed is not None:
            sender.release(lanes.claimed)
            lanes.claimed = None
        while lanes.busy:
            problem = _settle(sender, lanes, summary) or problem
    finally:
        lanes.stop()
    return problem


__all__ = ["LdmailError", "SendSummary", "send"]
