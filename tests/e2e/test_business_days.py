"""The business calendar: no send window opens on a public holiday or a blackout day.

Checked against holiday lists written out by hand (tests/e2e/public_holidays.py), never against
the holidays package ldmail itself asks.
"""

from __future__ import annotations

import email
import json
from datetime import UTC, date, datetime, time, timedelta
from email.policy import default as default_policy
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from ldmail.errors import NoSendDay
from ldmail.project.business_days import (
    OPEN,
    Blackout,
    BusinessCalendar,
    Region,
    parse_blackout,
    parse_region,
)
from ldmail.project.models import Campaign, SendWindow, Settings
from ldmail.project.schedule import next_window_open, upcoming

from ..projects import edit_yaml
from .conftest import Cli, summary_line
from .public_holidays import DE_BY, NL, blackout_days
from .smtp_server import ledger_rows

AMSTERDAM = ZoneInfo("Europe/Amsterdam")
WINDOW = SendWindow.model_validate({"days": "mon-fri", "hours": "09:00-17:00",
                                     "timezone": "Europe/Amsterdam"})
FREEZE = "2026-12-24..2027-01-01"
DUTCH = BusinessCalendar((Region("NL"),), (Blackout(date(2026, 12, 24), date(2027, 1, 1)),))


def local(day: date, hour: int = 9, minute: int = 0) -> datetime:
    return datetime.combine(day, time(hour, minute), tzinfo=AMSTERDAM)


# -- reading the setting ----------------------------------------------------------------------


def test_countries_and_regions_are_read_as_the_holidays_package_names_them() -> None:
    """Codes in any case; a region by its code or its name; unknown ones say what exists."""
    assert parse_region("NL") == Region("NL")
    assert parse_region(" de-by ") == Region("DE", "BY")
    assert parse_region("DE-Bayern") == Region("DE", "BY")
    assert str(Region("DE", "BY")) == "DE-BY"
    with pytest.raises(ValueError, match=r"'Netherlands' is not a country code .*did you "
                                         r"mean NL, Netherlands\?"):
        parse_region("Netherlands")
    with pytest.raises(ValueError, match=r"'DE-XX': Germany \(DE\) has no region 'XX' .* BY,"):
        parse_region("DE-XX")
    with pytest.raises(ValueError, match='write Norway in quotes, "NO"'):
        parse_region(False)  # YAML's reading of an unquoted NO


def test_blackout_ranges() -> None:
    assert parse_blackout(FREEZE) == Blackout(date(2026, 12, 24), date(2027, 1, 1))
    assert parse_blackout(date(2027, 5, 5)) == Blackout(date(2027, 5, 5), date(2027, 5, 5))
    assert str(parse_blackout("2027-05-05")) == "2027-05-05"
    with pytest.raises(ValueError, match="ends before it starts; write the earlier date first: "
                                         "2026-12-24..2027-01-01"):
        parse_blackout("2027-01-01..2026-12-24")
    with pytest.raises(ValueError, match="'2026-12-32' is not a date or date range"):
        parse_blackout("2026-12-32")
    with pytest.raises(ValueError, match="closes 730 days, more than a year"):
        parse_blackout("2026-01-01..2027-12-31")


def test_the_short_forms_mean_the_countries_alone() -> None:
    for written in ("NL", ["nl"], {"countries": "NL"}):
        calendar = Settings.model_validate({"holidays": written}).holidays.calendar()
        assert calendar == BusinessCalendar((Region("NL"),))
    full = Settings.model_validate({"holidays": {"countries": ["NL", "DE-BY"],
                                                 "blackout": [FREEZE, "2027-05-05"]}})
    assert full.model_dump()["holidays"] == {"countries": ["NL", "DE-BY"],
                                             "blackout": [FREEZE, "2027-05-05"]}
    assert not Settings().holidays.calendar()  # none by default: every day is open


def test_closed_days_name_their_reason() -> None:
    assert DUTCH.closed(date(2026, 4, 27)) == "King's Day"
    assert DUTCH.closed(date(2026, 12, 25)) == f"Christmas Day; blackout {FREEZE}"
    assert DUTCH.closed(date(2026, 12, 28)) == f"blackout {FREEZE}"
    assert DUTCH.closed(date(2026, 4, 28)) is None
    both = BusinessCalendar((Region("NL"), Region("DE", "BY")))
    assert both.closed(date(2026, 6, 4)) == "Corpus Christi, DE-BY"
    # A person's own country takes the place of the listed ones; the blackout stays.
    bavarian = DUTCH.for_person(Region("DE", "BY"))
    assert bavarian.closed(date(2026, 4, 27)) is None
    assert bavarian.closed(date(2026, 6, 4)) == "Corpus Christi"
    assert bavarian.closed(date(2026, 12, 30)) == f"blackout {FREEZE}"
    assert DUTCH.for_person(None) is DUTCH


