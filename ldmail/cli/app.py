"""The command line: parse options, call one core function, print the result."""

from __future__ import annotations

import io
import logging
import shlex
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime, tzinfo
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ..clock import wall_now

if TYPE_CHECKING:
    from rich.console import Console

    from ..content.preview import PreviewItem
    from ..delivery.send import SendSummary
    from ..errors import Problem
    from ..inbox import InboxResult
    from ..measurement.report import CampaignReport, Report
    from ..measurement.report_text import Words
    from ..measurement.sensitivity import Sensitivity
    from ..project.config import Project
    from ..project.models import Campaign

app = typer.Typer(
    name="ldmail",
    help="Drip e-mail campaigns for Learning & Development teams, as code.",
    no_args_is_help=True,
    add_completion=True,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
)

def _root(ctx: typer.Context) -> Path:
    from ..project.config import find_project

    project = ctx.params.get("project") or ctx.find_root().params.get("project")
    return Path(project) if project else (find_project(Path.cwd()) or Path("."))


def _complete_campaign(ctx: typer.Context, incomplete: str) -> list[str]:
    from .completion import campaign_ids

    return campaign_ids(_root(ctx), incomplete)


def _complete_step(ctx: typer.Context, incomplete: str) -> list[str]:
    from .completion import step_ids

    return step_ids(_root(ctx), ctx.params.get("campaign"), incomplete)


def _complete_persona(ctx: typer.Context, incomplete: str) -> list[str]:
    from .completion import persona_names

    return persona_names(_root(ctx), incomplete)


ProjectOption = Annotated[
    Path | None,
    typer.Option("--project", "-p", help="Campaign repository folder [default: the nearest one "
                 "from the current folder up].", metavar="DIR",
                 file_okay=False, show_default=False),
]
NowOption = Annotated[
    str | None,
    typer.Option("--now", help="Pretend it is this ISO date-time, e.g. 2026-12-15T10:00 "
                 "(without an offset: in the project's timezone).",
                 metavar="DATE-TIME",
                 show_default=False),
]
class ValidateFormat(StrEnum):
    TEXT = "text"
    GITHUB = "github"
    JSON = "json"


class HistoryFormat(StrEnum):
    TABLE = "table"
    JSON = "json"


# audience, plan and send: a table for people, JSON for scripts.
OutputFormat = HistoryFormat
OutputOption = Annotated[OutputFormat, typer.Option(
    "--format", help="table for people, json for scripts.")]


class ReportFormat(StrEnum):
    TABLE = "table"
    CSV = "csv"
    JSON = "json"
    HTML = "html"


class ReportLanguage(StrEnum):
    EN = "en"
    NL = "nl"
    DE = "de"


class EventKind(StrEnum):
    AUTO = "auto"
    CSV = "csv"
    XAPI = "xapi"


FormatOption = Annotated[ValidateFormat, typer.Option("--format", help="Output format.")]


@dataclass(frozen=True)
class GlobalOptions:
    """`--project` and `--now` given before the command."""

    project: Path | None = None
    now: str | None = None


# Set by the app's callback at the start of every call, so a second call in the same process
# starts afresh. A context variable rather than click's current context: newer Typer releases
# carry a click of their own, whose context `click.get_current_context` does not see.
_GLOBAL_OPTIONS: ContextVar[GlobalOptions | None] = ContextVar("ldmail_global_options",
                                                               default=None)


def _global_options() -> GlobalOptions:
    return _GLOBAL_OPTIONS.get() or GlobalOptions()


def console(stderr: bool = False) -> Console:
    from rich.console import Console
    from rich.errors import MarkupError
    from rich.text import Text

    from ..sandbox.hygiene import visible

    class TerminalConsole(Console):
        """A console that shows control characters from data instead of obeying them.

        Names, addresses and file names come from HR exports and pull requests; an escape
        sequence in one must not retitle or clear the terminal. Every string printed (table
        cells included) passes through render_str; one that is not valid markup (a stray
        "[/b]" in a name) is shown as plain text rather than crashing the command.
        """

        def render_str(self, text: str, **options: Any) -> Text:
            try:
                return super().render_str(visible(text), **options)
            except MarkupError:
                return super().render_str(visible(text), **{**options, "markup": False})

    # Errors stay one line each (soft wrap) so `file:line: message` can be grepped.
    probe = Console(stderr=stderr)
    # Piped output (cron mail, CI logs) gets room for full addresses and timestamps.
    width = None if probe.is_terminal else 160
    return TerminalConsole(stderr=stderr, highlight=False, soft_wrap=stderr, width=width)


@dataclass(frozen=True)
class Invocation:
    """The project folder and the moment a command runs for."""

    found: Path | None  # None: no --project, and no campaign repository here or above
    now: datetime
    simulated: bool = False  # `now` is --now's, not the machine's clock

    @property
    def root(self) -> Path:
        from ..errors import ProjectNotFound

        if self.found is None:
            raise ProjectNotFound(Path.cwd(), searched_up=True)
        return self.found


def _project_root(project: Path | None) -> Path | None:
    """--project as given; else the nearest campaign repository from the current folder up."""
    from ..project.config import find_project

    chosen = project or _global_options().project
    return chosen if chosen is not None else find_project(Path.cwd())


@contextmanager
def invocation(project: Path | None, now: str | None) -> Iterator[Invocation]:
    """Resolve the global options and turn ldmail errors into one line and exit code 1."""
    from ..clock import parse_now
    from ..errors import ConfigError, LdmailError
    from ..project.config import project_timezone

    try:
        given = now if now is not None else _global_options().now
        root = _project_root(project)
        yield Invocation(root, parse_now(given, lambda: project_timezone(root)),
                         simulated=given is not None)
    except ConfigError as exc:
        err = console(stderr=True)
        for problem in exc.problems:
            err.print(f"[red]error[/red] {_escape(str(problem))}", markup=True, highlight=False)
        raise typer.Exit(1) from None
    except LdmailError as exc:
        console(stderr=True).print(f"[red]error[/red] {_escape(str(exc))}", markup=True)
        raise typer.Exit(1) from None


