"""ldmail.project.schedule: who is in the holdout and which variant a person gets are
deterministic draws; a step is due at day 0 + `after` but never sooner than `min_gap` after
the step before went out, and goes out when the send window next opens in the reader's own
zone, on a day the business calendar leaves open (a shift says what moved it); enrolment is
open from `starts` to `ends` inclusive, in the campaign's zone."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from ldmail.errors import NoSendDay
from ldmail.project.business_days import OPEN, Blackout, BusinessCalendar, Region
from ldmail.project.models import Campaign, SendWindow, Step
from ldmail.project.schedule import (
    StepRecord,
    anchor_moment,
    assign_variant,
    campaign_is_open,
    in_holdout,
    next_window_open,
    upcoming,
    window_shift,
)

AMSTERDAM = ZoneInfo("Europe/Amsterdam")
TOKYO = ZoneInfo("Asia/Tokyo")
OFFICE = SendWindow.model_validate({"days": "mon-fri", "hours": "09:00-17:00",
                                    "timezone": "Europe/Amsterdam"})
DUTCH = BusinessCalendar((Region("NL"),))
PEOPLE = [f"person{i}@example.org" for i in range(4000)]


def at(year: int, month: int, day: int, hour: int = 0, minute: int = 0,
       zone: ZoneInfo = AMSTERDAM) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=zone)


def campaign(**extra: Any) -> Campaign:
    return Campaign.model_validate({
        "title": "Welcome", "phase": "activate", "starts": "2026-01-01",
        "sender": "learning@example.org",
        "steps": [{"id": "one", "after": "0d", "template": "w/one"},
                  {"id": "two", "after": "2d", "template": "w/two"},
                  {"id": "three", "after": "4d", "template": "w/three"}], **extra})


def ab_step(step_id: str = "hello", story: float = 70, facts: float = 30) -> Step:
    return Step.model_validate({"id": step_id, "after": "0d", "variants": [
        {"id": "story", "template": "w/story", "weight": story},
        {"id": "facts", "template": "w/facts", "weight": facts}]})


# -- deterministic draws ------------------------------------------------------------------------


def test_the_holdout_is_the_same_people_every_run_and_near_its_share() -> None:
    members = {email for email in PEOPLE if in_holdout("welcome", email, 0.2)}
    assert 700 < len(members) < 900
    assert members == {email for email in PEOPLE if in_holdout("welcome", email, 0.2)}
    assert in_holdout("welcome", "Ann@Example.ORG", 0.5) == \
        in_holdout("welcome", "ann@example.org", 0.5)
    # Another campaign draws its own group.
    assert members != {email for email in PEOPLE if in_holdout("onboarding", email, 0.2)}


def test_no_one_is_held_out_at_a_share_of_zero() -> None:
    assert not any(in_holdout("welcome", email, 0.0) for email in PEOPLE)


def test_a_step_without_variants_draws_nothing() -> None:
    plain = Step.model_validate({"id": "hello", "after": "0d", "template": "w/hello"})
    assert assign_variant("welcome", plain, "ann@example.org") is None


def drawn(step: Step, email: str) -> str | None:
    variant = assign_variant("welcome", step, email)
    return variant.id if variant is not None else None


def test_variants_are_drawn_by_weight_and_stay_with_the_person() -> None:
    step = ab_step()
    ids = [drawn(step, email) for email in PEOPLE]
    assert 0.66 < ids.count("story") / len(PEOPLE) < 0.74
    assert ids.count("story") + ids.count("facts") == len(PEOPLE)
    assert [drawn(step, email) for email in PEOPLE] == ids
    assert drawn(step, "ANN@example.org") == drawn(step, "ann@example.org")


def test_each_step_draws_its_variant_independently() -> None:
    first, second = ab_step("first", 1, 1), ab_step("second", 1, 1)
    both = [email for email in PEOPLE
            if drawn(first, email) == "story" and drawn(second, email) == "story"]
    assert 0.21 < len(both) / len(PEOPLE) < 0.29  # a quarter, not a half


def test_tiny_weights_still_split_evenly() -> None:
    step = ab_step(story=1e-320, facts=1e-320)
    ids = [drawn(step, email) for email in PEOPLE]
    assert 0.45 < ids.count("story") / len(PEOPLE) < 0.55


# -- the send window ----------------------------------------------------------------------------


def test_a_moment_inside_the_window_goes_at_once_in_utc() -> None:
    moment = at(2026, 12, 1, 12)
    sent = next_window_open(moment, OFFICE)
    assert sent == moment and sent.tzinfo is UTC


@pytest.mark.parametrize(("moment", "opens"), [
    (at(2026, 12, 1, 7), at(2026, 12, 1, 9)),     # Tuesday morning: today at nine
    (at(2026, 12, 1, 17), at(2026, 12, 2, 9)),    # closing time is outside the window
    (at(2026, 12, 4, 18), at(2026, 12, 7, 9)),    # Friday evening: Monday morning
    (at(2026, 12, 5, 12), at(2026, 12, 7, 9)),    # Saturday noon: Monday morning
])
def test_outside_the_window_the_send_waits_for_it_to_open(moment: datetime,
                                                          opens: datetime) -> None:
    assert next_window_open(moment, OFFICE) == opens


def test_the_readers_own_zone_decides_the_window() -> None:
    """Tuesday 09:00 in Amsterdam is 17:00 in Tokyo: too late there, so Wednesday 09:00."""
    assert next_window_open(at(2026, 12, 1, 9), OFFICE, TOKYO) == at(2026, 12, 2, 9, zone=TOKYO)


def test_an_opening_in_the_spring_forward_gap_moves_on_by_the_gap() -> None:
    """At 02:00 on 29 March 2026 Amsterdam's clocks jump to 03:00: 02:30 does not exist."""
    early = SendWindow.model_validate({"days": "mon-sun", "hours": "02:30-04:00",
                                       "timezone": "Europe/Amsterdam"})
    assert next_window_open(at(2026, 3, 29, 0), early) == datetime(2026, 3, 29, 1, 30, tzinfo=UTC)


