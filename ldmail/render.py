"""Turn a step's template into the parts of an e-mail, inside Jinja's sandbox."""

from __future__ import annotations

import html
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from jinja2 import (
    FileSystemLoader,
    StrictUndefined,
    Template,
    TemplateError,
    TemplateNotFound,
    TemplateSyntaxError,
    UndefinedError,
)
from jinja2.exceptions import SecurityError as JinjaSecurityError
from jinja2.sandbox import SandboxedEnvironment
from markupsafe import Markup

from .config import TEMPLATES_DIR, Project
from .errors import LdmailError
from .models import Campaign, Persona, Step
from .textify import html_to_text
from .units import format_duration

BLOCKS = ("subject", "preheader", "wiifm", "body")
LAYOUT_NAME = "_layout.html"
MAX_SUBJECT = 120
_BUILTIN_LAYOUT = Path(__file__).with_name("layout.html")
_HREF = re.compile(r'href="(https?://[^"]+)"')
# The footer every message carries, in the reader's language (English when we have none).
FOOTERS = {
    "en": {"part_of": "You receive this as part of", "unsubscribe": "Unsubscribe",
           "rest": "from these learning e-mails.",
           "text": "Unsubscribe from these learning e-mails:"},
    "nl": {"part_of": "Je ontvangt dit als onderdeel van", "unsubscribe": "Afmelden",
           "rest": "voor deze leer-e-mails.", "text": "Afmelden voor deze leer-e-mails:"},
    "de": {"part_of": "Sie erhalten diese Nachricht im Rahmen von", "unsubscribe": "Abmelden",
           "rest": "von diesen Lern-E-Mails.", "text": "Von diesen Lern-E-Mails abmelden:"},
}


class RenderError(LdmailError):
    "A template is missing, broken or uses something it may not."

    def __init__(self, file: str, line: int | None, message: str, security: bool = False) -> None:
        self.file, self.line, self.reason, self.security = file, line, message, security
        super().__init__(f"{file}:{line}: {message}" if line else f"{file}: {message}")


@dataclass(frozen=True)
class Rendered:
    """The parts of one message, before headers are added."""

    subject: str
    preheader: str
    wiifm: str
    html: str
    text: str
    template_file: str
    language: str


def _one_line(text: str) -> str:
    return " ".join(html.unescape(text).split())


def _template_line(exc: BaseException, template: Template) -> int | None:
    """The template line an exception was raised on.

    Jinja's debug info gives the line where the surrounding text starts, which may be a few
    lines early; when the error names an attribute, the first line at or after that one
    using the name is the precise answer.
    """
    line = getattr(exc, "lineno", None)
    tb: TracebackType | None = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == template.filename:
            line = template.get_corresponding_lineno(tb.tb_lineno)
        tb = tb.tb_next
    named = re.findall(r"'([A-Za-z_][A-Za-z0-9_]*)'", str(exc))
    if named and template.filename and isinstance(line, int):
        try:
            source = Path(template.filename).read_text(encoding="utf-8").splitlines()
        except OSError:
            return line
        pattern = re.compile(r"\b" + re.escape(named[-1] if "attribute" in str(exc)
                                                else named[0]) + r"\b")
        for number in range(line, len(source) + 1):
            if pattern.search(source[number - 1]):
                return number
    return line if isinstance(line, int) else None


def tag_links(markup: str, params: Mapping[str, str]) -> str:
    """Add UTM parameters to every absolute link that does not carry its own."""
    if not params:
        return markup

    def tag(match: re.Match[str]) -> str:
        url = html.unescape(match.group(1))
        parts = urlsplit(url)
        query = parse_qsl(parts.query, keep_blank_values=True)
        if any(key.startswith("utm_") for key, _ in query):
            return match.group(0)
        tagged = urlunsplit(parts._replace(path=parts.path or "/",
                                           query=urlencode(query + list(params.items()))))
        return f'href="{html.escape(tagged, quote=True)}"'

    return _HREF.sub(tag, markup)


