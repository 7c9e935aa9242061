"""The report's statistics: checked against published values, by hand, and for agreement
between the interval, the test, the verdict and every place that shows them."""

from __future__ import annotations

import io
import json
import re
from datetime import UTC, datetime
from fractions import Fraction
from html import escape
from math import comb
from pathlib import Path

import pytest
from rich.console import Console

from ldmail.cli.report import print_report
from ldmail.measurement.report import CampaignReport, Report, Segment, to_csv, to_json
from ldmail.measurement.report_html import to_html
from ldmail.measurement.report_text import Words
from ldmail.measurement.stats import (
    HYPOTHESIS_RULES,
    VERDICT_RULES,
    Comparison,
    detectable_uplift,
    fisher_exact,
    judge_hypothesis,
    newcombe_interval,
    wilson_interval,
)

REPO = Path(__file__).resolve().parents[2]

# Newcombe (1998), "Interval estimation for the difference between independent proportions:
# comparison of eleven methods", Statistics in Medicine 17:873-890, Table II, method 10.
NEWCOMBE_TABLE_II = [
    ((56, 70, 48, 80), (0.0524, 0.3339)),
    ((9, 10, 3, 10), (0.1705, 0.8090)),
    ((6, 7, 2, 7), (0.0582, 0.8062)),
    ((5, 56, 0, 29), (-0.0381, 0.1926)),
    ((0, 10, 0, 20), (-0.1611, 0.2775)),
    ((0, 10, 0, 10), (-0.2775, 0.2775)),
    ((10, 10, 0, 20), (0.6791, 1.0000)),
    ((10, 10, 0, 10), (0.6075, 1.0000)),
]


@pytest.mark.parametrize(("counts", "published"), NEWCOMBE_TABLE_II)
def test_newcombe_interval_matches_the_published_table(
        counts: tuple[int, int, int, int], published: tuple[float, float]) -> None:
    low, high = newcombe_interval(*counts)
    assert (round(low, 4), round(high, 4)) == published


def test_wilson_interval_by_hand() -> None:
    """81 of 263 (Newcombe 1998a, example i): 0.2553 to 0.3662."""
    low, high = wilson_interval(81, 263)
    assert (round(low, 4), round(high, 4)) == (0.2553, 0.3662)


def test_fisher_exact_by_hand() -> None:
    """3 of 4 against 1 of 4: the tables with these margins have top-left cell 0..4 with
    probabilities C(4,k)C(4,4-k)/C(8,4) = 1, 16, 36, 16, 1 in 70; the observed one (k=3) has
    16/70, and the two-sided p sums those no more likely: (1 + 16 + 16 + 1) / 70."""
    probabilities = [Fraction(comb(4, k) * comb(4, 4 - k), comb(8, 4)) for k in range(5)]
    assert probabilities == [Fraction(n, 70) for n in (1, 16, 36, 16, 1)]
    assert fisher_exact(3, 4, 1, 4) == pytest.approx(34 / 70, abs=1e-12)
    # A single table is certain: nothing is less likely than it.
    assert fisher_exact(0, 7, 0, 1) == pytest.approx(1.0)


def test_fisher_exact_is_symmetric_and_two_sided() -> None:
    assert fisher_exact(150, 500, 50, 500) == pytest.approx(fisher_exact(50, 500, 150, 500))
    assert fisher_exact(150, 500, 50, 500) < 1e-10
    assert 0.1 < fisher_exact(40, 200, 5, 50) < 0.2


def test_the_cases_from_the_issue_no_longer_contradict_themselves() -> None:
    """Wald said '+0.0 to +20.0 pp' beside p = 0.100, '-76.8 to -33.2' beside p = 0.283 and
    '+0.0 to +0.0' for 0/7 against 0/1."""
    for counts in ((200, 40, 50, 5), (20, 9, 1, 1), (7, 0, 1, 0)):
        c = Comparison(*counts)
        assert c.interval is not None and c.p_value is not None
        low, high = c.interval
        assert low < 0 < high and c.p_value >= 0.05 and c.outcome == "unclear"
        assert high - low > 0.2  # small groups give wide intervals, never a zero-width one


def test_borderline_when_interval_and_test_disagree() -> None:
    """Search small tables for one where the score interval excludes zero but the exact
    test does not reject (they are different procedures): such a table is borderline."""
    found = None
    for n1, n2 in ((30, 30), (40, 20), (25, 25)):
        for k1 in range(n1 + 1):
            for k2 in range(n2 + 1):
                c = Comparison(n1, k1, n2, k2)
                if c.interval and c.interval[0] > 0 and (c.p_value or 0) >= 0.05:
                    found = c
                    break
            if found:
                break
        if found:
            break
    assert found is not None
    assert found.outcome == "borderline"