def test_the_calendar_agrees_with_the_lists_written_out_by_hand() -> None:
    calendar = BusinessCalendar((Region("NL"),))
    bavaria = BusinessCalendar((Region("DE", "BY"),))
    day = date(2026, 1, 1)
    while day.year < 2028:
        assert (calendar.closed(day) is not None) == (day in NL), day
        assert (bavaria.closed(day) is not None) == (day in DE_BY), day
        day += timedelta(days=1)


# -- the send window --------------------------------------------------------------------------


def test_a_holiday_moves_the_window_to_the_next_open_day() -> None:
    """Christmas Day is a Friday in 2026: the window opens again on Monday 28 December."""
    christmas = BusinessCalendar((Region("NL"),))
    moment = local(date(2026, 12, 25), 10)
    assert next_window_open(moment, WINDOW) == moment.astimezone(UTC)
    assert next_window_open(moment, WINDOW, None, christmas) == \
        local(date(2026, 12, 28)).astimezone(UTC)
    # King's Day 2027 is a Tuesday; Monday evening waits until Wednesday.
    assert next_window_open(local(date(2027, 4, 26), 18), WINDOW, None, christmas) == \
        local(date(2027, 4, 28)).astimezone(UTC)


def test_a_long_blackout_is_crossed_in_one_step() -> None:
    """A blackout of a whole year, then a holiday and a weekend: the window opens after all."""
    year = BusinessCalendar((Region("NL"),), (Blackout(date(2026, 1, 2), date(2026, 12, 31)),))
    # 1 January 2027 is New Year's Day (a Friday): the first open day is Monday 4 January.
    assert next_window_open(local(date(2026, 1, 2), 10), WINDOW, None, year) == \
        local(date(2027, 1, 4)).astimezone(UTC)
    # Ranges end to end, each a year long, are crossed one after the other.
    chained = BusinessCalendar((), tuple(Blackout(date(y, 1, 1), date(y, 12, 31))
                                         for y in range(2026, 2031)))
    assert next_window_open(local(date(2026, 3, 3), 10), WINDOW, None, chained) == \
        local(date(2031, 1, 1)).astimezone(UTC)
    # Closed for more than ten years: said plainly, not looped on.
    endless = BusinessCalendar((), tuple(Blackout(date(y, 1, 1), date(y, 12, 31))
                                         for y in range(2026, 2040)))
    with pytest.raises(NoSendDay, match="no send window opens in the ten years after"):
        next_window_open(local(date(2026, 3, 3), 10), WINDOW, None, endless)


def test_the_readers_own_zone_decides_which_day_it_is() -> None:
    """At 01:00 on Christmas Day in Amsterdam it is still 24 December in New York."""
    new_york = ZoneInfo("America/New_York")
    window = SendWindow.model_validate({"days": "mon-sun", "hours": "00:00-23:59"})
    moment = local(date(2026, 12, 25), 1)
    christmas = BusinessCalendar((Region("NL"),))
    assert next_window_open(moment, window, new_york, christmas) == moment.astimezone(UTC)
    assert next_window_open(moment, window, None, christmas) == \
        local(date(2026, 12, 27), 0).astimezone(UTC)


def test_a_planned_step_knows_the_calendar_moved_it() -> None:
    campaign = Campaign.model_validate({
        "title": "t", "phase": "activate", "starts": "2026-01-01", "sender": "a@example.org",
        "steps": [{"id": "one", "after": "0d", "template": "x/one"},
                  {"id": "two", "after": "3d", "template": "x/two"}]})
    now = local(date(2026, 12, 22), 10)
    first, second = upcoming(campaign, now, {}, None, now, BusinessCalendar((Region("NL"),)))
    assert first.shift is None and first.send_at == now.astimezone(UTC)
    assert second.send_at == local(date(2026, 12, 28)).astimezone(UTC)
    assert second.shift is not None and second.shift.reason == "Christmas Day"
    assert second.shift.was == local(date(2026, 12, 25), 10).astimezone(UTC)
    # Without a calendar nothing moves.
    assert all(p.shift is None for p in upcoming(campaign, now, {}, None, now, OPEN))


