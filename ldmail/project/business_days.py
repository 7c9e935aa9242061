"""The business calendar: public holidays by country and region, and blackout dates.

A send window never opens on a closed day. Public holidays come from the `holidays` package
(imported only when a project names a country); blackout ranges are the project's own, such as
a year-end freeze. Days are the reader's local dates, in their own time zone or the campaign's.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, replace
from datetime import date, timedelta
from functools import lru_cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from holidays import HolidayBase

# A blackout longer than this is almost always a mistyped year ("2026-12-24..2207-01-01"),
# which would silently stop every campaign.
LONGEST_BLACKOUT = 366
_RANGE = re.compile(r"^\s*(\S+?)\s*(?:\.\.\s*(\S+))?\s*$")


@dataclass(frozen=True, slots=True)
class Region:
    """A country, or one region of it, as the `holidays` package names them: NL, DE-BY."""

    country: str
    subdiv: str | None = None

    def __str__(self) -> str:
        return self.country if self.subdiv is None else f"{self.country}-{self.subdiv}"


@dataclass(frozen=True, slots=True)
class Blackout:
    """Days on which nothing is sent, both ends included."""

    first: date
    last: date

    def __str__(self) -> str:
        return self.first.isoformat() if self.first == self.last else \
            f"{self.first.isoformat()}..{self.last.isoformat()}"


@lru_cache(maxsize=1)
def _countries() -> dict[str, str]:
    """Every country code the `holidays` package knows, with its name ("United Kingdom")."""
    from holidays.registry import COUNTRIES

    return {codes[1]: re.sub(r"(?<=[a-z])(?=[A-Z])", " ", codes[0])
            for codes in COUNTRIES.values()}


def _suggestion(text: str) -> str:
    """The code of a country written as its name or a near miss ("Netherlands" -> NL)."""
    countries = _countries()
    by_name = {name.lower(): code for code, name in countries.items()}
    close = difflib.get_close_matches(text.strip().lower(), list(by_name), n=1, cutoff=0.75)
    if close:
        code = by_name[close[0]]
        return f" (did you mean {code}, {countries[code]}?)"
    close = difflib.get_close_matches(text.strip().upper(), list(countries), n=1, cutoff=0.5)
    return f" (did you mean {close[0]}, {countries[close[0]]}?)" if close else ""


def parse_region(value: object) -> Region:
    """`NL`, `DE-BY` (a region after a hyphen) -> Region; unknown ones are errors."""
    if isinstance(value, Region):
        return value
    if isinstance(value, bool):  # YAML 1.1 reads an unquoted NO (Norway) as false
        raise ValueError(f"'{str(value).lower()}' is not a country code: YAML reads an "
                         "unquoted NO as false, so write Norway in quotes, \"NO\" (and "
                         "holidays: [] for no holidays at all)")
    if not isinstance(value, str):
        raise ValueError(f"{value!r} is not a country code; write one such as NL or DE-BY")
    found = _region(value)
    if isinstance(found, str):
        raise ValueError(found)
    return found


# Remembered for wrong values too: an export can repeat one a million times.
@lru_cache(maxsize=1024)
def _region(value: str) -> Region | str:
    """The region `value` names, or why it names none."""
    text = value.strip()
    country, _, subdiv = text.partition("-")
    country = country.strip().upper()
    if not re.fullmatch(r"[A-Z]{2}", country) or country not in _countries():
        return (f"'{text}' is not a country code the holidays package knows"
                f"{_suggestion(text)}; write a two-letter ISO 3166 code such as NL, or a "
                "country and region such as DE-BY")
    if not subdiv.strip():
        return Region(country)
    known = _public_holidays(Region(country))
    aliases = {str(alias).lower(): code
               for alias, code in getattr(known, "subdivisions_aliases", {}).items()}
    codes = {str(code).lower(): str(code) for code in known.subdivisions}
    wanted = subdiv.strip().lower()
    found = codes.get(wanted) or aliases.get(wanted)
    if found is None:
        listed = sorted(codes.values())
        shown = ", ".join(listed[:20]) + (f" and {len(listed) - 20} more" if len(listed) > 20
                                          else "")
        regions = f"its regions are {shown}" if listed else "it has no regions; write " + country
        return (f"'{text}': {_countries()[country]} ({country}) has no region "
                f"'{subdiv.strip()}' in the holidays package; {regions}")
    return Region(country, found)


def parse_blackout(value: object) -> Blackout:
    """`2026-12-24..2027-01-01` (both ends included) or one date -> Blackout."""
    if isinstance(value, Blackout):
        return value
    if isinstance(value, date):
        return Blackout(value, value)
    text = str(value)
    example = "write YYYY-MM-DD..YYYY-MM-DD (both days included), e.g. 2026-12-24..2027-01-01"
    match = _RANGE.match(text)
    try:
        if match is None:
            raise ValueError
        first = date.fromisoformat(match[1])
        last = date.fromisoformat(match[2]) if match[2] else first
        if len(match[1]) != 10 or (match[2] and len(match[2]) != 10):
            raise ValueError
    except ValueError:
        raise ValueError(f"'{text}' is not a date or date range; {example}") from None
    if last < first:
        raise ValueError(f"'{text}' ends before it starts; write the earlier date first: "
                         f"{last.isoformat()}..{first.isoformat()}")
    days = (last - first).days + 1
    if days > LONGEST_BLACKOUT:
        raise ValueError(f"'{text}' closes {days} days, more than a year: is a year mistyped? "
                         "A blackout closes at most 366 days")
    return Blackout(first, last)


def _language(country: str) -> str | None:
    """English holiday names where the package has them (plan speaks English)."""
    import holidays

    languages = getattr(holidays, country).supported_languages
    return next((lang for lang in ("en_US", "en_GB") if lang in languages), None)


@lru_cache(maxsize=256)
def _public_holidays(region: Region) -> HolidayBase:
    import holidays

    return holidays.country_holidays(region.country, subdiv=region.subdiv,
                                     language=_language(region.country))


def holidays_version() -> str:
    """The holidays package's version: a new one may know other holidays."""
    from holidays.version import __version__

    return str(__version__)


@dataclass(frozen=True, slots=True)
class BusinessCalendar:
    """The days on which no send window opens: public holidays of the listed countries (or
    regions) and the blackout ranges. Hashable, so schedules that use it can be memoised."""

    countries: tuple[Region, ...] = ()
    blackout: tuple[Blackout, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.countries or self.blackout)

    def for_person(self, country: Region | None) -> BusinessCalendar:
        """A person's own country (from the export) takes the place of the listed ones."""
        if country is None or self.countries == (country,):
            return self
        return replace(self, countries=(country,))

    def closed(self, day: date) -> str | None:
        """Why no window opens on `day` (holidays' names, the blackout), or None."""
        reasons = []
        for region in self.countries:
            name = _public_holidays(region).get(day)
            if name:
                reasons.append(str(name) if len(self.countries) == 1 else f"{name}, {region}")
        reasons += [f"blackout {span}" for span in self.blackout
                    if span.first <= day <= span.last]
        return "; ".join(reasons) or None

    def first_open(self, day: date) -> date:
        """`day`, or the first later day that no holiday or blackout closes."""
        while True:
            span = next((s for s in self.blackout if s.first <= day <= s.last), None)
            if span is not None:
                day = span.last + timedelta(days=1)  # a long blackout in one step
            elif any(day in _public_holidays(region) for region in self.countries):
                day += timedelta(days=1)
            else:
                return day


OPEN = BusinessCalendar()