class Renderer:
    """Renders steps for people; templates are compiled once and cached."""

    def __init__(self, project: Project) -> None:
        self.project = project
        self.templates_dir = project.templates_dir
        self.env = SandboxedEnvironment(
            loader=FileSystemLoader(str(self.templates_dir)),
            undefined=StrictUndefined,
            autoescape=True,
            keep_trailing_newline=False,
            auto_reload=False,
        )
        self.env.globals.clear()
        self.env.globals["range"] = range

    @cached_property
    def _markdown(self) -> Any:
        from markdown_it import MarkdownIt

        return MarkdownIt("commonmark", {"html": True, "typographer": False})

    @cached_property
    def _inliner(self) -> Any:
        import css_inline

        return css_inline.CSSInliner(load_remote_stylesheets=False, keep_style_tags=True)

    @cached_property
    def _layout(self) -> Template:
        custom = self.templates_dir / LAYOUT_NAME
        try:
            if custom.exists():
                return self.env.get_template(LAYOUT_NAME)
            return self.env.from_string(_BUILTIN_LAYOUT.read_text(encoding="utf-8"))
        except TemplateSyntaxError as exc:
            raise RenderError(f"{TEMPLATES_DIR}/{LAYOUT_NAME}", exc.lineno,
                              exc.message or "syntax error") from None

    def resolve(self, template: str, language: str) -> tuple[str, str]:
        """The template file for a language, falling back to the default language."""
        for candidate in dict.fromkeys([language, self.project.settings.default_language]):
            name = f"{candidate}/{template}.md"
            if (self.templates_dir / name).is_file():
                return name, candidate
        fallback = f"{TEMPLATES_DIR}/{self.project.settings.default_language}/{template}.md"
        raise RenderError(fallback, None,
                          f"template '{template}' not found: create {fallback} (the fallback "
                          "for every language) or fix the step's template")

    def _load(self, name: str) -> Template:
        display = f"{TEMPLATES_DIR}/{name}"
        try:
            return self.env.get_template(name)
        except TemplateSyntaxError as exc:
            where = exc.filename or display
            if where.startswith(str(self.templates_dir)):
                where = f"{TEMPLATES_DIR}/{Path(where).relative_to(self.templates_dir)}"
            raise RenderError(where, exc.lineno, f"template syntax error: {exc.message}") from None
        except TemplateNotFound as exc:
            raise RenderError(display, None, f"includes '{exc.name}', which does not exist") \
                from None

    def context(self, campaign_id: str, campaign: Campaign, step: Step,
                person: Mapping[str, Any], persona_id: str | None, persona: Persona | None,
                language: str) -> dict[str, Any]:
        settings = self.project.settings
        return {
            "person": dict(person),
            "persona": {
                "id": persona_id or "",
                "label": persona.label if persona else "",
                "wiifm": persona.wiifm_for(language, settings.default_language) if persona else "",
            },
            "campaign": {"id": campaign_id, "title": campaign.title, "phase": campaign.phase,
                         "sender": campaign.sender, "description": campaign.description},
            "step": {"id": step.id, "after": format_duration(step.after),
                     "template": step.template},
            "vars": settings.vars,
            "organisation": settings.organisation,
            "language": language,
        }

    def render(self, campaign_id: str, campaign: Campaign, step: Step,
               person: Mapping[str, Any], persona_id: str | None, persona: Persona | None,
               language: str, unsubscribe_url: str = "#") -> Rendered:
        name, used_language = self.resolve(step.template, language)
        display = f"{TEMPLATES_DIR}/{name}"
        template = self._load(name)
        values = self.context(campaign_id, campaign, step, person, persona_id, persona,
                              used_language)
        parts: dict[str, str] = {}
        try:
            context = template.new_context(values)
            for block in BLOCKS:
                render_block = template.blocks.get(block)
                if render_block is None:
                    raise RenderError(display, None,
                                      f"no {{% block {block} %}}; every template needs the "
                                      f"blocks {', '.join(BLOCKS)}")
                parts[block] = "".join(render_block(context)).strip()
        except UndefinedError as exc:
            raise RenderError(display, _template_line(exc, template),
                              f"undefined variable: {exc.message}; available: person, persona, "
                              "campaign, step, vars, organisation, language") from None
        except JinjaSecurityError as exc:
            raise RenderError(display, _template_line(exc, template),
                              f"blocked by the sandbox: {exc}", security=True) from None
        except TemplateError as exc:
            raise RenderError(display, _template_line(exc, template), str(exc)) from None
        except (TypeError, ValueError, ArithmeticError, LookupError) as exc:
            raise RenderError(display, _template_line(exc, template), f"failed: {exc}") from None

        settings = self.project.settings
        utm = {"utm_source": settings.utm.source, "utm_medium": settings.utm.medium,
               "utm_campaign": campaign_id, "utm_content": step.id} if settings.utm.enabled else {}
        body_html = tag_links(self._markdown.render(parts["body"]), utm)
        wiifm_html = tag_links(self._markdown.render(parts["wiifm"]), utm)
        subject = _one_line(parts["subject"])
        preheader = _one_line(parts["preheader"])
        footer = FOOTERS.get(used_language, FOOTERS["en"])
        page = self._layout.render(
            subject=subject, preheader=preheader, wiifm=Markup(wiifm_html), footer=footer,
            content=Markup(body_html), unsubscribe_url=unsubscribe_url,
            organisation=settings.organisation, campaign=values["campaign"],
            person=values["person"], language=used_language)
        wiifm_text = html_to_text(wiifm_html)
        text = "\n\n".join(part for part in (wiifm_text, html_to_text(body_html)) if part)
        if unsubscribe_url and unsubscribe_url != "#":
            text = f"{text}\n\n-- \n{footer['text']} {unsubscribe_url}"
        return Rendered(subject=subject, preheader=preheader, wiifm=wiifm_text,
                        html=self._inliner.inline(page), text=text + "\n",
                        template_file=display, language=used_language)