def test_an_opening_in_the_autumn_repeat_is_its_first_occurrence() -> None:
    """At 03:00 on 25 October 2026 Amsterdam's clocks go back to 02:00: 02:30 happens twice."""
    early = SendWindow.model_validate({"days": "mon-sun", "hours": "02:30-04:00",
                                       "timezone": "Europe/Amsterdam"})
    assert next_window_open(at(2026, 10, 25, 0), early) == \
        datetime(2026, 10, 25, 0, 30, tzinfo=UTC)


def test_a_holiday_moves_the_send_and_the_shift_says_why() -> None:
    """Christmas 2026 is a Friday, Boxing Day a Saturday: the window opens on Monday 28th."""
    moment = at(2026, 12, 24, 18)
    send_at = next_window_open(moment, OFFICE, None, DUTCH)
    assert send_at == at(2026, 12, 28, 9)
    shift = window_shift(moment, OFFICE, None, DUTCH, send_at)
    assert shift is not None
    assert (shift.was, shift.reason) == (at(2026, 12, 25, 9), "Christmas Day")
    assert window_shift(moment, OFFICE, None, OPEN, send_at) is None  # no calendar, no shift
    assert window_shift(at(2026, 12, 22, 10), OFFICE, None, DUTCH,
                        at(2026, 12, 22, 10)) is None  # an open day: nothing moved


def test_a_calendar_closed_for_ten_years_is_said_plainly() -> None:
    closed = BusinessCalendar((), tuple(Blackout(date(year, 1, 1), date(year, 12, 31))
                                        for year in range(2026, 2038)))
    with pytest.raises(NoSendDay) as caught:
        next_window_open(at(2026, 3, 3, 10), OFFICE, None, closed)
    assert str(caught.value) == (
        "no send window opens in the ten years after 2026-03-03: the holidays and blackout in "
        "ldmail.yaml (or the campaign) close every day of it")


# -- day 0 and enrolment ------------------------------------------------------------------------


def test_day_0_is_enrolment_or_the_anchor_date_at_local_midnight() -> None:
    enrolled = at(2026, 3, 3, 14)
    assert anchor_moment(campaign(), date(2026, 1, 1), enrolled, None) == enrolled
    anchored = campaign(anchor="start_date")
    assert anchor_moment(anchored, date(2026, 3, 9), enrolled, None) == at(2026, 3, 9)
    assert anchor_moment(anchored, date(2026, 3, 9), enrolled, TOKYO) == \
        at(2026, 3, 9, zone=TOKYO)
    assert anchor_moment(anchored, None, enrolled, None) is None  # no date: no day 0


