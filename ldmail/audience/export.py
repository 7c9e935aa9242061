"""People from an HR/LMS export, checked row by row, and their personas."""

from __future__ import annotations

import codecs
import csv
import difflib
import hashlib
import io
import re
from collections import Counter
from collections.abc import (
    Callable,
    Container,
    Generator,
    Iterable,
    Iterator,
    Mapping,
    Sequence,
)
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import lru_cache
from operator import itemgetter
from pathlib import Path
from typing import Any, NamedTuple, TypeVar, cast
from zoneinfo import ZoneInfo

from ..errors import ConfigError, LdmailError, PersonaFailed, Problem, RowRejected, UnreadableFile
from ..project.business_days import Region, parse_region
from ..project.config import AUDIENCES_FILE, PEOPLE_SOURCE, Project
from ..project.models import MANAGER_EMAIL, Audiences, Campaign, DateLimits, Persona
from ..project.schedule import in_holdout
from ..sandbox.expressions import evaluate, free_names
from ..sandbox.hygiene import excerpt
from ..units import parse_timezone

_DATE_FORMATS = ("%Y-%m-%d", "%d-%m-%Y", "%d/%m/%Y", "%d.%m.%Y", "%Y/%m/%d", "%d-%m-%y")


class Attributes(Mapping[str, Any]):
    """A person's attributes, read-only: values in a tuple, names shared by the whole export.

    A dict per person costs several hundred bytes; with a million learners that alone is
    more memory than a run should need.
    """

    __slots__ = ("_index", "_values")

    def __init__(self, index: dict[str, int], values: tuple[Any, ...]) -> None:
        self._index = index
        self._values = values

    @property
    def by_position(self) -> tuple[Any, ...]:
        """The values in the export's attribute order (the same for every person)."""
        return self._values

    def __getitem__(self, name: str) -> Any:
        return self._values[self._index[name]]

    def get(self, name: str, default: Any = None) -> Any:
        position = self._index.get(name)
        return default if position is None else self._values[position]

    def __contains__(self, name: object) -> bool:
        return name in self._index

    def __iter__(self) -> Iterator[str]:
        return iter(self._index)

    def __len__(self) -> int:
        return len(self._index)

    def __repr__(self) -> str:
        return repr(dict(self))


class Person(NamedTuple):  # a tuple: one is made per row of a million-row export
    """One learner as the export describes them, with the persona they fall into."""

    email: str
    row: int
    attributes: Attributes
    persona: str | None
    language: str
    timezone: ZoneInfo | None
    country: Region | None = None  # whose public holidays close their send window

    @property
    def display_name(self) -> str:
        parts = [self.attributes.get("first_name"), self.attributes.get("last_name")]
        return " ".join(str(p) for p in parts if p)


@dataclass(frozen=True)
class Rejected:
    row: int
    email: str
    reason: str


# A name cell holding "?" between letters: the mark Excel's save in a Western code page
# leaves where a letter had no place in it (Małgorzata -> Ma?gorzata).
_LOST_LETTER = re.compile(r"\w\?\w")
# Row notes kept in full; beyond that they are only counted (an export can repeat one mistake
# a million times).
MAX_NOTES = 1000


@lru_cache(maxsize=1024)
def read_language(value: str, languages: tuple[str, ...], default: str) -> tuple[str, str | None]:
    """A language cell as one of `languages`, and a note for the row when it was not one.

    A configured code is taken as it is; a regional tag (nl-NL, en_GB) or a language's name
    in most languages (Deutsch, Dutch, Néerlandais) is read as its code; anything else gets
    the default language. The note says which, so the export can be fixed.
    """
    import langcodes

    text = value.strip()
    if not text or text.lower() in languages:
        return (text.lower() or default), None
    try:
        code = langcodes.standardize_tag(text.replace("_", "-")).split("-")[0]
        named = False
    except ValueError:
        code, named = "", True
    if code not in languages:
        try:
            found = langcodes.find(text).language
        except LookupError:
            found = None
        if found:
            code, named = found, True
    shown = ", ".join(languages)
    if code in languages:
        return code, (f"language {excerpt(text)} read as '{code}'; write the code ({shown})"
                      if named else None)
    if code and langcodes.Language.get(code).is_valid():
        what = (f"language {excerpt(text)} ({langcodes.Language.get(code).display_name()}) is "
                f"not one of the campaign languages ({shown})")
    else:
        names = {name.lower(): known for known in languages
                 for name in (known, langcodes.Language.get(known).display_name(),
                              langcodes.Language.get(known).autonym())}
        close = difflib.get_close_matches(text.lower(), names, n=1, cutoff=0.6)
        hint = f" (did you mean '{names[close[0]]}'?)" if close else ""
        what = f"language {excerpt(text)} is not a language{hint}; write one of {shown}"
    return default, f"{what}: this person gets '{default}'"