def _show_version(value: bool) -> None:
    if value:
        from .. import __version__

        sys.stdout.write(f"ldmail {__version__}\n")
        raise typer.Exit()


@app.callback(context_settings={"help_option_names": ["-h", "--help"]})
def main_options(project: ProjectOption = None, now: NowOption = None,
                 verbose: Annotated[bool, typer.Option(
                     "--verbose", "-v", help="Show why each run does what it does (the "
                     "quiet path, reading the export, which lane sent what).")] = False,
                 version: Annotated[bool, typer.Option(
                     "--version", help="Show the version and exit.", is_eager=True,
                     callback=_show_version)] = False) -> None:
    """Drip e-mail campaigns for Learning & Development teams, as code."""
    _GLOBAL_OPTIONS.set(GlobalOptions(project, now))
    core = logging.getLogger("ldmail")
    # Nothing left from an earlier call in the same process.
    core.handlers, core.level, core.propagate = [], logging.NOTSET, True
    if verbose:
        _log_to_stderr("ldmail", logging.DEBUG)


# ISO 8601 with the UTC offset: unambiguous in any locale and sortable in a log file.
LOG_TIME = "%Y-%m-%dT%H:%M:%S%z"


def _log_handler() -> logging.Handler:
    """Log lines on stderr: coloured with a time on every line in a terminal; plain
    `time level message` lines, unpadded, in a log file or cron mail."""
    import logging

    err = console(stderr=True)
    if err.is_terminal:
        from rich.logging import RichHandler

        return RichHandler(console=err, show_path=False, omit_repeated_times=False,
                           log_time_format=LOG_TIME)
    plain = _StderrHandler()
    plain.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s", LOG_TIME))
    return plain


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to sys.stderr as it is when a line is logged (a test runner, or a second call
    in the same process, may have replaced the one there was at set-up)."""

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        pass


def _log_to_stderr(name: str, level: int) -> None:
    """Send the `name` logger's lines from `level` up to stderr, and nowhere else."""
    logger = logging.getLogger(name)
    logger.handlers, logger.propagate = [_log_handler()], False
    logger.setLevel(level)


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)


SamplePeopleOption = Annotated[bool, typer.Option(
    "--sample-people", help="Render for stand-ins with plausible names only; the people "
    "export is not read (for CI: no HR data in git or in an artefact).")]


@app.command()
def validate(
    project: ProjectOption = None,
    now: NowOption = None,
    output: FormatOption = ValidateFormat.TEXT,
    sample_people: SamplePeopleOption = False,
) -> None:
    """Check every file and render every step.

    Checks every YAML file, expression and template, then renders each step for each persona
    and language; prints `file:line: message` and exits 1 on any error.
    """
    from ..content.validate import validate as run_validation

    with invocation(project, now) as inv:
        report = run_validation(inv.root, inv.now.date(), sample_people=sample_people)
    out = console()
    if output == "json":
        import json

        payload = {"ok": not report.problems,
                   "errors": [p.__dict__ for p in report.problems],
                   "warnings": [p.__dict__ for p in report.warnings],
                   "sensitivity": [_sensitivity_dict(s) for s in report.sensitivities]}
        sys.stdout.write(json.dumps(payload, indent=2) + "\n")
    elif output == "github":
        for level, items in (("error", report.problems), ("warning", report.warnings)):
            for p in items:
                sys.stdout.write(_workflow_command(level, p) + "\n")
    else:
        for p in report.problems:
            out.print(f"{_escape(str(p))}", soft_wrap=True)
        for p in report.warnings:
            out.print(f"warning: {_escape(str(p))}", soft_wrap=True)
        _print_sensitivities(report.sensitivities, out)
        if report.problems:
            out.print(f"[red]{len(report.problems)} error(s)[/red]; fix them and run "
                      "'ldmail validate' again")
        else:
            out.print(f"[green]ok[/green]: {report.campaigns} campaign(s), "
                      f"{report.renders} renders checked")
    if report.problems:
        raise typer.Exit(1)


def _sensitivity_dict(found: Sensitivity) -> dict[str, object]:
    return {"campaign": found.campaign, "mailed": found.mailed, "holdout": found.holdout,
            "holdout_share": found.holdout_share, "baseline": found.baseline,
            "detectable_uplift_pp": None if found.detectable is None
            else round(found.detectable * 100, 1),
            "expected_uplift_pp": None if found.expected is None
            else round(found.expected * 100, 1),
            "decidable": found.decidable}


def _print_sensitivities(found: list[Sensitivity], out: Console) -> None:
    """What each measured campaign can detect, from the people it would reach."""
    if not found:
        return
    out.print("Smallest uplift each campaign can detect with these people:")
    for item in found:
        mark = ("" if item.decidable is None else "  [green]hypothesis decidable[/green]"
                if item.decidable else "  [yellow]hypothesis not decidable[/yellow]")
        out.print(f"  {item.campaign}: {_escape(item.summary())}{mark}", soft_wrap=True)


