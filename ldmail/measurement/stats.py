"""Two-proportion statistics: did the mailed group convert more than the holdout?

One family, so that the figures never contradict each other:

- the **interval** of the difference (mailed minus holdout) is Newcombe's hybrid score
  interval, method 10 of Newcombe (1998), built from the two groups' Wilson score intervals.
  It stays inside [-1, 1], is never zero-width, and keeps its coverage for small groups and
  for 0/n or n/n, where the Wald interval collapses;
- the **test** is Fisher's exact test, two-sided, summing every table with the same margins
  that is no more likely than the one observed. It needs no minimum group size.

The verdict needs both (see `VERDICT_RULES`): the interval has to lie on one side of zero
*and* the exact test has to reject "no difference" at 5%. When only one of them does, the
result is borderline and is reported as such rather than as an effect.

`detectable_uplift` answers the question before sending: with these group sizes and this
baseline, what is the smallest uplift that a campaign would show with 80% power?
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

Z95 = 1.959963984540054  # the 97.5th percentile of the standard normal distribution
Z80 = 0.8416212335729143  # the 80th percentile: the z of 80% power
ALPHA = 0.05  # the significance level of the verdict
POWER = 0.80  # the power that the detectable uplift is computed for
DEFAULT_BASELINE = 0.10  # the holdout's conversion assumed when a hypothesis names none
# Two tables whose probabilities differ by less than this relative amount count as equally
# likely in the exact test (R's fisher.test uses the same tolerance, 1e-7).
_RELATIVE_TOLERANCE = 1 + 1e-7

Outcome = Literal["no-holdout", "raised", "lowered", "borderline", "unclear"]

VERDICT_RULES: dict[Outcome, str] = {
    "no-holdout": "nobody in the holdout (or nobody mailed): nothing to compare with",
    "raised": "the whole interval lies above zero and Fisher's exact test gives p < 0.05",
    "lowered": "the whole interval lies below zero and Fisher's exact test gives p < 0.05",
    "borderline": "only one of the two holds: the interval excludes zero or p < 0.05, not both",
    "unclear": "the interval includes zero and p is 0.05 or more",
}
"""When each outcome is reported; the guide's table of verdicts is checked against this."""


def wilson_interval(converted: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson's score interval of one proportion (Newcombe 1998, method 3)."""
    if n <= 0:
        return 0.0, 1.0
    p = converted / n
    centre = p + z * z / (2 * n)
    spread = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    denominator = 1 + z * z / n
    return max(0.0, (centre - spread) / denominator), min(1.0, (centre + spread) / denominator)


def newcombe_interval(converted1: int, n1: int, converted2: int, n2: int,
                      z: float = Z95) -> tuple[float, float]:
    """Newcombe's hybrid score interval of p1 - p2 (Newcombe 1998, method 10)."""
    p1, p2 = converted1 / n1, converted2 / n2
    low1, high1 = wilson_interval(converted1, n1, z)
    low2, high2 = wilson_interval(converted2, n2, z)
    difference = p1 - p2
    return (difference - math.sqrt((p1 - low1) ** 2 + (high2 - p2) ** 2),
            difference + math.sqrt((high1 - p1) ** 2 + (p2 - low2) ** 2))


def _log_table_probability(top_left: int, row1: int, row2: int, column1: int) -> float:
    """Log probability of a 2x2 table with these margins (the hypergeometric distribution)."""
    def log_choose(n: int, k: int) -> float:
        return math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)
    return (log_choose(row1, top_left) + log_choose(row2, column1 - top_left)
            - log_choose(row1 + row2, column1))


def fisher_exact(converted1: int, n1: int, converted2: int, n2: int) -> float:
    """Two-sided p-value of Fisher's exact test on mailed versus holdout conversions."""
    column1 = converted1 + converted2
    lowest, highest = max(0, column1 - n2), min(n1, column1)
    observed = _log_table_probability(converted1, n1, n2, column1)
    threshold = observed + math.log(_RELATIVE_TOLERANCE)
    total = sum(math.exp(log_p) for top_left in range(lowest, highest + 1)
                if (log_p := _log_table_probability(top_left, n1, n2, column1)) <= threshold)
    return min(1.0, total)


def _normal_cdf(x: float) -> float:
    return 0.5 * math.erfc(-x / math.sqrt(2))