@lru_cache(maxsize=65536)
def parse_date(text: str) -> date:
    """ISO or day-first dates as European exports write them (cached: exports repeat dates)."""
    text = text.strip()
    impossible = ""
    for fmt in _DATE_FORMATS:
        try:
            return datetime.strptime(text, fmt).date()
        except ValueError as exc:
            if not str(exc).startswith(("time data", "unconverted data")):
                impossible = f": no such day ({exc})"  # the right shape, e.g. 31 February
    raise ValueError(f"unreadable date {excerpt(text)}{impossible} (write 2026-03-31 or "
                     "31-03-2026)")


# A plain ASCII local part (dot-atoms): the common case, checked by a regex; anything else
# (quoted, Unicode) goes through email-validator in full.
_PLAIN_LOCAL = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*")


@lru_cache(maxsize=4096)
def _checked_domain(domain: str) -> str:
    """Validate a domain once per export (there are few); returns it normalised."""
    from email_validator import EmailNotValidError, validate_email

    try:
        checked = validate_email(f"x@{domain}", check_deliverability=False)
        # An internationalised domain is kept in its ASCII (IDNA) form, which every relay takes.
        return str(checked.ascii_domain or checked.domain).lower()
    except EmailNotValidError as exc:
        raise ValueError(str(exc)) from None


def normalise_email(text: str) -> str:
    """A checked address, lower-cased; raises ValueError with the reason."""
    text = text.strip()
    if not text:
        raise ValueError("empty e-mail address")
    local, at, domain = text.rpartition("@")
    if at and len(local) <= 64 and len(text) <= 254 and _PLAIN_LOCAL.fullmatch(local):
        try:
            return f"{local.lower()}@{_checked_domain(domain)}"
        except ValueError as exc:
            raise ValueError(f"invalid e-mail address {excerpt(text)}: {str(exc).rstrip('.')}") \
                from None
    from email_validator import EmailNotValidError, validate_email  # not for plain addresses

    if at and not local.isascii():
        raise ValueError(f"invalid e-mail address {excerpt(text)}: the part before the @ has "
                         "non-ASCII characters, which most mail servers cannot deliver to "
                         "(SMTPUTF8); use the person's ASCII address")
    try:
        checked = validate_email(text, check_deliverability=False, allow_smtputf8=False)
    except EmailNotValidError as exc:
        raise ValueError(f"invalid e-mail address {excerpt(text)}: {str(exc).rstrip('.')}") \
            from None
    return str(checked.ascii_email or checked.normalized).lower()


_CHUNK = 1 << 20


def _first_decode_error(path: Path, encoding: str, skip: int) -> UnreadableFile | None:
    """The first byte the encoding cannot decode, as an error naming its line, if any.

    Checked in chunks before the rows are read, so a bad byte never stops a run half-way
    and a large export is never held in memory whole.
    """
    decoder = codecs.getincrementaldecoder(encoding)()
    lines = 0
    with path.open("rb") as handle:
        handle.seek(skip)
        while True:
            chunk = handle.read(_CHUNK)
            try:
                decoder.decode(chunk, final=not chunk)
            except UnicodeDecodeError as exc:
                line = lines + exc.object[:exc.start].count(b"\n") + 1
                return UnreadableFile(
                    f"line {line} is not {encoding} (byte "
                    f"0x{exc.object[exc.start]:02x}); fix people.encoding or save the export "
                    "as CSV UTF-8")
            if not chunk:
                return None
            lines += chunk.count(b"\n")


