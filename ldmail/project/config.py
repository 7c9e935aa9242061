"""Load a campaign repository into typed models, collecting every problem with its line."""

from __future__ import annotations

import difflib
import re
import types
import typing
from dataclasses import dataclass, field
from datetime import tzinfo
from email.utils import parseaddr
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import yaml
from pydantic import BaseModel, ValidationError

from ..clock import machine_zone
from ..errors import ConfigError, FieldError, OutsideProject, Problem, ProjectNotFound
from ..sandbox.conditions import HELPERS
from ..sandbox.confine import confined, escaping_links
from ..sandbox.hygiene import one_line
from ..units import parse_timezone
from .business_days import BusinessCalendar
from .models import (
    DEFAULT_TIMEZONE,
    DERIVED_ATTRIBUTES,
    MANAGER_EMAIL,
    Audiences,
    Campaign,
    Settings,
)
from .yamlfile import Loc, LocatedYaml, load_yaml

SETTINGS_FILE = "ldmail.yaml"
AUDIENCES_FILE = "audiences.yaml"
CAMPAIGNS_DIR = "campaigns"
TEMPLATES_DIR = "templates"
# The settings that name a file or folder, as an error message names them.
PEOPLE_SOURCE = f"people.source in {AUDIENCES_FILE}"
LEDGER_SETTING = f"ledger in {SETTINGS_FILE}"
OUTBOX_SETTING = f"transport.outbox in {SETTINGS_FILE}"
PREVIEW_FOLDER = ".ldmail/preview"  # where `preview --html` writes, in the project

M = TypeVar("M", bound=BaseModel)
# Campaign ids come from file names and go into headers, links and file names: slugs only.
CAMPAIGN_ID = re.compile(r"[a-z0-9][a-z0-9_-]*")


@dataclass(frozen=True)
class CampaignFile:
    id: str
    model: Campaign
    source: LocatedYaml


@dataclass
class Project:
    """A loaded campaign repository."""

    root: Path
    settings: Settings
    audiences: Audiences
    campaigns: dict[str, CampaignFile]
    audiences_source: LocatedYaml | None = None
    problems: list[Problem] = field(default_factory=list)
    _calendars: dict[str, BusinessCalendar] = field(default_factory=dict, repr=False)

    def path(self, relative: str, setting: str) -> Path:
        """A path from a setting, relative to the project root unless absolute.

        It must stay inside the project (symbolic links resolved) unless the operator lists
        its folder in LDMAIL_DATA_DIRS; `setting` names it in the error, e.g. "people.source
        in audiences.yaml".
        """
        return _project_path(self.root, relative, setting)

    def business_calendar(self, campaign_id: str) -> BusinessCalendar:
        """The days no send window of the campaign opens: its own `holidays:` or the
        project's."""
        found = self._calendars.get(campaign_id)
        if found is None:
            own = self.campaigns[campaign_id].model.holidays
            found = self._calendars[campaign_id] = \
                (own if own is not None else self.settings.holidays).calendar()
        return found

    @property
    def templates_dir(self) -> Path:
        return self.root / TEMPLATES_DIR

    def campaign(self, campaign_id: str) -> Campaign:
        try:
            return self.campaigns[campaign_id].model
        except KeyError:
            known = ", ".join(sorted(self.campaigns)) or "none"
            close = difflib.get_close_matches(campaign_id, list(self.campaigns), n=1)
            hint = f"did you mean '{close[0]}'? " if close else ""
            raise ConfigError(
                [Problem(CAMPAIGNS_DIR, None,
                         f"no campaign '{campaign_id}'; {hint}campaigns here: {known}")]
            ) from None


def _project_path(root: Path, relative: str, setting: str) -> Path:
    """Project.path, before the project is whole (while loading it)."""
    candidate = Path(relative).expanduser()
    full = candidate if candidate.is_absolute() else root / candidate
    confined(full, root, setting, data=True)
    return full


@dataclass(frozen=True)
class _Mapping:
    """The values of a dict field: the next part of a location is a free-form key."""

    values: tuple[Any, ...]


