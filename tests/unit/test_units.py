"""ldmail.units promises parsers for the small value languages of campaign files (durations,
percentages, percentage points, weekdays, times, hours, time zones, rates): each reads the
spellings a YAML author writes, and refuses anything else with a message that shows how to
write it."""

from __future__ import annotations

from datetime import time, timedelta
from zoneinfo import ZoneInfo

import pytest

from ldmail import units


@pytest.mark.parametrize(("value", "expected"), [
    ("3d", timedelta(days=3)), ("2w", timedelta(weeks=2)), ("36h", timedelta(hours=36)),
    (" 90 m ", timedelta(minutes=90)), ("30s", timedelta(seconds=30)), (0, timedelta(0)),
    (timedelta(hours=1), timedelta(hours=1))])
def test_a_duration_is_a_number_and_a_unit(value: object, expected: timedelta) -> None:
    assert units.parse_duration(value) == expected


@pytest.mark.parametrize("value", ["3", "3 days", "-1d", "1.5d", "", "3D", 5, False, None])
def test_a_duration_without_a_unit_says_how_to_write_one(value: object) -> None:
    with pytest.raises(ValueError, match=r"is not a duration; write a number and a unit: "
                                         r"90m, 36h, 3d or 2w"):
        units.parse_duration(value)


@pytest.mark.parametrize(("delta", "text"), [
    (timedelta(weeks=3), "3w"), (timedelta(days=10), "10d"), (timedelta(hours=36), "36h"),
    (timedelta(minutes=90), "90m"), (timedelta(seconds=61), "61s"), (timedelta(0), "0d")])
def test_a_duration_is_spelled_shortest_and_reads_back(delta: timedelta, text: str) -> None:
    assert units.format_duration(delta) == text
    assert units.parse_duration(text) == delta


def test_a_percentage_needs_its_sign_and_stays_below_a_hundred() -> None:
    assert units.parse_percentage("10%") == pytest.approx(0.10)
    assert units.parse_percentage(" 2.5 %") == pytest.approx(0.025)
    assert units.parse_percentage(0) == 0.0
    with pytest.raises(ValueError, match="write it with a % sign: 10%"):
        units.parse_percentage(0.1)
    for bad in ("100%", "-1%", "ten%", "10", True):
        with pytest.raises(ValueError, match="from 0% to 99%, e.g. 10%"):
            units.parse_percentage(bad)
    with pytest.raises(ValueError, match="expected one percentage such as 10%, got a list"):
        units.parse_percentage(["10%"])


@pytest.mark.parametrize(("value", "expected"), [
    ("15pp", 0.15), ("+15 pp", 0.15), (15, 0.15), ("100 points", 1.0), ("0.5%-points", 0.005)])
def test_an_uplift_is_read_in_percentage_points(value: object, expected: float) -> None:
    assert units.parse_points(value) == pytest.approx(expected)


@pytest.mark.parametrize("value", ["0pp", "101pp", "15%", "-5pp", True, "lots"])
def test_an_uplift_out_of_range_or_in_percent_is_refused(value: object) -> None:
    with pytest.raises(ValueError, match=r"is not an uplift in percentage points; write e\.g\. "
                                         r"15pp"):
        units.parse_points(value)


def test_weekdays_are_read_as_ranges_lists_and_full_names() -> None:
    assert units.parse_weekdays("mon-fri") == (0, 1, 2, 3, 4)
    assert units.parse_weekdays("mon, wed fri") == (0, 2, 4)
    assert units.parse_weekdays(["Friday", "MON", "wed"]) == (0, 2, 4)
    assert units.parse_weekdays("fri-mon") == (0, 4, 5, 6)  # a range wraps round the weekend
    assert units.parse_weekday("Sunday") == 6


