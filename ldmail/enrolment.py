"""Who is in which campaign: enrol newly matching people, let others leave, record goals."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from fnmatch import fnmatchcase
from typing import Any

from .audience import AudienceResult, Person
from .clock import from_iso, iso
from .config import Project
from .expressions import evaluate
from .ledger import ACTIVE, CONVERTED, HOLDOUT, LEFT, TREATMENT, Ledger
from .models import Campaign, Goal
from .privacy import FORGOTTEN
from .schedule import anchor_moment, campaign_is_open, in_holdout


@dataclass(frozen=True, slots=True)  # a million of them must fit in memory
class Enrolment:
    campaign: str
    email: str
    enrolled_at: datetime
    anchor_at: datetime
    group: str
    persona: str | None
    language: str
    state: str = ACTIVE
    exit_reason: str | None = None


@dataclass
class SyncResult:
    """Enrolments after the sync, and what changed."""

    enrolments: dict[tuple[str, str], Enrolment] = field(default_factory=dict)
    enrolled: list[Enrolment] = field(default_factory=list)
    exited: list[Enrolment] = field(default_factory=list)
    no_anchor: int = 0


def targets(campaign: Campaign, person: Person) -> bool:
    """Whether a person belongs to a campaign's audience."""
    personas = campaign.audience.personas
    if personas and person.persona not in personas:
        return False
    if campaign.audience.where and not evaluate(campaign.audience.where, person.attributes):
        return False
    return True


def load_enrolments(ledger: Ledger, people: Mapping[str, Person] | None = None
                    ) -> dict[tuple[str, str], Enrolment]:
    """Every enrolment in the ledger, by (campaign, address).

    Read row by row from the cursor (a list of a million dicts first would be the run's
    peak), with one string object per distinct campaign, group, persona, language and state,
    and the export's own object for each address: SQLite hands out a new string for every
    value of every row, and those would take more memory than the enrolments themselves.
    """
    found: dict[tuple[str, str], Enrolment] = {}
    shared: dict[Any, Any] = {}
    cursor = ledger.db.conn.execute(
        "SELECT campaign, email, enrolled_at, anchor_at, grp, persona, language, state,"
        " exit_reason FROM enrolments")
    for campaign, email, enrolled_at, anchor_at, grp, persona, language, state, reason in cursor:
        person = people.get(email) if people is not None else None
        if person is not None:
            email = person.email
        campaign = shared.setdefault(campaign, campaign)
        found[(campaign, email)] = Enrolment(
            campaign, email, from_iso(enrolled_at), from_iso(anchor_at),
            shared.setdefault(grp, grp), shared.setdefault(persona, persona),
            shared.setdefault(language, language) or "", shared.setdefault(state, state),
            reason)
    return found


def goal_reached_at(ledger: Ledger, goal: Goal, now: datetime) -> dict[str, datetime]:
    """When each address first reached a goal; events after `now` have not happened yet."""
    reached: dict[str, datetime] = {}
    for event in ledger.goal_events(goal.event, iso(now)):
        if goal.object is None or fnmatchcase(event["object"], goal.object):
            reached.setdefault(event["email"], from_iso(event["occurred_at"]))
    return reached


def _goal_index(ledger: Ledger, project: Project, now: datetime) -> dict[str, set[str]]:
    """For each campaign with a goal, the addresses that reached it by `now`."""
    return {campaign_id: set(goal_reached_at(ledger, file.model.goal, now))
            for campaign_id, file in project.campaigns.items() if file.model.goal is not None}


