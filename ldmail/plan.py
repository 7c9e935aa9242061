"""`ldmail plan`: the sends to come, person by person, without sending or writing anything."""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from .config import Project
from .enrolment import Enrolment, active_enrolments, sync
from .ledger import HOLDOUT, Ledger
from .schedule import Planned


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


@dataclass
class Plan:
    first: list[PlannedSend]  # the earliest sends, in time order
    per_day: Counter[tuple[date, str, str]]  # sends by local day, campaign and step
    total: int
    new_enrolments: int
    holdout: int
    until: datetime


def build_plan(project: Project, now: datetime, days: int, *, db: Path | None = None,
               campaign: str | None = None, show: int = 100) -> Plan:
    """Every send until `days` from now, counted by day; the first `show` of them in full.

    A plan for a million learners holds millions of sends: they are counted as they are
    found and only the earliest few are kept.
    """
    if campaign is not None:
        project.campaign(campaign)
    until = now + timedelta(days=days)
    per_day: Counter[tuple[date, str, str]] = Counter()
    holdout = 0
    local_days: dict[tuple[datetime, ZoneInfo], datetime] = {}

    def sends(ledger: Ledger) -> Iterator[tuple[datetime, str, str, int, datetime, Enrolment,
                                                Planned]]:
        nonlocal holdout
        for enrolment, steps in active_enrolments(project, ledger, now):
            if enrolment.group == HOLDOUT:
                holdout += 1
                continue
            zone = enrolment.timezone or project.campaigns[enrolment.campaign].model \
                .send_window.timezone
            for position, planned in enumerate(steps):
                if planned.send_at >= until:
                    break
                local = local_days.get((planned.send_at, zone))
                if local is None:
                    local = local_days[(planned.send_at, zone)] = planned.send_at.astimezone(zone)
                per_day[(local.date(), enrolment.campaign, planned.step.id)] += 1
                # Ordered by time, campaign, address and position, which are never all
                # equal; a PlannedSend is only made for the few kept.
                yield (planned.send_at, enrolment.campaign, enrolment.email, position, local,
                       enrolment, planned)

    with Ledger.of(project, db, readonly=True) as ledger:
        synced = sync(project, ledger, now, persist=False, only=campaign)
        first = [PlannedSend(planned.send_at, local, enrolment.campaign, planned.step.id,
                             enrolment.email, enrolment.persona, enrolment.language,
                             planned.retry)
                 for _, _, _, _, local, enrolment, planned in heapq.nsmallest(show, sends(ledger))]
    return Plan(first, per_day, sum(per_day.values()), synced.enrolled, holdout, until)
