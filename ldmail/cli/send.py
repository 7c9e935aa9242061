"""Getting messages out: `send` once (from cron), `run` on an interval, and `retry` to requeue
held and failed messages."""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
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
    StepOption,
    invocation,
    stop_on_signals,
)
from .output import console, escape, log_to_stderr

if TYPE_CHECKING:
    from rich.console import Console

    from ..project.config import Project


def send(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show what would be sent; change "
                                                             "nothing.")] = False,
    campaign: CampaignOption = None,
    limit: Annotated[int | None, typer.Option(help="Send at most N messages this run.", min=0,
                                              metavar="N")]
    = None,
    resend_unknown: Annotated[bool, typer.Option(
        "--resend-unknown", help="Send again messages an interrupted run left unknown.")] = False,
    wait: Annotated[float, typer.Option(help="Seconds to wait for another running send.",
                                        metavar="SECONDS")] = 0,
    accept_exits: Annotated[bool, typer.Option(
        "--accept-exits", help="Proceed although many people vanished from the export at once "
        "(exits.max_share).")] = False,
    new_ledger: Annotated[bool, typer.Option(
        "--new-ledger", help="Start a new ledger although earlier runs wrote another (everyone "
        "is mailed again from the first step).")] = False,
    show: Annotated[int, typer.Option(
        help="With --dry-run, list the first N people who would get a message.", min=0)] = 0,
    pull: Annotated[bool, typer.Option(
        "--pull", help="First record new goal events from the LRS (lrs: in ldmail.yaml); a "
        "failed pull is reported, not fatal.")] = False,
    allow_past: Annotated[bool, typer.Option(
        "--allow-past", help="Send at a --now before an earlier run's (a rehearsal on a copy "
        "of the ledger).")] = False,
    output: OutputOption = OutputFormat.TABLE,
    db: DbOption = None,
    project: ProjectOption = None,
    now: NowOption = None,
) -> None:
    """Enrol and deliver what is due now (cron-safe).

    Enrols newly matching people, then delivers every due step through the configured
    transport. Exits 1 when a message failed, was held or became unknown in this run (a reply
    lost after the whole message went out, or a claim a killed run left), or the run stopped;
    unknown messages an earlier run already reported do not change the exit code.
    """
    from ..delivery.send import send as run_send
    from ..errors import LedgerBusy
    from ..project.config import load_project
    from .summary import print_summary

    with invocation(project, now) as inv:
        loaded = load_project(inv.root)
        with _sending(loaded, db, inv.now, pull=pull, dry_run=dry_run) as (stop, advance):
            try:
                summary = run_send(loaded, inv.now, db=db, dry_run=dry_run, campaign=campaign,
                                   limit=limit, resend_unknown=resend_unknown, wait=wait,
                                   progress=advance, stop=stop, accept_exits=accept_exits,
                                   new_ledger=new_ledger, show=show, allow_past=allow_past)
            except LedgerBusy as exc:  # another send is at work: not an error for cron
                console().print(str(exc), soft_wrap=True)
                return
    if output == OutputFormat.JSON:
        sys.stdout.write(summary.to_json() + "\n")
    else:
        print_summary(summary, loaded.settings.timezone)
    if not summary.ok:
        raise typer.Exit(1)


@contextmanager
def _sending(loaded: Project, db: Path | None, now: datetime, *, pull: bool, dry_run: bool
             ) -> Iterator[tuple[threading.Event, Callable[[int, int], None]]]:
    """A stop request on SIGTERM or Ctrl-C, a progress bar on a terminal (none in cron), and
    with --pull the LRS's new events first (a stop during the pull also stops the send)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    err = console(stderr=True)
    with stop_on_signals() as stop, Progress(
            TextColumn("sending"), BarColumn(), MofNCompleteColumn(), console=err,
            transient=True, disable=not err.is_terminal) as bar:
        task = bar.add_task("send", total=None)

        def advance(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        if pull:
            _pull_before_send(loaded, db, err, now, stop, dry_run)
        yield stop, advance


def _pull_before_send(loaded: Project, db: Path | None, err: Console, now: datetime,
                      stop: threading.Event, dry_run: bool) -> None:
    """send --pull: goal events from the LRS first; a failure is said, and sending goes on."""
    from ..measurement.lrs import pull_before_send

    if dry_run:
        err.print("note: a dry run does not pull from the LRS (a pull records "
                  "events); run 'ldmail events pull' to pull now")
        return
    attempt = pull_before_send(loaded, now, db=db, stop=stop)
    if attempt.result is None:
        err.print(f"warning: lrs pull failed, sending anyway: {escape(attempt.failure)}",
                  soft_wrap=True)
    else:
        err.print(escape(attempt.result.summary()), soft_wrap=True)


def retry(
    failed: Annotated[bool, typer.Option("--failed", help="Also failed messages (a 5xx reply, "
                                                          "or out of attempts).")] = False,
    campaign: CampaignOption = None,
    step: StepOption = None,
    db: DbOption = None,
    project: ProjectOption = None,
    now: NowOption = None,
) -> None:
    """Requeue held (and with --failed, failed) messages for the next send.

    Held messages go out by themselves once their cause is fixed; retry also makes them due
    at once and starts their attempts afresh. Failed messages are only ever resent this way.
    Unknown ones are resent with 'ldmail send --resend-unknown'.
    """
    from ..delivery.retry import requeue
    from ..project.config import load_project

    with invocation(project, now) as inv:
        loaded = load_project(inv.root)
        if campaign is not None:
            model = loaded.campaign(campaign)
            if step is not None and step not in {s.id for s in model.steps}:
                raise typer.BadParameter(f"campaign '{campaign}' has no step '{step}'",
                                         param_hint="--step")
        count = requeue(loaded, inv.now, failed=failed, campaign=campaign, step=step, db=db)
    what = "held or failed" if failed else "held"
    if not count:
        console().print(f"No {what} messages to requeue" + ("" if failed else
                        " (add --failed for failed ones)"))
        return
    console().print(f"{count} {what} message(s) requeued: the next 'ldmail send' sends them "
                    "once they render (it holds them again if the cause is not fixed)"
                    + ("" if failed else "; add --failed for failed ones"))


def run(
    interval: Annotated[str | None, typer.Option(
        help="Time between runs, e.g. 5m [default: run.interval in ldmail.yaml, or 5m].")] = None,
    runs: Annotated[int | None, typer.Option(help="Stop after this many runs.", min=1,
                                             metavar="N")] = None,
    db: DbOption = None,
    project: ProjectOption = None,
    now: NowOption = None,
) -> None:
    """Send on an interval until SIGTERM or Ctrl-C.

    Runs the send job in-process with APScheduler; a stop request lets the message in hand
    finish and be recorded.
    """
    from ..service.run import parse_interval, run_forever

    if not logging.getLogger("ldmail").handlers:  # --verbose set it up already
        log_to_stderr("ldmail", logging.INFO)
    log_to_stderr("apscheduler", logging.WARNING)
    with invocation(project, now) as inv:
        every = parse_interval(interval)
        run_forever(inv.root, every, db=db, start=inv.now if inv.simulated else None,
                    max_runs=runs)
