"""Turn a step's template into the parts of an e-mail, inside Jinja's sandbox."""

from __future__ import annotations

import difflib
import html
import re
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from jinja2 import (
    BaseLoader,
    Environment,
    StrictUndefined,
    Template,
    TemplateError,
    TemplateNotFound,
    TemplateSyntaxError,
    UndefinedError,
    nodes,
)
from jinja2.exceptions import SecurityError as JinjaSecurityError
from jinja2.loaders import split_template_path
from markupsafe import Markup

from ..errors import BudgetExceeded, MissingTranslation, OutsideProject, Problem, RenderError
from ..project.config import TEMPLATES_DIR, Project
from ..project.models import Campaign, Persona, Step, Variant
from ..project.samples import sample_manager
from ..sandbox.confine import MAX_TEMPLATE_BYTES, confined, read_regular_text
from ..sandbox.expressions import Sandbox, unsafe_access
from ..units import format_duration
from .textify import html_to_text

BLOCKS = ("subject", "preheader", "wiifm", "body")
MARKDOWN_BLOCKS = frozenset({"wiifm", "body"})
# ASCII punctuation that means something in Markdown; HTML's own characters (& < > " ')
# are left to autoescape, since a backslash before an entity would show the entity as text.
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|~])")
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


_MEMO = 4096
# Private-use characters: no meaning to Markdown, HTML, CSS or the text converter.
_STAND_IN_MARKS = ("\ue000", "\ue001")
# [^<>] keeps the search linear: with [^>], a page of a hundred thousand '<' was quadratic.
_UNSAFE_STAND_IN = re.compile("&[#A-Za-z0-9]*[\ue000\ue001]|<[^<>]*[\ue000\ue001]")
# What CSS inlining may be given: css_inline recurses per nesting level (20,000 nested divs
# crash the process) and matches every rule against every element.
MAX_ELEMENTS = 20_000
MAX_NESTING = 200
MAX_STYLE = 100_000
_TAG = re.compile(r"<(/?)([A-Za-z][A-Za-z0-9]*)[^<>]*?(/?)>")
_STYLE = re.compile(r"<style[^>]*>(.*?)</style>", re.S | re.I)
_VOID = frozenset({"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta",
                   "source", "track", "wbr"})


def check_inlinable(page: str, display: str) -> None:
    """Refuse HTML that CSS inlining would crash on or take minutes over."""
    depth = deepest = elements = 0
    for match in _TAG.finditer(page):
        closing, name, self_closing = match.groups()
        if closing:
            depth = max(depth - 1, 0)
            continue
        elements += 1
        if not self_closing and name.lower() not in _VOID:
            depth += 1
            deepest = max(deepest, depth)
    style = sum(len(block) for block in _STYLE.findall(page))
    problem = (f"{elements:,} HTML elements (at most {MAX_ELEMENTS:,})"
               if elements > MAX_ELEMENTS else
               f"HTML nested {deepest} levels deep (at most {MAX_NESTING})"
               if deepest > MAX_NESTING else
               f"{style:,} characters of CSS in <style> (at most {MAX_STYLE:,})"
               if style > MAX_STYLE else None)
    if problem is not None:
        raise RenderError(display, None, f"the message has {problem}; an e-mail needs far "
                          "less: simplify the HTML", security=True)


def _swap(text: str, stand_ins: tuple[tuple[str, str], ...]) -> str:
    for name, mark in stand_ins:
        text = text.replace(name, mark)
    return text


def _unswap(text: str, stand_ins: tuple[tuple[str, str], ...]) -> str:
    for name, mark in stand_ins:
        text = text.replace(mark, name)
    return text


def _carried(source: str, html: str, stand_ins: tuple[tuple[str, str], ...]) -> bool:
    """Every placeholder came through Markdown unchanged (not escaped into a URL, say)."""
    return all(source.count(mark) == html.count(mark) for _, mark in stand_ins) and \
        "mailto:" not in html
# Stands in for a person's 32-hex-digit unsubscribe token in pages kept for reuse.
_PLACEHOLDER = "0f1e2d3c4b5a69788796a5b4c3d2e1f0"


def _remember(memo: dict[Any, Any], key: Any, value: Any) -> None:
    if len(memo) >= _MEMO:
        memo.clear()  # a crude bound: a run that fills it gains little from the old entries
    memo[key] = value


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


