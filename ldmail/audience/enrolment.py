"""Who is in which campaign: enrol newly matching people, let others leave, record goals.

The export is read row by row into staging tables (`staged_people`, and `staged_targets`:
which campaigns target whom), and enrolments are brought in line with them in SQL, so a
million learners never exist as Python objects at once. A sync that writes keeps the staged
rows in the ledger with a fingerprint of what they follow from, and a later run with the
same fingerprint uses them as they are. A run that writes nothing stages a changed export in
temporary tables of its own. After sync(), the temporary view `synced` holds the active
enrolments as they are after the sync, whether it was written or not.

This module decides (which campaigns, who is targeted and from which day 0, who met a
trigger or reached a goal, the holdout draw); the ledger's EnrolmentSync (ledger/
enrolments.py) holds the statements and makes the moves of the state table."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, time
from fnmatch import fnmatchcase
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

from .. import __version__
from ..clock import from_iso, iso
from ..errors import MassExit
from ..ledger import EnrolmentSync, Group, Ledger, step_records
from ..project.business_days import BusinessCalendar, parse_region
from ..project.config import Project
from ..project.models import Campaign, Goal
from ..project.schedule import (
    Planned,
    StepRecord,
    anchor_moment,
    campaign_is_open,
    in_holdout,
    upcoming,
)
from .export import AudienceLoader, PeopleStream, Person, Targeting, export_digest

log = logging.getLogger("ldmail.sync")

# People are staged this many at a time: large enough that SQLite's executemany does the
# work, small enough that a chunk's rows cost little memory.
CHUNK = 5000


@dataclass
class SyncResult:
    """What the sync changed."""

    enrolled: int = 0  # enrolments begun
    people: int = 0  # the people they are for (one person may join several campaigns)
    exited: int = 0
    vanished: int = 0


def goal_reached_at(ledger: Ledger, goal: Goal, now: datetime) -> dict[str, datetime]:
    """When each address first reached a goal; events after `now` have not happened yet."""
    reached: dict[str, datetime] = {}
    for event in ledger.goal_events(goal.event, iso(now)):
        if goal.object is None or fnmatchcase(event.object, goal.object):
            reached.setdefault(event.email, from_iso(event.occurred_at))
    return reached


def triggered_at(ledger: Ledger, campaign: Campaign, now: datetime
                 ) -> dict[str, list[tuple[datetime, str]]]:
    """Each address's rounds of a triggered campaign, earliest first: the first event of
    each object that matches the trigger, from the day the campaign starts (in its time
    zone) up to `now`."""
    trigger = campaign.trigger
    assert trigger is not None
    since = datetime.combine(campaign.starts, time(0), tzinfo=campaign.send_window.timezone)
    found: dict[str, list[tuple[datetime, str]]] = {}
    seen: set[tuple[str, str]] = set()
    for event in ledger.goal_events(trigger.event, iso(now)):  # earliest first
        if trigger.object is None or fnmatchcase(event.object, trigger.object):
            moment = from_iso(event.occurred_at)
            if moment >= since and (event.email, event.object) not in seen:
                seen.add((event.email, event.object))
                found.setdefault(event.email, []).append((moment, event.object))
    return found


def _next_rounds(project: Project, ledger: Ledger, now: datetime, only: str | None) -> None:
    """A triggered campaign (repeat: per-object) whose round is done starts again for the
    person's next object: day 0 at that object's first event."""
    for campaign_id, file in project.campaigns.items():
        trigger = file.model.trigger
        if trigger is None or trigger.repeat != "per-object" or \
                only not in (None, campaign_id) or not campaign_is_open(file.model, now):
            continue
        done = ledger.finished_rounds(campaign_id)
        if not done:
            continue
        rounds = triggered_at(ledger, file.model, now)
        reached = set(goal_reached_at(ledger, file.model.goal, now)) if file.model.goal else set()
        starts = []
        for email, had in done.items():
            if email in reached:  # past its goal: the sync ends the enrolment there
                continue
            upcoming = next(((at, target) for at, target in rounds.get(email, ())
                             if target not in had), None)
            if upcoming is not None:
                starts.append((email, iso(upcoming[0]), upcoming[1]))
        if starts:
            log.info("%s: %d new round(s) for people who met the trigger again", campaign_id,
                     ledger.next_round(campaign_id, starts))


def _resume_voided(project: Project, ledger: Ledger, now: datetime, only: str | None) -> None:
    """Campaigns whose goal says resume_when_voided take back the enrolments a goal event
    ended when an LRS voided that event and no other event reaches the goal."""
    for campaign_id, file in project.campaigns.items():
        goal = file.model.goal
        if goal is None or not goal.resume_when_voided or only not in (None, campaign_id):
            continue
        voided = {event.email for event in ledger.voided_goal_events(goal.event)
                  if goal.object is None or fnmatchcase(event.object, goal.object)}
        if voided:
            resumed = ledger.resume_voided(campaign_id,
                                           voided - set(goal_reached_at(ledger, goal, now)))
            if resumed:
                log.info("%s: %d enrolment(s) resumed: their goal event was voided",
                         campaign_id, resumed)


def _group(campaign_id: str, email: str, share: float) -> str:
    return Group.HOLDOUT if in_holdout(campaign_id, email, share) else Group.TREATMENT


def export_mark(project: Project, now: datetime) -> str:
    """Everything the staged export follows from: the export's bytes, the audiences, the
    campaigns and today's date (tenure_days counts from it)."""
    digest = hashlib.sha256(f"ldmail {__version__}\n".encode())
    digest.update(repr((project.settings.languages, project.settings.default_language,
                        project.audiences)).encode())
    for campaign_id, file in sorted(project.campaigns.items()):
        digest.update(f"\n{campaign_id}\n{file.model!r}".encode())
    digest.update(f"\n{now.date().isoformat()}\n".encode())
    digest.update(export_digest(project))
    return digest.hexdigest()


