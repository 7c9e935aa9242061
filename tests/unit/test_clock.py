"""ldmail.clock promises one reading of the wall clock, `--now` parsed strictly (never the real
clock by accident, a value without an offset read in the project's zone, only years ldmail can
plan in), moments shown with their zone, and ledger ISO text that is UTC and sorts in time
order."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo

import pytest

from ldmail.clock import from_iso, iso, machine_zone, parse_now, shown, wall_now
from ldmail.errors import LdmailError

AMSTERDAM = ZoneInfo("Europe/Amsterdam")


def test_no_now_is_the_real_clock_in_utc() -> None:
    before = datetime.now(UTC)
    moment = parse_now(None)
    assert moment.tzinfo is UTC
    assert before <= moment <= datetime.now(UTC)
    assert wall_now().tzinfo is UTC


def test_a_now_without_an_offset_is_read_in_the_projects_zone() -> None:
    assert parse_now("2026-12-15T09:30", lambda: AMSTERDAM) == \
        datetime(2026, 12, 15, 8, 30, tzinfo=UTC)
    assert parse_now("2026-07-15", lambda: AMSTERDAM) == datetime(2026, 7, 14, 22, 0, tzinfo=UTC)
    assert parse_now("2026-12-15T09:30") == datetime(2026, 12, 15, 9, 30, tzinfo=UTC)


def test_a_now_with_an_offset_keeps_it_whatever_the_zone() -> None:
    moment = parse_now(" 2026-12-15T09:30+01:00 ", lambda: ZoneInfo("America/New_York"))
    assert moment == datetime(2026, 12, 15, 8, 30, tzinfo=UTC)
    assert moment.utcoffset() == timedelta(0)


@pytest.mark.parametrize("value", ["", "  ", "tomorrow", "15-12-2026", "2026-13-01"])
def test_an_empty_or_unreadable_now_is_an_error_with_an_example(value: str) -> None:
    with pytest.raises(LdmailError, match=r"is not an ISO date or date-time; write e\.g\. "
                                          r"2026-12-15 or 2026-12-15T09:30\+01:00"):
        parse_now(value)


@pytest.mark.parametrize("value", ["1969-12-31T23:59", "9000-01-01", "9999-12-31T23:59",
                                   "0001-01-01", "0001-01-01T00:00+01:00"])
def test_a_now_outside_the_plannable_years_is_refused(value: str) -> None:
    with pytest.raises(LdmailError, match=r"outside the years ldmail can plan in \(1970-8999\)"):
        parse_now(value)


def test_the_edges_of_the_plannable_years_are_accepted() -> None:
    assert parse_now("1970-01-01T00:00Z") == datetime(1970, 1, 1, tzinfo=UTC)
    assert parse_now("8999-12-31T23:59") == datetime(8999, 12, 31, 23, 59, tzinfo=UTC)


def test_a_moment_is_shown_in_the_readers_zone_with_its_name() -> None:
    moment = datetime(2026, 12, 8, 9, 0, tzinfo=UTC)
    assert shown(moment, AMSTERDAM) == "Tue 2026-12-08 10:00 CET"
    assert shown(datetime(2026, 7, 7, 9, 0, tzinfo=UTC), AMSTERDAM) == "Tue 2026-07-07 11:00 CEST"


def test_ledger_text_is_utc_and_reads_back_as_the_same_moment() -> None:
    moment = datetime(2026, 12, 8, 10, 0, 5, tzinfo=AMSTERDAM)
    text = iso(moment)
    assert text == "2026-12-08T09:00:05Z"
    assert from_iso(text) == moment
    assert from_iso(text).tzinfo is not None


def test_ledger_text_sorts_in_time_order_across_zones() -> None:
    moments = [datetime(2026, 3, 29, 1, 30, tzinfo=UTC),
               datetime(2026, 3, 29, 3, 15, tzinfo=AMSTERDAM),  # 01:15 UTC
               datetime(2026, 3, 28, 23, 0, tzinfo=ZoneInfo("America/New_York"))]
    texts = [iso(moment) for moment in moments]
    assert sorted(texts) == [iso(moment) for moment in sorted(moments)]


def test_the_machine_zone_is_a_zone() -> None:
    zone = machine_zone()
    assert isinstance(zone, tzinfo)
    assert datetime(2026, 1, 1, tzinfo=zone).utcoffset() is not None
