"""Power before sending: can this campaign, with these people, ever show its hypothesis?

A 10% holdout of 200 people is 20 people; no result from them will convince anyone. This
module says so while there is still time to change the holdout or the audience: `validate`
and `plan` (from the people export) and `report` (from the enrolments) show the smallest
uplift the campaign can detect, and warn when the hypothesis expects less.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..project.models import Campaign
from ..units import plural
from .stats import DEFAULT_BASELINE, detectable_uplift, split_by_holdout

HOLDOUT_CHOICES = (0.15, 0.20, 0.25, 0.30, 0.35, 0.40, 0.50)  # what advice may suggest
MOST_PEOPLE = 10_000_000  # advice never suggests more people than this


@dataclass(frozen=True)
class Sensitivity:
    """The smallest uplift a campaign can detect, and whether its hypothesis is above it."""

    campaign: str
    mailed: int
    holdout: int
    holdout_share: float
    baseline: float
    detectable: float | None  # a fraction; None: no uplift can be detected reliably
    expected: float | None  # the hypothesis's expected uplift; None: no hypothesis

    @property
    def people(self) -> int:
        return self.mailed + self.holdout

    @property
    def decidable(self) -> bool | None:
        """Whether the hypothesis can be decided; None when there is none to decide."""
        if self.expected is None:
            return None
        return self.detectable is not None and self.expected >= self.detectable - 1e-9

    def summary(self) -> str:
        """One line: the group sizes and what they can show."""
        people = plural(self.people, "person", "people")
        holdout = plural(self.holdout, "person", "people")
        size = f"{people}, {self.holdout_share:.0%} holdout ({holdout})"
        if self.holdout_share <= 0:
            return f"{people}, no holdout: the effect cannot be measured"
        if self.detectable is None:
            return f"{size}: no uplift can be detected reliably"
        return (f"{size}: detects {points(self.detectable)} or more "
                f"(80% power, baseline {self.baseline:.0%})")

    def advice(self) -> str | None:
        """What to change when the hypothesis cannot be decided, else None."""
        if self.decidable is not False or self.expected is None:
            return None
        can = ("no uplift at all" if self.detectable is None
               else f"{points(self.detectable)} or more")
        options = []
        share = self._holdout_that_decides()
        if share is not None:
            options.append(f"raise the holdout to {share:.0%}")
        people = self._people_that_decide()
        if people is not None:
            options.append(f"run it on about {people:,} people")
        change = " or ".join(options) if options else "expect a larger uplift"
        return (f"with {plural(self.people, 'person', 'people')} and a {self.holdout_share:.0%} "
                f"holdout you can detect {can}; the hypothesis expects "
                f"{points(self.expected)}: {change}")

    def _decides(self, mailed: int, holdout: int) -> bool:
        found = detectable_uplift(mailed, holdout, self.baseline)
        return found is not None and self.expected is not None and found <= self.expected

    def _holdout_that_decides(self) -> float | None:
        return next((share for share in HOLDOUT_CHOICES if share > self.holdout_share
                     and self._decides(*split_by_holdout(self.people, share))), None)

    def _people_that_decide(self) -> int | None:
        share = self.holdout_share
        if share <= 0:
            return None
        high = max(self.people, 10)
        while not self._decides(*split_by_holdout(high, share)):
            high *= 2
            if high > MOST_PEOPLE:
                return None
        low = high // 2
        while high - low > max(1, high // 100):  # to about 1%: advice, not a promise
            middle = (low + high) // 2
            if self._decides(*split_by_holdout(middle, share)):
                high = middle
            else:
                low = middle
        return int(round(high, -1)) if high >= 100 else high


def points_digits(fraction: float) -> int:
    """Whole percentage points, but one decimal below 1 pp (a +0.3 pp uplift is not +0 pp)."""
    return 1 if abs(fraction) < 0.01 - 1e-12 else 0


def points(fraction: float) -> str:
    """A difference of two shares in percentage points: `+7 pp`, `+0.3 pp`."""
    return f"{fraction * 100:+.{points_digits(fraction)}f} pp"


def sensitivity(campaign_id: str, campaign: Campaign, mailed: int, holdout: int) -> Sensitivity:
    """The sensitivity of a campaign with these group sizes."""
    hypothesis = campaign.hypothesis
    baseline = (hypothesis.baseline if hypothesis is not None and hypothesis.baseline is not None
                else DEFAULT_BASELINE)
    return Sensitivity(campaign_id, mailed, holdout, campaign.holdout, baseline,
                       detectable_uplift(mailed, holdout, baseline),
                       None if hypothesis is None else hypothesis.expected_uplift)
