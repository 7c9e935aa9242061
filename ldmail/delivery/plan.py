"""`ldmail plan`: the sends to come, person by person, without sending or writing anything."""

from __future__ import annotations

import bisect
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta, tzinfo
from operator import itemgetter
from pathlib import Path
from zoneinfo import ZoneInfo

from ..audience.enrolment import Enrolment, active_enrolments, sync
from ..audience.privacy import resolve
from ..errors import LdmailError
from ..ledger import Group, Ledger, MessageRecord
from ..measurement.sensitivity import Sensitivity, sensitivity
from ..project.config import Project
from ..project.models import Step, Transport
from ..project.schedule import Planned, Shift
from ..sandbox.conditions import LearningEvent


@dataclass(frozen=True, slots=True)
class PlannedSend:
    send_at: datetime
    local: datetime
    campaign: str
    step: str
    email: str
    persona: str | None
    language: str
    retry: bool
    shift: Shift | None = None  # the business calendar moved it from an earlier opening


# A step moved by the business calendar: campaign, step, the local day it would have gone,
# the local day it goes, and why.
Move = tuple[str, str, date, date, str]


def moved_line(was: date, to: date, reason: str) -> str:
    """`moved from Fri 25 Dec (Christmas Day) to Mon 28 Dec`."""
    return f"moved from {short_day(was)} ({reason}) to {short_day(to)}"


def short_day(day: date) -> str:
    """`Fri 25 Dec`."""
    return f"{day:%a} {day.day} {day:%b}"


@dataclass
class Plan:
    first: list[PlannedSend]  # the earliest sends, in time order
    per_day: Counter[tuple[date, str, str]]  # sends by local day, campaign and step
    total: int
    new_enrolments: int
    holdout: int
    until: datetime
    # What each measured campaign can detect with the people it is mailing and holding out.
    sensitivities: list[Sensitivity]
    # Sends the business calendar moved (holidays, blackout days), counted like per_day.
    moved: Counter[Move]


def build_plan(project: Project, now: datetime, days: int, *, db: Path | None = None,
               campaign: str | None = None, show: int = 100) -> Plan:
    """Every send until `days` from now, counted by day; the first `show` of them in full.

    A plan for a million learners holds millions of sends. People who share a schedule
    (most do) are counted together, and only the earliest `show` sends are kept.
    """
    if campaign is not None:
        project.campaign(campaign)
    until = now + timedelta(days=days)
    # How many people follow each schedule, by campaign and zone; the schedules themselves
    # are kept by id (so an id is never reused while it is counted here).
    tally: Counter[tuple[str, int, ZoneInfo]] = Counter()
    schedules: dict[int, tuple[Planned, ...]] = {}
    first = _Earliest(show)
    holdout = 0
    with Ledger.of(project, db, readonly=True) as ledger:
        synced = sync(project, ledger, now, persist=False, only=campaign)
        groups = ledger.group_sizes()
        for enrolment, steps in active_enrolments(project, ledger, now):
            if enrolment.group == Group.HOLDOUT:
                holdout += 1
                continue
            zone = enrolment.timezone or project.campaigns[enrolment.campaign].model \
                .send_window.timezone
            tally[(enrolment.campaign, id(steps), zone)] += 1
            schedules[id(steps)] = steps
            for position, planned in enumerate(steps):
                if planned.send_at >= until or not first.wants(planned.send_at, enrolment,
                                                               position):
                    break
                first.add(planned.send_at, enrolment, position, planned, zone)
    per_day: Counter[tuple[date, str, str]] = Counter()
    moved: Counter[Move] = Counter()
    for (campaign_id, steps_id, zone), people in tally.items():
        for planned in schedules[steps_id]:
            if planned.send_at >= until:
                break
            day = planned.send_at.astimezone(zone).date()
            per_day[(day, campaign_id, planned.step.id)] += people
            if planned.shift is not None:
                moved[(campaign_id, planned.step.id, planned.shift.was.astimezone(zone).date(),
                       day, planned.shift.reason)] += people
    measured = [sensitivity(campaign_id, model, mailed, held)
                for campaign_id, (mailed, held) in sorted(groups.items())
                if campaign in (None, campaign_id) and campaign_id in project.campaigns
                and (model := project.campaigns[campaign_id].model).goal is not None]
    return Plan(first.sends(), per_day, sum(per_day.values()), synced.enrolled, holdout, until,
                measured, moved)


