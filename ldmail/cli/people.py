"""One person: what the ledger holds for them (`history`), opting them out (`suppress`), and
erasing them (`forget`)."""

from __future__ import annotations

import sys
from datetime import tzinfo
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from .options import DbOption, NowOption, OutputFormat, ProjectOption, invocation
from .output import console, escape, local

if TYPE_CHECKING:
    from rich.console import Console

    from ..ledger import PersonHistory

EmailArgument = Annotated[str, typer.Argument(help="The person's e-mail address.",
                                              metavar="EMAIL")]


def history(
    email: EmailArgument,
    output: Annotated[OutputFormat, typer.Option("--format", help="Output format.")]
    = OutputFormat.TABLE,
    db: DbOption = None,
    project: ProjectOption = None,
    now: NowOption = None,
) -> None:
    """Everything the ledger holds for one person."""
    from ..audience.privacy import history_of
    from ..project.config import load_project

    with invocation(project, now) as inv:
        loaded = load_project(inv.root)
        record = history_of(loaded, email, db=db)
    if output == "json":
        import dataclasses
        import json

        sys.stdout.write(json.dumps(dataclasses.asdict(record.history), indent=2) + "\n")
        return
    out = console()
    if not record.history:
        # Not echoing the address: after `forget`, no output may show it again.
        out.print("The ledger holds nothing for this address.")
        return
    _print_history(out, record.address, record.history, loaded.settings.timezone)


def _print_history(out: Console, address: str, found: PersonHistory, zone: tzinfo) -> None:
    from rich.table import Table

    from ..ledger import INBOX

    table = Table(title=f"Enrolments of {address}", title_justify="left")
    for column in ("campaign", "enrolled", "group", "persona", "state", "reason"):
        table.add_column(column)
    for enrolment in found.enrolments:
        table.add_row(enrolment.campaign, local(enrolment.enrolled_at, zone), enrolment.grp,
                      enrolment.persona or "", enrolment.state, enrolment.exit_reason or "")
    out.print(table)
    _print_messages(out, address, found, zone)
    if found.events:
        table = Table(title=f"Learning events of {address}", title_justify="left")
        for column in ("event", "object", "when", "source", "voided"):
            table.add_column(column, overflow="fold")
        for event in found.events:
            table.add_row(event.event, event.object, local(event.occurred_at, zone),
                          event.source or "",
                          f"voided by the LRS, recorded {local(event.voided_at, zone)}"
                          if event.voided_at else "")
        out.print(table)
    for message in found.messages:
        if message.bounced_at:
            out.print(f"Bounced {local(message.bounced_at, zone)}: {message.campaign}/"
                      f"{message.step}: {escape(message.error or '')}", soft_wrap=True)
    if found.suppression is not None:
        source = " (a mail in the sender's mailbox)" if found.suppression.source == INBOX \
            else ""
        out.print(f"Suppressed since {local(found.suppression.created_at, zone)}: "
                  f"{escape(found.suppression.reason)}{source}", soft_wrap=True)


def _print_messages(out: Console, address: str, found: PersonHistory, zone: tzinfo) -> None:
    from rich.table import Table

    from ..delivery.plan import manager_note

    table = Table(title=f"Messages to {address}", title_justify="left")
    for column in ("campaign", "step", "state", "attempts", "due", "sent", "message-id",
                   "error"):
        table.add_column(column, overflow="fold")
    for message in found.messages:
        note = manager_note(message, address)
        step = message.step + (f" (variant {message.variant})" if message.variant else "") \
            + (f" ({note})" if note else "")
        table.add_row(message.campaign, step, message.state, str(message.attempts),
                      local(message.due_at, zone),
                      local(message.sent_at, zone) if message.sent_at else "",
                      message.message_id or "",
                      escape(message.error or ""))
    out.print(table)


def suppress(
    who: Annotated[str | None, typer.Argument(
        help="E-mail address, or the token from an unsubscribe mail.")] = None,
    reason: Annotated[str, typer.Option(help="Why, for the record.", metavar="TEXT")] = "opted out",
    file: Annotated[Path | None, typer.Option(
        "--file", help="Import a suppression or bounce list (CSV with an email column).",
        dir_okay=False)] = None,
    db: DbOption = None,
    project: ProjectOption = None,
    now: NowOption = None,
) -> None:
    """Opt a person out for good."""
    from ..audience.privacy import suppress_list, suppress_person
    from ..project.config import load_project

    if (who is None) == (file is None):
        raise typer.BadParameter("give an address (or token), or --file LIST")
    out = console()
    if file is not None:
        with invocation(project, now) as inv:
            result = suppress_list(load_project(inv.root), file, inv.now, db=db)
        out.print(f"{file}: {result.added} address(es) suppressed, {result.already} "
                  f"already suppressed, {len(result.skipped)} row(s) skipped")
        for line in result.skipped:
            out.print(f"  {escape(line)}", soft_wrap=True)
        return
    assert who is not None
    with invocation(project, now) as inv:
        done = suppress_person(load_project(inv.root), who, reason, inv.now, db=db)
    out.print(f"{done.email} is {'now' if done.added else 'already'} suppressed: no campaign "
              "mails it.")


def forget(
    email: EmailArgument,
    wait: Annotated[float, typer.Option(
        "--wait", help="Seconds to wait for running pulls and inbox runs, and for other "
        "programs reading the ledger, before giving up (a running send is always waited "
        "for).", min=0, metavar="SECONDS")] = 60.0,
    db: DbOption = None,
    project: ProjectOption = None,
    now: NowOption = None,
) -> None:
    """Erase a person's data; they stay suppressed."""
    from ..audience.privacy import forget_person
    from ..project.config import load_project

    def waiting() -> None:
        # Not echoing the address: no output of forget shows it.
        console(stderr=True).print(
            "The person is suppressed now, so the running send mails them nothing more; "
            "waiting for it to end before erasing (Ctrl-C leaves them suppressed; run forget "
            "again later)")

    with invocation(project, now) as inv:
        result = forget_person(load_project(inv.root), email, inv.now, db=db, wait=wait,
                               waiting=waiting)
    console().print(
        f"Forgotten: {result.rows} ledger row(s) now hold only a keyed hash, "
        f"{result.outbox_files} outbox file(s) and {result.preview_files} preview file(s) "
        "deleted. The person stays suppressed; remove them from the people export as well.")
