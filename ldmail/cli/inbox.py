"""`ldmail inbox`: bounces and unsubscribe mails from the sender's mailbox, applied once."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated

import typer

from ..units import plural
from .options import (
    DbOption,
    NowOption,
    OutputFormat,
    OutputOption,
    ProjectOption,
    invocation,
    stop_on_signals,
)
from .output import console, escape, run_stamp

if TYPE_CHECKING:
    from ..inbox import InboxResult


def inbox(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show what would be applied; "
                                                             "change and move nothing.")] = False,
    output: OutputOption = OutputFormat.TABLE,
    db: DbOption = None,
    project: ProjectOption = None,
    now: NowOption = None,
    resume: Annotated[str | None, typer.Option(
        "--resume", metavar="DOMAIN", help="Send to DOMAIN again now: clear the sender-side "
        "bounces (SPF, DKIM, DMARC, blocks) that stopped it, once the sending domain is "
        "fixed; reads no mail.")] = None,
) -> None:
    """Apply bounces and unsubscribe mails from the sender's mailbox (cron-safe).

    Reads every mail in the folder named by inbox: in ldmail.yaml. A bounce that carries the
    Message-ID of a message ldmail sent marks it bounced (a permanent recipient-side reason
    also suppresses the address; a sender-side one, such as SPF, counts against the receiving
    domain); an unsubscribe mail suppresses the person for good. Both are moved to the done
    folder and applied once; bounces that prove nothing are counted once and moved too; other
    mails are left alone. SIGTERM or Ctrl-C stops between two mails (exit 1).
    """
    from ..inbox import read_inbox, resume_domain
    from ..project.config import load_project

    if resume is not None:
        with invocation(project, now) as inv:
            resumed = resume_domain(load_project(inv.root), resume, inv.now, db=db,
                                    dry_run=dry_run)
        console().print(escape(resumed.line()), soft_wrap=True)
        return
    with invocation(project, now) as inv, stop_on_signals() as stop:
        result = read_inbox(load_project(inv.root), inv.now, db=db, dry_run=dry_run, stop=stop)
    if output == OutputFormat.JSON:
        sys.stdout.write(result.to_json() + "\n")
    else:
        _print_inbox(result)
    if result.stopped:
        console(stderr=True).print(f"stopped early: {result.stopped}", soft_wrap=True)
        raise typer.Exit(1)


def _print_inbox(result: InboxResult) -> None:
    """The summary line, one line per handled mail, and where they went."""
    out = console()
    out.print(run_stamp(out) + escape(result.summary()), soft_wrap=True)
    for line in result.lines():
        out.print("  " + escape(line), soft_wrap=True)
    if result.moved:
        out.print(f"moved {plural(result.moved, 'mail', 'mails')} to "
                  f"{escape(result.done_folder)}", soft_wrap=True)