def _workflow_command(level: str, problem: Problem) -> str:
    """A GitHub Actions annotation, escaped so no value can start a command of its own.

    A file name from a pull request could hold a line break followed by "::add-mask::" or
    similar; GitHub's rules escape % CR LF in the message and also : , in properties.
    """
    from ..sandbox.hygiene import visible

    def data(text: str) -> str:
        return visible(text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A"))

    def prop(text: str) -> str:
        return data(text).replace(":", "%3A").replace(",", "%2C")

    line = f",line={problem.line}" if problem.line else ""
    return f"::{level} file={prop(problem.file)}{line}::{data(problem.message)}"


def main() -> None:
    app()




@app.command()
def init(
    directory: Annotated[Path, typer.Argument(help="Folder to create the campaign repo in.",
                                              metavar="DIR")],
) -> None:
    """Create a campaign repo that works out of the box.

    Scaffolds settings, personas, one campaign, English and Dutch templates and sample people;
    the result passes `ldmail validate` untouched.
    """
    from ..project.scaffold import init_project

    with invocation(directory, None):
        written = init_project(directory)  # raises LdmailError for a path it cannot use
    out = console()
    out.print(f"Created {len(written)} files in {directory}:")
    for path in written:
        out.print(f"  {path.relative_to(directory)}")
    out.print(f"Next: cd {shlex.quote(str(directory))} && ldmail validate && ldmail preview -c "
              "welcome")


@app.command()
def audience(
    project: ProjectOption = None,
    now: NowOption = None,
    show: Annotated[int, typer.Option(help="List at most this many unmatched or rejected rows.",
                                      metavar="N")]
    = 50,
    output: OutputOption = OutputFormat.TABLE,
) -> None:
    """People per persona, unmatched and rejected rows.

    Reads the people export; every rejected row is listed with its row number and reason.
    """
    from collections import Counter

    from rich.table import Table

    from ..audience.export import scan_audience
    from ..project.config import load_project

    with invocation(project, now) as inv:
        loaded = load_project(inv.root)
        result = scan_audience(loaded, inv.now.date(), keep=show)
    if output == OutputFormat.JSON:
        import json

        personas = {name: {"label": persona.label,
                           "people": result.languages.get(name, Counter()).total(),
                           "languages": dict(sorted(result.languages.get(name, Counter())
                                                    .items()))}
                    for name, persona in loaded.audiences.personas.items()}
        sys.stdout.write(json.dumps({
            "source": result.source, "people": result.people, "personas": personas,
            "unmatched": result.unmatched_count,
            "unmatched_rows": [{"row": p.row, "email": p.email} for p in result.unmatched],
            "rejected": [{"row": r.row, "reason": r.reason} for r in result.rejected[:show]],
            "rejected_count": len(result.rejected),
            "notes": [{"row": n.row, "note": n.reason} for n in result.notes[:show]],
            "note_count": result.note_count}, indent=2, ensure_ascii=False) + "\n")
        return
    out = console()
    table = Table(title=f"Audience from {result.source}", title_justify="left")
    table.add_column("persona")
    table.add_column("label")
    table.add_column("people", justify="right")
    table.add_column("languages")
    for name, persona in loaded.audiences.personas.items():
        languages = result.languages.get(name, Counter())
        table.add_row(name, persona.label, str(languages.total()),
                      ", ".join(f"{k} {v}" for k, v in sorted(languages.items())))
    table.add_row("(no persona)", "", str(result.unmatched_count), "", style="yellow")
    out.print(table)
    out.print(f"{result.people} people loaded, {len(result.rejected)} row(s) rejected")
    if result.unmatched:
        out.print("\nPeople matching no persona (they receive no campaign that names personas):")
        for person in result.unmatched:
            out.print(f"  row {person.row}: {_escape(person.email)}")
    if result.rejected:
        out.print(f"\nRejected rows in {result.source} (fix them in the export; the others "
                  "were loaded):")
        for rejected in result.rejected[:show]:
            out.print(f"  row {rejected.row}: {_escape(rejected.reason)}", soft_wrap=True)
        if len(result.rejected) > show:
            out.print(f"  … and {len(result.rejected) - show} more (use --show)")
    if result.notes:
        out.print(f"\nRows read with a note in {result.source} (loaded as shown; fix the export "
                  "to be sure):")
        for noted in result.notes[:show]:
            out.print(f"  row {noted.row}: {_escape(noted.reason)}", soft_wrap=True)
        if result.note_count > show:
            out.print(f"  … and {result.note_count - show} more (use --show)")


@app.command()
def preview(
    named: DeprecatedCampaignArgument = None,
    campaign: Annotated[str | None, typer.Option(
        "--campaign", "-c", help="The campaign to show (its file name without .yaml).",
        metavar="CAMPAIGN", autocompletion=_complete_campaign)] = None,
    step: Annotated[str | None, typer.Option(help="Only this step id.", metavar="STEP",
                                             autocompletion=_complete_step)] = None,
    persona: Annotated[str | None, typer.Option(help="Only this persona.", metavar="PERSONA",
                                                autocompletion=_complete_persona)] = None,
    person: Annotated[str | None, typer.Option(help="Render for this person's address.",
                                               metavar="EMAIL")] = None,
    lang: Annotated[str | None, typer.Option(
        help="Language to render in: one of ldmail.yaml's languages.", metavar="LANG")] = None,
    html: Annotated[bool, typer.Option("--html", help="Also write each HTML part to a file.")]
    = False,
    out: Annotated[Path | None, typer.Option(
        "--out", help="Write a static HTML gallery of every campaign, step, persona and "
        "language to this folder (give no CAMPAIGN).", file_okay=False, metavar="DIR")] = None,
    sample_people: SamplePeopleOption = False,
    project: ProjectOption = None,
    now: NowOption = None,
) -> None:
    """Show what each persona (or one person) receives.

    Renders a campaign's steps to the terminal; --html writes the HTML part, and --out DIR
    writes an offline gallery of every campaign, step, persona and language.
    """

    from ..content.preview import build_preview
    from ..project.config import load_project

    campaign = _one_campaign("preview", named, campaign)
    if persona and person:
        raise typer.BadParameter("give --persona or --person, not both", param_hint="--person")
    if (campaign is None) == (out is None):
        raise typer.BadParameter("give -c CAMPAIGN, or --out DIR for the whole gallery")
    with invocation(project, now) as inv:
        loaded = load_project(inv.root)
        if out is not None:
            from ..content.gallery import write_gallery

            entries = write_gallery(loaded, out, inv.now.date(), sample_people=sample_people)
            console().print(f"Gallery of {len(entries)} messages written to {out / 'index.html'}")
            return
        assert campaign is not None
        items = build_preview(loaded, campaign, inv.now.date(), step_id=step, persona_id=persona,
                              email=person, language=lang, sample_people=sample_people)
        model = loaded.campaign(campaign)
    terminal = console()
    with invocation(project, now):  # writing a preview file can fail (a link in its place)
        _show_previews(terminal, items, campaign, model, inv.root if html else None,
                       for_person=person is not None)


def _show_previews(terminal: Console, items: list[PreviewItem], campaign: str, model: Campaign,
                   html_root: Path | None, *, for_person: bool = False) -> None:
    from rich.panel import Panel

    from ..content.preview import invite_summary, variant_summary, write_html

    if items and items[0].outside:
        console(stderr=True).print(
            f"note: '{campaign}' would not send these to "
            f"{_escape(items[0].about or items[0].recipient)}: "
            f"{_escape(items[0].outside)}; shown as they would read if it did")
    for item in items:
        who = item.to if item.real_person else f"{item.to} (sample person)"
        header = (f"From:      {model.sender}\nTo:        {who}\n"
                  + (f"Cc:        {item.cc}\n" if item.cc else "")
                  + f"Subject:   {item.rendered.subject}\nPreheader: {item.rendered.preheader}")
        if invite := invite_summary(model, item.step):
            header += f"\nInvite:    {invite}"
        if variant := variant_summary(item.step, item.variant, assigned=for_person):
            header += f"\nVariant:   {variant}"
        if item.branch:
            header += f"\nCondition: {item.branch}"
        if item.fallback:
            header += f"\nLanguage:  {item.fallback}"
        title = (f"{campaign} · step {item.step.id}"
                 f"{f' · variant {item.variant.id}' if item.variant else ''} · "
                 f"persona {item.persona or '(none)'} · {item.language}")
        terminal.print(Panel(_escape(header + "\n\n" + item.rendered.text.rstrip()),
                             title=_escape(title), title_align="left", expand=False))
        if html_root is not None:
            terminal.print(f"HTML written to {write_html(html_root, campaign, item)}")


DbOption = Annotated[
    Path | None,
    typer.Option("--db", help="Ledger file [default: .ldmail/ledger.db in the project].",
                 metavar="FILE",
                 dir_okay=False, show_default=False),
]
# preview and report once took the campaign as a plain argument; -c/--campaign, as everywhere
# else, is the form to write, and the old one still works.
DeprecatedCampaignArgument = Annotated[str | None, typer.Argument(
    help="Deprecated: write -c CAMPAIGN.", metavar="[CAMPAIGN]", show_default=False,
    autocompletion=_complete_campaign)]


def _one_campaign(command: str, named: str | None, campaign: str | None) -> str | None:
    if named is None:
        return campaign
    if campaign is not None and campaign != named:
        raise typer.BadParameter(f"two campaigns given ('{named}' and -c {campaign}); give "
                                 "one with -c", param_hint="-c")
    console(stderr=True).print(f"note: write 'ldmail {command} -c {_escape(named)}'; naming the "
                               "campaign without -c still works but is deprecated")
    return named


CampaignOption = Annotated[str | None, typer.Option("--campaign", "-c", help="Only this campaign.",
                                                    metavar="CAMPAIGN",
                                                    autocompletion=_complete_campaign)]


def _local(moment: str, zone: tzinfo) -> str:
    """An ISO UTC moment of the ledger in the project's time zone, with the zone's name."""
    from ..clock import from_iso, shown

    return shown(from_iso(moment), zone)


def _plural(count: int, one: str, many: str) -> str:
    return f"{count} {one if count == 1 else many}"


def _print_summary(summary: SendSummary, zone: tzinfo) -> None:
    from rich.table import Table

    out = console()
    # Cron appends run after run to one log: there each run's summary starts with its time.
    stamp = "" if out.is_terminal else wall_now().astimezone().strftime(LOG_TIME) + " "
    verb = "would send" if summary.dry_run else "sent"
    out.print(f"{stamp}{verb} {summary.sent} · waiting for send window {summary.waiting_window} · "
              f"retry later {summary.deferred} · failed {summary.failed} · "
              f"unknown {summary.unknown_total}")
    if summary.dry_run and summary.steps:
        table = Table(title="Would send, by campaign and step", title_justify="left")
        for column in ("campaign", "step", "messages"):
            table.add_column(column, justify="right" if column == "messages" else "left")
        for key, count in sorted(summary.steps.items()):
            campaign_id, _, step_id = key.partition("/")
            table.add_row(campaign_id, step_id, str(count))
        out.print(table)
    if summary.first:
        table = Table(title=f"The first {len(summary.first)} of them", title_justify="left")
        for column in ("campaign", "step", "person", "address"):
            table.add_column(column)
        for recipient in summary.first:
            table.add_row(recipient.campaign, recipient.step, recipient.name, recipient.email)
        out.print(table)
    if summary.destination and summary.sent:
        kind, where = summary.destination.kind, summary.destination.where
        out.print(f"messages went to the SMTP server {where}" if kind == "smtp" else
                  f"messages went to Microsoft Graph at {where} (sendMail)" if kind == "graph"
                  else f"messages went to the outbox folder {where} (one .eml file each)")
    if summary.dry_run and summary.last_due_at and summary.sent:
        out.print(f"at the transport's rate the last of these {summary.sent} goes out "
                  f"{_local(summary.last_due_at, zone)}")
    if summary.waiting_window and summary.window_opens:
        out.print(f"{summary.waiting_window} due message(s) wait for the send window, which "
                  f"opens {_local(summary.window_opens, zone)} for the first of them")
    if summary.skipped:
        verb = "would skip" if summary.dry_run else "skipped"
        out.print(f"{verb} {_plural(summary.skipped, 'step', 'steps')} whose when: condition "
                  "is false or whose manager cannot be mailed (ldmail history shows each with "
                  "its reason)")
        for skip in summary.skips[:5]:
            out.print(f"  {_escape(skip.campaign)}/{_escape(skip.step)} for {skip.email}: "
                      f"{_escape(skip.reason)}", soft_wrap=True)
    if summary.waiting_condition:
        out.print(f"{summary.waiting_condition} due message(s) wait for their when: condition "
                  "(wait_until)")
    details = []
    if summary.enrolled or summary.exited:
        people = _plural(summary.people_enrolled, "person", "people")
        enrolments = _plural(summary.enrolled, "enrolment", "enrolments")
        ended = _plural(summary.exited, "enrolment", "enrolments")
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
            f" (room again from {_local(summary.cap_frees_at, zone)})" if summary.cap_frees_at
            else ""))
    if summary.requeued_unknown:
        details.append(f"{summary.requeued_unknown} unknown message(s) queued to resend")
    if details:
        out.print("; ".join(details))
    err = console(stderr=True)
    for hold in summary.domain_holds:
        err.print("warning: " + _escape(hold.line(_local(hold.resumes_by, zone))), soft_wrap=True)
    lost = len(summary.unknown) - summary.unknown_found
    if summary.unknown_found:
        err.print(f"warning: {summary.unknown_found} message(s) were being sent when an earlier "
                  "run stopped; they may or may not have arrived and are marked unknown.")
    if lost:
        err.print(f"warning: {lost} message(s) went out whole but the server's reply was lost; "
                  "they may or may not have arrived and are marked unknown.")
    for item in summary.unknown[:20]:
        err.print(f"  unknown: {item.campaign}/{item.step} to {item.email}")
    if len(summary.unknown) > 20:
        err.print(f"  … and {len(summary.unknown) - 20} more (see 'ldmail history')")
    if summary.unknown:
        err.print("Check with 'ldmail history ADDRESS' (it shows the Message-ID to look for in "
                  "the server's log), then resend with 'ldmail send --resend-unknown' if they "
                  "did not arrive.")
    for campaign_id, problem in summary.broken.items():
        count = sum(1 for item in summary.held if item.campaign == campaign_id)
        err.print(f"not sent: campaign '{campaign_id}' does not render: {_escape(problem)}")
        err.print(f"  its {count} due message(s) are held, not failed: fix the campaign (see "
                  "'ldmail validate') and the next run sends them")
    alike = summary.held_alike()
    for item, emails in alike[:20]:
        to = emails[0] if len(emails) == 1 else \
            f"{len(emails)} people ({', '.join(emails[:3])}{', …' if len(emails) > 3 else ''})"
        err.print(f"held: {item.campaign}/{item.step} to {to}: {_escape(item.reason)}")
    if len(alike) > 20:
        err.print(f"… and {sum(len(emails) for _, emails in alike[20:])} more held (see "
                  "'ldmail history')")
    if alike:
        err.print("Held messages are sent by the first run after the cause is fixed.")
    for failure in summary.failures[:20]:
        err.print(f"failed: {failure.campaign}/{failure.step} to {failure.email}: "
                  f"{_escape(failure.reason)}")
    if len(summary.failures) > 20:
        err.print(f"… and {len(summary.failures) - 20} more failures (see 'ldmail history')")
    if summary.conditions_held:
        from ..sandbox.budget import CONDITION_SECONDS_ENV

        err.print(f"held: {summary.conditions_held} due step(s) whose when: condition was not "
                  f"answered: the run's {summary.condition_seconds:g} s for conditions "
                  f"({CONDITION_SECONDS_ENV}) ran out; the next run tries them again; make the "
                  "slow condition simpler")
    if summary.stopped:
        err.print(f"stopped early: {summary.stopped}")


