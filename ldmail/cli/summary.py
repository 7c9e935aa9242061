"""A send's summary as cron mails it: what went out on stdout, what needs a look on stderr."""

from __future__ import annotations

from datetime import tzinfo
from typing import TYPE_CHECKING

from ..units import plural
from .output import console, escape, local, run_stamp

if TYPE_CHECKING:
    from rich.console import Console

    from ..delivery.send import SendSummary

# How many unknown, held and failed messages are listed one by one.
LISTED = 20
# Where the summary says messages went, by the transport's kind.
WENT_TO = {"smtp": "messages went to the SMTP server {}",
           "graph": "messages went to Microsoft Graph at {} (sendMail)",
           "outbox": "messages went to the outbox folder {} (one .eml file each)"}


def print_summary(summary: SendSummary, zone: tzinfo) -> None:
    out, err = console(), console(stderr=True)
    verb = "would send" if summary.dry_run else "sent"
    out.print(f"{run_stamp(out)}{verb} {summary.sent} · waiting for send window "
              f"{summary.waiting_window} · retry later {summary.deferred} · failed "
              f"{summary.failed} · unknown {summary.unknown_total}")
    _print_tables(out, summary)
    _print_timing(out, summary, zone)
    _print_skips(out, summary)
    details = _details(summary, zone)
    if details:
        out.print("; ".join(details))
    for hold in summary.domain_holds:
        err.print("warning: " + escape(hold.line(local(hold.resumes_by, zone))), soft_wrap=True)
    _warn_unknown(err, summary)
    _warn_held(err, summary)
    for failure in summary.failures[:LISTED]:
        err.print(f"failed: {failure.campaign}/{failure.step} to {failure.email}: "
                  f"{escape(failure.reason)}")
    if len(summary.failures) > LISTED:
        err.print(f"… and {len(summary.failures) - LISTED} more failures (see 'ldmail history')")
    if summary.conditions_held:
        from ..sandbox.budget import CONDITION_SECONDS_ENV

        err.print(f"held: {summary.conditions_held} due step(s) whose when: condition was not "
                  f"answered: the run's {summary.condition_seconds:g} s for conditions "
                  f"({CONDITION_SECONDS_ENV}) ran out; the next run tries them again; make the "
                  "slow condition simpler")
    if summary.stopped:
        err.print(f"stopped early: {summary.stopped}")


def _print_tables(out: Console, summary: SendSummary) -> None:
    """A dry run's messages by campaign and step, and the first people who would get one."""
    from rich.table import Table

    if summary.dry_run and summary.steps:
        table = Table(title="Would send, by campaign and step", title_justify="left")
        for column in ("campaign", "step", "messages"):
            table.add_column(column, justify="right" if column == "messages" else "left")
        for campaign_id, step_id, count in summary.step_counts():
            table.add_row(campaign_id, step_id, str(count))
        out.print(table)
    if summary.first:
        table = Table(title=f"The first {len(summary.first)} of them", title_justify="left")
        for column in ("campaign", "step", "person", "address"):
            table.add_column(column)
        for recipient in summary.first:
            table.add_row(recipient.campaign, recipient.step, recipient.name, recipient.email)
        out.print(table)


def _print_timing(out: Console, summary: SendSummary, zone: tzinfo) -> None:
    """Where the messages went, and when the rest goes."""
    if summary.destination and summary.sent:
        out.print(WENT_TO[summary.destination.kind].format(summary.destination.where))
    if summary.dry_run and summary.last_due_at and summary.sent:
        out.print(f"at the transport's rate the last of these {summary.sent} goes out "
                  f"{local(summary.last_due_at, zone)}")
    if summary.waiting_window and summary.window_opens:
        out.print(f"{summary.waiting_window} due message(s) wait for the send window, which "
                  f"opens {local(summary.window_opens, zone)} for the first of them")


