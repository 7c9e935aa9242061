"""The campaign repository's own files: `init`, `validate` and `schema`."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from .options import (
    NowOption,
    ProjectOption,
    SamplePeopleOption,
    ValidateFormat,
    invocation,
)
from .output import console, escape, print_sensitivities, sensitivity_dict

if TYPE_CHECKING:
    from ..content.validate import Report as ValidationReport
    from ..errors import Problem

FormatOption = Annotated[ValidateFormat, typer.Option("--format", help="Output format.")]


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
    if output == "json":
        import json

        payload = {"ok": not report.problems,
                   "errors": [p.__dict__ for p in report.problems],
                   "warnings": [p.__dict__ for p in report.warnings],
                   "sensitivity": [sensitivity_dict(s) for s in report.sensitivities]}
        sys.stdout.write(json.dumps(payload, indent=2) + "\n")
    elif output == "github":
        for level, items in (("error", report.problems), ("warning", report.warnings)):
            for p in items:
                sys.stdout.write(_workflow_command(level, p) + "\n")
    else:
        _print_validation(report)
    if report.problems:
        raise typer.Exit(1)


def _print_validation(report: ValidationReport) -> None:
    out = console()
    for p in report.problems:
        out.print(f"{escape(str(p))}", soft_wrap=True)
    for p in report.warnings:
        out.print(f"warning: {escape(str(p))}", soft_wrap=True)
    print_sensitivities(report.sensitivities, out)
    if report.problems:
        out.print(f"[red]{len(report.problems)} error(s)[/red]; fix them and run "
                  "'ldmail validate' again")
    else:
        out.print(f"[green]ok[/green]: {report.campaigns} campaign(s), "
                  f"{report.renders} renders checked")


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