def markdown_literal(text: str) -> str:
    """Text that Markdown renders as itself: every special character backslash-escaped."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", text)


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


# Where each name of the template context comes from, for undefined-variable hints.
_SOURCES = {"vars": "define it under vars: in ldmail.yaml",
            "person": "map the column under people.columns in audiences.yaml",
            "persona": "personas have id, label and wiifm",
            "campaign": "campaigns have id, title, phase, sender and description",
            "step": "steps have id, after, template and variant",
            "manager": "the manager has email, name and first_name (in to: manager steps)"}


def _undefined(exc: UndefinedError, template: Template, line: int | None,
               values: Mapping[str, Any] | None = None) -> str:
    """Jinja's "'dict object' has no attribute 'x'" as the name the author wrote, with the
    closest name that object has (a typo: person.frist_name)."""
    message = exc.message or "undefined"
    match = re.match(r"'dict object' has no attribute '(\w+)'", message)
    if not match or not template.filename or line is None:
        return message
    try:
        text = Path(template.filename).read_text(encoding="utf-8").splitlines()[line - 1]
    except (OSError, IndexError):
        return message
    written = re.search(r"\b([A-Za-z_]\w*(?:\.\w+)*)\." + re.escape(match.group(1)) + r"\b",
                        text)
    if not written:
        return message
    root = written.group(1).split(".")[0]
    hint = f" ({_SOURCES[root]})" if root in _SOURCES else ""
    close = difflib.get_close_matches(match.group(1), _keys_at(values, written.group(1)), n=1)
    if close:
        hint = f" (did you mean '{close[0]}'?)"
    return f"{written.group(1)} has no '{match.group(1)}'{hint}"


def _keys_at(values: Mapping[str, Any] | None, path: str) -> list[str]:
    """The names the object at a dotted path of the template's values has (none if unknown)."""
    found: Any = values
    for part in path.split("."):
        found = found.get(part) if isinstance(found, Mapping) else None
    return [key for key in found if isinstance(key, str)] if isinstance(found, Mapping) else []


# A paragraph that is nothing but a bold link: the message's call to action.
_BUTTON = re.compile(r'<p><strong><a href="([^"]*)">((?:(?!</a>).){1,200})</a></strong></p>',
                     re.DOTALL)


def buttons(markup: str, colour: str) -> str:
    """Every call to action (a paragraph holding only a bold link, `**[Register](url)**`) as
    a "bulletproof" button: a table cell with a background colour, which every mail client
    shows as a button, Outlook's Word engine included."""
    def button(match: re.Match[str]) -> str:
        return (f'<table role="presentation" border="0" cellspacing="0" cellpadding="0" '
                f'class="button"><tr><td bgcolor="{colour}" style="background:{colour};'
                f'border-radius:6px"><a href="{match.group(1)}" style="display:inline-block;'
                f"padding:12px 24px;color:#ffffff;font-weight:bold;text-decoration:none;"
                f'border-radius:6px">{match.group(2)}</a></td></tr></table>')
    return _BUTTON.sub(button, markup)


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


def _too_deep(display: str) -> RenderError:
    return RenderError(display, None, "nested too deeply to compile (brackets, blocks or "
                       "expressions inside each other hundreds of levels deep); simplify it",
                       security=True)


