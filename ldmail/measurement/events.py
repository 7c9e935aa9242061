"""Goal events from an LMS CSV export or xAPI statements, recorded once each."""

from __future__ import annotations

import difflib
import hashlib
import json
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..audience.export import find_column, normalise_email, read_rows
from ..clock import iso
from ..errors import JsonLimit, LdmailError
from ..ledger import GoalEvent, Ledger
from ..project.models import DateLimits
from ..sandbox.conditions import verb_name
from ..sandbox.hygiene import excerpt, first_control

if TYPE_CHECKING:
    from ..project.config import Project

# Header names we recognise in LMS exports (English, Dutch and German), lower-cased.
CSV_COLUMNS = {
    "email": ("email", "e-mail", "mail", "user email", "learner email", "e-mail address",
              "email address", "e-mailadres", "emailadres", "e-mail-adresse"),
    "event": ("event", "verb", "status", "action", "event type", "gebeurtenis", "actie",
              "ereignis", "aktion"),
    "object": ("object", "course", "course id", "course_id", "course code", "activity",
               "activity id", "cursus", "cursuscode", "training", "kurs", "kurs-id"),
    "timestamp": ("timestamp", "date", "time", "occurred_at", "datetime", "date/time", "datum",
                  "tijdstip", "datum/tijd", "zeitpunkt", "zeitstempel"),
}
_TIME_FORMATS = ("%d-%m-%Y %H:%M:%S", "%d-%m-%Y %H:%M", "%d-%m-%Y", "%d/%m/%Y %H:%M:%S",
                 "%d/%m/%Y %H:%M", "%d/%m/%Y", "%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M")


@dataclass(frozen=True)
class Event:
    email: str
    event: str
    object: str
    occurred_at: datetime


@dataclass(frozen=True)
class Skipped:
    position: str
    reason: str


@dataclass
class ImportResult:
    source: str
    kind: str
    added: int = 0
    already_known: int = 0
    skipped: list[Skipped] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        """Whether the file had rows and none of them could be imported (nor was known)."""
        return bool(self.skipped) and not self.added and not self.already_known


def import_events_file(project: Project, path: Path, *, kind: str = "auto",
                       db: Path | None = None) -> ImportResult:
    """`ldmail events import`: a file's events, in the project's zone and date limits, its
    xAPI actors looked up in the people export."""
    with Ledger.of(project, db) as ledger:
        return import_events(ledger, path, zone=project.settings.timezone, kind=kind,
                             limits=project.settings.dates, lookup=actor_lookup(project, ledger))


def parse_timestamp(text: str, zone: tzinfo = UTC) -> datetime:
    """ISO 8601 (xAPI) or the day-first formats LMS exports use. A time without a zone is
    read in `zone`: UTC for what an LRS stores, the project's zone for a file an operator
    imports."""
    text = text.strip()
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        for fmt in _TIME_FORMATS:
            try:
                moment = datetime.strptime(text, fmt)
                break
            except ValueError:
                continue
        else:
            raise ValueError(f"unreadable timestamp {excerpt(text)}") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=zone)


def _from_csv(path: Path, display: str, zone: tzinfo) -> Iterator[tuple[str, Event | str]]:
    header, rows = read_rows(path, display)
    positions: dict[str, int] = {}
    for name, options in CSV_COLUMNS.items():
        index = find_column(header, options)
        if index is None:
            raise LdmailError(f"{display}: no {name} column; name one of: "
                              f"{', '.join(options)} (found: {', '.join(header)})")
        positions[name] = index
    for line, cells in rows:
        where = f"row {line}"
        if cells and cells[0].startswith("\x00"):  # read_rows' mark for a row csv cannot parse
            yield where, f"unreadable CSV ({cells[0][1:]})"
            continue
        try:
            values = {k: cells[i].strip() if i < len(cells) else "" for k, i in positions.items()}
            email = normalise_email(values["email"])
            if not values["event"]:
                raise ValueError("empty event")
            yield where, Event(email, event_name(values["event"]), course_id(values["object"]),
                               parse_timestamp(values["timestamp"], zone))
        except ValueError as exc:
            yield where, str(exc)


# Finds the address of an actor without a mailto: mbox (by mbox_sha1sum or account), or None.
ActorLookup = Callable[[dict[str, Any]], str | None]


