"""`ldmail audience`: who the people export holds, per persona, and the rows it could not use."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated

import typer

from ..units import plural
from .options import NowOption, OutputFormat, OutputOption, ProjectOption, invocation
from .output import console, escape

if TYPE_CHECKING:
    from rich.console import Console

    from ..audience.export import AudienceScan, Rejected
    from ..project.models import Persona


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
    from ..audience.export import scan_audience
    from ..project.config import load_project

    with invocation(project, now) as inv:
        loaded = load_project(inv.root)
        result = scan_audience(loaded, inv.now.date(), keep=show)
    personas = loaded.audiences.personas
    if output == OutputFormat.JSON:
        _write_json(result, personas, show)
    else:
        _print_audience(result, personas, show)


def _write_json(result: AudienceScan, personas: dict[str, Persona], show: int) -> None:
    import json
    from collections import Counter

    counted = {name: {"label": persona.label,
                      "people": result.languages.get(name, Counter()).total(),
                      "languages": dict(sorted(result.languages.get(name, Counter()).items()))}
               for name, persona in personas.items()}
    sys.stdout.write(json.dumps({
        "source": result.source, "people": result.people, "personas": counted,
        "unmatched": result.unmatched_count,
        "unmatched_rows": [{"row": p.row, "email": p.email} for p in result.unmatched],
        "rejected": [{"row": r.row, "reason": r.reason} for r in result.rejected[:show]],
        "rejected_count": len(result.rejected),
        "notes": [{"row": n.row, "note": n.reason} for n in result.notes[:show]],
        "note_count": result.note_count}, indent=2, ensure_ascii=False) + "\n")


def _print_audience(result: AudienceScan, personas: dict[str, Persona], show: int) -> None:
    from collections import Counter

    from rich.table import Table

    out = console()
    table = Table(title=f"Audience from {result.source}", title_justify="left")
    table.add_column("persona")
    table.add_column("label")
    table.add_column("people", justify="right")
    table.add_column("languages")
    for name, persona in personas.items():
        languages = result.languages.get(name, Counter())
        table.add_row(name, persona.label, str(languages.total()),
                      ", ".join(f"{k} {v}" for k, v in sorted(languages.items())))
    table.add_row("(no persona)", "", str(result.unmatched_count), "", style="yellow")
    out.print(table)
    out.print(f"{plural(result.people, 'person', 'people')} loaded, "
              f"{plural(len(result.rejected), 'row', 'rows')} rejected")
    if result.unmatched:
        out.print("\nPeople matching no persona (they receive no campaign that names personas):")
        for person in result.unmatched:
            out.print(f"  row {person.row}: {escape(person.email)}")
    if result.rejected:
        _print_rows(out, f"\nRejected rows in {result.source} (fix them in the export; the "
                    "others were loaded):", result.rejected, len(result.rejected), show)
    if result.notes:
        _print_rows(out, f"\nRows read with a note in {result.source} (loaded as shown; fix the "
                    "export to be sure):", result.notes, result.note_count, show)


def _print_rows(out: Console, heading: str, rows: list[Rejected], count: int, show: int) -> None:
    """A heading, the first `show` rows by number with their reason, and how many more."""
    out.print(heading)
    for row in rows[:show]:
        out.print(f"  row {row.row}: {escape(row.reason)}", soft_wrap=True)
    if count > show:
        out.print(f"  … and {count - show} more (use --show)")