class ConfinedLoader(BaseLoader):
    """Templates from one folder, never from outside it once symbolic links are resolved.

    Jinja's FileSystemLoader refuses `../` in names but follows symbolic links anywhere, so a
    link in a pull request could include /proc/self/environ; this loader checks where each
    file really is, and that it is a regular file of sane size, before reading it.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def get_source(self, environment: Environment,
                   template: str) -> tuple[str, str, Callable[[], bool]]:
        path = self.folder.joinpath(*split_template_path(template))
        display = f"{TEMPLATES_DIR}/{template}"
        if not path.exists() and not path.is_symlink():
            raise TemplateNotFound(template)
        try:
            real = confined(path, self.folder, display, label=f"{TEMPLATES_DIR}/")
        except OutsideProject as exc:
            raise RenderError(display, None, f"{str(exc).removeprefix(display + ': ')}",
                              security=True) from None
        source = read_regular_text(real, display, MAX_TEMPLATE_BYTES)
        if isinstance(source, Problem):
            raise RenderError(display, source.line, source.message)
        return source, str(path), lambda: True


class Renderer:
    """Renders steps for people; templates are compiled once and cached.

    Two speed-ups can be switched off (benchmarks/fast_paths.py measures what each buys):
    `memos` keeps the Markdown and the inlined page of a step for the next reader who would
    get the same; `name_placeholders` lets readers who differ only in their name share them.
    """

    def __init__(self, project: Project, *, memos: bool = True,
                 name_placeholders: bool = True) -> None:
        self.project = project
        self.memos, self.name_placeholders = memos, name_placeholders
        self.templates_dir = project.templates_dir
        self.env = Sandbox(
            loader=ConfinedLoader(self.templates_dir),
            undefined=StrictUndefined,
            autoescape=True,
            keep_trailing_newline=False,
            auto_reload=False,
        )
        self.env.globals.clear()
        self.env.globals["range"] = self.env.budgeted_range  # at most MAX_RANGE items
        self._checked: set[str] = set()
        self._markups: dict[tuple[Any, ...], tuple[str, str, str, str]] = {}
        self._pages: dict[tuple[Any, ...], str] = {}
        self._resolved: dict[tuple[str, str, str | None], tuple[str, str]] = {}
        self._over_budget: dict[str, RenderError] = {}

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
                layout = self.env.get_template(LAYOUT_NAME)
                self._check_references(LAYOUT_NAME)
                return layout
            return self.env.from_string(_BUILTIN_LAYOUT.read_text(encoding="utf-8"))
        except TemplateSyntaxError as exc:
            raise self._syntax_error(exc, f"{TEMPLATES_DIR}/{LAYOUT_NAME}") from None
        except (RecursionError, MemoryError):
            raise _too_deep(f"{TEMPLATES_DIR}/{LAYOUT_NAME}") from None

    def _render_layout(self, values: dict[str, Any]) -> str:
        layout = self._layout
        failed = self._over_budget.get(LAYOUT_NAME)
        if failed is not None:
            raise failed
        with self._failures(f"{TEMPLATES_DIR}/{LAYOUT_NAME}", layout, LAYOUT_NAME,
                            f"the layout gets {', '.join(values)}"):
            return "".join(layout.generate(values))

    @contextmanager
    def _failures(self, display: str, template: Template, name: str,
                  available: str, values: Mapping[str, Any] | None = None) -> Iterator[None]:
        """Run a render within the budget; whatever goes wrong becomes one located RenderError.

        A template that ran out of time or space is remembered, so `validate` does not spend
        the budget again for every persona and language.
        """
        try:
            with self.env.budget.running():
                yield
        except UndefinedError as exc:
            line = _template_line(exc, template)
            reason = _undefined(exc, template, line, values)
            raise RenderError(display, line, f"undefined variable: {reason}; {available}") \
                from None
        except JinjaSecurityError as exc:
            raise RenderError(display, _template_line(exc, template),
                              f"blocked by the sandbox: {exc}", security=True) from None
        except BudgetExceeded as exc:
            error = RenderError(display, _template_line(exc, template), str(exc), security=True)
            self._over_budget[name] = error
            raise error from None
        except MemoryError:
            error = RenderError(display, None, "ran out of memory; simplify the loops or macros",
                                security=True)
            self._over_budget[name] = error
            raise error from None
        except TemplateNotFound as exc:
            raise RenderError(display, _template_line(exc, template),
                              f"includes '{exc.name}', which does not exist") from None
        except TemplateError as exc:
            raise RenderError(display, _template_line(exc, template), str(exc)) from None
        except RecursionError:
            raise RenderError(display, None, "templates include each other in a loop (or a "
                              "macro calls itself without end); break the loop") from None
        except (TypeError, ValueError, ArithmeticError, LookupError) as exc:
            raise RenderError(display, _template_line(exc, template), f"failed: {exc}") from None

    def resolve(self, template: str, language: str, fallback: str | None = None
                ) -> tuple[str, str]:
        """The template file for a language and the language it is in. A language the
        project lists but that has no template of its own is the campaign's `fallback`
        language, or else a RenderError (the message is held): its readers were promised
        their own language."""
        key = (template, language, fallback)
        found = self._resolved.get(key)
        if found is None:
            found = self._resolved[key] = self._resolve(template, language, fallback)
        return found

    def _resolve(self, template: str, language: str, fallback: str | None
                 ) -> tuple[str, str]:
        settings = self.project.settings
        default = settings.default_language
        # Only the configured languages: a language value from the export names no path.
        wanted = language if language in settings.languages else default
        for candidate in dict.fromkeys([wanted, *([fallback] if fallback else [])]):
            name = f"{candidate}/{template}.md"
            if (self.templates_dir / name).is_file():
                return name, candidate
        missing = f"{TEMPLATES_DIR}/{wanted}/{template}.md"
        if wanted != default and (self.templates_dir / default / f"{template}.md").is_file():
            raise MissingTranslation(missing, None,
                                     f"no '{wanted}' translation of '{template}': create {missing} "
                                     f"(its readers wait until it exists), or give the "
                                     f"campaign fallback_language: {default} to send them the "
                                     f"{default} text")
        first = f"{TEMPLATES_DIR}/{default}/{template}.md"
        raise RenderError(first, None, f"template '{template}' not found: create {first} (and "
                          "one in each other language listed) or fix the step's template")

    def _syntax_error(self, exc: TemplateSyntaxError, display: str) -> RenderError:
        where = exc.filename or display
        if where.startswith(str(self.templates_dir)):
            where = f"{TEMPLATES_DIR}/{Path(where).relative_to(self.templates_dir).as_posix()}"
        message = exc.message or "syntax error"
        unknown = re.match(r"No (filter|test) named '(\w+)'", message)
        if unknown:
            known = self.env.filters if unknown.group(1) == "filter" else self.env.tests
            close = difflib.get_close_matches(unknown.group(2), list(known), n=1)
            message = message.rstrip(".") + (f" (did you mean '{close[0]}'?)" if close else "")
        return RenderError(where, exc.lineno, f"template syntax error: {message}")

    def _references(self, name: str) -> list[tuple[str, str, int, bool]]:
        """(kind, template name, line, optional) of every include/extends/import in a file.

        Raises RenderError when the file reaches into Python internals anywhere, even in a
        branch no sample person takes.
        """
        source, filename, _ = self.env.loader.get_source(self.env, name)  # type: ignore[union-attr]
        tree = self.env.parse(source, name, filename)
        for line, attribute in unsafe_access(tree):
            raise RenderError(f"{TEMPLATES_DIR}/{name}", line,
                              f"blocked by the sandbox: {attribute!r} reaches into Python "
                              "internals; templates may only use person, persona, campaign, "
                              "step, vars, organisation and language", security=True)
        found: list[tuple[str, str, int, bool]] = []
        kinds: dict[type[nodes.Node], str] = {nodes.Extends: "extends", nodes.Include: "includes",
                                               nodes.Import: "imports",
                                               nodes.FromImport: "imports"}
        for node in tree.find_all(tuple(kinds)):
            target = getattr(node, "template", None)
            names = [target] if isinstance(target, nodes.Const) else \
                list(target.items) if isinstance(target, nodes.List | nodes.Tuple) else []
            optional = bool(getattr(node, "ignore_missing", False)) or len(names) > 1
            for item in names:
                if isinstance(item, nodes.Const) and isinstance(item.value, str):
                    found.append((kinds[type(node)], item.value, node.lineno, optional))
        return found

    def _check_references(self, name: str, chain: tuple[str, ...] = ()) -> None:
        """Every template a file includes or extends exists, and none leads back to it."""
        if name in self._checked:
            return
        for kind, target, line, optional in self._references(name):
            display = f"{TEMPLATES_DIR}/{name}"
            if target == name or target in chain:
                start = chain.index(target) if target in chain else len(chain)
                loop = " -> ".join([*chain[start:], name, target])
                raise RenderError(display, line, f"{kind} '{target}', which leads back to "
                                  f"itself ({loop}); templates may not include or extend each "
                                  "other in a loop")
            try:
                self._check_references(target, (*chain, name))
            except TemplateNotFound:
                if optional:
                    continue
                if target.startswith("/") or ".." in target.split("/"):
                    raise RenderError(display, line, f"{kind} '{target}', outside "
                                      f"{TEMPLATES_DIR}/: templates may only use files in "
                                      f"{TEMPLATES_DIR}/, named from there (e.g. "
                                      f"'{self.project.settings.default_language}/"
                                      "partials/footer.md')") from None
                hint = "" if (self.templates_dir / target.split("/")[0]).is_dir() else \
                    f" (names start at {TEMPLATES_DIR}/, so in a language folder write " \
                    f"'{self.project.settings.default_language}/{target}')"
                raise RenderError(display, line, f"{kind} '{target}', which does not exist: "
                                  f"create {TEMPLATES_DIR}/{target}{hint}") from None
            except TemplateSyntaxError as exc:
                raise self._syntax_error(exc, f"{TEMPLATES_DIR}/{target}") from None
        self._checked.add(name)

    def _load(self, name: str) -> Template:
        display = f"{TEMPLATES_DIR}/{name}"
        try:
            template = self.env.get_template(name)
            self._check_references(name)
            return template
        except TemplateSyntaxError as exc:
            raise self._syntax_error(exc, display) from None
        except TemplateNotFound as exc:
            raise RenderError(display, None, f"includes '{exc.name}', which does not exist") \
                from None
        except (RecursionError, MemoryError):
            raise _too_deep(display) from None

    def context(self, campaign_id: str, campaign: Campaign, step: Step,
                person: Mapping[str, Any], persona_id: str | None, persona: Persona | None,
                language: str, variant: Variant | None = None,
                manager: Mapping[str, str] | None = None) -> dict[str, Any]:
        """What a template sees; a step to the manager also sees `manager` (a stand-in when
        none is given: validate and previews for personas)."""
        settings = self.project.settings
        values = {
            "person": dict(person),
            "persona": {
                "id": persona_id or "",
                "label": persona.label if persona else "",
                "wiifm": persona.wiifm_for(language, settings.default_language) if persona else "",
            },
            "campaign": {"id": campaign_id, "title": campaign.title, "phase": campaign.phase,
                         "sender": campaign.sender, "description": campaign.description},
            "step": {"id": step.id, "after": format_duration(step.after),
                     "template": step.template_of(variant),
                     "variant": variant.id if variant is not None else ""},
            "vars": settings.vars,
            "organisation": settings.organisation,
            "language": language,
        }
        if step.to == "manager":
            values["manager"] = dict(manager) if manager is not None else \
                sample_manager(language)
        return values

    def render(self, campaign_id: str, campaign: Campaign, step: Step,
               person: Mapping[str, Any], persona_id: str | None, persona: Persona | None,
               language: str, unsubscribe_url: str = "#", token: str | None = None,
               variant: Variant | None = None,
               manager: Mapping[str, str] | None = None) -> Rendered:
        """The parts of one message; `token` is the reader's token in `unsubscribe_url`;
        `variant`: which of the step's variants (its template) the person gets; `manager`:
        the person's manager, the reader of a step that goes to the manager (rendered with
        the person's data, in `language`: the manager's).

        All of it (the template, Markdown, the layout, CSS inlining) within one budget.
        """
        name, _ = self.resolve(step.template_of(variant), language,
                               campaign.fallback_language)
        try:
            with self.env.budget.running():
                return self._render(campaign_id, campaign, step, person, persona_id, persona,
                                    language, unsubscribe_url, token, variant, manager)
        except BudgetExceeded as exc:  # after the template: in Markdown or the layout
            error = RenderError(f"{TEMPLATES_DIR}/{name}", None, str(exc), security=True)
            self._over_budget[name] = error
            raise error from None

    def _render(self, campaign_id: str, campaign: Campaign, step: Step,
                person: Mapping[str, Any], persona_id: str | None, persona: Persona | None,
                language: str, unsubscribe_url: str, token: str | None,
                variant: Variant | None, manager: Mapping[str, str] | None) -> Rendered:
        name, used_language = self.resolve(step.template_of(variant), language,
                                           campaign.fallback_language)
        display = f"{TEMPLATES_DIR}/{name}"
        template = self._load(name)
        values = self.context(campaign_id, campaign, step, person, persona_id, persona,
                              used_language, variant, manager)
        failed = self._over_budget.get(name)
        if failed is not None:
            raise failed  # it ran out of time or space before: not another 2 s per person
        parts: dict[str, str] = {}
        available = "person, persona, campaign, step, vars, organisation, language" + \
            (", manager" if "manager" in values else "")
        with self._failures(display, template, name, f"available: {available}", values):
            plain = template.new_context(values)
            # In the Markdown blocks a name like "[Verify](https://evil.example)" from the
            # export must stay text, not become a link: person values are Markdown-escaped.
            literal = template.new_context({**values, **{
                who: {key: markdown_literal(value) if isinstance(value, str) else value
                      for key, value in values[who].items()}
                for who in ("person", "manager") if who in values}})
            for block in BLOCKS:
                render_block = template.blocks.get(block)
                if render_block is None:
                    raise RenderError(display, None,
                                      f"no {{% block {block} %}}; every template needs the "
                                      f"blocks {', '.join(BLOCKS)}")
                context = literal if block in MARKDOWN_BLOCKS else plain
                parts[block] = "".join(render_block(context)).strip()

        settings = self.project.settings
        # utm_content is the analytics field meant for telling versions of content apart.
        content = step.id if variant is None else f"{step.id}.{variant.id}"
        utm = (("utm_source", settings.utm.source), ("utm_medium", settings.utm.medium),
               ("utm_campaign", campaign_id), ("utm_content", content)) \
            if settings.utm.enabled else ()
        stand_ins = self._stand_ins(person, parts) \
            if token is not None and self.name_placeholders else ()
        if stand_ins:
            shown = {block: _swap(text, stand_ins) for block, text in parts.items()}
            finished = self._finish(shown, utm, used_language, values, unsubscribe_url, token,
                                    display, stand_ins)
            if finished is not None:
                return finished
        finished = self._finish(parts, utm, used_language, values, unsubscribe_url, token,
                                display, ())
        assert finished is not None
        return finished

    def _finish(self, parts: dict[str, str], utm: tuple[tuple[str, str], ...], language: str,
                values: dict[str, Any], unsubscribe_url: str, token: str | None, display: str,
                stand_ins: tuple[tuple[str, str], ...]) -> Rendered | None:
        """Markdown, layout, inlined CSS and text part of rendered blocks.

        With stand-ins, the blocks hold placeholders for the person's names, put back at the
        end; None when the Markdown did not carry every placeholder through as text.
        """
        settings = self.project.settings
        body_html, wiifm_html, wiifm_text, text = self._markup(parts["body"], parts["wiifm"], utm)
        if stand_ins and not _carried(parts["body"] + parts["wiifm"], body_html + wiifm_html,
                                      stand_ins):
            return None
        subject = _one_line(parts["subject"])
        preheader = _one_line(parts["preheader"])
        footer = FOOTERS.get(language, FOOTERS["en"])
        layout_values = {
            "subject": subject, "preheader": preheader, "wiifm": Markup(wiifm_html),
            "footer": footer, "content": Markup(body_html), "unsubscribe_url": unsubscribe_url,
            "organisation": settings.organisation, "brand": settings.brand,
            "campaign": values["campaign"],
            "person": values["person"], "language": language}
        page = self._page(layout_values, token, display)
        if stand_ins:
            subject, preheader, wiifm_text, text, page = (
                _unswap(part, stand_ins) for part in (subject, preheader, wiifm_text, text, page))
        if unsubscribe_url and unsubscribe_url != "#":
            text = f"{text}\n\n-- \n{footer['text']} {unsubscribe_url}"
        return Rendered(subject=subject, preheader=preheader, wiifm=wiifm_text, html=page,
                        text=text + "\n", template_file=display, language=language)

    @cached_property
    def _builtin_layout(self) -> bool:
        return not (self.templates_dir / LAYOUT_NAME).exists()

    def _stand_ins(self, person: Mapping[str, Any],
                   parts: dict[str, str]) -> tuple[tuple[str, str], ...]:
        """Placeholders for the person's first and last name, where they are safe to use.

        Most messages differ only in the reader's name, so with the name replaced by a
        placeholder character the memos serve nearly every message. That is exact when the
        steps after Jinja treat the name as the placeholder: a name of letters only (no
        Markdown or HTML meaning), text that holds no placeholder character already, no name
        inside an HTML tag, an entity or a mailto link (checked here), Markdown that carries
        every placeholder through as text (checked in _finish), and the built-in layout (a
        custom one could filter the subject, say |upper, or cut it to a length).
        """
        if not self._builtin_layout:
            return ()
        names: list[str] = []
        for attribute in ("first_name", "last_name"):
            value = person.get(attribute)
            if isinstance(value, str) and len(value) > 1 and value.isalpha() and \
                    value not in names:
                names.append(value)
        if len(names) == 2 and (names[0] in names[1] or names[1] in names[0]):
            names = [max(names, key=len)]
        if not names:
            return ()
        joined = "".join(parts.values())
        if any(mark in joined for mark in _STAND_IN_MARKS) or "mailto:" in joined:
            return ()
        stand_ins = tuple(zip(sorted(names, key=len, reverse=True), _STAND_IN_MARKS,
                              strict=False))
        swapped = _swap(joined, stand_ins)
        if _UNSAFE_STAND_IN.search(swapped):
            return ()
        return stand_ins

    # -- memos ----------------------------------------------------------------------------------
    # Markdown, the text part and CSS inlining are pure functions of their input and cost
    # most of a message; in a send run many people get the same text (the same first name,
    # persona and language), so their results are kept, up to _MEMO entries each. The per-person
    # unsubscribe token is the one value every page differs in: pages are kept with a
    # placeholder in its place (it is hex, which no step of the pipeline changes).

    def _markup(self, body: str, wiifm: str,
                utm: tuple[tuple[str, str], ...]) -> tuple[str, str, str, str]:
        """(body HTML, WIIFM HTML, WIIFM text, text part) of the Markdown blocks."""
        key = (body, wiifm, utm)
        found = self._markups.get(key)
        if found is None:
            colour = self.project.settings.brand.colour
            body_html = tag_links(buttons(self._markdown.render(body), colour), dict(utm))
            wiifm_html = tag_links(self._markdown.render(wiifm), dict(utm))
            wiifm_text = html_to_text(wiifm_html)
            text = "\n\n".join(part for part in (wiifm_text, html_to_text(body_html)) if part)
            found = (body_html, wiifm_html, wiifm_text, text)
            if self.memos:
                _remember(self._markups, key, found)
        return found

    @cached_property
    def _layout_reads_person(self) -> bool:
        """Whether the layout may use `person` (then pages are not shared between people)."""
        from jinja2 import meta

        if self._builtin_layout:
            source = _BUILTIN_LAYOUT.read_text(encoding="utf-8")
        else:
            source = self.env.loader.get_source(self.env, LAYOUT_NAME)[0]  # type: ignore[union-attr]
        tree = self.env.parse(source)
        if any(True for _ in tree.find_all((nodes.Include, nodes.Extends, nodes.Import,
                                            nodes.FromImport))):
            return True
        return "person" in meta.find_undeclared_variables(tree)

    def _inline(self, page: str, display: str) -> str:
        check_inlinable(page, display)
        return str(self._inliner.inline(page))

    def _page(self, values: dict[str, Any], token: str | None, display: str) -> str:
        """The layout rendered and its CSS inlined."""
        url = str(values["unsubscribe_url"])
        shareable = token is not None and len(token) == len(_PLACEHOLDER) and token in url
        key: tuple[Any, ...] | None = None
        if shareable and token is not None:
            campaign = tuple(sorted(values["campaign"].items()))
            person = tuple(sorted(values["person"].items())) if self._layout_reads_person \
                else None
            inputs = (values["subject"], values["preheader"], str(values["wiifm"]),
                      str(values["content"]), values["language"], values["organisation"],
                      campaign, person)
            key = (*inputs, url.replace(token, _PLACEHOLDER))
            try:
                found = self._pages.get(key)
            except TypeError:  # an unhashable attribute value: no sharing
                key, found = None, None
            if found is not None:
                return found.replace(_PLACEHOLDER, token)
            if _PLACEHOLDER in repr(inputs):
                key = None  # the placeholder text itself occurs in the message: no sharing
        if key is None or token is None:
            return self._inline(self._render_layout(values), display)
        stand_in = url.replace(token, _PLACEHOLDER)
        page = self._inline(self._render_layout({**values, "unsubscribe_url": stand_in}),
                            display)
        if self.memos:
            _remember(self._pages, key, page)
        return page.replace(_PLACEHOLDER, token)