class _Stager:
    """Writes people, and the campaigns that target each, into the staging tables."""

    def __init__(self, run: EnrolmentSync, campaigns: list[tuple[str, Campaign]],
                 loader: AudienceLoader, now: datetime) -> None:
        self.run = run
        self.campaigns = [(campaign_id, campaign, Targeting(campaign, loader))
                          for campaign_id, campaign in campaigns]
        self.now = now
        # Day 0 by campaign, anchor value and time zone: few distinct ones for many people.
        self.anchors: dict[tuple[str, Any, ZoneInfo | None], str | None] = {}
        self.people: list[tuple[Any, ...]] = []
        self.targeted: list[tuple[Any, ...]] = []

    def add(self, person: Person) -> None:
        email, zone, country = person.email, person.timezone, person.country
        self.people.append((person.row, email, person.display_name, person.language,
                            person.persona, zone.key if zone else None,
                            str(country) if country else None))
        for campaign_id, campaign, targets in self.campaigns:
            if not targets(person):
                continue
            if campaign.anchor is None:
                anchor: str | None = ""  # the moment of enrolment, whenever that is
            else:
                value = person.attributes.get(campaign.anchor)
                key = (campaign_id, value, zone)
                try:
                    anchor = self.anchors[key]
                except KeyError:
                    moment = anchor_moment(campaign, value, self.now, zone)
                    anchor = self.anchors[key] = iso(moment) if moment is not None else None
            self.targeted.append((campaign_id, email, person.row, anchor, person.persona,
                                  person.language))
        if len(self.people) >= CHUNK:
            self.flush()

    def flush(self) -> None:
        self.run.stage(self.people, self.targeted)
        self.people.clear()
        self.targeted.clear()


def _stage_export(project: Project, run: EnrolmentSync, now: datetime) -> None:
    """Read the export into the sync's staging tables; duplicate rows are dropped there."""
    run.start_staging()
    people = PeopleStream(project, now.date())
    stager = _Stager(run,
                     [(campaign_id, file.model) for campaign_id, file in project.campaigns.items()],
                     people.loader, now)
    for person in people:
        stager.add(person)
    stager.flush()
    duplicates = run.finish_staging(rejected.email.strip().lower()
                                    for rejected in people.rejected if "@" in rejected.email)
    for row, email, first in duplicates:
        people.reject_duplicate(row, email, first)


def _fill_run_tables(project: Project, ledger: Ledger, run: EnrolmentSync, now: datetime,
                     only: str | None) -> None:
    scope = [(campaign_id, file.model) for campaign_id, file in project.campaigns.items()
             if only is None or campaign_id == only]
    run.scope([(campaign_id, campaign_is_open(campaign, now), campaign.holdout,
                campaign.trigger is not None) for campaign_id, campaign in scope])
    for campaign_id, campaign in scope:
        if campaign.trigger is not None:
            run.triggered((campaign_id, email, iso(rounds[0][0]), rounds[0][1])
                          for email, rounds in triggered_at(ledger, campaign, now).items())
        if campaign.goal is not None:
            run.reached((campaign_id, email)
                        for email in goal_reached_at(ledger, campaign.goal, now))
    run.keep_out_forgotten()