def _print_skips(out: Console, summary: SendSummary) -> None:
    if summary.skipped:
        verb = "would skip" if summary.dry_run else "skipped"
        out.print(f"{verb} {plural(summary.skipped, 'step', 'steps')} whose when: condition "
                  "is false or whose manager cannot be mailed (ldmail history shows each with "
                  "its reason)")
        for skip in summary.skips[:5]:
            out.print(f"  {escape(skip.campaign)}/{escape(skip.step)} for {skip.email}: "
                      f"{escape(skip.reason)}", soft_wrap=True)
    if summary.waiting_condition:
        out.print(f"{summary.waiting_condition} due message(s) wait for their when: condition "
                  "(wait_until)")


def _details(summary: SendSummary, zone: tzinfo) -> list[str]:
    """Enrolments begun and ended, and messages held back: one line, parts apart by `;`."""
    details = []
    if summary.enrolled or summary.exited:
        people = plural(summary.people_enrolled, "person", "people")
        enrolments = plural(summary.enrolled, "enrolment", "enrolments")
        ended = plural(summary.exited, "enrolment", "enrolments")
        details.append(f"would enrol {people} ({enrolments}), {ended} would end"
                       if summary.dry_run else f"enrolled {people} ({enrolments}), "
                       f"{ended} ended")
    if summary.missing:
        details.append(f"{summary.missing} enrolment(s) now missing from the export (they "
                       "continue if back within exits.grace)")
    if summary.held:
        details.append(f"{len(summary.held)} held (not rendered)")
    if summary.held_by_limit:
        details.append(f"{summary.held_by_limit} held back by --limit")
    if summary.held_by_cap:
        details.append(f"{summary.held_by_cap} held back by the daily cap" + (
            f" (room again from {local(summary.cap_frees_at, zone)})" if summary.cap_frees_at
            else ""))
    if summary.requeued_unknown:
        details.append(f"{summary.requeued_unknown} unknown message(s) queued to resend")
    return details


def _warn_unknown(err: Console, summary: SendSummary) -> None:
    """Messages that may or may not have arrived, and how to find out."""
    lost = len(summary.unknown) - summary.unknown_found
    if summary.unknown_found:
        err.print(f"warning: {summary.unknown_found} message(s) were being sent when an earlier "
                  "run stopped; they may or may not have arrived and are marked unknown.")
    if lost:
        err.print(f"warning: {lost} message(s) went out whole but the server's reply was lost; "
                  "they may or may not have arrived and are marked unknown.")
    for item in summary.unknown[:LISTED]:
        err.print(f"  unknown: {item.campaign}/{item.step} to {item.email}")
    if len(summary.unknown) > LISTED:
        err.print(f"  … and {len(summary.unknown) - LISTED} more (see 'ldmail history')")
    if summary.unknown:
        err.print("Check with 'ldmail history ADDRESS' (it shows the Message-ID to look for in "
                  "the server's log), then resend with 'ldmail send --resend-unknown' if they "
                  "did not arrive.")


def _warn_held(err: Console, summary: SendSummary) -> None:
    """Campaigns that do not render, and messages held alike, grouped by step and reason."""
    for campaign_id, problem in summary.broken.items():
        count = sum(1 for item in summary.held if item.campaign == campaign_id)
        err.print(f"not sent: campaign '{campaign_id}' does not render: {escape(problem)}")
        err.print(f"  its {count} due message(s) are held, not failed: fix the campaign (see "
                  "'ldmail validate') and the next run sends them")
    alike = summary.held_alike()
    for item, emails in alike[:LISTED]:
        to = emails[0] if len(emails) == 1 else \
            f"{len(emails)} people ({', '.join(emails[:3])}{', …' if len(emails) > 3 else ''})"
        err.print(f"held: {item.campaign}/{item.step} to {to}: {escape(item.reason)}")
    if len(alike) > LISTED:
        err.print(f"… and {sum(len(emails) for _, emails in alike[LISTED:])} more held (see "
                  "'ldmail history')")
    if alike:
        err.print("Held messages are sent by the first run after the cause is fixed.")