def _unwrap(annotation: Any) -> list[Any]:
    """The concrete types inside Optional/Union/list/dict/Annotated annotations."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _unwrap(typing.get_args(annotation)[0])
    if origin is dict:
        return [_Mapping(tuple(_unwrap(typing.get_args(annotation)[1])))]
    if origin in (typing.Union, types.UnionType, list, tuple):
        found: list[Any] = []
        for arg in typing.get_args(annotation):
            found.extend(_unwrap(arg))
        return found
    return [annotation]


def _fields_at(model: type[BaseModel], loc: Loc) -> list[str]:
    """Field names of the model found by following `loc` from `model`."""
    current: list[Any] = [model]
    for part in loc:
        if isinstance(part, int):
            continue
        following: list[Any] = []
        for candidate in current:
            if isinstance(candidate, _Mapping):
                following.extend(candidate.values)
            elif isinstance(candidate, type) and issubclass(candidate, BaseModel):
                info = candidate.model_fields.get(part)
                if info is not None:
                    following.extend(_unwrap(info.annotation))
        current = following
    names: list[str] = []
    for candidate in current:
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            names.extend(candidate.model_fields)
    return names


_MAPPING = "a mapping of keys to values (key: value on each line, or {key: value})"
_LIST = "a list (one '- item' per line, or [a, b])"
# What a value of each pydantic error type should have been, in an author's words.
_EXPECTED = {
    "list_type": _LIST, "tuple_type": _LIST, "set_type": _LIST,
    "dict_type": _MAPPING, "model_type": _MAPPING, "model_attributes_type": _MAPPING,
    "string_type": "text", "int_type": "a whole number", "int_parsing": "a whole number",
    "int_from_float": "a whole number", "float_type": "a number", "float_parsing": "a number",
    "bool_type": "true or false", "bool_parsing": "true or false",
    "date_type": "a date such as 2026-12-01", "date_parsing": "a date such as 2026-12-01",
    "date_from_datetime_parsing": "a date such as 2026-12-01",
    "date_from_datetime_inexact": "a date such as 2026-12-01",
}


def _shown(value: Any) -> str:
    if value is None:
        return "nothing (the value is empty)"
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, int | float):
        return f"the number {value}"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    text = str(value)
    return repr(text if len(text) <= 60 else text[:57] + "...")


def _plain(error: Any) -> str:
    """Pydantic's message for one error, rephrased for someone editing YAML."""
    kind, value, ctx = error["type"], error.get("input"), error.get("ctx") or {}
    if kind in _EXPECTED:
        hint = "; put it in quotes" if kind == "string_type" and \
            isinstance(value, int | float | bool) else ""
        return f"expected {_EXPECTED[kind]}, got {_shown(value)}{hint}"
    if kind == "too_short":
        return f"needs at least {ctx.get('min_length', 1)} item(s)"
    if kind == "literal_error":
        return f"{_shown(value)} is not one of {ctx.get('expected', '')}"
    if kind == "string_pattern_mismatch":
        return (f"{_shown(value)} has characters that are not allowed here; use lower-case "
                "letters, digits, '-' and '_'")
    return str(error["msg"]).removeprefix("Value error, ")


def _message(model: type[BaseModel], error: Any) -> str:
    loc: Loc = tuple(error["loc"])
    key = str(loc[-1]) if loc else ""
    kind = error["type"]
    if kind == "extra_forbidden":
        allowed = _fields_at(model, loc[:-1])
        close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        return f"unknown key '{key}'{hint}; allowed here: {', '.join(allowed)}"
    if kind == "missing":
        return f"missing required key '{key}'; add it"
    text = _plain(error)
    where = ".".join(str(p) for p in loc if not isinstance(p, int))
    # Union members produce a location per tried type; name the key a user wrote.
    return f"{where}: {text}" if where else text