@contextmanager
def stop_on_signals() -> Iterator[threading.Event]:
    """SIGTERM or Ctrl-C asks a send to stop after the message in hand, never inside it."""
    stop = threading.Event()

    def request_stop(signum: int, frame: object) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield stop
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _pull_before_send(loaded: Project, db: Path | None, err: Console, now: datetime,
                      stop: threading.Event) -> None:
    """send --pull: goal events from the LRS first; a failure is said, and sending goes on."""
    from ..measurement.lrs import pull_failure, pull_project

    try:
        result = pull_project(loaded, now, db=db, stop=stop)
    except Exception as exc:  # whatever ends the pull, the send goes on
        err.print(f"warning: lrs pull failed, sending anyway: {_escape(pull_failure(exc))}",
                  soft_wrap=True)
    else:
        err.print(_escape(result.summary()), soft_wrap=True)


@app.command()
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
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from ..delivery.send import send as run_send
    from ..errors import LedgerBusy
    from ..project.config import load_project

    with invocation(project, now) as inv:
        loaded = load_project(inv.root)
        err = console(stderr=True)
        with stop_on_signals() as stop, Progress(
                TextColumn("sending"), BarColumn(), MofNCompleteColumn(), console=err,
                transient=True, disable=not err.is_terminal) as bar:
            task = bar.add_task("send", total=None)

            def advance(done: int, total: int) -> None:
                bar.update(task, completed=done, total=total)

            if pull and not dry_run:  # a stop during the pull also stops the send
                _pull_before_send(loaded, db, err, inv.now, stop)
            elif pull:
                err.print("note: a dry run does not pull from the LRS (a pull records "
                          "events); run 'ldmail events pull' to pull now")
            try:
                summary = run_send(loaded, inv.now, db=db, dry_run=dry_run, campaign=campaign,
                                   limit=limit, resend_unknown=resend_unknown, wait=wait,
                                   progress=advance, stop=stop, accept_exits=accept_exits,
                                   new_ledger=new_ledger, show=show, allow_past=allow_past)
            except LedgerBusy as exc:
                console().print(str(exc), soft_wrap=True)
                return
    if output == OutputFormat.JSON:
        sys.stdout.write(summary.to_json() + "\n")
    else:
        _print_summary(summary, loaded.settings.timezone)
    if not summary.ok:
        raise typer.Exit(1)