# -- through the command line -----------------------------------------------------------------

PEOPLE_HEADER = "Email;First name;Last name;Language;Department;Start date;Certification;Country"


def calendar_project(project: Path, holidays: Any, people: list[str]) -> Path:
    """The scaffold with `holidays:` in ldmail.yaml, a Country column and no holdout."""
    edit_yaml(project / "ldmail.yaml", lambda s: s.update(holidays=holidays))
    edit_yaml(project / "audiences.yaml",
              lambda a: a["people"]["columns"].update(country="Country"))
    edit_yaml(project / "campaigns" / "welcome.yaml", lambda c: c.update(holdout="0%"))
    (project / "people.csv").write_text("\r\n".join([PEOPLE_HEADER, *people]) + "\r\n",
                                        encoding="utf-8")
    return project


def outbox(project: Path) -> list[tuple[str, datetime]]:
    """Each message in the outbox: to whom, and when it was sent (its Date header)."""
    found = []
    for path in sorted((project / ".ldmail" / "outbox").glob("*.eml")):
        message = email.message_from_bytes(path.read_bytes(), policy=default_policy)
        found.append((str(message["To"]).rsplit("<", 1)[-1].rstrip(">"),
                      parsedate_to_datetime(str(message["Date"]))))
    return found


@pytest.mark.slow
def test_no_message_on_a_dutch_or_bavarian_holiday_or_a_blackout_day_in_2026_and_2027(
        project: Path, cli: Cli) -> None:
    """Fourteen months of cron runs, at 10:00 on every weekday (the window's days). Each
    person's one message is due on their start date: one starts on every day of the range, in
    a Dutch and a Bavarian variant; every message goes on the first weekday on or after it
    that is neither a holiday of the person's country nor a blackout day."""
    first, last = date(2026, 3, 30), date(2027, 5, 31)
    starts = [first + timedelta(days=n) for n in range((last - first).days - 7)]
    people = []
    for index, start in enumerate(starts):
        for country, language in (("", "NL"), ("DE-BY", "EN")):
            people.append(f"p{index}.{country.lower() or 'nl'}@example.org;P;{index};{language};"
                          f"Sales;{start:%d-%m-%Y};;{country}")
    calendar_project(project, {"countries": ["NL"], "blackout": [FREEZE]}, people)
    edit_yaml(project / "campaigns" / "welcome.yaml", lambda c: c.update(
        anchor="start_date", steps=c["steps"][:1]))

    day = first
    while day <= last:
        if day.weekday() < 5:
            result = cli("send", "--project", project, "--now", local(day, 10).isoformat())
            assert result.exit_code == 0, f"{day}: {result.output}"
        day += timedelta(days=1)

    freeze = blackout_days([FREEZE])
    sent = outbox(project)
    assert len(sent) == len(people)
    assert len(ledger_rows(project, "SELECT 1 FROM messages WHERE state = 'sent'")) == \
        len(people)
    moved = 0
    for address, moment in sent:
        number, variant = address.split("@")[0][1:].split(".")
        closed = (NL if variant == "nl" else DE_BY) | freeze
        sent_on = moment.astimezone(AMSTERDAM).date()
        assert sent_on not in closed, f"{address} mailed on {sent_on}, a closed day"
        # The first open weekday on or after the start date, and at the run's 10:00.
        start = expected = starts[int(number)]
        while expected.weekday() >= 5 or expected in closed:
            expected += timedelta(days=1)
        assert moment == local(expected, 10), address
        moved += expected != start and start.weekday() < 5
    # Every holiday on a weekday in the range, and each weekday of the freeze, moved someone.
    assert moved == sum(1 for d in starts if d.weekday() < 5 and d in NL | freeze) + \
        sum(1 for d in starts if d.weekday() < 5 and d in DE_BY | freeze)
    # The Bavarians were mailed on King's Day, the Dutch on Corpus Christi.
    mailed = {(address.split(".")[1].split("@")[0], m.astimezone(AMSTERDAM).date())
              for address, m in sent}
    assert ("de-by", date(2026, 4, 27)) in mailed and ("nl", date(2026, 6, 4)) in mailed