def actor_lookup(project: Project, ledger: Ledger) -> ActorLookup:
    """How `events import` and `events pull` both find the person of an actor without a
    mailto: mbox: an mbox_sha1sum against every address the ledger knows or the people export
    holds, and an account name through lrs.account_column. The export is read the first time
    a statement needs it, and only then."""
    lrs = project.settings.lrs
    column = lrs.account_column if lrs is not None else None
    hashes: dict[str, str] = {}
    export: PeopleIndex | None = None

    def people() -> PeopleIndex:
        nonlocal export
        if export is None:
            export = people_index(project, column)
            hashes.update(_hashed(export.addresses))
        return export

    def lookup(actor: dict[str, Any]) -> str | None:
        digest = actor.get("mbox_sha1sum")
        if isinstance(digest, str):
            if not hashes:
                hashes.update(_hashed(ledger.known_addresses()))
            digest = digest.strip().lower()
            if digest not in hashes:
                people()
            return hashes.get(digest)
        account = actor.get("account")
        if column is not None and isinstance(account, dict) and \
                isinstance(account.get("name"), str):
            return people().accounts.get(account["name"].strip())
        return None

    return lookup


def _hashed(addresses: Iterable[str]) -> dict[str, str]:
    """xAPI's mbox_sha1sum (the SHA-1 of "mailto:" and the address, in hex) -> address."""
    return {hashlib.sha1(f"mailto:{a}".encode()).hexdigest(): a for a in addresses}


@dataclass(frozen=True)
class PeopleIndex:
    addresses: list[str]
    accounts: dict[str, str]  # account name -> address, through lrs.account_column


def people_index(project: Project, column: str | None) -> PeopleIndex:
    """The export's addresses, and its account names when `column` (an attribute of
    people.columns or a header of the export) is given."""
    from ..project.config import PEOPLE_SOURCE

    source = project.audiences.people
    header, rows = read_rows(project.path(source.source, PEOPLE_SOURCE), source.source,
                             source.encoding, source.delimiter)
    lowered = {h.strip().lower(): i for i, h in enumerate(header)}
    mail = lowered.get(source.columns["email"].strip().lower())
    at = None
    if column is not None:
        at = lowered.get(source.columns.get(column, column).strip().lower())
        if at is None:
            raise LdmailError(f"lrs.account_column: no column {column!r} in {source.source} "
                              f"(found: {', '.join(header)})")
    index = PeopleIndex([], {})
    if mail is None:
        return index
    for _, cells in rows:
        try:
            address = normalise_email(cells[mail]) if mail < len(cells) else None
        except ValueError:
            continue
        if address is None:
            continue
        index.addresses.append(address)
        if at is not None and at < len(cells) and cells[at].strip():
            index.accounts[cells[at].strip()] = address
    return index


def _actor_email(actor: Any, lookup: ActorLookup | None = None) -> str:
    if not isinstance(actor, dict):
        raise ValueError("no actor")
    mbox = actor.get("mbox")
    if isinstance(mbox, str) and mbox.lower().startswith("mailto:"):
        return normalise_email(mbox[7:])
    found = lookup(actor) if lookup is not None else None
    if found:
        return found
    account = actor.get("account")
    if isinstance(account, dict) and "@" in str(account.get("name", "")):
        return normalise_email(str(account["name"]))
    if isinstance(actor.get("mbox_sha1sum"), str):
        raise ValueError("actor's mbox_sha1sum matches no one in the people export or the "
                         "ledger")
    if isinstance(account, dict):
        raise ValueError("actor's account matches no one in the people export (lrs."
                         "account_column in ldmail.yaml names the column of account names)")
    raise ValueError("actor has no mbox (mailto:) and no account named by an e-mail address")


def statement_event(statement: Any, lookup: ActorLookup | None = None,
                    zone: tzinfo = UTC) -> Event:
    """One xAPI statement as a goal event; raises ValueError naming what is missing."""
    if not isinstance(statement, dict):
        raise ValueError("not a JSON object")
    check_field_sizes(statement)
    verb = statement.get("verb")
    verb_id = verb.get("id") if isinstance(verb, dict) else None
    if not isinstance(verb_id, str) or not verb_name(verb_id):
        raise ValueError("no verb.id (e.g. http://adlnet.gov/expapi/verbs/registered)")
    target = statement.get("object")
    object_id = target.get("id") if isinstance(target, dict) else None
    if not isinstance(object_id, str) or not object_id.strip():
        raise ValueError("no object.id (the course or activity)")
    stamp = statement.get("timestamp") or statement.get("stored")
    if not isinstance(stamp, str):
        raise ValueError("no timestamp")
    return Event(_actor_email(statement.get("actor"), lookup), event_name(verb_id),
                 course_id(object_id), parse_timestamp(stamp, zone))


