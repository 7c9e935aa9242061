"""What learners did, from outside: `events import` and `events pull` record goal events from
the LMS or an LRS, `survey import` the answers to a campaign's evaluation survey."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..units import plural
from .options import (
    DbOption,
    EventKind,
    NowOption,
    ProjectOption,
    complete_campaign,
    invocation,
    stop_on_signals,
)
from .output import console, escape, print_error

# How many skipped rows or statements are listed one by one.
LISTED = 50

events_app = typer.Typer(help="Import goal events from the LMS or an LRS.",
                         no_args_is_help=True)
survey_app = typer.Typer(help="Import answers to a campaign's evaluation survey.",
                         no_args_is_help=True)


@events_app.command("import")
def events_import(
    file: Annotated[Path, typer.Argument(help="LMS CSV export, or xAPI statements (.json).",
                                         dir_okay=False)],
    kind: Annotated[EventKind, typer.Option("--kind", help="The file's kind (auto: from its "
                                             "extension).")] = EventKind.AUTO,
    db: DbOption = None,
    project: ProjectOption = None,
    now: NowOption = None,
) -> None:
    """Record goal events from a file.

    Re-importing a file adds nothing twice; bad rows and statements are listed by position.
    """
    from ..measurement.events import import_events_file
    from ..project.config import load_project

    with invocation(project, now) as inv:
        result = import_events_file(load_project(inv.root), file, kind=kind, db=db)
    out = console()
    out.print(f"{result.source} ({result.kind}): {result.added} event(s) added, "
              f"{result.already_known} already recorded, {len(result.skipped)} skipped")
    for skipped in result.skipped[:LISTED]:
        out.print(f"  {skipped.position}: {escape(skipped.reason)}", soft_wrap=True)
    if len(result.skipped) > LISTED:
        out.print(f"  … and {len(result.skipped) - LISTED} more")
    if result.empty:
        print_error(f"no row of {result.source} could be imported; fix the file (see the "
                    "reasons above) and import it again", colon=True)
        raise typer.Exit(1)


@events_app.command("pull")
def events_pull(
    db: DbOption = None,
    project: ProjectOption = None,
    now: NowOption = None,
) -> None:
    """Record goal events from the Learning Record Store named by lrs: in ldmail.yaml.

    Reads only the statements stored since the last pull (cron-safe); a statement already
    recorded is not added twice, malformed ones are listed by position and id. Exits 1 when
    the LRS refuses the credentials or keeps failing (the cursor then stays where it was).
    """
    from ..measurement.lrs import pull_project
    from ..project.config import load_project

    with invocation(project, now) as inv, stop_on_signals() as stop:
        result = pull_project(load_project(inv.root), inv.now, db=db, stop=stop)
    out = console()
    out.print(escape(result.summary()), soft_wrap=True)
    listed = result.notes + result.skipped
    for skipped in listed[:LISTED]:
        out.print(f"  {escape(skipped.position)}: {escape(skipped.reason)}", soft_wrap=True)
    if len(listed) > LISTED:
        out.print(f"  … and {len(listed) - LISTED} more")


@survey_app.command("import")
def survey_import(
    file: Annotated[Path, typer.Argument(help="Microsoft Forms or Google Forms CSV export.",
                                         dir_okay=False)],
    campaign: Annotated[str | None, typer.Option(
        "--campaign", "-c", help="The campaign the survey belongs to [default: the only one "
        "with a survey: block].", metavar="CAMPAIGN", autocompletion=complete_campaign)]
    = None,
    db: DbOption = None,
    project: ProjectOption = None,
    now: NowOption = None,
) -> None:
    """Record the answers to a campaign's fit question ("did the training fit me").

    The campaign's survey: block names the export's columns. Re-importing a file adds
    nothing twice; bad rows are listed by row number and skipped.
    """
    from ..measurement.survey import import_survey_file
    from ..project.config import load_project

    with invocation(project, now) as inv:
        result = import_survey_file(load_project(inv.root), campaign, file, inv.now, db=db)
    out = console()
    for skipped in result.skipped[:LISTED]:
        out.print(f"{escape(result.source)} {skipped.position}: {escape(skipped.reason)}",
                  soft_wrap=True)
    if len(result.skipped) > LISTED:
        out.print(f"… and {len(result.skipped) - LISTED} more rows skipped")
    out.print(f"imported {plural(result.added, 'answer', 'answers')} "
              f"({result.already_known} already known), "
              f"{plural(len(result.skipped), 'row', 'rows')} skipped")
    if result.empty:
        reason = " (see the reasons above)" if result.skipped else ""
        print_error(f"no row of {result.source} could be imported{reason}; fix the file and "
                    "import it again", colon=True)
        raise typer.Exit(1)