def validate_model(model: type[M], source: LocatedYaml, problems: list[Problem]) -> M | None:
    """Validate parsed YAML against a model; each error becomes a located Problem."""
    data = source.data if source.data is not None else {}
    if not isinstance(data, dict):
        problems.append(Problem(source.display, 1, "expected a mapping of keys to values"))
        return None
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        seen: set[tuple[int, str]] = set()
        errors: list[dict[str, Any]] = [
            {**e, "loc": tuple(p for p in e["loc"] if not _is_union_tag(p)) + _extra_loc(e)}
            for e in exc.errors()]
        # A typo'd key also makes the real key "missing"; the typo message already says it.
        suggested = {(e["loc"][:-1], close) for e in errors if e["type"] == "extra_forbidden"
                     for close in difflib.get_close_matches(
                         str(e["loc"][-1]), _fields_at(model, e["loc"][:-1]), n=1, cutoff=0.6)}
        for error in errors:
            loc = error["loc"]
            if error["type"] == "missing" and (loc[:-1], loc[-1]) in suggested:
                continue
            line = source.line_of(loc)
            message = _message(model, error)
            if (line, message) not in seen:
                seen.add((line, message))
                problems.append(Problem(source.display, line, message))
        return None


def _extra_loc(error: Any) -> Loc:
    """Where a whole-model check (FieldError) says the problem is, below the error's loc."""
    cause = (error.get("ctx") or {}).get("error")
    return cause.loc if isinstance(cause, FieldError) else ()


def _is_union_tag(part: str | int) -> bool:
    # pydantic names the union member it tried ("str", "dict[str,str]", "function-before[...]")
    return isinstance(part, str) and ("[" in part or part in {"str", "int", "float", "bool"})


def _check_address(source: LocatedYaml, key: str, value: str | None,
                   problems: list[Problem]) -> None:
    """A From or Reply-To value: one line, one valid address."""
    from email_validator import EmailNotValidError, validate_email

    if value is None:
        return
    line = source.line_of((key,))
    if any(ch in value for ch in "\r\n\x00"):
        problems.append(Problem(source.display, line,
                                f"{key} contains a line break; it becomes a mail header, so "
                                "write it on one line: \"Name <address@example.org>\""))
        return
    _, address = parseaddr(value)
    try:
        validate_email(address, check_deliverability=False)
    except EmailNotValidError as exc:
        reason = str(exc).rstrip(".") if address else "no address found"
        problems.append(Problem(source.display, line, f"{key} '{value}': {reason}; write "
                                "\"Name <address@example.org>\""))


def _check_sender(campaign: CampaignFile, problems: list[Problem]) -> None:
    _check_address(campaign.source, "sender", campaign.model.sender, problems)
    _check_address(campaign.source, "reply_to", campaign.model.reply_to, problems)


def _cross_check(audiences: Audiences | None, audiences_source: LocatedYaml | None,
                 campaigns: dict[str, CampaignFile], invalid: list[LocatedYaml],
                 problems: list[Problem]) -> None:
    """What one file uses from another. Without audiences (audiences.yaml did not load), only
    a campaign's own senders are checked: its personas and names are not guessed at."""
    for campaign in campaigns.values():
        _check_sender(campaign, problems)
    if audiences is None:
        return
    for located in invalid:  # a campaign that does not validate still names its personas
        raw = located.data if isinstance(located.data, dict) else {}
        audience = raw.get("audience")
        if isinstance(audience, dict):
            _check_personas(audience.get("personas"), audiences.personas, located, problems)
    personas = audiences.personas
    columns = set(audiences.people.columns)
    for campaign in campaigns.values():
        source, model = campaign.source, campaign.model
        _check_personas(model.audience.personas, personas, source, problems)
        if model.anchor and model.anchor not in audiences.people.dates:
            problems.append(Problem(
                source.display, source.line_of(("anchor",)),
                f"anchor '{model.anchor}' is not a date attribute; list it under people.dates in "
                f"{AUDIENCES_FILE} (date attributes: "
                f"{', '.join(audiences.people.dates) or 'none'})"))
        if model.audience.where:
            _check_names(model.audience.where, columns, source,
                         ("audience", "where"), problems)
        for index, step in enumerate(model.steps):
            if step.involves_manager and MANAGER_EMAIL not in columns:
                what = "goes to the manager" if step.to == "manager" else \
                    "copies the manager in"
                problems.append(Problem(
                    source.display, source.line_of(
                        ("steps", index, "to" if step.to == "manager" else "cc_manager")),
                    f"step '{step.id}' {what}, but people.columns in {AUDIENCES_FILE} maps no "
                    f"{MANAGER_EMAIL}: add the export's column with each person's manager's "
                    f"address, e.g. {MANAGER_EMAIL}: Manager e-mail"))
            if step.when:
                _check_names(step.when, columns | HELPERS, source, ("steps", index, "when"),
                             problems, helpers=True)
    if audiences_source is not None:
        for name, persona in personas.items():
            _check_names(persona.match, columns, audiences_source,
                         ("personas", name, "match"), problems)