def event_name(verb: str) -> str:
    """An event's name from a verb id or an export's event cell (see verb_name), refused
    when it holds control characters (see _plain)."""
    return _plain(verb_name(verb), "the event name")


# The longest value ldmail takes from a statement, in characters (a UUID has 36, an address at
# most 254, an IRI rarely more than a few hundred): a statement with a longer one is refused
# as a whole, so the ledger and `history` never hold megabytes of one id or name.
FIELD_LIMITS = {"id": 64, "actor": 320, "verb": 2048, "object": 2048}


def check_field_sizes(statement: dict[str, Any]) -> None:
    """ValueError naming the first field of `statement` longer than FIELD_LIMITS allows."""
    actor = statement.get("actor")
    account = actor.get("account") if isinstance(actor, dict) else None
    verb, target = statement.get("verb"), statement.get("object")
    fields = (("id", "id", statement.get("id")),
              ("actor", "actor.mbox", actor.get("mbox") if isinstance(actor, dict) else None),
              ("actor", "actor.name", actor.get("name") if isinstance(actor, dict) else None),
              ("actor", "actor.account.name",
               account.get("name") if isinstance(account, dict) else None),
              ("verb", "verb.id", verb.get("id") if isinstance(verb, dict) else None),
              ("object", "object.id", target.get("id") if isinstance(target, dict) else None))
    for kind, name, value in fields:
        if isinstance(value, str) and len(value) > FIELD_LIMITS[kind]:
            raise ValueError(f"{name} of {len(value):,} characters (at most "
                             f"{FIELD_LIMITS[kind]:,})")


def course_id(text: str) -> str:
    """An event's object (a course or activity id), trimmed, refused when it holds control
    characters (see _plain)."""
    return _plain(text.strip(), "the course or activity id")


def _plain(value: str, what: str) -> str:
    """`value`, unless it holds a control character (ESC, CR-LF) or a direction override
    (U+202E): no name or id has one, and the ledger, keys made from it (step@object) and
    every terminal that shows it later would carry it."""
    control = first_control(value)
    if control is not None:
        raise ValueError(f"{what} holds control characters ({control}); an export or LRS "
                         "that writes them is broken, fix it at its source")
    return value


_LINES = object()  # marks a file that is not one JSON document: JSON Lines


@dataclass(frozen=True)
class _Unreadable:
    """A line of a JSON Lines file that is not JSON."""

    reason: str


# No xAPI value is a number of more than a few digits or nests deeper than a few levels; a
# file that does is broken or hostile, and Python's json would fail with a traceback on it.
MAX_JSON_DIGITS = 40
MAX_JSON_DEPTH = 64
_JSON_STRUCTURE = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]')


def _number(text: str) -> float | int:
    if len(text) > MAX_JSON_DIGITS:
        raise JsonLimit(f"a number of {len(text):,} digits (at most {MAX_JSON_DIGITS})")
    return float(text) if any(c in text for c in ".eE") else int(text)


def _deep_line(text: str, limit: int = MAX_JSON_DEPTH) -> int | None:
    """The line where `text` first nests deeper than `limit`, or None."""
    depth = 0
    for token in _JSON_STRUCTURE.finditer(text):
        if token.group() in "[{":
            depth += 1
            if depth > limit:
                return text.count("\n", 0, token.start()) + 1
        elif token.group() in "]}":
            depth -= 1
    return None


def load_json(text: str, depth: int = MAX_JSON_DEPTH) -> Any:
    """json.loads with the limits above (a document that wraps statements may allow them
    their depth); JsonLimit (with a line) instead of a traceback."""
    deep = _deep_line(text, depth) if text.count("[") + text.count("{") > depth else None
    if deep is not None:
        raise JsonLimit(f"nested more than {depth} levels deep", deep)
    try:
        return json.loads(text, parse_int=_number, parse_float=_number)
    except RecursionError:  # a `depth` too close to Python's own limit
        raise JsonLimit(f"nested more than {depth} levels deep", 1) from None
    except JsonLimit as exc:
        long_number = re.search(r"\d{" + str(MAX_JSON_DIGITS + 1) + ",}", text)
        line = text.count("\n", 0, long_number.start()) + 1 if long_number else 1
        raise JsonLimit(exc.reason, line) from None