# Time, campaign, address and position: never all equal for two sends.
_ORDER = itemgetter(0, 1, 2, 3)


class _Earliest:
    """The first `size` sends in time order (then campaign, address and step order)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.kept: list[tuple[datetime, str, str, int, Enrolment, Planned, ZoneInfo]] = []

    def wants(self, send_at: datetime, enrolment: Enrolment, position: int) -> bool:
        """Whether a send would be kept; a person's later steps never are if this is not."""
        if len(self.kept) < self.size:
            return True
        if not self.kept:
            return False  # keeps none
        last = self.kept[-1]
        return (send_at, enrolment.campaign, enrolment.email, position) < last[:4]

    def add(self, send_at: datetime, enrolment: Enrolment, position: int, planned: Planned,
            zone: ZoneInfo) -> None:
        bisect.insort(self.kept, (send_at, enrolment.campaign, enrolment.email, position,
                                  enrolment, planned, zone), key=_ORDER)
        del self.kept[self.size:]

    def sends(self) -> list[PlannedSend]:
        return [PlannedSend(send_at, send_at.astimezone(zone), enrolment.campaign,
                            planned.step.id, enrolment.email, enrolment.persona,
                            enrolment.language, planned.retry, planned.shift)
                for send_at, _, _, _, enrolment, planned, zone in self.kept]



def pace_notes(plan: Plan, transport: Transport) -> list[str]:
    """What the transport's rate and daily cap do to the plan: days with more sends than the
    cap allows, and how long the busiest day takes at that rate."""
    rate, cap = transport.pace, transport.daily_cap
    per_day: Counter[date] = Counter()
    for (day, _, _), count in plan.per_day.items():
        per_day[day] += count
    notes = []
    if cap is not None:
        notes += [f"{day:%a %Y-%m-%d}: {count:,} sends but the daily cap is {cap:,}; the "
                  f"other {count - cap:,} wait for the next day(s)"
                  for day, count in sorted(per_day.items()) if count > cap]
    if rate and per_day:
        day, count = max(per_day.items(), key=lambda item: (item[1], item[0]))
        seconds = (min(count, cap or count) - 1) / rate
        hours, minutes = divmod(round(seconds / 60), 60)
        notes.append(f"at {rate * 60:g} a minute the busiest day ({day:%a %Y-%m-%d}, "
                     f"{min(count, cap or count):,} sends) takes {hours} h {minutes:02d} min "
                     "from the first to the last")
    return notes


@dataclass(frozen=True, slots=True)
class JourneyStep:
    """One step of one campaign for one person: what happened, or what is planned."""

    campaign: str
    step: str
    status: str  # a message state (sent, skipped, ...), or planned
    at: datetime | None  # when it went out or was decided; when it is planned to go
    zone: tzinfo  # the zone `at` is shown in: the person's own, else the campaign's
    note: str = ""  # a skip's reason; a planned step's condition and its answer now
    variant: str | None = None


def manager_note(message: MessageRecord, address: str) -> str:
    """How a message of the ledger involves a manager, as seen from `address` (the person's
    or the manager's): history and plan --person show it beside the step."""
    if message.recipient:
        return f"to the manager {message.recipient}" if message.email == address else \
            f"to you as the manager of {message.email}"
    if message.cc:
        return f"cc the manager {message.cc}" if message.email == address else \
            f"a copy to you as the manager of {message.email}"
    return ""


