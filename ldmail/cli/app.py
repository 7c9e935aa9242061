"""The ldmail application: its global options, and its commands in the order `--help` lists
them. Each command lives with its group's in a module of this package; a command parses its
options, calls one function of the core and prints what that returns.

Nothing here imports the core or rich at start-up: `ldmail --help` and a quiet cron run load
only what their command needs."""

from __future__ import annotations

import logging
import sys
from typing import Annotated

import typer

from . import audience, events, inbox, people, plan, preview, report, repository, send
from .options import GLOBAL_OPTIONS, GlobalOptions, NowOption, ProjectOption
from .output import log_to_stderr

app = typer.Typer(
    name="ldmail",
    help="Drip e-mail campaigns for Learning & Development teams, as code.",
    no_args_is_help=True,
    add_completion=True,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
)


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
    GLOBAL_OPTIONS.set(GlobalOptions(project, now))
    core = logging.getLogger("ldmail")
    # Nothing left from an earlier call in the same process.
    core.handlers, core.level, core.propagate = [], logging.NOTSET, True
    if verbose:
        log_to_stderr("ldmail", logging.DEBUG)


for command in (repository.validate, repository.init, audience.audience, preview.preview,
                send.send, send.retry, plan.plan, people.history, send.run, inbox.inbox,
                report.report, repository.schema, people.suppress, people.forget):
    app.command()(command)
app.add_typer(events.events_app, name="events")
app.add_typer(events.survey_app, name="survey")


def main() -> None:
    """The `ldmail` command. An error ldmail did not foresee (a bug) is one line on stderr and
    exit 1 like any other, not a traceback; `-v` logs the traceback too, for a bug report."""
    try:
        app()
    except Exception as exc:  # noqa: BLE001 - whatever escaped the command: a bug
        from ..errors import describe
        from .output import print_error

        logging.getLogger("ldmail").debug("the unexpected error:", exc_info=True)
        print_error(f"unexpected {describe(exc)} (a bug in ldmail: run with -v to log where it "
                    "happened, and report it)")
        sys.exit(1)
