"""ldmail.measurement.sensitivity promises, before sending, the smallest uplift a campaign can
detect with its group sizes (baseline from its hypothesis, else 10%), whether its hypothesis
can be decided at all, and advice that really decides it: the first listed holdout share that
does, or about how many people would."""

from __future__ import annotations

import pytest

from ldmail.measurement.sensitivity import HOLDOUT_CHOICES, Sensitivity, sensitivity
from ldmail.measurement.stats import detectable_uplift, split_by_holdout
from ldmail.project.config import Project
from ldmail.project.models import Campaign, Hypothesis


def with_hypothesis(campaign: Campaign, uplift: str, baseline: str | None = None) -> Campaign:
    hypothesis = Hypothesis.model_validate(
        {"belief": "Two mails lead more people to register", "expected_uplift": uplift,
         **({"baseline": baseline} if baseline else {})})
    return campaign.model_copy(update={"hypothesis": hypothesis})


@pytest.fixture
def welcome(loaded: Project) -> Campaign:
    return loaded.campaigns["welcome"].model  # holdout: 10%


def test_without_a_hypothesis_there_is_nothing_to_decide_and_the_baseline_is_ten_percent(
        welcome: Campaign) -> None:
    found = sensitivity("welcome", welcome, 1800, 200)
    assert (found.people, found.baseline, found.expected) == (2000, 0.10, None)
    assert found.decidable is None and found.advice() is None
    assert found.summary() == ("2,000 people, 10% holdout (200 people): detects +7 pp or more "
                               "(80% power, baseline 10%)")


def test_the_hypothesis_baseline_is_the_one_used(welcome: Campaign) -> None:
    found = sensitivity("welcome", with_hypothesis(welcome, "10pp", "20%"), 1800, 200)
    assert found.baseline == 0.20
    assert found.detectable == pytest.approx(detectable_uplift(1800, 200, 0.20))
    assert found.summary().endswith("(80% power, baseline 20%)")


def test_groups_too_small_or_no_holdout_say_so(welcome: Campaign) -> None:
    assert sensitivity("welcome", welcome, 5, 1).summary() == \
        "6 people, 10% holdout (1 person): no uplift can be detected reliably"
    none_held = welcome.model_copy(update={"holdout": 0.0})
    assert sensitivity("welcome", none_held, 10, 0).summary() == \
        "10 people, no holdout: the effect cannot be measured"


def test_a_hypothesis_above_what_can_be_detected_is_decidable_and_needs_no_advice(
        welcome: Campaign) -> None:
    found = sensitivity("welcome", with_hypothesis(welcome, "10pp"), 1800, 200)
    assert found.decidable is True and found.advice() is None


def test_the_advice_names_the_first_holdout_that_decides_and_a_population_that_does(
        welcome: Campaign) -> None:
    found = sensitivity("welcome", with_hypothesis(welcome, "6pp"), 1800, 200)
    assert found.decidable is False
    advice = found.advice()
    assert advice is not None
    assert advice.startswith("with 2,000 people and a 10% holdout you can detect +7 pp or "
                             "more; the hypothesis expects +6 pp: raise the holdout to 20% or "
                             "run it on about ")
    # 15% is not enough and 20% is: the advice is the first listed share that decides.
    assert HOLDOUT_CHOICES[:2] == (0.15, 0.20)
    at_15, at_20 = (detectable_uplift(*split_by_holdout(2000, s), 0.10) for s in (0.15, 0.20))
    assert at_15 is not None and at_20 is not None and at_20 <= 0.06 < at_15
    people = int(advice.rsplit("about ", 1)[1].split()[0].replace(",", ""))
    enough = detectable_uplift(*split_by_holdout(people, 0.10), 0.10)
    assert enough is not None and enough <= 0.06


def test_a_hypothesis_no_size_can_decide_asks_for_a_larger_uplift(welcome: Campaign) -> None:
    found = sensitivity("welcome", with_hypothesis(welcome, "0.05pp"), 1800, 200)
    advice = found.advice()
    assert advice is not None and advice.endswith(": expect a larger uplift")


def test_uplifts_under_one_point_keep_a_decimal(welcome: Campaign) -> None:
    found = sensitivity("welcome", with_hypothesis(welcome, "0.3pp"), 1800, 200)
    advice = found.advice()
    assert advice is not None and "; the hypothesis expects +0.3 pp: " in advice
    huge = Sensitivity("welcome", 9_000_000, 1_000_000, 0.1, 0.1, 0.004, None)
    assert "detects +0.4 pp or more" in huge.summary()
