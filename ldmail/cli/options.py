"""What every command shares: its option types, the global options, and the invocation that
resolves them and turns any ldmail error into one line and exit code 1."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from .output import console, escape, print_error


def _root(ctx: typer.Context) -> Path:
    from ..project.config import find_project

    project = ctx.params.get("project") or ctx.find_root().params.get("project")
    return Path(project) if project else (find_project(Path.cwd()) or Path("."))


def complete_campaign(ctx: typer.Context, incomplete: str) -> list[str]:
    from .completion import campaign_ids

    return campaign_ids(_root(ctx), incomplete)


def complete_step(ctx: typer.Context, incomplete: str) -> list[str]:
    from .completion import step_ids

    return step_ids(_root(ctx), ctx.params.get("campaign"), incomplete)


def complete_persona(ctx: typer.Context, incomplete: str) -> list[str]:
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
DbOption = Annotated[
    Path | None,
    typer.Option("--db", help="Ledger file [default: .ldmail/ledger.db in the project].",
                 metavar="FILE",
                 dir_okay=False, show_default=False),
]
CampaignOption = Annotated[str | None, typer.Option("--campaign", "-c", help="Only this campaign.",
                                                    metavar="CAMPAIGN",
                                                    autocompletion=complete_campaign)]
StepOption = Annotated[str | None, typer.Option("--step", help="Only this step id.", metavar="STEP",
                                                autocompletion=complete_step)]
# preview and report once took the campaign as a plain argument; -c/--campaign, as everywhere
# else, is the form to write, and the old one still works.
DeprecatedCampaignArgument = Annotated[str | None, typer.Argument(
    help="Deprecated: write -c CAMPAIGN.", metavar="[CAMPAIGN]", show_default=False,
    autocompletion=complete_campaign)]
SamplePeopleOption = Annotated[bool, typer.Option(
    "--sample-people", help="Render for stand-ins with plausible names only; the people "
    "export is not read (for CI: no HR data in git or in an artefact).")]


class ValidateFormat(StrEnum):
    TEXT = "text"
    GITHUB = "github"
    JSON = "json"


class OutputFormat(StrEnum):
    """audience, plan, send, inbox and history: a table for people, JSON for scripts."""

    TABLE = "table"
    JSON = "json"


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


def one_campaign(command: str, named: str | None, campaign: str | None) -> str | None:
    """The campaign of preview or report, given as -c or (deprecated) as an argument."""
    if named is None:
        return campaign
    if campaign is not None and campaign != named:
        raise typer.BadParameter(f"two campaigns given ('{named}' and -c {campaign}); give "
                                 "one with -c", param_hint="-c")
    console(stderr=True).print(f"note: write 'ldmail {command} -c {escape(named)}'; naming the "
                               "campaign without -c still works but is deprecated")
    return named


@dataclass(frozen=True)
class GlobalOptions:
    """`--project` and `--now` given before the command."""

    project: Path | None = None
    now: str | None = None


# Set by the app's callback at the start of every call, so a second call in the same process
# starts afresh. A context variable rather than click's current context: newer Typer releases
# carry a click of their own, whose context `click.get_current_context` does not see.
GLOBAL_OPTIONS: ContextVar[GlobalOptions | None] = ContextVar("ldmail_global_options",
                                                              default=None)


def _global_options() -> GlobalOptions:
    return GLOBAL_OPTIONS.get() or GlobalOptions()


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
        for problem in exc.problems:
            print_error(str(problem))
        raise typer.Exit(1) from None
    except LdmailError as exc:
        print_error(str(exc))
        raise typer.Exit(1) from None


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