@app.command()
def retry(
    failed: Annotated[bool, typer.Option("--failed", help="Also failed messages (a 5xx reply, "
                                                          "or out of attempts).")] = False,
    campaign: CampaignOption = None,
    step: Annotated[str | None, typer.Option("--step", help="Only this step id.", metavar="STEP",
                                             autocompletion=_complete_step)] = None,
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


@app.command()
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
    from rich.table import Table

    from ..delivery.plan import build_plan, moved_line, pace_notes, short_day
    from ..project.config import load_project

    if person is not None:
        _plan_person(person, output, db, project, now)
        return
    with invocation(project, now) as inv:
        loaded = load_project(inv.root)
        result = build_plan(loaded, inv.now, days, db=db, campaign=campaign, show=show)
    if output == OutputFormat.JSON:
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
            "sensitivity": [_sensitivity_dict(s) for s in result.sensitivities]},
            indent=2, ensure_ascii=False) + "\n")
        return
    out = console()
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
    if result.first:
        table = Table(title=f"First {len(result.first)} of {result.total} sends",
                      title_justify="left")
        for column in ("when (local)", "campaign", "step", "person", "persona", "lang"):
            table.add_column(column)
        for item in result.first:
            moved = "" if item.shift is None else _escape(
                f" (moved from {short_day(item.shift.was.astimezone(item.local.tzinfo))}: "
                f"{item.shift.reason})")
            table.add_row(item.local.strftime("%a %d %b %H:%M %Z"), item.campaign,
                          item.step + (" (retry)" if item.retry else "") + moved, item.email,
                          item.persona or "", item.language)
        out.print(table)
    for (campaign_id, step_id, was, to, reason), count in sorted(result.moved.items()):
        out.print(f"{campaign_id}/{step_id}: {count} send{'s' if count != 1 else ''} "
                  f"{_escape(moved_line(was, to, reason))}", soft_wrap=True)
    out.print(f"{result.total} sends planned; {result.new_enrolments} people would be "
              f"enrolled now; {result.holdout} active holdout members are never mailed")
    for note in pace_notes(result, loaded.settings.transport):
        out.print(note)
    _print_sensitivities(result.sensitivities, out)
    for found in result.sensitivities:
        advice = found.advice()
        if advice is not None:
            out.print(f"[yellow]warning[/yellow]: {found.campaign}: hypothesis cannot be "
                      f"decided: {_escape(advice)}", soft_wrap=True)