def test_verdicts_by_rule() -> None:
    assert Comparison(500, 150, 500, 50).outcome == "raised"
    assert Comparison(500, 50, 500, 150).outcome == "lowered"
    assert Comparison(100, 10, 0, 0).outcome == "no-holdout"
    assert Comparison(0, 0, 10, 1).outcome == "no-holdout"
    assert set(VERDICT_RULES) == {"no-holdout", "raised", "lowered", "borderline", "unclear"}


def test_hypothesis_judgement() -> None:
    strong = Comparison(500, 150, 500, 50)  # +20 pp, interval about +15 to +25
    assert judge_hypothesis(strong, 0.15) == "supported"
    assert judge_hypothesis(strong, 0.30) == "not-supported"  # the interval stays below 30
    assert judge_hypothesis(strong, 0.30, running=True) == "undecided"  # more may convert
    assert judge_hypothesis(Comparison(200, 40, 50, 5), 0.10) == "undecided"
    assert judge_hypothesis(Comparison(10, 1, 0, 0), 0.10) == "undecided"


def test_detectable_uplift() -> None:
    """Larger groups detect smaller effects; a holdout of 2 detects nothing."""
    small, large = detectable_uplift(176, 20, 0.10), detectable_uplift(1760, 200, 0.10)
    assert small is not None and large is not None
    assert 0.25 < small < 0.32 and 0.07 < large < 0.12
    tiny = detectable_uplift(12, 2, 0.10)
    assert tiny is not None and tiny > 0.75  # only a near-total conversion would show
    assert detectable_uplift(5, 1, 0.10) is None
    assert detectable_uplift(100, 0, 0.10) is None


# -- one verdict everywhere -------------------------------------------------------------------

EDGE_CASES = [(7, 0, 5, 0), (7, 7, 5, 5), (1, 1, 1, 1), (200, 40, 50, 5), (500, 150, 500, 50)]


def _report(language: str) -> Report:
    segments = [Segment(f"case{i}", Comparison(*counts), None, None)
                for i, counts in enumerate(EDGE_CASES)]
    campaign = CampaignReport(
        id="edge", title="Edge cases", phase="activate", goal="registered (any)", enrolled=0,
        treatment=0, holdout=0, exits={}, steps=[], overall=segments[0], personas=segments[1:],
        sends_by_day=[])
    return Report(generated_at=datetime(2027, 1, 26, tzinfo=UTC).isoformat(),
                  campaigns=[campaign], language=language)


@pytest.mark.parametrize("language", ["en", "nl", "de"])
def test_table_html_json_and_csv_show_the_same_verdict(language: str) -> None:
    report = _report(language)
    words = Words(language)
    capture = Console(width=400, record=True, file=io.StringIO())
    print_report(report, capture)
    table, html, csv_text = capture.export_text(), to_html(report), to_csv(report)
    rows = {r["segment"]: r for r in json.loads(to_json(report))["campaigns"][0]["personas"]}
    rows["case0"] = json.loads(to_json(report))["campaigns"][0]["conversion"]
    for i, counts in enumerate(EDGE_CASES):
        c = Comparison(*counts)
        verdict = words.verdict(c.outcome, c.p_value)
        assert rows[f"case{i}"]["outcome"] == c.outcome
        assert rows[f"case{i}"]["verdict"] == verdict
        assert verdict in table and escape(verdict) in html and verdict in csv_text
        assert words.interval(c.interval) in table
    assert f'lang="{language}"' in html


def test_the_guide_states_the_rules_the_code_applies() -> None:
    guide = (REPO / "docs" / "guide.md").read_text(encoding="utf-8")
    for outcome, rule in VERDICT_RULES.items():
        assert f"| {outcome} | {rule} |" in guide
    for status, rule in HYPOTHESIS_RULES.items():
        name = {"not-supported": "not supported", "undecided": "not yet decidable"}.get(
            status, status)
        assert f"| {name} | {rule} |" in guide
    words = Words("en")
    cases = re.findall(r"^\| (\d+)/(\d+) \| (\d+)/(\d+) \| ([^|]+) \| ([^|]+) \| ([a-z-]+) \|$",
                       guide, re.M)
    assert len(cases) >= 5
    for k1, n1, k2, n2, interval, p_value, verdict in cases:
        c = Comparison(int(n1), int(k1), int(n2), int(k2))
        assert c.outcome == verdict
        assert words.interval(c.interval) == interval.strip()
        assert words.p_value(c.p_value).lstrip("= ") == p_value.strip()
