"""Public holidays written out by hand, and an independent reading of `holidays:` settings.

The tests check ldmail (which asks the holidays package) against these lists, written from
the calendars: the Netherlands' national holidays, with Good Friday (the holidays package
counts it, as many Dutch employers do, though the Algemene termijnenwet does not) and
Liberation Day (5 May) only in every fifth year (2025, 2030); and Bavaria's statutory holidays
(the Assumption, a holiday only in Catholic municipalities, falls on a weekend in both years).
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

NL = frozenset(date.fromisoformat(day) for day in (
    "2026-01-01",  # New Year's Day
    "2026-04-03", "2026-04-05", "2026-04-06",  # Good Friday, Easter Sunday and Monday
    "2026-04-27",  # King's Day
    "2026-05-14",  # Ascension Day
    "2026-05-24", "2026-05-25",  # Whit Sunday and Monday
    "2026-12-25", "2026-12-26",  # Christmas
    "2027-01-01",
    "2027-03-26", "2027-03-28", "2027-03-29",
    "2027-04-27",
    "2027-05-06",
    "2027-05-16", "2027-05-17",
    "2027-12-25", "2027-12-26",
))

DE_BY = frozenset(date.fromisoformat(day) for day in (
    "2026-01-01", "2026-01-06",  # New Year, Epiphany
    "2026-04-03", "2026-04-06",  # Good Friday, Easter Monday
    "2026-05-01", "2026-05-14", "2026-05-25",  # Labour Day, Ascension, Whit Monday
    "2026-06-04",  # Corpus Christi
    "2026-10-03", "2026-11-01",  # German Unity Day, All Saints' Day
    "2026-12-25", "2026-12-26",
    "2027-01-01", "2027-01-06",
    "2027-03-26", "2027-03-29",
    "2027-05-01", "2027-05-06", "2027-05-17",
    "2027-05-27",
    "2027-10-03", "2027-11-01",
    "2027-12-25", "2027-12-26",
))

KNOWN = {"NL": NL, "DE-BY": DE_BY}
YEARS = (2026, 2027)


def blackout_days(ranges: list[str]) -> frozenset[date]:
    days: set[date] = set()
    for text in ranges:
        first, _, last = str(text).partition("..")
        day, end = date.fromisoformat(first), date.fromisoformat(last or first)
        while day <= end:
            days.add(day)
            day += timedelta(days=1)
    return frozenset(days)


def closed_days(setting: Any, country: str | None = None) -> frozenset[date]:
    """The closed days a `holidays:` value (as YAML loads it) means, for a person whose own
    country is `country` (it takes the place of the listed ones)."""
    if setting is None:
        return frozenset()
    if isinstance(setting, str | list):
        setting = {"countries": setting}
    countries = setting.get("countries", [])
    countries = [countries] if isinstance(countries, str) else countries
    if country:
        countries = [country]
    days: set[date] = set()
    for code in countries:
        days |= KNOWN[code.upper()]
    return frozenset(days) | blackout_days(setting.get("blackout", []))