def _plan_person(who: str, output: OutputFormat, db: Path | None, project: Path | None,
                 now: str | None) -> None:
    """plan --person: one person's journey through every campaign they are or were in."""
    from rich.table import Table

    from ..clock import shown
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
        return
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
                      shown(item.at, item.zone) if item.at else "", _escape(item.note))
    out.print(table)


@app.command()
def history(
    email: Annotated[str, typer.Argument(help="The person's e-mail address.", metavar="EMAIL")],
    output: Annotated[HistoryFormat, typer.Option("--format", help="Output format.")]
    = HistoryFormat.TABLE,
    db: DbOption = None,
    project: ProjectOption = None,
    now: NowOption = None,
) -> None:
    """Everything the ledger holds for one person."""
    from rich.table import Table

    from ..audience.privacy import history_of
    from ..delivery.plan import manager_note
    from ..ledger import INBOX
    from ..project.config import load_project

    with invocation(project, now) as inv:
        loaded = load_project(inv.root)
        zone = loaded.settings.timezone
        record = history_of(loaded, email, db=db)
    address, found = record.address, record.history
    if output == "json":
        import dataclasses
        import json

        sys.stdout.write(json.dumps(dataclasses.asdict(found), indent=2) + "\n")
        return
    out = console()
    if not found:
        # Not echoing the address: after `forget`, no output may show it again.
        out.print("The ledger holds nothing for this address.")
        return
    table = Table(title=f"Enrolments of {address}", title_justify="left")
    for column in ("campaign", "enrolled", "group", "persona", "state", "reason"):
        table.add_column(column)
    for enrolment in found.enrolments:
        table.add_row(enrolment.campaign, _local(enrolment.enrolled_at, zone), enrolment.grp,
                      enrolment.persona or "", enrolment.state, enrolment.exit_reason or "")
    out.print(table)
    table = Table(title=f"Messages to {address}", title_justify="left")
    for column in ("campaign", "step", "state", "attempts", "due", "sent", "message-id",
                   "error"):
        table.add_column(column, overflow="fold")
    for message in found.messages:
        note = manager_note(message, address)
        step = message.step + (f" (variant {message.variant})" if message.variant else "") \
            + (f" ({note})" if note else "")
        table.add_row(message.campaign, step, message.state, str(message.attempts),
                      _local(message.due_at, zone),
                      _local(message.sent_at, zone) if message.sent_at else "",
                      message.message_id or "",
                      _escape(message.error or ""))
    out.print(table)
    if found.events:
        table = Table(title=f"Learning events of {address}", title_justify="left")
        for column in ("event", "object", "when", "source", "voided"):
            table.add_column(column, overflow="fold")
        for event in found.events:
            table.add_row(event.event, event.object, _local(event.occurred_at, zone),
                          event.source or "",
                          f"voided by the LRS, recorded {_local(event.voided_at, zone)}"
                          if event.voided_at else "")
        out.print(table)
    for message in found.messages:
        if message.bounced_at:
            out.print(f"Bounced {_local(message.bounced_at, zone)}: {message.campaign}/"
                      f"{message.step}: {_escape(message.error or '')}", soft_wrap=True)
    if found.suppression is not None:
        source = " (a mail in the sender's mailbox)" if found.suppression.source == INBOX \
            else ""
        out.print(f"Suppressed since {_local(found.suppression.created_at, zone)}: "
                  f"{_escape(found.suppression.reason)}{source}", soft_wrap=True)