def open_text(path: Path, encoding: str | None) -> io.TextIOWrapper:
    """The export as text, read as it goes: UTF-8 (with or without BOM), UTF-16 with a BOM,
    else Windows-1252, as Excel saves it."""
    with path.open("rb") as handle:
        head = handle.read(4096)
    skip = 0
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)) and encoding is None:
        chosen, errors = "utf-16", "strict"  # Excel's "Unicode Text", tab-separated
        problem = _first_decode_error(path, "utf-16", 0)
    elif head.startswith(b"PK\x03\x04"):
        raise UnreadableFile("this is a zip file, probably an Excel workbook (.xlsx), not CSV; "
                             "in Excel use Save As > CSV UTF-8")
    elif b"\x00" in head:
        raise UnreadableFile("the file holds NUL bytes: UTF-16 without a byte-order mark or not "
                             "text at all; save the export as CSV UTF-8")
    else:
        # Some tools put a UTF-8 BOM in front of Windows-1252 text; the BOM is never data.
        skip = len(codecs.BOM_UTF8) if head.startswith(codecs.BOM_UTF8) else 0
        if encoding:
            # LookupError for an unknown name; a bytes-to-bytes codec (zlib_codec, bz2_codec,
            # base64) is no text encoding, and would let a small file unpack into gigabytes.
            if not getattr(codecs.lookup(encoding), "_is_text_encoding", True):
                raise LookupError(encoding)
            chosen, errors = encoding, "strict"
            problem = _first_decode_error(path, encoding, skip)
        elif _first_decode_error(path, "utf-8", skip) is None:
            chosen, errors, problem = "utf-8", "strict", None
        else:
            chosen, errors, problem = "cp1252", "replace", None
    if problem is not None:
        raise problem
    handle = path.open("rb")
    handle.seek(skip)
    return io.TextIOWrapper(handle, encoding=chosen, errors=errors, newline="")


class _Lines:
    """The export's lines for csv.reader, counted, with a way to read some of them again."""

    def __init__(self, source: io.TextIOBase) -> None:
        self._source = source
        self._again: list[str] = []
        self.fed = 0
        self.record: list[str] = []

    def __iter__(self) -> _Lines:
        return self

    def __next__(self) -> str:
        line = self._again.pop() if self._again else self._source.readline()
        if not line:
            raise StopIteration
        self.fed += 1
        self.record.append(line)
        return line

    def peek(self) -> str:
        """The next line, left to be read."""
        line = self._again[-1] if self._again else self._source.readline()
        if line and not self._again:
            self._again.append(line)
        return line

    def read_again(self, lines: list[str]) -> None:
        self._again.extend(reversed(lines))
        self.fed -= len(lines)