def _power(uplift: float, baseline: float, n_treatment: int, n_holdout: int) -> float:
    """Power of a two-sided 5% test to see this uplift (normal approximation, for planning)."""
    mailed = baseline + uplift
    pooled = (n_treatment * mailed + n_holdout * baseline) / (n_treatment + n_holdout)
    null_se = math.sqrt(pooled * (1 - pooled) * (1 / n_treatment + 1 / n_holdout))
    true_se = math.sqrt(mailed * (1 - mailed) / n_treatment
                        + baseline * (1 - baseline) / n_holdout)
    if true_se == 0:
        return 1.0
    return _normal_cdf((uplift - Z95 * null_se) / true_se)


def detectable_uplift(n_treatment: int, n_holdout: int,
                      baseline: float = DEFAULT_BASELINE) -> float | None:
    """The smallest uplift (a fraction) found with 80% power, or None if none can be.

    None means that even a campaign converting everyone would likely go unnoticed: the
    holdout or the mailed group is too small.
    """
    if n_treatment <= 0 or n_holdout <= 0 or not 0 <= baseline < 1:
        return None
    largest = 1 - baseline
    if _power(largest, baseline, n_treatment, n_holdout) < POWER:
        return None
    low, high = 0.0, largest
    for _ in range(60):  # bisection: 60 halvings are far below a tenth of a point
        middle = (low + high) / 2
        if _power(middle, baseline, n_treatment, n_holdout) >= POWER:
            high = middle
        else:
            low = middle
    return high


def split_by_holdout(people: int, holdout_share: float) -> tuple[int, int]:
    """How many people a campaign mails and holds out, as the enrolment would split them."""
    holdout = round(people * holdout_share)
    return people - holdout, holdout


@dataclass(frozen=True)
class Comparison:
    """Treatment versus holdout conversion, uplift in percentage points and its evidence."""

    treatment_n: int
    treatment_converted: int
    holdout_n: int
    holdout_converted: int

    @property
    def treatment_rate(self) -> float | None:
        return self.treatment_converted / self.treatment_n if self.treatment_n else None

    @property
    def holdout_rate(self) -> float | None:
        return self.holdout_converted / self.holdout_n if self.holdout_n else None

    @property
    def comparable(self) -> bool:
        return self.treatment_n > 0 and self.holdout_n > 0

    @property
    def uplift(self) -> float | None:
        """Difference in conversion, as a fraction (0.10 is 10 percentage points)."""
        if self.treatment_rate is None or self.holdout_rate is None:
            return None
        return self.treatment_rate - self.holdout_rate

    @property
    def interval(self) -> tuple[float, float] | None:
        """95% Newcombe hybrid score interval of the uplift."""
        if not self.comparable:
            return None
        return newcombe_interval(self.treatment_converted, self.treatment_n,
                                 self.holdout_converted, self.holdout_n)

    @property
    def p_value(self) -> float | None:
        """Two-sided p-value of Fisher's exact test."""
        if not self.comparable:
            return None
        return fisher_exact(self.treatment_converted, self.treatment_n,
                            self.holdout_converted, self.holdout_n)

    @property
    def outcome(self) -> Outcome:
        """The verdict as a keyword, by `VERDICT_RULES`; for styling, text and machines."""
        interval, p_value = self.interval, self.p_value
        if interval is None or p_value is None:
            return "no-holdout"
        significant = p_value < ALPHA
        above, below = interval[0] > 0, interval[1] < 0
        if significant and above:
            return "raised"
        if significant and below:
            return "lowered"
        if significant or above or below:
            return "borderline"
        return "unclear"


HypothesisStatus = Literal["supported", "not-supported", "undecided"]

HYPOTHESIS_RULES: dict[HypothesisStatus, str] = {
    "supported": "the campaign raised conversion (verdict 'raised') and the interval still "
                 "reaches the expected uplift",
    "not-supported": "the whole interval lies below the expected uplift, and nobody is still in "
                     "the sequence",
    "undecided": "anything else: the interval still holds both zero and the expected uplift, "
                 "or people are still in the sequence",
}
"""When a hypothesis counts as supported; the guide's table is checked against this."""


def judge_hypothesis(comparison: Comparison, expected: float, *,
                     running: bool = False) -> HypothesisStatus:
    """Whether the data support a hypothesis that expects `expected` uplift (a fraction).

    While people are still in the sequence (`running`), conversions are still coming: falling
    short of the expected uplift is not final until the campaign has run its course."""
    interval = comparison.interval
    if interval is None:
        return "undecided"
    if interval[1] < expected:
        return "undecided" if running else "not-supported"
    return "supported" if comparison.outcome == "raised" else "undecided"