def _check_personas(names: object, personas: dict[str, Any], source: LocatedYaml,
                    problems: list[Problem]) -> None:
    """Every persona a campaign targets must exist (checked on raw data too)."""
    if not isinstance(names, list):
        return
    for index, name in enumerate(names):
        if name not in personas:
            close = difflib.get_close_matches(str(name), list(personas), n=1)
            hint = f"did you mean '{close[0]}'? " if close else ""
            problems.append(Problem(
                source.display, source.line_of(("audience", "personas", index)),
                f"unknown persona '{name}'; {hint}personas in {AUDIENCES_FILE}: "
                f"{', '.join(personas)}"))


def _check_names(expression: str, columns: set[str], source: LocatedYaml, loc: Loc,
                 problems: list[Problem], *, helpers: bool = False) -> None:
    from ..sandbox.expressions import free_names

    known = columns | set(DERIVED_ATTRIBUTES)
    for name in sorted(free_names(expression) - known):
        close = difflib.get_close_matches(name, list(known), n=1)
        hint = f"did you mean '{close[0]}'? " if close else ""
        what = "helper or attribute" if helpers else "attribute"
        also = f"helpers: {', '.join(sorted(HELPERS))}; " if helpers else ""
        problems.append(Problem(
            source.display, source.line_of(loc),
            f"expression uses unknown {what} '{name}'; {hint}{also}attributes: "
            f"{', '.join(sorted(known - HELPERS))} (map more columns under people.columns)"))


def _load(root: Path, path: Path, display: str, problems: list[Problem]) -> LocatedYaml | None:
    try:
        confined(path, root, display)  # a file in the project, not a link out of it
    except OutsideProject as exc:
        problems.append(exc.problem())
        return None
    loaded = load_yaml(path, display)
    if isinstance(loaded, Problem):
        problems.append(loaded)
        return None
    return loaded


def _check_paths(root: Path, settings: Settings | None, settings_yaml: LocatedYaml | None,
                 audiences: Audiences | None, audiences_yaml: LocatedYaml | None,
                 problems: list[Problem]) -> None:
    """Every file or folder a setting names stays in the project (or an operator's folder);
    the paths of a file that did not load are not checked."""
    named: list[tuple[str, LocatedYaml | None, tuple[str, ...], str]] = []
    if audiences is not None:
        named.append((audiences.people.source, audiences_yaml, ("people", "source"),
                      PEOPLE_SOURCE))
    if settings is not None:
        named += [(settings.ledger, settings_yaml, ("ledger",), LEDGER_SETTING),
                  (settings.transport.outbox, settings_yaml, ("transport", "outbox"),
                   OUTBOX_SETTING)]
        if settings.inbox is not None and settings.inbox.path:
            named.append((settings.inbox.path, settings_yaml, ("inbox", "path"),
                          f"inbox.path in {SETTINGS_FILE}"))
    for value, source, loc, setting in named:
        try:
            _project_path(root, value, setting)
        except OutsideProject as exc:
            where = source.display if source else SETTINGS_FILE
            line = source.line_of(loc) if source else None
            problems.append(Problem(where, line, f"{'.'.join(loc)}: "
                                    f"{str(exc).removeprefix(setting + ': ')}"))


def is_project(folder: Path) -> bool:
    """A campaign repository: it has audiences.yaml or ldmail.yaml."""
    return (folder / AUDIENCES_FILE).is_file() or (folder / SETTINGS_FILE).is_file()


def find_project(start: Path) -> Path | None:
    """The nearest folder from `start` upwards that is a campaign repository, as git finds
    its repository; None when there is none up to the file system's root."""
    start = start.resolve()
    for folder in (start, *start.parents):
        if is_project(folder):
            return folder
    return None