@dataclass(frozen=True)
class Journey:
    """`plan --person`: the address the ledger knows the person by, and their steps."""

    address: str
    steps: list[JourneyStep]


def journey_of(project: Project, now: datetime, who: str, *, db: Path | None = None) -> Journey:
    """One person's journey, given their address or the token from an unsubscribe mail."""
    with Ledger.of(project, db, readonly=True) as ledger:
        address = resolve(ledger, who)
    return Journey(address, person_journey(project, now, address, db=db))


def _planned_note(step: Step, attributes: Mapping[str, object] | None,
                  events: list[LearningEvent], now: datetime) -> str:
    """Why a planned step may not go as planned: its condition answered for the person now,
    and whether it goes to or copies the manager."""
    from ..sandbox.conditions import condition_holds

    note = ""
    if step.when is not None:
        try:
            answer = attributes is not None and condition_holds(step.when, attributes, events,
                                                                now)
        except LdmailError as exc:
            note = f"if {step.when}: it fails for this person ({exc}); held"
        else:
            wait = " (it waits for it)" if step.wait_until else ""
            note = (f"if {step.when}: true now" if answer else
                    f"if {step.when}: false now, so skipped unless it changes{wait}")
    if step.to == "manager":
        return "; ".join(part for part in ("to the manager", note) if part)
    if step.cc_manager:
        return "; ".join(part for part in ("cc the manager", note) if part)
    return note


def person_journey(project: Project, now: datetime, email: str, *,
                   db: Path | None = None) -> list[JourneyStep]:
    """Every step of every campaign one person is or was in: the ledger's messages as they
    are, then the steps still to come, each condition (when:) answered for them now."""
    from ..audience.export import PeopleStream
    from ..clock import from_iso, iso, shown
    from ..project.schedule import assign_variant
    journey: list[JourneyStep] = []
    with Ledger.of(project, db, readonly=True) as ledger:
        known = ledger.history(email)
        sync(project, ledger, now, persist=False)
        mine = [(enrolment, steps) for enrolment, steps in active_enrolments(project, ledger, now)
                if enrolment.email == email]
        own_zone = next((enrolment.timezone for enrolment, _ in mine if enrolment.timezone),
                        None)

        def zone_of(campaign_id: str) -> tzinfo:
            found = project.campaigns.get(campaign_id)
            return own_zone or (found.model.send_window.timezone if found
                                else project.settings.timezone)

        for message in known.messages:
            moment = message.sent_at or message.claimed_at
            at = from_iso(moment) if moment else None
            zone = zone_of(message.campaign)
            note = "; ".join(part for part in (manager_note(message, email), message.error or "")
                             if part)
            status = message.state
            if at is not None and at > now:  # --now before it: not sent yet at that moment
                status, note = "planned", (f"the ledger has it {status} at {shown(at, zone)}, "
                                           "after --now")
            journey.append(JourneyStep(message.campaign, message.step, status, at, zone, note,
                                       message.variant))
        events = [LearningEvent(e.event, e.object, from_iso(e.occurred_at))
                  for e in ledger.events_of([email], iso(now)).get(email, [])]
    rows = {enrolment.row for enrolment, _ in mine}
    person = next(iter(PeopleStream(project, now.date(), rows=rows)), None) if rows else None
    for enrolment, steps in mine:
        if enrolment.group == Group.HOLDOUT:
            journey.append(JourneyStep(enrolment.campaign, "", "holdout", None,
                                       zone_of(enrolment.campaign),
                                       "in the control group: never mailed"))
            continue
        for planned in steps:
            note = _planned_note(planned.step, person.attributes if person else None, events,
                                 now)
            variant = assign_variant(enrolment.campaign, planned.step, email)
            journey.append(JourneyStep(enrolment.campaign, planned.step.id, "planned",
                                       planned.send_at, zone_of(enrolment.campaign), note,
                                       None if variant is None else variant.id))
    return journey
