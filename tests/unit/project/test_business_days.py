"""ldmail.project.business_days: countries and regions are read as the holidays package names
them (a wrong one says what exists), blackout ranges include both ends and refuse what is
almost surely a typo, and a business calendar says why a day is closed and which day is the
first open one; a person's own country takes the place of the listed ones."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date

import pytest

from ldmail.project.business_days import (
    LONGEST_BLACKOUT,
    OPEN,
    Blackout,
    BusinessCalendar,
    Region,
    holidays_version,
    parse_blackout,
    parse_region,
)

FREEZE = Blackout(date(2026, 12, 24), date(2027, 1, 1))
DUTCH = BusinessCalendar((Region("NL"),), (FREEZE,))


def message(value: object, parse: Callable[[object], object]) -> str:
    """The one line a wrong value is refused with."""
    with pytest.raises(ValueError) as caught:
        parse(value)
    return str(caught.value)


@pytest.mark.parametrize(("written", "region"), [
    ("NL", Region("NL")), (" nl ", Region("NL")), ("DE-BY", Region("DE", "BY")),
    ("de-by", Region("DE", "BY")), ("DE-Bayern", Region("DE", "BY")),
    (Region("FR"), Region("FR")),
])
def test_a_country_or_region_is_read_in_any_case_or_by_its_regions_name(
        written: object, region: Region) -> None:
    assert parse_region(written) == region


def test_a_region_is_written_back_as_an_author_writes_it() -> None:
    assert str(Region("DE", "BY")) == "DE-BY"
    assert str(Region("NL")) == "NL"


@pytest.mark.parametrize(("written", "expected"), [
    ("Germany", "'Germany' is not a country code the holidays package knows (did you mean DE, "
                "Germany?); write a two-letter ISO 3166 code such as NL, or a country and region "
                "such as DE-BY"),
    ("NL-XX", "'NL-XX': Netherlands (NL) has no region 'XX' in the holidays package; its "
              "regions are Midden, Noord, Zuid"),
    ("IS-XX", "'IS-XX': Iceland (IS) has no region 'XX' in the holidays package; it has no "
              "regions; write IS"),
    (12, "12 is not a country code; write one such as NL or DE-BY"),
    (False, "'false' is not a country code: YAML reads an unquoted NO as false, so write Norway "
            "in quotes, \"NO\" (and holidays: [] for no holidays at all)"),
])
def test_a_wrong_country_says_what_to_write(written: object, expected: str) -> None:
    assert message(written, parse_region) == expected


@pytest.mark.parametrize(("written", "blackout"), [
    ("2026-12-24..2027-01-01", FREEZE),
    (" 2026-12-24 .. 2027-01-01 ", FREEZE),
    ("2027-05-05", Blackout(date(2027, 5, 5), date(2027, 5, 5))),
    (date(2027, 5, 5), Blackout(date(2027, 5, 5), date(2027, 5, 5))),
    ("2028-01-01..2028-12-31", Blackout(date(2028, 1, 1), date(2028, 12, 31))),  # 366 days
    (FREEZE, FREEZE),
])
def test_a_blackout_is_a_date_or_a_range_with_both_ends_included(
        written: object, blackout: Blackout) -> None:
    assert parse_blackout(written) == blackout


def test_a_blackout_is_written_back_as_an_author_writes_it() -> None:
    assert str(FREEZE) == "2026-12-24..2027-01-01"
    assert str(Blackout(date(2027, 5, 5), date(2027, 5, 5))) == "2027-05-05"


@pytest.mark.parametrize(("written", "expected"), [
    ("2026-1-5", "'2026-1-5' is not a date or date range; write YYYY-MM-DD..YYYY-MM-DD (both "
                 "days included), e.g. 2026-12-24..2027-01-01"),
    ("soon", "'soon' is not a date or date range; write YYYY-MM-DD..YYYY-MM-DD (both days "
             "included), e.g. 2026-12-24..2027-01-01"),
    ("2027-01-01..2026-12-24", "'2027-01-01..2026-12-24' ends before it starts; write the "
                               "earlier date first: 2026-12-24..2027-01-01"),
    ("2026-12-24..2207-01-01", "'2026-12-24..2207-01-01' closes 65752 days, more than a year: "
                               "is a year mistyped? A blackout closes at most 366 days"),
])
def test_a_blackout_that_cannot_be_meant_is_refused(written: str, expected: str) -> None:
    assert message(written, parse_blackout) == expected
    assert LONGEST_BLACKOUT == 366


def test_a_closed_day_names_its_holiday_or_its_blackout() -> None:
    assert DUTCH.closed(date(2026, 4, 27)) == "King's Day"
    assert DUTCH.closed(date(2026, 12, 25)) == \
        "Christmas Day; blackout 2026-12-24..2027-01-01"
    assert DUTCH.closed(date(2027, 1, 1)) == "New Year's Day; blackout 2026-12-24..2027-01-01"
    assert DUTCH.closed(date(2026, 4, 28)) is None
    assert OPEN.closed(date(2026, 12, 25)) is None


def test_with_several_countries_a_holiday_names_its_country() -> None:
    both = BusinessCalendar((Region("NL"), Region("DE", "BY")))
    assert both.closed(date(2026, 4, 27)) == "King's Day, NL"
    assert both.closed(date(2026, 6, 4)) == "Corpus Christi, DE-BY"
    assert both.closed(date(2026, 12, 25)) == "Christmas Day, NL; Christmas Day, DE-BY"


def test_a_persons_own_country_replaces_the_listed_ones_but_not_the_blackout() -> None:
    bavarian = DUTCH.for_person(Region("DE", "BY"))
    assert bavarian == BusinessCalendar((Region("DE", "BY"),), (FREEZE,))
    assert bavarian.closed(date(2026, 4, 27)) is None  # King's Day is Dutch
    assert DUTCH.for_person(None) is DUTCH
    assert DUTCH.for_person(Region("NL")) is DUTCH


def test_the_first_open_day_crosses_a_blackout_and_the_holidays_after_it() -> None:
    calendar = BusinessCalendar((Region("NL"),), (Blackout(date(2026, 12, 20),
                                                           date(2026, 12, 24)),))
    # The blackout ends on the 24th; Christmas and Boxing Day follow.
    assert calendar.first_open(date(2026, 12, 21)) == date(2026, 12, 27)
    assert calendar.first_open(date(2026, 12, 28)) == date(2026, 12, 28)
    assert OPEN.first_open(date(2026, 12, 25)) == date(2026, 12, 25)


def test_a_calendar_without_countries_or_blackout_closes_nothing() -> None:
    assert not OPEN and not BusinessCalendar()
    assert DUTCH and BusinessCalendar((), (FREEZE,))
    assert hash(DUTCH) == hash(BusinessCalendar((Region("NL"),), (FREEZE,)))


def test_the_holidays_package_version_is_reported() -> None:
    version = holidays_version()
    assert version and version[0].isdigit()
