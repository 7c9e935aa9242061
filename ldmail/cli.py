"""The command line: parse options, call one core function, print the result."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

if TYPE_CHECKING:
    from rich.console import Console

app = typer.Typer(
    name="ldmail",
    help="Drip e-mail campaigns for Learning & Development teams, as code.",
    no_args_is_help=True,
    add_completion=True,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
)

ProjectOption = Annotated[
    Path | None,
    typer.Option("--project", "-p", help="Campaign repository folder [default: current folder].",
                 file_okay=False, show_default=False),
]
NowOption = Annotated[
    str | None,
    typer.Option("--now", help="Pretend it is this ISO date-time, e.g. 2026-12-15T10:00.",
                 show_default=False),
]
FormatOption = Annotated[str, typer.Option("--format", help="Output: text, github or json.")]


@dataclass
class Globals:
    project: Path = Path(".")
    now: str | None = None


GLOBALS = Globals()
T = TypeVar("T")


def console(stderr: bool = False) -> Console:
    from rich.console import Console

    return Console(stderr=stderr, highlight=False, soft_wrap=True)


@dataclass(frozen=True)
class Invocation:
    """The project folder and the moment a command runs for."""

    root: Path
    now: datetime


@contextmanager
def invocation(project: Path | None, now: str | None) -> Iterator[Invocation]:
    """Resolve the global options and turn ldmail errors into one line and exit code 1."""
    from .clock import parse_now
    from .errors import ConfigError, LdmailError

    try:
        yield Invocation(project or GLOBALS.project, parse_now(now or GLOBALS.now))
    except ConfigError as exc:
        err = console(stderr=True)
        for problem in exc.problems:
            err.print(f"[red]error[/red] {problem}", markup=True, highlight=False)
        raise typer.Exit(1) from None
    except LdmailError as exc:
        console(stderr=True).print(f"[red]error[/red] {exc}", markup=True)
        raise typer.Exit(1) from None


@app.callback()
def main_options(project: ProjectOption = None, now: NowOption = None) -> None:
    """Drip e-mail campaigns for Learning & Development teams, as code."""
    if project is not None:
        GLOBALS.project = project
    GLOBALS.now = now


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)


@app.command()
def validate(
    project: ProjectOption = None,
    now: NowOption = None,
    output: FormatOption = "text",
) -> None:
    """Check every YAML file, expression and template; render each step for each persona."""
    from .validate import validate as run_validation

    if output not in {"text", "github", "json"}:
        raise typer.BadParameter("use text, github or json", param_hint="--format")
    with invocation(project, now) as inv:
        report = run_validation(inv.root, inv.now.date())
    out = console()
    if output == "json":
        import json

        payload = {"ok": not report.problems,
                   "errors": [p.__dict__ for p in report.problems],
                   "warnings": [p.__dict__ for p in report.warnings]}
        sys.stdout.write(json.dumps(payload, indent=2) + "\n")
    elif output == "github":
        for level, items in (("error", report.problems), ("warning", report.warnings)):
            for p in items:
                line = f",line={p.line}" if p.line else ""
                message = p.message.replace("%", "%25").replace("\n", "%0A")
                sys.stdout.write(f"::{level} file={p.file}{line}::{message}\n")
    else:
        for p in report.problems:
            out.print(f"{_escape(str(p))}")
        for p in report.warnings:
            out.print(f"warning: {_escape(str(p))}")
        if report.problems:
            out.print(f"[red]{len(report.problems)} error(s)[/red]; fix them and run "
                      "'ldmail validate' again")
        else:
            out.print(f"[green]ok[/green]: {report.campaigns} campaign(s), "
                      f"{report.renders} renders checked")
    if report.problems:
        raise typer.Exit(1)


def main() -> None:
    app()