def _in_project_zone(file: CampaignFile, zone: ZoneInfo) -> CampaignFile:
    """A campaign that names no zone of its own sends in the project's."""
    window = file.model.send_window
    if "timezone" in window.model_fields_set or window.timezone == zone:
        return file
    own = window.model_copy(update={"timezone": zone})
    return CampaignFile(file.id, file.model.model_copy(update={"send_window": own}), file.source)


def project_timezone(root: Path | None) -> tzinfo:
    """The zone a time written without one is read in, before (or without) loading the whole
    project: its `timezone` in ldmail.yaml, else the default; outside any project, this
    machine's. A wrong value is reported by the full load, with its line."""
    if root is None:
        return machine_zone()
    try:
        data = yaml.safe_load((root / SETTINGS_FILE).read_text(encoding="utf-8"))
        return parse_timezone(data["timezone"])
    except (OSError, yaml.YAMLError, TypeError, KeyError, ValueError, UnicodeError):
        return DEFAULT_TIMEZONE


def load_project(root: Path, *, strict: bool = True) -> Project:
    """Load and check everything; with strict, any problem raises ConfigError listing all."""
    root = root.resolve()
    audiences_path = root / AUDIENCES_FILE
    campaigns_dir = root / CAMPAIGNS_DIR
    if not audiences_path.exists() and not campaigns_dir.is_dir():
        raise ProjectNotFound(root)
    problems: list[Problem] = []

    settings: Settings | None = Settings()
    settings_yaml: LocatedYaml | None = None
    settings_path = root / SETTINGS_FILE
    if settings_path.exists():
        settings_yaml = _load(root, settings_path, SETTINGS_FILE, problems)
        settings = validate_model(Settings, settings_yaml, problems) if settings_yaml else None

    audiences: Audiences | None = None
    audiences_yaml: LocatedYaml | None = None
    if not audiences_path.exists():
        problems.append(Problem(AUDIENCES_FILE, None,
                                "missing; it defines where people come from and the personas"))
    else:
        audiences_yaml = _load(root, audiences_path, AUDIENCES_FILE, problems)
        if audiences_yaml:
            audiences = validate_model(Audiences, audiences_yaml, problems)

    campaigns, invalid = _load_campaigns(root, problems)
    # The checks across files run on whatever loaded, so one run names every problem.
    _check_paths(root, settings, settings_yaml, audiences, audiences_yaml, problems)
    _cross_check(audiences, audiences_yaml, campaigns, invalid, problems)
    problems.sort(key=lambda p: (p.file, p.line or 0))
    if settings is None or audiences is None:
        raise ConfigError(problems)
    campaigns = {key: _in_project_zone(file, settings.timezone) for key, file in campaigns.items()}
    project = Project(root, settings, audiences, campaigns, audiences_yaml, problems)
    if strict and problems:
        raise ConfigError(problems)
    return project


def _load_campaigns(root: Path, problems: list[Problem]
                    ) -> tuple[dict[str, CampaignFile], list[LocatedYaml]]:
    """The campaign files that load, by id, and the ones that do not validate (their
    personas are still checked, so one run names every problem)."""
    campaigns_dir = root / CAMPAIGNS_DIR
    campaigns: dict[str, CampaignFile] = {}
    invalid: list[LocatedYaml] = []
    files = sorted(campaigns_dir.glob("*.y*ml")) if campaigns_dir.is_dir() else []
    if not files:
        problems.append(Problem(CAMPAIGNS_DIR, None, "no campaign files (campaigns/*.yaml) found"))
    problems.extend(escaping_links(root, CAMPAIGNS_DIR))
    problems.extend(escaping_links(root, TEMPLATES_DIR, own_folder=True))
    for path in files:
        display = f"{CAMPAIGNS_DIR}/{one_line(path.name)}"
        if not CAMPAIGN_ID.fullmatch(path.stem):
            problems.append(Problem(display, None, (
                "the file name is the campaign id, which goes into mail headers and links: "
                "use lower-case letters, digits, '-' and '_' only, starting with a letter or "
                "digit (e.g. campaigns/welcome-2027.yaml)")))
            continue
        located = _load(root, path, display, problems)
        if located is None:
            continue
        model = validate_model(Campaign, located, problems)
        if model is not None:
            campaigns[path.stem] = CampaignFile(path.stem, model, located)
        else:
            invalid.append(located)
    return campaigns, invalid
