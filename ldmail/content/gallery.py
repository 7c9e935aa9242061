"""`ldmail preview --out DIR`: a static gallery of every campaign × step (each A/B variant) ×
persona × language.

Every page is plain HTML with inline CSS and relative links, so the folder works offline and as
a CI artefact.
"""

from __future__ import annotations

import html
import shutil
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from ..errors import LdmailError
from ..project.config import Project
from ..sandbox.hygiene import private_folder, write_private
from ..units import format_duration
from .preview import PreviewItem, build_preview, invite_summary, variant_summary

_STYLE = """
body { font-family: system-ui, -apple-system, Segoe UI, Roboto, sans-serif; margin: 0;
       color: #1d2733; background: #f6f7f9; }
header { background: #1f3a4d; color: #fff; padding: 20px 32px; }
header h1 { margin: 0; font-size: 22px; } header p { margin: 4px 0 0; opacity: .8; }
main { padding: 24px 32px; }
h2 { margin: 32px 0 8px; font-size: 19px; } h2 small { font-weight: normal; color: #5b6775; }
table { border-collapse: collapse; width: 100%; background: #fff; font-size: 14px; }
th, td { text-align: left; padding: 7px 10px; border-bottom: 1px solid #e3e6ea;
         vertical-align: top; }
th { background: #eef1f4; font-weight: 600; }
a { color: #1f6f8b; }
.timeline { display: flex; gap: 8px; flex-wrap: wrap; margin: 8px 0 12px; }
.timeline span { background: #fff; border: 1px solid #d6dbe0; border-radius: 14px;
                 padding: 3px 10px; font-size: 13px; }
.frames { display: flex; gap: 24px; align-items: flex-start; flex-wrap: wrap; }
.frames figure { margin: 0; } .frames figcaption { font-size: 13px; color: #5b6775; }
iframe { background: #fff; border: 1px solid #d6dbe0; border-radius: 6px; height: 900px; }
pre { white-space: pre-wrap; background: #fff; border: 1px solid #d6dbe0; padding: 14px;
      max-width: 560px; font-size: 13px; line-height: 1.45; border-radius: 6px; }
dl { display: grid; grid-template-columns: max-content 1fr; gap: 4px 14px; font-size: 14px; }
dt { color: #5b6775; }
"""


@dataclass(frozen=True)
class GalleryEntry:
    campaign: str
    item: PreviewItem
    page: str
    mail: str


# A message page of the gallery loads nothing from anywhere: a pull request could point the
# logo at a server that would learn who opened the artefact. Remote images show as their alt
# text.
_OFFLINE = ('<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
            'style-src \'unsafe-inline\'; img-src data:">')


def offline(page: str) -> str:
    """A message's HTML with a policy that blocks every remote load."""
    head = page.find("<head>")
    if head < 0:
        return _OFFLINE + page
    return page[:head + len("<head>")] + _OFFLINE + page[head + len("<head>"):]


def _page(title: str, body: str) -> str:
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head>"
            f"<body>{body}</body></html>\n")


# The mail frames are sandboxed (no scripts, no access to the page around them): a message's
# HTML comes from the repository under review.
def _message_page(project: Project, entry: GalleryEntry) -> str:
    item = entry.item
    campaign = project.campaign(entry.campaign)
    rendered = item.rendered
    facts = [("Campaign", f"{campaign.title} ({entry.campaign})"), ("Step", item.step.id),
             ("Sent", f"{format_duration(item.step.after)} after day 0"),
             ("Persona", item.persona or "(none)"), ("Language", item.language),
             ("From", campaign.sender), ("To", item.to),
             *([("Cc", item.cc)] if item.cc else []),
             ("Subject", rendered.subject), ("Preheader", rendered.preheader),
             ("Template", rendered.template_file)]
    invite = invite_summary(campaign, item.step)
    if invite:
        facts.append(("Invite", invite))
    variant = variant_summary(item.step, item.variant, assigned=False)
    if variant:
        facts.insert(2, ("Variant", variant))
    rows = "".join(f"<dt>{html.escape(k)}</dt><dd>{html.escape(v)}</dd>" for k, v in facts)
    body = (f'<header><h1>{html.escape(rendered.subject)}</h1><p><a style="color:#fff" '
            f'href="index.html">← all messages</a></p></header><main><dl>{rows}</dl>'
            f'<div class="frames"><figure><figcaption>Desktop (680 px)</figcaption>'
            f'<iframe src="{html.escape(entry.mail)}" width="680" title="desktop" sandbox>'
            f'</iframe>'
            f'</figure><figure><figcaption>Mobile (375 px)</figcaption>'
            f'<iframe src="{html.escape(entry.mail)}" width="375" title="mobile" sandbox>'
            f'</iframe>'
            f'</figure>'
            f"<figure><figcaption>Text part</figcaption><pre>{html.escape(rendered.text)}"
            f"</pre></figure></div></main>")
    return _page(rendered.subject, body)