def test_only_real_weekday_names_and_abbreviations_are_read() -> None:
    assert units.parse_weekdays("tues-thurs") == (1, 2, 3)
    assert units.parse_weekdays(["Wednesday", "thu", "Saturday"]) == (2, 3, 5)
    for word in ("monkey", "sunshine", "wedding", "fries", "mond"):
        with pytest.raises(ValueError, match=f"'{word}' is not a weekday; use mon, tue"):
            units.parse_weekdays(word)
    with pytest.raises(ValueError, match="'mon-satan' is not a weekday"):
        units.parse_weekdays("mon-satan")


def test_a_wrong_weekday_is_named_with_the_ones_to_use() -> None:
    with pytest.raises(ValueError, match="'mo-fri' is not a weekday; use mon, tue"):
        units.parse_weekdays("mo-fri")
    with pytest.raises(ValueError, match="'mon-wed-fri' is not a weekday"):
        units.parse_weekdays("mon-wed-fri")
    with pytest.raises(ValueError, match="no weekdays given"):
        units.parse_weekdays(" , ")
    with pytest.raises(ValueError, match="is not a list of weekdays"):
        units.parse_weekdays(3)
    with pytest.raises(ValueError, match="'mon-wed' names 3 days; give exactly one"):
        units.parse_weekday("mon-wed")


def test_a_time_undoes_yamls_reading_of_an_unquoted_one_as_minutes() -> None:
    assert units.parse_time("09:30") == time(9, 30)
    assert units.parse_time(900) == time(15, 0)  # YAML 1.1 reads 15:00 as 900
    assert units.parse_time(time(8, 0)) == time(8, 0)
    for bad in ("24:00", "9:60", "9", 24 * 60, True):
        with pytest.raises(ValueError, match=r'write HH:MM in quotes, e\.g\. "09:00"'):
            units.parse_time(bad)


def test_hours_must_end_after_they_start() -> None:
    assert units.parse_hours("09:00-17:00") == (time(9), time(17))
    with pytest.raises(ValueError, match="the window must end after it starts"):
        units.parse_hours("17:00-09:00")
    with pytest.raises(ValueError, match='is not a range of hours; write it as "09:00-17:00"'):
        units.parse_hours("09:00")


def test_a_time_zone_is_an_iana_name_and_a_typo_gets_a_suggestion() -> None:
    assert units.parse_timezone(" Europe/Amsterdam ") == ZoneInfo("Europe/Amsterdam")
    with pytest.raises(ValueError, match="did you mean 'Europe/Amsterdam'"):
        units.parse_timezone("Europe/Amsterdan")


@pytest.mark.parametrize("value", ["UTC+1", "+02:00", "CET-1", "GMT +5"])
def test_a_utc_offset_is_refused_because_it_ignores_daylight_saving(value: str) -> None:
    with pytest.raises(ValueError, match="is a UTC offset, not a time zone"):
        units.parse_timezone(value)


@pytest.mark.parametrize("value", ["../../etc/passwd", "/Europe/Amsterdam", ""])
def test_a_time_zone_name_cannot_name_a_file(value: str) -> None:
    with pytest.raises(ValueError, match="is not an IANA time zone"):
        units.parse_timezone(value)


@pytest.mark.parametrize(("value", "per_second"), [
    ("30/min", 0.5), ("5/s", 5.0), ("3600 / hour", 1.0), ("86400/day", 1.0), ("2/sec", 2.0)])
def test_a_rate_is_messages_per_second(value: str, per_second: float) -> None:
    assert units.parse_rate(value) == pytest.approx(per_second)


@pytest.mark.parametrize("value", ["0/min", "30", "30/week", "1.5/s", "-1/s"])
def test_a_rate_that_sends_nothing_or_has_no_unit_is_refused(value: str) -> None:
    with pytest.raises(ValueError, match=r"is not a rate; write messages per unit, e\.g\. "
                                         r"30/min"):
        units.parse_rate(value)


@pytest.mark.parametrize(("count", "expected"), [
    (0, "0 people"), (1, "1 person"), (2, "2 people"), (1200, "1,200 people")])
def test_a_count_is_written_with_its_noun_singular_for_one(count: int, expected: str) -> None:
    assert units.plural(count, "person", "people") == expected
