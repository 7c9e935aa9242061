"""`ldmail plan`: the sends to come, person by person, without sending or writing anything."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from .audience import load_audience
from .config import Project
from .deliver import history_by_enrolment, ledger_path
from .enrolment import sync
from .ledger import ACTIVE, HOLDOUT, TREATMENT, Ledger
from .schedule import upcoming


@dataclass(frozen=True)
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
    sends: list[PlannedSend]
    new_enrolments: int
    holdout: int
    until: datetime


def build_plan(project: Project, now: datetime, days: int, *, db: Path | None = None,
               campaign: str | None = None) -> Plan:
    if campaign is not None:
        project.campaign(campaign)
    until = now + timedelta(days=days)
    ledger = Ledger(ledger_path(project, db), readonly=True)
    try:
        audience = load_audience(project, now.date())
        synced = sync(project, ledger, audience, now, persist=False, only=campaign)
        history = history_by_enrolment(ledger)
    finally:
        ledger.close()
    people = audience.by_email()
    sends: list[PlannedSend] = []
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
        for planned in upcoming(model, enrolment.anchor_at, history.get((campaign_id, email), {}),
                                person.timezone, now):
            if planned.send_at >= until:
                break
            sends.append(PlannedSend(planned.send_at, planned.send_at.astimezone(zone),
                                     campaign_id, planned.step.id, email, person.persona,
                                     person.language, planned.retry))
    sends.sort(key=lambda s: (s.send_at, s.campaign, s.email))
    return Plan(sends, len(synced.enrolled), holdout, until)