def _index(project: Project, entries: list[GalleryEntry]) -> str:
    # Every value here comes from the repository under review: escape all of it, ids included.
    e = html.escape
    sections = []
    for campaign_id, file in project.campaigns.items():
        campaign = file.model
        mine = [entry for entry in entries if entry.campaign == campaign_id]
        timeline = "".join(
            f"<span>day {e(format_duration(s.after))} · {e(s.id)}"
            f"{' · calendar invite' if s.calendar else ''}"
            f"{f' · {len(s.variants)} variants' if s.variants else ''}</span>"
            for s in campaign.steps)
        rows = "".join(
            f"<tr><td>{e(entry.item.step.id)}"
            f"{f' · {e(entry.item.variant.id)}' if entry.item.variant else ''}</td>"
            f"<td>{e(format_duration(entry.item.step.after))}</td>"
            f"<td>{e(entry.item.persona or '')}</td><td>{e(entry.item.language)}</td>"
            f'<td><a href="{e(entry.page)}">{e(entry.item.rendered.subject)}</a></td>'
            f"<td>{e(entry.item.rendered.preheader)}</td></tr>" for entry in mine)
        sections.append(
            f'<h2 id="{e(campaign_id)}">{e(campaign.title)} <small>{e(campaign_id)} · '
            f"{e(campaign.phase)} · starts {e(str(campaign.starts))} · holdout "
            f"{campaign.holdout:.0%}</small></h2><div class=\"timeline\">{timeline}</div>"
            f"<table><thead><tr><th>step</th><th>day</th><th>persona</th><th>lang</th>"
            f"<th>subject</th><th>preheader</th></tr></thead><tbody>{rows}</tbody></table>")
    title = project.settings.organisation or "Campaign"
    body = (f"<header><h1>{e(title)}: campaign preview</h1>"
            f"<p>{len(entries)} messages · {len(project.campaigns)} campaigns · every step for "
            f"every persona and language</p></header><main>{''.join(sections)}</main>")
    return _page(f"{title}: campaign preview", body)


def write_gallery(project: Project, folder: Path, today: date, *,
                  sample_people: bool = False) -> list[GalleryEntry]:
    """Render everything into `folder` (replacing an earlier gallery there).

    The pages show real people's names and addresses, so the folder and its files are made
    readable by their owner only. A folder that holds anything but an earlier gallery is not
    emptied: `--out .` must never delete a project.
    """
    if folder.exists() and not folder.is_dir():
        raise LdmailError(f"--out {folder}: not a folder; the gallery is a folder of pages, "
                          "name a new or earlier gallery folder")
    if folder.exists():
        if not (folder / "index.html").is_file() or not (folder / "mail").is_dir():
            if any(folder.iterdir()):
                raise LdmailError(f"{folder} holds files that are not a preview gallery; "
                                  "give an empty or new folder for --out")
        else:
            shutil.rmtree(folder)
    private_folder(folder)
    private_folder(folder / "mail")
    entries: list[GalleryEntry] = []
    for campaign_id, file in project.campaigns.items():
        personas = file.model.audience.personas or list(project.audiences.personas)
        for persona in personas:
            for language in project.settings.languages:
                for item in build_preview(project, campaign_id, today, persona_id=persona,
                                          language=language, sample_people=sample_people):
                    variant = f"--{item.variant.id}" if item.variant else ""
                    stem = f"{campaign_id}--{item.step.id}{variant}--{persona}--{language}"
                    entry = GalleryEntry(campaign_id, item, f"{stem}.html", f"mail/{stem}.html")
                    write_private(folder / entry.mail, offline(item.rendered.html))
                    entries.append(entry)
    entries.sort(key=lambda e: (e.campaign, e.item.step.after,
                                e.item.step.choices.index(e.item.variant), e.item.persona or "",
                                e.item.language))
    for entry in entries:
        write_private(folder / entry.page, _message_page(project, entry))
    write_private(folder / "index.html", _index(project, entries))
    return entries
