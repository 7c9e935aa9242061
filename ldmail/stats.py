"""Two-proportion statistics: did the mailed group convert more than the holdout?"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

Z95 = 1.959963984540054  # the 97.5th percentile of the standard normal distribution
MIN_GROUP = 30  # below this the normal approximation, and any conclusion, is unsafe
MIN_EXPECTED = 5  # each group needs at least this many conversions and non-conversions
ALPHA = 0.05  # the significance level of the verdict

Outcome = Literal["no-holdout", "too-small", "raised", "lowered", "unclear"]


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
    def uplift(self) -> float | None:
        """Difference in conversion, as a fraction (0.10 is 10 percentage points)."""
        if self.treatment_rate is None or self.holdout_rate is None:
            return None
        return self.treatment_rate - self.holdout_rate

    @property
    def interval(self) -> tuple[float, float] | None:
        """95% Wald interval of the difference (unpooled standard error)."""
        p1, p2, uplift = self.treatment_rate, self.holdout_rate, self.uplift
        if p1 is None or p2 is None or uplift is None:
            return None
        se = math.sqrt(p1 * (1 - p1) / self.treatment_n + p2 * (1 - p2) / self.holdout_n)
        return uplift - Z95 * se, uplift + Z95 * se

    @property
    def p_value(self) -> float | None:
        """Two-sided p-value of the two-proportion z-test (pooled standard error)."""
        if not self.treatment_n or not self.holdout_n:
            return None
        pooled = (self.treatment_converted + self.holdout_converted) / (
            self.treatment_n + self.holdout_n)
        se = math.sqrt(pooled * (1 - pooled) * (1 / self.treatment_n + 1 / self.holdout_n))
        if se == 0:
            return 1.0
        z = (self.treatment_converted / self.treatment_n
             - self.holdout_converted / self.holdout_n) / se
        return math.erfc(abs(z) / math.sqrt(2))

    @property
    def too_small(self) -> bool:
        groups = ((self.treatment_n, self.treatment_converted),
                  (self.holdout_n, self.holdout_converted))
        return any(n < MIN_GROUP or converted < MIN_EXPECTED or n - converted < MIN_EXPECTED
                   for n, converted in groups)

    @property
    def outcome(self) -> Outcome:
        """The verdict as a keyword, for styling and for machines."""
        if not self.holdout_n:
            return "no-holdout"
        if self.too_small:
            return "too-small"
        if self.p_value is not None and self.p_value < ALPHA:
            return "raised" if (self.uplift or 0.0) > 0 else "lowered"
        return "unclear"

    @property
    def verdict(self) -> str:
        """One plain sentence a manager can read."""
        outcome, p_value = self.outcome, self.p_value or 0.0
        if outcome == "no-holdout":
            return "no holdout members to compare with"
        if outcome == "too-small":
            return "too small to conclude"
        if outcome == "raised":
            return f"the campaign raised conversion (p = {p_value:.3f})"
        if outcome == "lowered":
            return f"the mailed group converted less than the holdout (p = {p_value:.3f})"
        return f"no clear effect yet (p = {p_value:.3f}); keep measuring or widen the audience"
