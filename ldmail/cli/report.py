"""`ldmail report`: each campaign's funnel and uplift against the holdout, as a table, CSV,
JSON or an HTML page."""

from __future__ import annotations

import io
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from .options import (
    CampaignOption,
    DbOption,
    DeprecatedCampaignArgument,
    NowOption,
    ProjectOption,
    ReportFormat,
    ReportLanguage,
    invocation,
    one_campaign,
)
from .output import console, escape

if TYPE_CHECKING:
    from rich.console import Console

    from ..measurement.report import CampaignReport, Report
    from ..measurement.report_text import Words

# `--out report.html` without --format: the file's extension says which format.
FORMATS = {".csv": ReportFormat.CSV, ".json": ReportFormat.JSON, ".html": ReportFormat.HTML,
           ".htm": ReportFormat.HTML, ".txt": ReportFormat.TABLE, ".md": ReportFormat.TABLE}


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
    from ..measurement.report import build_report, report_language
    from ..project.config import load_project

    campaign = one_campaign("report", named, campaign)
    if out_file is not None and output == ReportFormat.TABLE:
        output = _format_of(out_file)
    with invocation(project, now) as inv:
        loaded = load_project(inv.root)
        chosen = report_language(loaded, language.value if language is not None else None)
        if chosen.untranslated:
            console(stderr=True).print(
                f"note: the report has no {chosen.untranslated} text yet; it is in English "
                "(give --lang en, nl or de)")
        result = build_report(loaded, inv.now, db=db, campaign=campaign, language=chosen.code)
    if output == ReportFormat.TABLE and out_file is None:
        print_report(result, console())
        return
    text = _rendered(result, output, excel)
    if out_file is None:
        from ..sandbox.hygiene import visible

        # Titles come from the repository: on a terminal, escape sequences are shown.
        sys.stdout.write(visible(text) if sys.stdout.isatty() else text)
        return
    with invocation(project, now):
        from ..sandbox.hygiene import private_folder, write_private

        if not out_file.parent.exists():
            private_folder(out_file.parent)
        write_private(out_file, text)
    console().print(f"Report written to {out_file}")


def _format_of(out_file: Path) -> ReportFormat:
    found = FORMATS.get(out_file.suffix.lower())
    if found is None:
        raise typer.BadParameter(f"cannot tell the format from '{out_file.name}'; end it "
                                 "in .csv, .json, .html or .txt, or give --format",
                                 param_hint="--out")
    return found


def _rendered(result: Report, output: ReportFormat, excel: bool) -> str:
    """The report as the text of a file in `output`'s format."""
    from ..measurement.report import to_csv, to_json

    if output == ReportFormat.TABLE:
        from rich.console import Console

        capture = Console(width=120, record=True, file=io.StringIO())
        print_report(result, capture)
        return capture.export_text()
    if output == ReportFormat.HTML:
        from ..measurement.report_html import to_html

        return to_html(result)
    return to_csv(result, excel=excel) if output == ReportFormat.CSV else to_json(result) + "\n"


def print_report(result: Report, out: Console) -> None:
    words = result.words
    for item in result.campaigns:
        _print_campaign(out, item, words)
    out.print(words.t("footnote"), soft_wrap=True)


def _print_campaign(out: Console, item: CampaignReport, words: Words) -> None:
    from rich.table import Table

    from ..measurement.report import Segment, StepFunnel

    out.print(f"\n[bold]{escape(item.title)}[/bold] ({item.id}, "
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
        return
    table = Table(title=words.t("goal", goal=item.goal), title_justify="left")
    for key in Segment.HEADERS:
        table.add_column(words.t(key))
    for segment in [item.overall, *item.personas]:
        table.add_row(*segment.row(words), style="bold" if segment.name == "all" else None)
    out.print(table)
    for line in _campaign_findings(item, words):
        out.print(line, soft_wrap=True)
    _print_arms(out, item, words)


def _print_arms(out: Console, item: CampaignReport, words: Words) -> None:
    """The A/B variants' results, and the fit question's answers per persona."""
    from rich.table import Table

    from ..measurement.report import CampaignReport, VariantArm

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