def sync(project: Project, ledger: Ledger, now: datetime, *, persist: bool,
         only: str | None = None, accept_exits: bool = False) -> SyncResult:
    """Bring enrolments in line with the export; with persist=False nothing is written.

    The export is read only when it, the audiences, the campaigns or the day changed since
    the last sync that was written; a sync that writes keeps what it read in the ledger.
    """
    result = SyncResult()
    mark = export_mark(project, now)
    run = ledger.enrolment_sync(iso(now), persist=persist, group=_group)
    restaged = run.staged_mark() != mark
    log.debug("export %s: %s", project.audiences.people.source,
              "read again (it, the audiences, the campaigns or the day changed)" if restaged
              else "not read: the staged rows match its fingerprint")
    if restaged:
        _stage_export(project, run, now)
    # The changes themselves are one transaction; one that writes holds the lock from its
    # first read, so nothing it read can change before it writes.
    if persist:
        _resume_voided(project, ledger, now, only)
        _next_rounds(project, ledger, now, only)
    grace = project.settings.exits.grace
    with ledger.transaction(immediate=persist):
        _fill_run_tables(project, ledger, run, now, only)
        result.exited = run.find_exits(iso(now - grace), no_grace=not grace)
        _guard_mass_exits(project, run, result, accept_exits)
        if persist:
            run.note_missing()
        if not persist:
            result.enrolled, result.people = run.enrol_in_run()
            return result
        result.enrolled, result.people = run.enrol()
        run.apply_exits()
        # Trusted from now on only if the export did not change while it was read (a new
        # size, inode or modification time makes export_digest read it again).
        if restaged and export_mark(project, now) == mark:
            run.trust_staged(mark)
    return result


MIN_VANISHED = 5  # fewer people than this vanishing never trips the guard


def _guard_mass_exits(project: Project, run: EnrolmentSync, result: SyncResult,
                      accept_exits: bool) -> None:
    """Stop (before anything is written) when too many people vanish from the export at once.

    A half-written or filtered export would otherwise end hundreds of campaigns for good.
    Counted: enrolments whose person went missing in this run (they leave after the grace
    period, or at once without one).
    """
    # Only the newly missing count: those missing for a while passed this check back then.
    vanishing = run.newly_missing()
    result.vanished = vanishing
    # A few people leaving a small campaign is ordinary: only a share AND a handful stop it.
    if accept_exits or vanishing < MIN_VANISHED:
        return
    active = run.active_in_scope()
    limit = project.settings.exits.max_share
    if vanishing <= limit * active:
        return
    people = project.audiences.people.source
    raise MassExit(
        f"{people} lacks the people of {vanishing} of {active} active enrolments "
        f"({vanishing / active:.0%}, more than the {limit:.0%} allowed): a truncated or "
        "half-written export would end their campaigns, so nothing was changed. Check the "
        "export; if these people really left, run 'ldmail send --accept-exits' once (or "
        "raise exits.max_share in ldmail.yaml)")


class Enrolment(NamedTuple):  # a tuple: made for every active enrolment of every run
    """One active enrolment after the sync, with the person's current row in the export."""

    campaign: str
    email: str
    group: str
    row: int
    persona: str | None
    language: str
    timezone: ZoneInfo | None
    country: str | None = None  # the export's country or region code (NL, DE-BY)
    occurrence: str | None = None  # a triggered campaign's round: the object it is for


def _history(text: str | None) -> dict[str, StepRecord]:
    history: dict[str, StepRecord] = {}
    for step, state, at, retry_at, attempts in step_records(text):
        history[step] = StepRecord(state, from_iso(at) if at else None,
                                   from_iso(retry_at) if retry_at else None, int(attempts))
    return history


def active_enrolments(project: Project, ledger: Ledger, now: datetime
                      ) -> Iterator[tuple[Enrolment, tuple[Planned, ...]]]:
    """Each active enrolment after the sync, with its steps still to go (none for holdout).

    People whose campaign, day 0, time zone, country and history are the same have the same
    steps at the same moments: those are worked out once (most people share them with
    thousands).
    """
    schedules: dict[tuple[str, str, str | None, str | None, str | None],
                    tuple[Planned, ...]] = {}
    zones: dict[str | None, ZoneInfo | None] = {None: None}
    calendars: dict[tuple[str, str | None], BusinessCalendar] = {}
    for campaign_id, email, group, row, persona, language, zone_key, country, anchor_at, \
            occurrence, history in ledger.synced_enrolments():
        zone = zones.get(zone_key)
        if zone is None and zone_key is not None:
            zone = zones[zone_key] = ZoneInfo(zone_key)
        enrolment = Enrolment(campaign_id, email, group, row, persona, language, zone, country,
                              occurrence)
        if group != Group.TREATMENT:
            yield enrolment, ()
            continue
        key = (campaign_id, anchor_at, zone_key, country, history)
        plans = schedules.get(key)
        if plans is None:
            if len(schedules) >= 100_000:  # distinct histories: keep the memo bounded
                schedules.clear()
            closed = calendars.get((campaign_id, country))
            if closed is None:
                closed = calendars[(campaign_id, country)] = \
                    project.business_calendar(campaign_id).for_person(
                        parse_region(country) if country else None)
            plans = schedules[key] = tuple(upcoming(
                project.campaigns[campaign_id].model, from_iso(anchor_at), _history(history),
                zone, now, closed))
        yield enrolment, plans