def _swallowed(cells: list[str], width: int, delimiter: str) -> bool:
    """Whether a multi-line cell holds what look like whole rows (an unclosed quote)."""
    needed = max(1, (width - 1) // 2)
    return any(part.count(delimiter) >= needed
               for cell in cells if "\n" in cell or "\r" in cell
               for part in cell.splitlines()[1:])


def sniff_delimiter(header_line: str) -> str:
    counts = {d: header_line.count(d) for d in (";", ",", "\t")}
    return max(counts, key=lambda d: counts[d]) if any(counts.values()) else ","


def find_column(header: list[str], names: tuple[str, ...]) -> int | None:
    """Position of the first of `names` among the headers, ignoring case."""
    lowered = [h.strip().lower() for h in header]
    return next((lowered.index(n) for n in names if n in lowered), None)


def _open_export(path: Path, display: str, encoding: str | None, missing: str
                 ) -> io.TextIOWrapper:
    """The export as text, or one located problem saying what is wrong with it."""
    try:
        return open_text(path, encoding)
    except FileNotFoundError:
        raise ConfigError([Problem(display, None, f"file not found; {missing}")]) from None
    except UnreadableFile as exc:
        raise ConfigError([Problem(display, None, str(exc))]) from None
    except LookupError:
        raise ConfigError([Problem(display, None, f"unknown encoding '{encoding}'; use e.g. "
                                                  "utf-8 or cp1252 in people.encoding")]) from None
    except OSError as exc:
        raise ConfigError([Problem(display, None, f"cannot read: {exc.strerror or exc}")]) \
            from None


def read_rows(path: Path, display: str, encoding: str | None = None,
              delimiter: str | None = None, *, missing: str = f"check people.source in "
              f"{AUDIENCES_FILE}") -> tuple[list[str], Iterator[tuple[int, list[str]]]]:
    """Header and (line number, cells) rows of a CSV export, tolerant of Excel's habits.

    `missing` is the advice when the file does not exist (it depends on who named it).
    """
    source = _open_export(path, display, encoding, missing)
    lines = _Lines(source)
    used = delimiter or sniff_delimiter(lines.peek())
    reader = csv.reader(lines, delimiter=used)
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration:
        source.close()
        raise ConfigError([Problem(display, 1, "the file is empty; it needs a header row")]) \
            from None
    except csv.Error as exc:
        source.close()
        raise ConfigError([Problem(display, 1, f"unreadable CSV header: {exc}")]) from None
    width = len(header)

    def rows() -> Iterator[tuple[int, list[str]] | None]:
        with source:
            yield None  # started here, so closing the rows (or dropping them) closes the file
            yield from each_row()

    def each_row() -> Iterator[tuple[int, list[str]]]:
        while True:
            lines.record = []
            start = lines.fed + 1
            try:
                cells = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                cells = [f"\x00{exc}"]
            if len(lines.record) > 1 and _swallowed(cells, width, used):
                # An unclosed quote ran on into the rows below: report it, read them again.
                yield start, [f"\x00a quote (\") opened on line {start} is not closed, so the "
                              f"{len(lines.record) - 1} line(s) below it were read as one cell; "
                              "close the quote (those lines were read again as rows)"]
                lines.read_again(lines.record[1:])
                continue
            if any(c.strip() for c in cells):
                yield start, cells

    started = rows()
    next(started)
    return header, cast(Iterator[tuple[int, list[str]]], started)


def _width_problem(found: int, width: int) -> str:
    """Why a row with another number of fields than the header is not read: a short one is
    cut off (an export saved or copied half-way), a long one has shifted cells."""
    if found < width:
        return (f"{found} field(s) where the header has {width}: the row is cut off (is the "
                "export complete?) or a cell lost its quotes; fix the row or export again")
    return (f"{found} fields where the header has {width}: a cell holds the delimiter without "
            "quotes, so the cells after it moved; quote that cell or export again")


_Parsed = TypeVar("_Parsed")


def _parsed(cache: dict[str, _Parsed], values: list[Any], at: int | None,
            parse: Callable[[str], _Parsed], name: str) -> _Parsed | None:
    """A column's value parsed (a time zone, a country), each distinct text once; None when
    the export has no such column or the cell is empty; a RowRejected naming the column."""
    if at is None or not values[at]:
        return None
    text = values[at]
    found = cache.get(text)
    if found is None:
        try:
            found = cache[text] = parse(text)
        except ValueError as exc:
            raise RowRejected(f"{name}: {exc}") from None
    return found


class Rule:
    """A yes/no expression over the people of one export, run once per distinct value of
    the attributes it reads: a few hundred runs for a whole export, not one per person."""

    def __init__(self, source: str, index: dict[str, int]) -> None:
        self.source = source
        names = free_names(source)
        # No memo when the rule reads a name nobody has: it then runs, and names it.
        self.pick: Callable[[Sequence[Any]], Any] | None = None
        if all(name in index for name in names):
            positions = sorted(index[name] for name in names)
            self.pick = itemgetter(*positions) if positions else (lambda values: ())
        self.answers: dict[Any, bool] = {}

    def __call__(self, attributes: Attributes) -> bool:
        """The answer for one person; raises LdmailError as evaluate() does."""
        if self.pick is None:
            return evaluate(self.source, attributes)
        key = self.pick(attributes.by_position)
        answer = self.answers.get(key)
        if answer is None:
            answer = self.answers[key] = evaluate(self.source, attributes)
        return answer


class AudienceLoader:
    """Turns rows into people; holds what is shared by all rows of one export.

    Every person of an export has the same attribute names, so values are placed by
    position and the names are kept once.
    """

    def __init__(self, audiences: Audiences, languages: list[str], default_language: str,
                 today: date, positions: dict[str, int],
                 limits: DateLimits | None = None) -> None:
        self.audiences = audiences
        self.limits = limits or DateLimits()
        self.languages = tuple(languages)
        self.default_language = default_language
        # Rows read but worth a look (a language read from its name, a lost letter), and
        # how many there were in all.
        self.notes: list[Rejected] = []
        self.note_count = 0
        self.today = today
        dates = set(audiences.people.dates)
        self.columns = [(index, name in dates, name) for name, index in positions.items()
                        if name != "email"]
        self.email_at = positions.get("email")
        names = [name for _, _, name in self.columns]
        derived = [name for name in ("email", "language", "tenure_days", "today")
                   if name not in names]
        self.padding = [None] * len(derived)
        self.index = {name: i for i, name in enumerate(names + derived)}
        self.slots = {name: self.index[name] for name in ("email", "language", "tenure_days",
                                                           "today")}
        self.timezone_at = self.index.get("timezone")
        self.country_at = self.index.get("country")
        self.start_at = self.index.get("start_date")
        self.persona_at = self.index.get("persona")
        self.manager_at = self.index.get(MANAGER_EMAIL)
        self.managers: dict[str, str] = {}  # as written -> checked (managers repeat)
        # One object per distinct value (names, departments, dates, tenures repeat across
        # thousands of rows): memory for a million people.
        self.shared: dict[Any, Any] = {}
        self.zones: dict[str, ZoneInfo] = {}
        self.countries: dict[str, Region] = {}
        self.tenures: dict[date, int] = {}
        # Kept per persona: the product of all their rules' values is not small.
        self.rules = [(name, self.rule(persona.match))
                      for name, persona in audiences.personas.items()]

    def rule(self, source: str) -> Rule:
        return Rule(source, self.index)

    def email_cell(self, cells: list[str]) -> str:
        at = self.email_at
        return cells[at].strip() if at is not None and at < len(cells) else ""

    def person(self, row: int, cells: list[str]) -> Person:
        values: list[Any] = []
        shared = self.shared
        width = len(cells)
        for position, is_date, name in self.columns:
            value = cells[position].strip() if position < width else ""
            if is_date:
                try:
                    day = parse_date(value) if value else None
                    if day is not None:
                        self.limits.check(day, "the date")
                except ValueError as exc:
                    raise RowRejected(f"{name}: {exc}") from None
                values.append(day)
            else:
                values.append(shared.setdefault(value, value))
        values += self.padding
        try:
            email = normalise_email(self.email_cell(cells))
        except ValueError as exc:
            raise RowRejected(str(exc)) from None
        slots = self.slots
        values[slots["email"]] = email
        language, note = read_language(str(values[slots["language"]] or ""), self.languages,
                                       self.default_language)
        if note is not None:
            self.note(row, email, note)
        language = values[slots["language"]] = shared.setdefault(language, language)
        for name in ("first_name", "last_name"):
            at = self.index.get(name)
            text = values[at] if at is not None else None
            if isinstance(text, str) and "?" in text and _LOST_LETTER.search(text):
                self.note(row, email, f"{name} {excerpt(text)} has a '?' where a letter was "
                          "probably lost when the export was saved: save it as 'CSV UTF-8'")
        zone = _parsed(self.zones, values, self.timezone_at, parse_timezone, "timezone")
        country = _parsed(self.countries, values, self.country_at, parse_region, "country")
        if self.manager_at is not None and values[self.manager_at]:
            values[self.manager_at] = self.manager(row, email, values[self.manager_at])
        start = values[self.start_at] if self.start_at is not None else None
        tenure: int | None = None
        if isinstance(start, date):
            tenure = self.tenures.get(start)
            if tenure is None:
                tenure = self.tenures[start] = (self.today - start).days
        values[slots["tenure_days"]] = tenure
        values[slots["today"]] = self.today
        attributes = Attributes(self.index, tuple(values))
        persona = self.assign_persona(attributes)
        return Person(email, row, attributes, persona, language, zone, country)

    def manager(self, row: int, email: str, written: str) -> str:
        """A manager's address checked as a person's own is; a bad one is noted and left
        out (their manager steps are skipped), without rejecting the person's row."""
        checked = self.managers.get(written)
        if checked is None:
            try:
                checked = normalise_email(written)
            except ValueError as exc:
                self.note(row, email, f"{MANAGER_EMAIL}: {exc}; no mail goes to this "
                          "person's manager until it is fixed")
                return ""
            self.managers[written] = checked
        return checked

    def note(self, row: int, email: str, message: str) -> None:
        self.note_count += 1
        if len(self.notes) < MAX_NOTES:
            self.notes.append(Rejected(row, email, message))

    def assign_persona(self, attributes: Attributes) -> str | None:
        explicit = str(attributes.get("persona") or "").strip() \
            if self.persona_at is not None else ""
        personas: dict[str, Persona] = self.audiences.personas
        if explicit:
            if explicit not in personas:
                raise RowRejected(f"persona {excerpt(explicit)} is not defined in {AUDIENCES_FILE} "
                                f"(personas: {', '.join(personas)})")
            return explicit
        for name, rule in self.rules:
            try:
                if rule(attributes):
                    return name
            except LdmailError as exc:
                raise PersonaFailed(name, str(exc)) from None
        return None


class PeopleStream:
    """The people of the export, read row by row as they are iterated, never all at once.

    Bad rows are skipped and collected in `rejected` as they pass; duplicates are left to
    the reader (a set of a million addresses is the reader's choice to make). With `rows`,
    only the people on those lines are built: the rest are read past.
    """

    def __init__(self, project: Project, today: date, rows: Container[int] | None = None
                 ) -> None:
        self.project = project
        self.only_rows = rows
        source = project.audiences.people
        self.source = source.source
        self.rejected: list[Rejected] = []
        self.header, self._rows = read_rows(project.path(source.source, PEOPLE_SOURCE), self.source,
                                            source.encoding, source.delimiter)
        try:
            positions = self._positions(self.header)
        except ConfigError:
            cast(Generator[Any, None, None], self._rows).close()  # and with it the file
            raise
        self.loader = AudienceLoader(project.audiences, project.settings.languages,
                                     project.settings.default_language, today, positions,
                                     project.settings.dates)

    def _positions(self, header: list[str]) -> dict[str, int]:
        source = self.project.audiences.people
        positions: dict[str, int] = {}
        missing: list[str] = []
        lowered = {h.lower(): i for i, h in enumerate(header)}
        for name, column in source.columns.items():
            index = lowered.get(column.strip().lower())
            if index is None:
                missing.append(f"'{column}' (for {name})")
            else:
                positions[name] = index
        if not missing:
            return positions
        audiences_source = self.project.audiences_source
        line = audiences_source.line_of(("people", "columns")) if audiences_source else None
        hint = "fix people.columns"
        seems = sniff_delimiter(header[0]) if len(header) == 1 else None
        if seems is not None and seems in header[0]:
            hint = (f"the file seems separated by '{seems}', not '{source.delimiter or ','}': "
                    "fix or remove people.delimiter")
        raise ConfigError([Problem(AUDIENCES_FILE, line,
                                   f"{self.source} has no column {', '.join(missing)}; its "
                                   f"columns are: {', '.join(header)}; {hint}")])

    def __iter__(self) -> Iterator[Person]:
        width = len(self.header)
        loader, only, rejected = self.loader, self.only_rows, self.rejected
        for line, cells in self._rows:
            if only is not None and line not in only:
                continue
            if len(cells) == 1 and cells[0].startswith("\x00"):
                rejected.append(Rejected(line, "", f"unreadable CSV: {cells[0][1:]}"))
                continue
            if len(cells) == 1 < width and sniff_delimiter(cells[0]) in cells[0]:
                rejected.append(Rejected(
                    line, "", f"one field where the header has {width}: this row is "
                              f"separated by '{sniff_delimiter(cells[0])}', the header by "
                              "another delimiter; save the export with one delimiter"))
                continue
            if len(cells) != width and (len(cells) < width
                                        or any(cell.strip() for cell in cells[width:])):
                rejected.append(Rejected(line, loader.email_cell(cells),
                                         _width_problem(len(cells), width)))
                continue
            try:
                yield loader.person(line, cells)
            except RowRejected as exc:
                rejected.append(Rejected(line, loader.email_cell(cells), str(exc)))
            except PersonaFailed as exc:
                audiences_source = self.project.audiences_source
                where = audiences_source.line_of(("personas", exc.persona, "match")) \
                    if audiences_source else None
                raise ConfigError([Problem(
                    AUDIENCES_FILE, where, f"personas.{exc.persona}.match: {exc} (evaluating "
                                           f"row {line} of {self.source})")]) from None

    def reject_duplicate(self, line: int, email: str, first: int) -> None:
        self.rejected.append(Rejected(
            line, email, f"duplicate address {email} (first seen on row {first}); keep one row "
                         "per person"))


# The last export hashed: its stat signature and digest. A run asks for the digest up to
# four times (quiet check, sync, after staging, quiet marker); a million-row export is
# read once unless the file changed in between, which a new size, inode or mtime shows.
_EXPORT_DIGEST: dict[Path, tuple[tuple[int, ...], bytes]] = {}


def export_digest(project: Project) -> bytes:
    """SHA-256 of the export's bytes (or of why it cannot be read: the full run says so)."""
    path = project.path(project.audiences.people.source, PEOPLE_SOURCE)
    try:
        stat = path.stat()
        signature = (stat.st_size, stat.st_ino, stat.st_mtime_ns, stat.st_ctime_ns)
        known = _EXPORT_DIGEST.get(path)
        if known is not None and known[0] == signature:
            return known[1]
        digest = hashlib.sha256()
        with path.open("rb") as export:
            while chunk := export.read(_CHUNK):
                digest.update(chunk)
    except OSError as exc:
        return hashlib.sha256(f"unreadable: {exc}".encode()).digest()
    _EXPORT_DIGEST.clear()
    _EXPORT_DIGEST[path] = (signature, digest.digest())
    return digest.digest()


def unique_people(stream: PeopleStream) -> Iterator[Person]:
    """The stream's people, each address once: a later row with the same one is rejected."""
    seen: dict[str, int] = {}
    for person in stream:
        first = seen.setdefault(person.email, person.row)
        if first != person.row:
            stream.reject_duplicate(person.row, person.email, first)
            continue
        yield person


class Targeting:
    """Whether a person belongs to a campaign's audience (see audience.Rule for `where`)."""

    def __init__(self, campaign: Campaign, loader: AudienceLoader) -> None:
        self.personas = set(campaign.audience.personas)
        self.where = loader.rule(campaign.audience.where) if campaign.audience.where else None

    def __call__(self, person: Person) -> bool:
        if self.personas and person.persona not in self.personas:
            return False
        return self.where is None or self.where(person.attributes)


@dataclass
class AudienceScan:
    """What one pass over the export found, keeping a few people rather than all of them."""

    source: str
    rejected: list[Rejected]
    people: int = 0
    # Languages of the people of each persona (None: no persona).
    languages: dict[str | None, Counter[str]] = field(default_factory=dict)
    unmatched: list[Person] = field(default_factory=list)  # the first `keep` of them
    unmatched_count: int = 0
    first: dict[tuple[str | None, str], Person] = field(default_factory=dict)
    found: Person | None = None  # the person asked for by address
    # The first error of each `where` rule checked, by rule.
    failures: dict[str, str] = field(default_factory=dict)
    # Rows read but worth a look (see AudienceLoader.note): the first MAX_NOTES, and how many.
    notes: list[Rejected] = field(default_factory=list)
    note_count: int = 0
    # Per campaign asked for: how many people it would mail and hold out.
    groups: dict[str, tuple[int, int]] = field(default_factory=dict)


def scan_audience(project: Project, today: date, *, keep: int = 0, wheres: Iterable[str] = (),
                  email: str | None = None, campaigns: Iterable[str] = ()) -> AudienceScan:
    """Read the export once: counts per persona and language, the first person of each,
    the first `keep` people with no persona, the person with `email`, whether each of
    `wheres` (campaign audience rules) runs for everyone as `send` will run it, and how many
    people each of `campaigns` would mail and hold out."""
    stream = PeopleStream(project, today)
    scan = AudienceScan(stream.source, stream.rejected)
    rules = [stream.loader.rule(where) for where in wheres]
    targets = [(campaign_id, project.campaigns[campaign_id].model.holdout,
                Targeting(project.campaigns[campaign_id].model, stream.loader))
               for campaign_id in campaigns]
    groups = {campaign_id: [0, 0] for campaign_id, _, _ in targets}
    for person in unique_people(stream):
        scan.people += 1
        scan.languages.setdefault(person.persona, Counter())[person.language] += 1
        scan.first.setdefault((person.persona, person.language), person)
        if person.persona is None:
            scan.unmatched_count += 1
            if len(scan.unmatched) < keep:
                scan.unmatched.append(person)
        if email is not None and person.email == email:
            scan.found = person
        for rule in rules:
            if rule.source not in scan.failures:
                try:
                    rule(person.attributes)
                except LdmailError as exc:
                    scan.failures[rule.source] = str(exc)
        for campaign_id, share, targeted in targets:
            try:
                if targeted(person):
                    groups[campaign_id][in_holdout(campaign_id, person.email, share)] += 1
            except LdmailError:
                pass  # the rule's failure is reported through `wheres`
    scan.notes, scan.note_count = stream.loader.notes, stream.loader.note_count
    scan.groups = {campaign_id: (mailed, held) for campaign_id, (mailed, held) in groups.items()}
    return scan
