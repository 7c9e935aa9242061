"""`ldmail plan`: the sends to come, person by person, without sending or writing anything."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import overload
from zoneinfo import ZoneInfo

from .audience import load_audience
from .config import Project
from .deliver import history_by_enrolment
from .enrolment import sync
from .ledger import ACTIVE, HOLDOUT, TREATMENT, Ledger
from .schedule import upcoming


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


class Sends(Sequence[PlannedSend]):
    """Planned sends in time order, kept as small tuples; a PlannedSend is made when read.

    A plan for a million learners holds millions of sends: as objects with their own local
    date-times they would take gigabytes.
    """

    def __init__(self, rows: list[tuple[int, str, str, int, _Kind]]) -> None:
        rows.sort()
        self._rows = rows
        self._moments: dict[int, datetime] = {}
        self._locals: dict[tuple[int, ZoneInfo], datetime] = {}

    def _make(self, row: tuple[int, str, str, int, _Kind]) -> PlannedSend:
        epoch, campaign, email, _, (step, persona, language, retry, zone) = row
        moment = self._moments.get(epoch)
        if moment is None:
            moment = self._moments[epoch] = _EPOCH + timedelta(microseconds=epoch)
        local = self._locals.get((epoch, zone))
        if local is None:
            local = self._locals[(epoch, zone)] = moment.astimezone(zone)
        return PlannedSend(moment, local, campaign, step, email, persona, language, retry)

    def __len__(self) -> int:
        return len(self._rows)

    @overload
    def __getitem__(self, index: int) -> PlannedSend: ...

    @overload
    def __getitem__(self, index: slice) -> list[PlannedSend]: ...

    def __getitem__(self, index: int | slice) -> PlannedSend | list[PlannedSend]:
        if isinstance(index, slice):
            return [self._make(row) for row in self._rows[index]]
        return self._make(self._rows[index])

    def __iter__(self) -> Iterator[PlannedSend]:
        return map(self._make, self._rows)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
# (step id, persona, language, retry, time zone): what many sends have in common.
_Kind = tuple[str, "str | None", str, bool, ZoneInfo]


@dataclass
class Plan:
    sends: Sequence[PlannedSend]
    new_enrolments: int
    holdout: int
    until: datetime


def build_plan(project: Project, now: datetime, days: int, *, db: Path | None = None,
               campaign: str | None = None) -> Plan:
    if campaign is not None:
        project.campaign(campaign)
    until = now + timedelta(days=days)
    with Ledger.of(project, db, readonly=True) as ledger:
        audience = load_audience(project, now.date())
        synced = sync(project, ledger, audience, now, persist=False, only=campaign)
        history = history_by_enrolment(ledger)
    people = audience.by_email()
    rows: list[tuple[int, str, str, int, _Kind]] = []
    kinds: dict[_Kind, _Kind] = {}
    holdout = 0
    for (campaign_id, email), enrolment in synced.enrolments.items():
        if enrolment.state != ACTIVE or (campaign and campaign_id != campaign):
            continue
        if enrolment.group == HOLDOUT:
            holdout += 1
            continue
        person = people.get(email)
        if person is None or enrolment.group != TREATMENT:
            continue
        model = project.campaigns[campaign_id].model
        zone = person.timezone or model.send_window.timezone
        plans = upcoming(model, enrolment.anchor_at, history.get((campaign_id, email), {}),
                         person.timezone, now)
        for position, planned in enumerate(plans):
            if planned.send_at >= until:
                break
            kind: _Kind = (planned.step.id, person.persona, person.language, planned.retry, zone)
            rows.append(((planned.send_at - _EPOCH) // _MICROSECOND, campaign_id, email, position,
                         kinds.setdefault(kind, kind)))
    return Plan(Sends(rows), len(synced.enrolled), holdout, until)
