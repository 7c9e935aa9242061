"""ldmail.sandbox.conditions promises `when:` conditions over a person's attributes and goal
events: reached(), count() and days_since() with `*` wildcards in the object, no event dated
after the run's moment counted, days_since of an event that never happened a missing value
that every comparison finds false, and the made-up histories validate tries a condition
with, so every branch behind the helpers is run."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from ldmail.errors import ExpressionError
from ldmail.sandbox.conditions import (
    COMBINED,
    LATER,
    NEVER,
    OFTEN,
    LearningEvent,
    condition_holds,
    events_named,
    trials,
    verb_name,
)

NOW = datetime(2026, 12, 15, 9, 0, tzinfo=UTC)
HISTORY = (
    LearningEvent("completed", "course:excel", NOW - timedelta(days=40)),
    LearningEvent("completed", "course:word", NOW - timedelta(days=10)),
    LearningEvent("passed", "quiz:1", NOW - timedelta(days=1)),
    LearningEvent("completed", "course:access", NOW + timedelta(days=1)),  # after the run
)


def _holds(condition: str, **attributes: object) -> bool:
    return condition_holds(condition, attributes, HISTORY, NOW)


def test_reached_and_count_match_the_object_with_wildcards() -> None:
    assert _holds("reached('completed', 'course:excel')")
    assert not _holds("reached('completed', 'course:powerpoint')")
    assert _holds("count('completed', 'course:*') == 2")
    assert _holds("count('completed') == 2 and count('passed', object='quiz:?') == 1")


def test_an_event_dated_after_the_runs_moment_is_not_counted() -> None:
    assert not _holds("reached('completed', 'course:access')")
    assert condition_holds("reached('completed', 'course:access')", {}, HISTORY,
                           NOW + timedelta(days=2))


def test_days_since_counts_from_the_latest_matching_event() -> None:
    assert _holds("days_since('completed') == 10")
    assert _holds("days_since('completed', 'course:excel') == 40")
    assert _holds("days_since('passed') < 1.01")


def test_days_since_an_event_that_never_happened_is_false_in_every_comparison() -> None:
    for comparison in ("> 30", "< 30", ">= 0", "<= 0", "== 0"):
        assert not _holds(f"days_since('failed') {comparison}")
    assert _holds("days_since('failed') > 30 or not reached('failed')")
    assert NEVER == NEVER and not NEVER and repr(NEVER) == "never"


def test_a_condition_reads_the_persons_attributes_beside_the_helpers() -> None:
    assert _holds("department == 'Sales' and count('completed') >= 2", department="Sales")
    assert not _holds("department == 'Sales'", department="IT")


def test_a_helper_called_with_something_other_than_text_is_a_clear_error() -> None:
    with pytest.raises(ExpressionError, match=r"failed: event and object are text, e\.g\. "
                                              r"reached\('completed', 'course:\*'\)"):
        _holds("reached(3)")


def test_the_events_a_condition_names_are_found_without_running_it() -> None:
    assert events_named("reached('completed', 'course:*') and count('passed') > 1 "
                        "or days_since(name) > 3") == ["completed", "passed"]
    assert verb_name("http://adlnet.gov/expapi/verbs/Registered/") == "registered"


def test_validate_tries_no_history_now_and_ten_years_on() -> None:
    tried = trials("department == 'x'", NOW)
    assert [(trial.events, trial.at, trial.told) for trial in tried] == [
        ((), NOW, ""), ((), NOW + LATER, " (tried ten years on)")]


def test_validate_tries_each_named_event_once_just_now_and_often_long_ago() -> None:
    tried = trials("reached('completed', 'course:*')", NOW)
    assert len(tried) == 4
    once, often = tried[2], tried[3]
    assert once.events == (LearningEvent("completed", "course:x", NOW - timedelta(minutes=1)),)
    assert once.told == " (tried with made-up events: completed course:* just now)"
    assert len(often.events) == OFTEN and often.at == NOW + LATER
    assert condition_holds("reached('completed', 'course:*')", {}, once.events, once.at)
    assert condition_holds("count('completed') == 50 and days_since('completed') > 3000", {},
                           often.events, often.at)


def test_validate_tries_every_combination_of_a_few_events_and_fewer_of_many() -> None:
    few = " and ".join(f"reached('e{index}')" for index in range(COMBINED))
    assert len(trials(few, NOW)) == 2 + 2 * (2 ** COMBINED - 1)
    many = " and ".join(f"reached('e{index}')" for index in range(COMBINED + 2))
    count = COMBINED + 2
    assert len(trials(many, NOW)) == 2 + 2 * (count + count + 1)  # each, all but each, all
    all_at_once = [trial for trial in trials(few, NOW) if len(trial.events) == COMBINED]
    assert condition_holds(few, {}, all_at_once[0].events, NOW)
