"""`ldmail preview`: a campaign's messages as a persona or one person reads them, or a gallery
of every message."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from .options import (
    DeprecatedCampaignArgument,
    NowOption,
    ProjectOption,
    SamplePeopleOption,
    complete_campaign,
    complete_persona,
    complete_step,
    invocation,
    one_campaign,
)
from .output import console, escape

if TYPE_CHECKING:
    from rich.console import Console

    from ..content.preview import PreviewItem
    from ..project.models import Campaign


def preview(
    named: DeprecatedCampaignArgument = None,
    campaign: Annotated[str | None, typer.Option(
        "--campaign", "-c", help="The campaign to show (its file name without .yaml).",
        metavar="CAMPAIGN", autocompletion=complete_campaign)] = None,
    step: Annotated[str | None, typer.Option(help="Only this step id.", metavar="STEP",
                                             autocompletion=complete_step)] = None,
    persona: Annotated[str | None, typer.Option(help="Only this persona.", metavar="PERSONA",
                                                autocompletion=complete_persona)] = None,
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

    campaign = one_campaign("preview", named, campaign)
    if persona and person:
        raise typer.BadParameter("give --persona or --person, not both", param_hint="--person")
    if (campaign is None) == (out is None):
        raise typer.BadParameter("give -c CAMPAIGN, or --out DIR for the whole gallery")
    if out is not None:
        _gallery(out, sample_people, project, now)
        return
    assert campaign is not None
    with invocation(project, now) as inv:
        loaded = load_project(inv.root)
        items = build_preview(loaded, campaign, inv.now.date(), step_id=step, persona_id=persona,
                              email=person, language=lang, sample_people=sample_people)
        model = loaded.campaign(campaign)
    terminal = console()
    with invocation(project, now):  # writing a preview file can fail (a link in its place)
        _show_previews(terminal, items, campaign, model, inv.root if html else None,
                       for_person=person is not None)


def _gallery(out: Path, sample_people: bool, project: Path | None, now: str | None) -> None:
    """--out DIR: every campaign, step, persona and language, as an offline site."""
    from ..content.gallery import write_gallery
    from ..project.config import load_project

    with invocation(project, now) as inv:
        loaded = load_project(inv.root)
        entries = write_gallery(loaded, out, inv.now.date(), sample_people=sample_people)
        console().print(f"Gallery of {len(entries)} messages written to {out / 'index.html'}")


def _show_previews(terminal: Console, items: list[PreviewItem], campaign: str, model: Campaign,
                   html_root: Path | None, *, for_person: bool = False) -> None:
    from rich.panel import Panel

    from ..content.preview import write_html

    if items and items[0].outside:
        console(stderr=True).print(
            f"note: '{campaign}' would not send these to "
            f"{escape(items[0].about or items[0].recipient)}: "
            f"{escape(items[0].outside)}; shown as they would read if it did")
    for item in items:
        title = (f"{campaign} · step {item.step.id}"
                 f"{f' · variant {item.variant.id}' if item.variant else ''} · "
                 f"persona {item.persona or '(none)'} · {item.language}")
        header = _header(item, model, for_person)
        terminal.print(Panel(escape(header + "\n\n" + item.rendered.text.rstrip()),
                             title=escape(title), title_align="left", expand=False))
        if html_root is not None:
            terminal.print(f"HTML written to {write_html(html_root, campaign, item)}")


def _header(item: PreviewItem, model: Campaign, for_person: bool) -> str:
    """The message's headers as a mail program shows them, and what decides them."""
    from ..content.preview import invite_summary, variant_summary

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
    return header