@app.command()
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
        _log_to_stderr("ldmail", logging.INFO)
    _log_to_stderr("apscheduler", logging.WARNING)
    with invocation(project, now) as inv:
        every = parse_interval(interval)
        run_forever(inv.root, every, db=db, start=inv.now if inv.simulated else None,
                    max_runs=runs)


@app.command()
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
        console().print(_escape(resumed.line()), soft_wrap=True)
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
    # Cron appends run after run to one log: there each run's summary starts with its time.
    stamp = "" if out.is_terminal else wall_now().astimezone().strftime(LOG_TIME) + " "
    out.print(stamp + _escape(result.summary()), soft_wrap=True)
    for line in result.lines():
        out.print("  " + _escape(line), soft_wrap=True)
    if result.moved:
        out.print(f"moved {_plural(result.moved, 'mail', 'mails')} to "
                  f"{_escape(result.done_folder)}", soft_wrap=True)


events_app = typer.Typer(help="Import goal events from the LMS or an LRS.",
                         no_args_is_help=True)
app.add_typer(events_app, name="events")


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
    for skipped in result.skipped[:50]:
        out.print(f"  {skipped.position}: {_escape(skipped.reason)}", soft_wrap=True)
    if len(result.skipped) > 50:
        out.print(f"  … and {len(result.skipped) - 50} more")
    if result.empty:
        console(stderr=True).print(f"error: no row of {result.source} could be imported; fix "
                                   "the file (see the reasons above) and import it again")
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
    out.print(_escape(result.summary()), soft_wrap=True)
    listed = result.notes + result.skipped
    for skipped in listed[:50]:
        out.print(f"  {_escape(skipped.position)}: {_escape(skipped.reason)}", soft_wrap=True)
    if len(listed) > 50:
        out.print(f"  … and {len(listed) - 50} more")


survey_app = typer.Typer(help="Import answers to a campaign's evaluation survey.",
                         no_args_is_help=True)
app.add_typer(survey_app, name="survey")