def test_enrolment_is_open_from_starts_to_ends_inclusive_in_the_campaigns_zone() -> None:
    limited = campaign(ends="2026-01-31")
    # 23:30 UTC on 31 December is already 1 January in Amsterdam.
    assert campaign_is_open(limited, datetime(2025, 12, 31, 23, 30, tzinfo=UTC))
    assert not campaign_is_open(limited, datetime(2025, 12, 31, 22, 30, tzinfo=UTC))
    assert campaign_is_open(limited, at(2026, 1, 31, 23, 59))
    assert not campaign_is_open(limited, at(2026, 2, 1))
    assert campaign_is_open(campaign(), at(2030, 1, 1))  # no ends: open for good


# -- the plan -----------------------------------------------------------------------------------


def test_each_step_is_due_after_day_0_and_goes_out_when_the_window_opens() -> None:
    day0 = at(2026, 12, 1, 10)  # a Tuesday
    planned = upcoming(campaign(), day0, {}, None, day0)
    assert [(p.step.id, p.due_at, p.send_at) for p in planned] == [
        ("one", day0, day0),
        ("two", at(2026, 12, 3, 10), at(2026, 12, 3, 10)),
        ("three", at(2026, 12, 5, 10), at(2026, 12, 7, 9))]  # a Saturday: Monday at nine
    assert not any(p.retry or p.shift for p in planned)


def test_a_late_joiner_gets_one_step_per_min_gap() -> None:
    now = at(2026, 12, 1, 10)
    planned = upcoming(campaign(min_gap="1d"), now - timedelta(days=30), {}, None, now)
    assert [p.send_at for p in planned] == [now, at(2026, 12, 2, 10), at(2026, 12, 3, 10)]


def test_done_steps_are_not_planned_and_the_gap_counts_from_the_last_send() -> None:
    now = at(2026, 12, 1, 10)
    day0 = now - timedelta(days=10)
    sent = StepRecord("sent", at(2026, 11, 30, 16))
    planned = upcoming(campaign(min_gap="1d"), day0, {"one": sent}, None, now)
    assert [p.step.id for p in planned] == ["two", "three"]
    assert planned[0].due_at == at(2026, 12, 1, 16)


def test_a_skipped_step_sent_nothing_so_it_does_not_space_the_next() -> None:
    now = at(2026, 12, 1, 10)
    history = {"one": StepRecord("sent", at(2026, 11, 20, 10)),
               "two": StepRecord("skipped", at(2026, 11, 30, 16))}
    planned = upcoming(campaign(min_gap="1d"), now - timedelta(days=30), history, None, now)
    assert [(p.step.id, p.send_at) for p in planned] == [("three", now)]


def test_a_deferred_or_held_step_waits_for_its_next_attempt_and_keeps_its_count() -> None:
    now = at(2026, 12, 1, 10)
    retry_at = at(2026, 12, 1, 11, 30)
    history = {"one": StepRecord("deferred", None, retry_at, attempts=2),
               "two": StepRecord("held", None)}
    first, second, _ = upcoming(campaign(min_gap="1h"), now - timedelta(days=30), history,
                                None, now)
    assert (first.retry, first.attempts, first.send_at) == (True, 2, retry_at)
    assert (second.retry, second.attempts) == (True, 0)
    assert second.send_at == retry_at + timedelta(hours=1)


def test_a_planned_step_knows_the_business_calendar_moved_it() -> None:
    day0 = at(2026, 12, 21, 10)  # a Monday; step three is due on Christmas Day
    one, two, three = upcoming(campaign(), day0, {}, None, day0, DUTCH)
    assert one.shift is None and two.shift is None
    assert (three.due_at, three.send_at) == (at(2026, 12, 25, 10), at(2026, 12, 28, 9))
    assert three.shift is not None
    assert (three.shift.was, three.shift.reason) == (at(2026, 12, 25, 10), "Christmas Day")