def sync(project: Project, ledger: Ledger, audience: AudienceResult, now: datetime,
         *, persist: bool, only: str | None = None) -> SyncResult:
    """Bring enrolments in line with the audience; with persist=False nothing is written."""
    people = audience.by_email()
    result = SyncResult(enrolments=load_enrolments(ledger, people))
    suppressed = ledger.suppressed()
    forgotten = {s.removeprefix(FORGOTTEN) for s in suppressed if s.startswith(FORGOTTEN)}
    if forgotten:
        # A forgotten person may still be in the HR export; their hash keeps them out.
        suppressed |= {p.email for p in audience.people
                       if ledger.address_hash(p.email) in forgotten}
    goals = _goal_index(ledger, project, now)
    for campaign_id, file in project.campaigns.items():
        if only is not None and campaign_id != only:
            continue
        campaign = file.model
        reached = goals.get(campaign_id, set())
        for key, enrolment in list(result.enrolments.items()):
            if enrolment.campaign != campaign_id or enrolment.state != ACTIVE:
                continue
            person = people.get(enrolment.email)
            reason = None
            state = LEFT
            if enrolment.email in reached:
                state, reason = CONVERTED, "goal reached"
            elif enrolment.email in suppressed:
                reason = "suppressed"
            elif person is None:
                reason = "no longer in the people export"
            elif not targets(campaign, person):
                reason = f"no longer in the audience (persona {person.persona or 'none'})"
            if reason is not None:
                changed = replace(enrolment, state=state, exit_reason=reason)
                result.enrolments[key] = changed
                result.exited.append(changed)
        if not campaign_is_open(campaign, now):
            continue
        for person in audience.people:
            key = (campaign_id, person.email)
            if key in result.enrolments or person.email in suppressed:
                continue
            if not targets(campaign, person):
                continue
            anchor_value = person.attributes.get(campaign.anchor) if campaign.anchor else None
            anchor = anchor_moment(campaign, anchor_value, now, person.timezone)
            if anchor is None:
                result.no_anchor += 1
                continue
            group = HOLDOUT if in_holdout(campaign_id, person.email, campaign.holdout) \
                else TREATMENT
            enrolment = Enrolment(campaign_id, person.email, now, anchor, group, person.persona,
                                  person.language)
            if person.email in reached:
                enrolment = replace(enrolment, state=CONVERTED,
                                    exit_reason="goal reached before enrolment")
            result.enrolments[key] = enrolment
            result.enrolled.append(enrolment)
    if persist:
        _write(ledger, audience, result, now)
    return result


def _write(ledger: Ledger, audience: AudienceResult, result: SyncResult, now: datetime) -> None:
    # Generators, not lists: with a million people the parameter lists alone would take
    # hundreds of megabytes. Rows go in address order, so the indexes grow at their ends.
    stamp = iso(now)
    with ledger.transaction() as db:
        db.conn.executemany(
            "INSERT INTO people (email, name, language, persona, timezone, first_seen, last_seen)"
            " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (email) DO UPDATE SET name = excluded.name,"
            " language = excluded.language, persona = excluded.persona,"
            " timezone = excluded.timezone, last_seen = excluded.last_seen",
            ((p.email, p.display_name, p.language, p.persona,
              p.timezone.key if p.timezone else None, stamp, stamp)
             for p in sorted(audience.people, key=_email)))
        db.conn.executemany(
            "INSERT OR IGNORE INTO enrolments (campaign, email, enrolled_at, anchor_at, grp,"
            " persona, language, state, exit_reason, exited_at) VALUES (?,?,?,?,?,?,?,?,?,?)",
            ((e.campaign, e.email, iso(e.enrolled_at), iso(e.anchor_at), e.group, e.persona,
              e.language, e.state, e.exit_reason, stamp if e.state != ACTIVE else None)
             for e in sorted(result.enrolled, key=_campaign_email)))
        db.conn.executemany(
            "UPDATE enrolments SET state = ?, exit_reason = ?, exited_at = ? "
            "WHERE campaign = ? AND email = ? AND state = 'active'",
            ((e.state, e.exit_reason, stamp, e.campaign, e.email) for e in result.exited))


def _email(person: Person) -> str:
    return person.email


def _campaign_email(enrolment: Enrolment) -> tuple[str, str]:
    return enrolment.campaign, enrolment.email