@survey_app.command("import")
def survey_import(
    file: Annotated[Path, typer.Argument(help="Microsoft Forms or Google Forms CSV export.",
                                         dir_okay=False)],
    campaign: Annotated[str | None, typer.Option(
        "--campaign", "-c", help="The campaign the survey belongs to [default: the only one "
        "with a survey: block].", metavar="CAMPAIGN", autocompletion=_complete_campaign)]
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
    for skipped in result.skipped[:50]:
        out.print(f"{_escape(result.source)} {skipped.position}: {_escape(skipped.reason)}",
                  soft_wrap=True)
    if len(result.skipped) > 50:
        out.print(f"… and {len(result.skipped) - 50} more rows skipped")
    out.print(f"imported {_plural(result.added, 'answer', 'answers')} "
              f"({result.already_known} already known), "
              f"{_plural(len(result.skipped), 'row', 'rows')} skipped")
    if result.empty:
        reason = " (see the reasons above)" if result.skipped else ""
        console(stderr=True).print(f"error: no row of {_escape(result.source)} could be "
                                   f"imported{reason}; fix the file and import it again")
        raise typer.Exit(1)


@app.command()
def report(
    named: DeprecatedCampaignArgument = None,
    campaign: CampaignOption = None,
    output: Annotated[ReportFormat, typer.Option(
        "--format", help="Output format [default: table, or from the --out extension].")]
    = ReportFormat.TABLE,
    out_file: Annotated[Path | None, typer.Option("--out", help="Write to this file.",
                                                  dir_okay=False, metavar="FILE")] = None,
    language: Annotated[ReportLanguage | None, typer.Option(
        "--lang", help="Language of the report [default: default_language in ldmail.yaml, "
        "or English when that is not en, nl or de].")] = None,
    excel: Annotated[bool, typer.Option(
        "--excel/--plain", help="CSV for Excel in the report's language (a byte order mark; "
        "';' and a decimal comma for nl and de), or plain CSV for scripts.")] = True,
    db: DbOption = None,
    project: ProjectOption = None,
    now: NowOption = None,
) -> None:
    """Funnel per step and uplift against the holdout, and whether each hypothesis held.

    Goal conversion of the mailed group against the holdout, overall and per persona: uplift
    with a 95% Newcombe interval and Fisher's exact p-value, one verdict; every figure counts
    only what had happened by --now. As a table, CSV, JSON or a self-contained HTML page.
    """
    from ..measurement.report import build_report, report_language, to_csv, to_json
    from ..project.config import load_project
    from ..sandbox.hygiene import private_folder, write_private

    campaign = _one_campaign("report", named, campaign)
    if out_file is not None and output == "table":
        # `--out report.html` without --format: the file's extension says which format.
        formats = {".csv": "csv", ".json": "json", ".html": "html", ".htm": "html",
                   ".txt": "table", ".md": "table"}
        suffix = out_file.suffix.lower()
        if suffix not in formats:
            raise typer.BadParameter(f"cannot tell the format from '{out_file.name}'; end it "
                                     "in .csv, .json, .html or .txt, or give --format",
                                     param_hint="--out")
        output = ReportFormat(formats[suffix])
    with invocation(project, now) as inv:
        loaded = load_project(inv.root)
        chosen = report_language(loaded, language.value if language is not None else None)
        if chosen.untranslated:
            console(stderr=True).print(
                f"note: the report has no {chosen.untranslated} text yet; it is in English "
                "(give --lang en, nl or de)")
        result = build_report(loaded, inv.now, db=db, campaign=campaign, language=chosen.code)
    if output == "table" and out_file is None:
        _print_report(result, console())
        return
    if output == "table":
        from rich.console import Console

        capture = Console(width=120, record=True, file=io.StringIO())
        _print_report(result, capture)
        text = capture.export_text()
    elif output == "html":
        from ..measurement.report_html import to_html

        text = to_html(result)
    else:
        text = to_csv(result, excel=excel) if output == "csv" else to_json(result) + "\n"
    if out_file is None:
        from ..sandbox.hygiene import visible

        # Titles come from the repository: on a terminal, escape sequences are shown.
        sys.stdout.write(visible(text) if sys.stdout.isatty() else text)
    else:
        with invocation(project, now):
            if not out_file.parent.exists():
                private_folder(out_file.parent)
            write_private(out_file, text)
        console().print(f"Report written to {out_file}")


def _print_report(result: Report, out: Console) -> None:
    from rich.table import Table

    from ..measurement.report import CampaignReport, Segment, StepFunnel, VariantArm

    words = result.words
    for item in result.campaigns:
        out.print(f"\n[bold]{_escape(item.title)}[/bold] ({item.id}, "
                  f"{words.phase(item.phase)}) — " + words.t(
                      "summary", enrolled=words.count(item.enrolled),
                      mailed=words.count(item.treatment), holdout=words.count(item.holdout)))
        steps = Table(title=words.t("chart_steps"), title_justify="left")
        for key in ("step", *StepFunnel.COUNTS):
            steps.add_column(words.t(key), justify="left" if key == "step" else "right")
        for step in item.steps:
            steps.add_row(words.step(step.step, step.to),
                          *(words.count(getattr(step, key)) for key in StepFunnel.COUNTS))
        out.print(steps)
        if item.overall is None:
            out.print(words.t("no_goal_hint"))
            continue
        table = Table(title=words.t("goal", goal=item.goal), title_justify="left")
        for key in Segment.HEADERS:
            table.add_column(words.t(key))
        for segment in [item.overall, *item.personas]:
            table.add_row(*segment.row(words), style="bold" if segment.name == "all" else None)
        out.print(table)
        for line in _campaign_findings(item, words):
            out.print(line, soft_wrap=True)
        if item.variants:
            variants = Table(title=f"{words.t('variants')}: {words.t('variants_note')}",
                             title_justify="left")
            for index, key in enumerate(VariantArm.HEADERS):
                variants.add_column(words.t(key), justify="right" if 1 < index < 7 else "left")
            for arm in item.variants:
                variants.add_row(*arm.row(words))
            out.print(variants)
        if item.fit:
            fit = Table(title=f"{words.t('fit')} " + words.t(
                "fit_note", target=words.pct(item.fit[0].target, 0)), title_justify="left")
            for index, header in enumerate(CampaignReport.fit_headers(words)):
                fit.add_column(header, justify="right" if 0 < index < 4 else "left")
            for share in item.fit:
                fit.add_row(*share.row(words), style="bold" if share.persona == "all" else None)
            out.print(fit)
    out.print(words.t("footnote"), soft_wrap=True)


def _campaign_findings(item: CampaignReport, words: Words) -> list[str]:
    """The hypothesis's status and what the group sizes can detect, as plain lines."""
    lines = []
    status = item.hypothesis_status
    if status is not None:
        lines.append(words.t("status_line", status=words.t(f"status_{status}"),
                             reason=item.hypothesis_reason(words)))
    detectable = item.detectable_line(words)
    if detectable is not None:
        lines.append(detectable)
    if item.exits:
        lines.append(words.t("left_sequence") + ": " + ", ".join(
            f"{words.exit_reason(reason)} {words.count(n)}"
            for reason, n in sorted(item.exits.items())))
    return lines


@app.command()
def schema(
    out: Annotated[Path | None, typer.Option(
        "--out", help="Folder to write the schemas to [default: schemas/ in the project].",
        file_okay=False)] = None,
    project: ProjectOption = None,
    now: NowOption = None,
) -> None:
    """Write JSON Schemas for editor completion."""
    from ..project.schema import write_project_schemas, write_schemas

    with invocation(project, now) as inv:
        written = write_schemas(out) if out is not None else write_project_schemas(inv.root)
    out_console = console()
    for path in written:
        out_console.print(f"wrote {path}")
    out_console.print("Point your editor at them with a first line such as\n"
                      "  # yaml-language-server: $schema=../schemas/campaign.schema.json")


@app.command()
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
            out.print(f"  {_escape(line)}", soft_wrap=True)
        return
    assert who is not None
    with invocation(project, now) as inv:
        done = suppress_person(load_project(inv.root), who, reason, inv.now, db=db)
    out.print(f"{done.email} is {'now' if done.added else 'already'} suppressed: no campaign "
              "mails it.")


@app.command()
def forget(
    email: Annotated[str, typer.Argument(help="The person's e-mail address.", metavar="EMAIL")],
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
