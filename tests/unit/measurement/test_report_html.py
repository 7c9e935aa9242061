"""ldmail.measurement.report_html promises one self-contained page: nothing fetched (a
Content-Security-Policy that allows only inline styles, no script, no outside URL), every text
escaped, charts drawn as SVG with a tip per bar (every calendar day between the first and the
last send, a day without sends as 0), a headline verdict that says why there is none when
there is no goal, nobody enrolled or no holdout, in the report's language."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, datetime
from html.parser import HTMLParser
from typing import Any

from ldmail.measurement.report import CampaignReport, FitShare, Report, Segment, StepFunnel
from ldmail.measurement.report_html import Axis, Series, bar_chart, to_html, uplift_chart
from ldmail.measurement.report_text import Words
from ldmail.measurement.stats import Comparison

GENERATED = datetime(2027, 1, 26, 13, tzinfo=UTC).isoformat()


def campaign(**changes: Any) -> CampaignReport:
    """A campaign with a clear effect, a persona, a step to the manager and two send days."""
    base = CampaignReport(
        id="welcome", title="Welcome", phase="activate", goal="registered (any)",
        enrolled=1000, treatment=500, holdout=500, exits={"goal reached": 200},
        steps=[StepFunnel("hello", 480, 20, 0, 0),
               StepFunnel("nudge", 300, 0, 0, 10, to="manager")],
        overall=Segment("all", Comparison(500, 150, 500, 50), 3.0, 5.0),
        personas=[Segment("newcomer", Comparison(100, 40, 100, 10), 2.0, None)],
        sends_by_day=[("2027-01-04", 400), ("2027-01-06", 380)], holdout_share=0.5)
    return replace(base, **changes)


def page(*campaigns: CampaignReport, language: str = "en") -> str:
    return to_html(Report(GENERATED, list(campaigns), "Acme", language))


class Tags(HTMLParser):
    """Every start tag with its attributes, to find what a page would load."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.found.append((tag, dict(attrs)))


def test_the_page_loads_nothing_from_anywhere() -> None:
    html = page(campaign())
    tags = Tags()
    tags.feed(html)
    names = {tag for tag, _ in tags.found}
    assert not names & {"script", "link", "img", "iframe", "object", "embed"}
    assert not [attrs for _, attrs in tags.found if attrs.get("src") or attrs.get("href")]
    assert "content=\"default-src 'none'; style-src 'unsafe-inline'\"" in html
    assert "url(" not in html and "@import" not in html
    assert html.startswith("<!DOCTYPE html>\n<html lang=\"en\">")


def test_every_text_is_escaped() -> None:
    hostile = "<script>alert(1)</script>"
    html = page(campaign(title=hostile, description=hostile, personas=[
        Segment(hostile, Comparison(10, 5, 10, 1), None, None)],
        exits={hostile: 1}, steps=[StepFunnel(hostile, 1, 0, 0, 0)]))
    assert "<script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_the_headline_gives_the_verdict_and_its_evidence() -> None:
    html = page(campaign())
    assert '<div class="verdict raised"><strong>The campaign raised conversion (p &lt; 0.001)' \
        "</strong>30.0% of mailed people reached the goal (150 of 500), against 10.0% of the " \
        "holdout (50 of 500): +20.0 pp, 95% interval" in html


def test_without_a_goal_nobody_enrolled_or_no_holdout_the_headline_says_why() -> None:
    assert '<div class="verdict no-goal"><strong>No goal set</strong>' in \
        page(campaign(overall=None, personas=[], goal=None))
    nobody = Segment("all", Comparison(0, 0, 0, 0), None, None)
    assert "<strong>Nobody enrolled yet</strong>" in page(campaign(overall=nobody, personas=[]))
    unheld = Segment("all", Comparison(100, 20, 0, 0), None, None)
    html = page(campaign(overall=unheld, personas=[], holdout=0, holdout_share=0.0))
    assert "there is no holdout group, so the effect of the mails cannot be measured" in html
    assert "Nothing to compare: no holdout members yet." in html  # the uplift chart's place


def test_no_campaigns_is_said_in_the_page() -> None:
    html = to_html(Report(GENERATED, [], "", "nl"))
    assert "Geen campagnes in dit rapport." in html
    assert "<h1>Leercampagnes: campagnerapport</h1>" in html


def test_a_dutch_page_uses_dutch_words_and_numbers() -> None:
    html = page(campaign(), language="nl")
    assert '<html lang="nl">' in html
    assert "30,0% van de gemailde mensen bereikte het doel (150 van 500)" in html
    assert "Cijfers tot en met 26 januari 2027, 13:00 (UTC)." in html
    assert "nudge (aan de leidinggevende)" in html


def test_the_sends_chart_shows_every_day_between_the_first_and_last_send() -> None:
    html = page(campaign())
    tips = re.findall(r"<title>(\d+ Jan: [\d,]+ sent)</title>", html)
    assert tips == ["4 Jan: 400 sent", "5 Jan: 0 sent", "6 Jan: 380 sent"]


def test_tables_show_the_survey_fit_and_who_left() -> None:
    fit = FitShare("all", 20, 3, 0.05, {"No": 3, "Yes": 17})
    html = page(campaign(fit=[fit]))
    assert "Did the training fit?" in html and "over the bar" in html
    assert "Yes 17 · No 3" in html  # answers given, most given first
    assert '<td class="text">goal reached</td><td>200</td>' in html


def test_a_bar_chart_is_an_svg_with_a_tip_per_bar_and_no_bar_for_missing_data() -> None:
    words = Words("en")
    svg = bar_chart("Conversion <by> persona", ["a", "b"],
                    [Series("mailed", "#000", [0.5, None]), Series("holdout", "#999", [0.2, 0.1])],
                    Axis([0.0, 0.25, 0.5], lambda v: words.pct(v, 0)), horizontal=True,
                    tip=lambda category, series, value: f"{category}/{series.name}: {value}")
    assert svg.startswith("<svg ") and svg.endswith("</svg>")
    assert 'aria-label="Conversion &lt;by&gt; persona"' in svg
    assert re.findall(r"<title>([ab]/\w+: [\d.]+)</title>", svg) == \
        ["a/mailed: 0.5", "a/holdout: 0.2", "b/holdout: 0.1"]


def test_the_uplift_chart_draws_an_interval_or_says_there_is_no_holdout() -> None:
    words = Words("en")
    svg = uplift_chart("Uplift", [Segment("all", Comparison(500, 150, 500, 50), None, None),
                                  Segment("solo", Comparison(10, 2, 0, 0), None, None)], words)
    assert svg.count("<circle") == 1  # one point: the segment with a holdout
    assert "all: uplift +20.0 pp, 95% interval" in svg
    assert ">no holdout</text>" in svg