def _from_xapi(path: Path, display: str, lookup: ActorLookup | None, zone: tzinfo
               ) -> Iterator[tuple[str, Event | str]]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise LdmailError(f"{display}: cannot read ({exc})") from None
    items: list[tuple[str, Any]] = []
    expected = ("export the statements as a JSON array, an LRS answer {\"statements\": [...]} "
                "or one statement per line")
    try:
        document: Any = load_json(text)
    except JsonLimit as exc:
        if text.lstrip().startswith("["):
            raise LdmailError(f"{display}:{exc.line}: {exc.reason}; {expected}") from None
        document = _LINES  # perhaps one statement per line: each line is checked on its own
    except json.JSONDecodeError as exc:
        if text.lstrip().startswith("["):
            cut = exc.pos >= len(text.rstrip())
            at = text.rstrip().count("\n") + 1 if cut else exc.lineno
            reason = "the file ends before the JSON does (cut off?)" if cut else exc.msg
            raise LdmailError(f"{display}:{at}: invalid JSON ({reason}); {expected}") from None
        document = _LINES  # not one JSON document: statements one per line (JSON Lines)
    if isinstance(document, dict) and "statements" not in document and \
            ("verb" in document or "actor" in document):
        document = [document]  # one statement, perhaps pretty-printed over several lines
    if document is not _LINES and not isinstance(document, list) and not (
            isinstance(document, dict) and isinstance(document.get("statements"), list)):
        kinds = {str: "string", int: "number", float: "number", bool: "true or false"}
        what = f"an object with keys {', '.join(map(str, document))}" \
            if isinstance(document, dict) else f"a JSON {kinds.get(type(document), 'null')}"
        raise LdmailError(f"{display}: holds {what}, not xAPI statements; {expected}")
    if isinstance(document, list) or isinstance(document, dict):
        # A JSON array, or a Learning Record Store's answer: {"statements": [...], "more": …}.
        statements = document if isinstance(document, list) else document["statements"]
        items = [(f"statement {i}", s) for i, s in enumerate(statements, start=1)]
    else:
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                items.append((f"line {number}", load_json(line)))
            except json.JSONDecodeError as exc:
                items.append((f"line {number}", _Unreadable(f"invalid JSON ({exc.msg})")))
            except JsonLimit as exc:
                items.append((f"line {number}", _Unreadable(exc.reason)))
    for where, statement in items:
        if isinstance(statement, _Unreadable):
            yield where, statement.reason
            continue
        try:
            yield where, statement_event(statement, lookup, zone)
        except ValueError as exc:
            yield where, str(exc)


def detect_kind(path: Path) -> str:
    if path.suffix.lower() in {".json", ".jsonl", ".ndjson"}:
        return "xapi"
    return "csv"


def require_file(path: Path) -> None:
    """An LdmailError naming a close file name when `path` is not a file."""
    if not path.is_file():
        folder = path.parent if path.parent.is_dir() else None
        names = [p.name for p in folder.iterdir() if p.is_file()] if folder else []
        close = difflib.get_close_matches(path.name, names, n=1)
        hint = f"; did you mean {path.with_name(close[0])}?" if close else ""
        raise LdmailError(f"{path}: file not found{hint}")


def import_events(ledger: Ledger, path: Path, *, zone: tzinfo, kind: str = "auto",
                  display: str | None = None, limits: DateLimits | None = None,
                  lookup: ActorLookup | None = None) -> ImportResult:
    """Add the file's events to the ledger; events already recorded are not added again.
    A time without a zone is read in `zone` (the project's); `lookup` finds the people of
    xAPI actors without an mbox (see actor_lookup)."""
    require_file(path)
    display = display or str(path)
    kind = detect_kind(path) if kind == "auto" else kind
    source = _from_xapi(path, display, lookup, zone) if kind == "xapi" else \
        _from_csv(path, display, zone)
    result = ImportResult(display, kind)
    good: list[tuple[str, Event]] = []
    limits = limits or DateLimits()
    # A forgotten person's events are not stored: their address would come back with them.
    forgotten = ledger.forgotten_hashes()
    for where, item in source:
        if not isinstance(item, str):
            try:
                limits.check(item.occurred_at, "the event's date")
            except ValueError as exc:
                item = str(exc)
            else:
                if forgotten and ledger.address_hash(item.email) in forgotten:
                    item = "this person was forgotten on request; their events are not recorded"
        if isinstance(item, str):
            result.skipped.append(Skipped(where, item))
        else:
            good.append((where, item))
    # Recorded in one transaction; a new event makes a running send re-check goals.
    recorded = ledger.record_events(
        [GoalEvent(event.email, event.event, event.object, iso(event.occurred_at))
         for _, event in good], path.name)
    result.added, result.already_known = recorded.added, recorded.known
    result.skipped.extend(Skipped(good[index][0], why) for index, why in recorded.refused)
    return result
