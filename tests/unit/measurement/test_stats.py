"""ldmail.measurement.stats: what tests/test_stats.py (published tables, verdicts, the guide)
leaves out. The interval stays within [-1, 1] and is never zero-width, even for 0/n and n/n;
a group of nobody gives no rates and no verdict; the holdout split is the one enrolment makes;
the detectable uplift shrinks as groups grow and is None where nothing can be detected."""

from __future__ import annotations

import pytest

from ldmail.measurement.stats import (
    Comparison,
    detectable_uplift,
    fisher_exact,
    judge_hypothesis,
    split_by_holdout,
    wilson_interval,
)


def test_an_empty_group_has_the_widest_interval_and_no_rates() -> None:
    assert wilson_interval(0, 0) == (0.0, 1.0)
    empty = Comparison(0, 0, 10, 3)
    assert (empty.treatment_rate, empty.uplift, empty.interval, empty.p_value) == \
        (None, None, None, None)
    assert empty.holdout_rate == pytest.approx(0.3)
    assert judge_hypothesis(empty, 0.10) == "undecided"


@pytest.mark.parametrize("counts", [(10, 10, 10, 0), (10, 0, 10, 10), (3, 0, 3, 0),
                                    (1000, 1000, 1000, 1000)])
def test_the_interval_of_extreme_tables_stays_inside_minus_one_to_one_and_is_never_zero_width(
        counts: tuple[int, int, int, int]) -> None:
    c = Comparison(*counts)
    assert c.interval is not None and c.p_value is not None
    low, high = c.interval
    assert -1.0 <= low < high <= 1.0
    assert c.uplift is not None and low <= c.uplift <= high
    assert 0.0 < c.p_value <= 1.0


def test_fisher_exact_never_exceeds_one() -> None:
    assert fisher_exact(5, 10, 5, 10) == pytest.approx(1.0)
    assert fisher_exact(0, 0, 0, 5) == 1.0


@pytest.mark.parametrize(("people", "share", "expected"), [
    (200, 0.10, (180, 20)), (7, 0.10, (6, 1)), (100, 0.0, (100, 0)), (0, 0.5, (0, 0))])
def test_the_holdout_split_rounds_as_enrolment_does(people: int, share: float,
                                                    expected: tuple[int, int]) -> None:
    assert split_by_holdout(people, share) == expected


def test_the_detectable_uplift_shrinks_as_the_groups_grow_and_needs_a_sane_baseline() -> None:
    sizes = [(180, 20), (900, 100), (9000, 1000)]
    small, medium, large = (detectable_uplift(mailed, held, 0.10) for mailed, held in sizes)
    assert small is not None and medium is not None and large is not None
    assert small > medium > large
    assert detectable_uplift(900, 100, 1.0) is None
    assert detectable_uplift(900, 100, -0.1) is None
    assert detectable_uplift(0, 100) is None