def test_plan_shows_the_shift_to_the_next_open_day(project: Path, cli: Cli) -> None:
    """The welcome mail goes on Tuesday 22 December; the next step, three days later, would
    fall on Christmas Day: plan says it moves to Monday 28 December, and why."""
    calendar_project(project, "NL", ["ann@example.org;Ann;de Vries;NL;Sales;03-02-2019;;",
                                     "bob@example.org;Bob;Smith;EN;Sales;15-06-2015;;DE-BY"])
    now = local(date(2026, 12, 22), 10).isoformat()
    table = cli("plan", "--project", project, "--now", now, "--days", "10")
    assert table.exit_code == 0, table.output
    assert "welcome/first-course: 2 sends moved from Fri 25 Dec (Christmas Day) to Mon 28 Dec" \
        in table.stdout
    assert "first-course (moved from Fri 25 Dec: Christmas Day)" in table.stdout
    plan = json.loads(cli("plan", "--project", project, "--now", now, "--days", "10",
                          "--format", "json").stdout)
    assert plan["moved"] == [{"campaign": "welcome", "step": "first-course",
                              "from": "2026-12-25", "to": "2026-12-28",
                              "because": "Christmas Day", "messages": 2}]
    later = [item for item in plan["first"] if item["step"] == "first-course"]
    assert [(item["at"], item["moved_from"], item["moved_because"]) for item in later] == [
        ("2026-12-28T09:00:00+01:00", "2026-12-25T10:00:00+01:00", "Christmas Day")] * 2
    assert plan["per_day"][-1] == {"day": "2026-12-28", "campaign": "welcome",
                                   "step": "first-course", "messages": 2}


def test_a_quiet_cron_run_on_a_holiday_waits_and_the_next_open_day_sends(
        project: Path, cli: Cli) -> None:
    """Cron every few minutes on Christmas Day finds nothing to send and takes the quiet
    path; on Monday the waiting step goes. Taking the holiday out of the settings is a change
    the quiet path notices at once."""
    calendar_project(project, "NL", ["ann@example.org;Ann;de Vries;NL;Sales;03-02-2019;;"])

    def send(moment: datetime, *options: str) -> str:
        result = cli(*options, "send", "--project", project, "--now", moment.isoformat())
        assert result.exit_code == 0, result.output
        return result.output

    assert summary_line(send(local(date(2026, 12, 22), 10))).startswith("sent 1 ")
    christmas = send(local(date(2026, 12, 25), 10))
    assert summary_line(christmas).startswith("sent 0 · waiting for send window 1 ")
    # In the project's time zone, with its name, whatever this machine's zone is.
    assert "the send window, which opens Mon 2026-12-28 09:00 CET" in christmas, christmas
    quiet = send(local(date(2026, 12, 25), 10, 5), "--verbose")
    assert "quiet path: nothing can be due before 2026-12-28T08:00:00Z" in quiet, quiet
    assert summary_line(quiet) == summary_line(christmas)
    assert len(outbox(project)) == 1

    edit_yaml(project / "ldmail.yaml", lambda s: s.update(holidays=[]))
    assert summary_line(send(local(date(2026, 12, 25), 10, 10))).startswith("sent 1 ")
    assert [when.astimezone(AMSTERDAM).date() for _, when in outbox(project)] == \
        [date(2026, 12, 22), date(2026, 12, 25)]


def test_a_campaign_can_keep_its_own_calendar(project: Path, cli: Cli) -> None:
    """`holidays:` in a campaign replaces ldmail.yaml's: here, Bavaria's instead of the
    Netherlands', so King's Day (27 April 2026, a Monday) is an ordinary day for it."""
    calendar_project(project, {"countries": "NL", "blackout": "2026-04-28"},
                     ["ann@example.org;Ann;de Vries;NL;Sales;03-02-2019;;"])
    now = local(date(2026, 4, 24), 10).isoformat()  # a Friday: first-course on Monday
    plan = json.loads(cli("plan", "--project", project, "--now", now, "--days", "7",
                          "--format", "json").stdout)
    assert plan["moved"][0]["because"] == "King's Day" and plan["moved"][0]["to"] == \
        "2026-04-29"  # the next day is the blackout
    edit_yaml(project / "campaigns" / "welcome.yaml", lambda c: c.update(holidays="DE-BY"))
    plan = json.loads(cli("plan", "--project", project, "--now", now, "--days", "7",
                          "--format", "json").stdout)
    assert plan["moved"] == []
    assert [item["at"][:10] for item in plan["first"]] == ["2026-04-24", "2026-04-27"]
