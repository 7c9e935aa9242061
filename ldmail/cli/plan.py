"""`ldmail plan`: the sends to come, day by day, or one person's journey (--person)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from .options import (
    CampaignOption,
    DbOption,
    NowOption,
    OutputFormat,
    OutputOption,
    ProjectOption,
    invocation,
)
from .output import console, escape, print_sensitivities, sensitivity_dict

if TYPE_CHECKING:
    from rich.console import Console

    from ..delivery.plan import Journey, Plan
    from ..project.models import Transport


def plan(
    days: Annotated[int, typer.Option(help="How many days ahead to show.", min=1,
                                      metavar="N")] = 14,
    campaign: CampaignOption = None,
    show: Annotated[int, typer.Option(help="List at most this many sends.", metavar="N")] = 100,
    person: Annotated[str | None, typer.Option(
        help="One person's journey instead: each step sent, skipped or to come, with each "
             "condition (when:) answered for them now.", metavar="EMAIL")] = None,
    output: OutputOption = OutputFormat.TABLE,
    db: DbOption = None,
    project: ProjectOption = None,
    now: NowOption = None,
) -> None:
    """Who gets which step when; changes nothing."""
    from ..delivery.plan import build_plan
    from ..project.config import load_project

    if person is not None:
        _plan_person(person, output, db, project, now)
        return
    with invocation(project, now) as inv:
        loaded = load_project(inv.root)
        result = build_plan(loaded, inv.now, days, db=db, campaign=campaign, show=show)
    if output == OutputFormat.JSON:
        _write_json(result)
    else:
        _print_plan(result, loaded.settings.transport)


def _write_json(result: Plan) -> None:
    import json

    sys.stdout.write(json.dumps({
        "until": result.until.isoformat(), "total": result.total,
        "new_enrolments": result.new_enrolments, "holdout": result.holdout,
        "per_day": [{"day": day.isoformat(), "campaign": campaign_id, "step": step_id,
                     "messages": count} for (day, campaign_id, step_id), count
                    in sorted(result.per_day.items())],
        "first": [{"at": item.local.isoformat(), "campaign": item.campaign,
                   "step": item.step, "email": item.email, "persona": item.persona,
                   "language": item.language, "retry": item.retry,
                   "moved_from": None if item.shift is None
                   else item.shift.was.astimezone(item.local.tzinfo).isoformat(),
                   "moved_because": None if item.shift is None else item.shift.reason}
                  for item in result.first],
        "moved": [{"campaign": campaign_id, "step": step_id, "from": was.isoformat(),
                   "to": to.isoformat(), "because": reason, "messages": count}
                  for (campaign_id, step_id, was, to, reason), count
                  in sorted(result.moved.items())],
        "sensitivity": [sensitivity_dict(s) for s in result.sensitivities]},
        indent=2, ensure_ascii=False) + "\n")


def _print_plan(result: Plan, transport: Transport) -> None:
    from ..delivery.plan import moved_line, pace_notes

    out = console()
    _print_per_day(out, result)
    _print_first(out, result)
    for (campaign_id, step_id, was, to, reason), count in sorted(result.moved.items()):
        out.print(f"{campaign_id}/{step_id}: {count} send{'s' if count != 1 else ''} "
                  f"{escape(moved_line(was, to, reason))}", soft_wrap=True)
    out.print(f"{result.total} sends planned; {result.new_enrolments} people would be "
              f"enrolled now; {result.holdout} active holdout members are never mailed")
    for note in pace_notes(result, transport):
        out.print(note)
    print_sensitivities(result.sensitivities, out)
    for found in result.sensitivities:
        advice = found.advice()
        if advice is not None:
            out.print(f"[yellow]warning[/yellow]: {found.campaign}: hypothesis cannot be "
                      f"decided: {escape(advice)}", soft_wrap=True)


def _print_per_day(out: Console, result: Plan) -> None:
    from rich.table import Table

    per_day: dict[str, dict[str, int]] = {}
    for (day_date, campaign_id, step_id), count in sorted(result.per_day.items()):
        per_day.setdefault(day_date.strftime("%a %Y-%m-%d"), {})[f"{campaign_id}/{step_id}"] = \
            count
    summary = Table(title=f"Sends per day until {result.until:%Y-%m-%d}", title_justify="left")
    summary.add_column("day")
    summary.add_column("campaign/step")
    summary.add_column("messages", justify="right")
    for day, steps in per_day.items():
        for index, (key, count) in enumerate(sorted(steps.items())):
            summary.add_row(day if index == 0 else "", key, str(count))
    out.print(summary)


def _print_first(out: Console, result: Plan) -> None:
    """The earliest sends in full, each moved one with the day it would have gone."""
    from rich.table import Table

    from ..delivery.plan import short_day

    if not result.first:
        return
    table = Table(title=f"First {len(result.first)} of {result.total} sends",
                  title_justify="left")
    for column in ("when (local)", "campaign", "step", "person", "persona", "lang"):
        table.add_column(column)
    for item in result.first:
        moved = "" if item.shift is None else escape(
            f" (moved from {short_day(item.shift.was.astimezone(item.local.tzinfo))}: "
            f"{item.shift.reason})")
        table.add_row(item.local.strftime("%a %d %b %H:%M %Z"), item.campaign,
                      item.step + (" (retry)" if item.retry else "") + moved, item.email,
                      item.persona or "", item.language)
    out.print(table)


def _plan_person(who: str, output: OutputFormat, db: Path | None, project: Path | None,
                 now: str | None) -> None:
    """plan --person: one person's journey through every campaign they are or were in."""
    from ..delivery.plan import journey_of
    from ..project.config import load_project

    with invocation(project, now) as inv:
        journey = journey_of(load_project(inv.root), inv.now, who, db=db)
    if output == OutputFormat.JSON:
        import json

        sys.stdout.write(json.dumps([
            {"campaign": s.campaign, "step": s.step, "status": s.status,
             "at": None if s.at is None else s.at.isoformat(), "note": s.note,
             "variant": s.variant} for s in journey.steps], indent=2, ensure_ascii=False)
            + "\n")
    else:
        _print_journey(journey)


def _print_journey(journey: Journey) -> None:
    from rich.table import Table

    from ..clock import shown

    out = console()
    if not journey.steps:
        out.print("No campaign has or plans anything for this address.")
        return
    table = Table(title=f"Journey of {journey.address}", title_justify="left")
    for column in ("campaign", "step", "status", "when", "why / condition"):
        table.add_column(column, overflow="fold")
    for item in journey.steps:
        step = item.step + (f" (variant {item.variant})" if item.variant else "")
        table.add_row(item.campaign, step, item.status,
                      shown(item.at, item.zone) if item.at else "", escape(item.note))
    out.print(table)
