"""ldmail.measurement.report promises each campaign's figures as they stood at `now`, read
from the ledger and never written: the funnel per step and the days messages went out, who
left and why, conversion of the mailed group against the holdout (overall and per persona),
the hypothesis judged, the survey's fit share per persona, A/B variants against the first;
and the same figures as JSON and as a CSV that Excel of the reader's language opens in
columns (BOM, `;` and decimal commas in Dutch and German), with no cell run as a formula."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from ldmail.delivery.send import send
from ldmail.errors import ConfigError
from ldmail.ledger import GoalEvent, Ledger, MessageFacts, MessageState, SurveyAnswer
from ldmail.measurement.report import (
    CampaignReport,
    Report,
    Segment,
    build_report,
    report_language,
    to_csv,
    to_json,
    variant_arms,
)
from ldmail.measurement.report_text import Words
from ldmail.measurement.sensitivity import Sensitivity
from ldmail.measurement.stats import Comparison
from ldmail.project.config import Project, load_project
from ldmail.project.models import Step
from ldmail.project.scaffold import init_project

AMSTERDAM = ZoneInfo("Europe/Amsterdam")
START = datetime(2026, 12, 1, 10, tzinfo=AMSTERDAM)  # a Tuesday
SECOND_SEND = datetime(2026, 12, 4, 10, tzinfo=AMSTERDAM)
AFTER = datetime(2026, 12, 5, tzinfo=AMSTERDAM)
BETWEEN = datetime(2026, 12, 2, 12, tzinfo=AMSTERDAM)
EXTRA = """hypothesis: {belief: "Two short mails lead more colleagues to register",
             expected_uplift: 30pp}
survey: {fit_column: "Did it fit?", did_not_fit: ["No"], target: 10%}
"""


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Project:
    """The scaffold (emma.bakker is its one holdout member) after two sends, with goals
    reached by ann (2 Dec), emma (2 Dec) and bob (3 Dec), and survey answers. Shared by the
    module's tests: the report only reads."""
    root = tmp_path_factory.mktemp("report") / "repo"
    init_project(root)
    welcome = root / "campaigns" / "welcome.yaml"
    welcome.write_text(welcome.read_text(encoding="utf-8") + EXTRA, encoding="utf-8")
    loaded = load_project(root)
    send(loaded, START)
    with Ledger.of(loaded) as ledger:
        ledger.record_events([
            GoalEvent("ann.devries@example.org", "registered", "c", "2026-12-02T10:00:00Z"),
            GoalEvent("emma.bakker@example.org", "registered", "c", "2026-12-02T10:00:00Z"),
            GoalEvent("bob.smith@example.org", "registered", "c", "2026-12-03T10:00:00Z"),
            GoalEvent("dirk.jansen@example.org", "completed", "c", "2026-12-02T10:00:00Z"),
        ], "test")
        ledger.record_survey_answers([
            SurveyAnswer("welcome", "ann.devries@example.org", "No", "2026-12-02T09:00:00Z", "1"),
            SurveyAnswer("welcome", "ann.devries@example.org", "yes", "2026-12-03T09:00:00Z",
                         "2"),
            SurveyAnswer("welcome", "bob.smith@example.org", "no", "2026-12-03T09:00:00Z", "3"),
            SurveyAnswer("welcome", "dirk.jansen@example.org", "Yes", "2026-12-03T09:00:00Z",
                         "4"),
            SurveyAnswer("welcome", "nobody@example.org", "No", "2026-12-03T09:00:00Z", "5"),
            SurveyAnswer("welcome", "hanna.visser@example.org", "No", "2026-12-09T09:00:00Z",
                         "6"),
        ], "test")
    send(loaded, SECOND_SEND)
    return loaded


@pytest.fixture(scope="module")
def after(project: Project) -> CampaignReport:
    [campaign] = build_report(project, AFTER).campaigns
    return campaign


def test_the_funnel_counts_each_steps_messages_and_the_days_they_went_out(
        after: CampaignReport) -> None:
    assert (after.enrolled, after.treatment, after.holdout) == (8, 7, 1)
    assert [(s.step, s.sent, s.failed, s.pending) for s in after.steps] == [
        ("hello", 7, 0, 0), ("first-course", 5, 0, 0)]  # ann and bob had reached the goal
    assert after.sends_by_day == [("2026-12-01", 7), ("2026-12-04", 5)]
    assert after.exits == {"goal reached": 3, "all steps done": 5}
    assert after.active == 0


def test_conversion_compares_the_mailed_group_with_the_holdout_overall_and_per_persona(
        after: CampaignReport) -> None:
    assert after.goal == "registered (any)"
    assert after.overall is not None
    assert after.overall.comparison == Comparison(7, 2, 1, 1)
    assert (after.overall.median_days_treatment, after.overall.median_days_holdout) == (1.5, 1.0)
    personas = {s.name: s.comparison for s in after.personas}
    assert list(personas) == ["broad-developer", "compelled", "newcomer", "skill-builder"]
    assert personas["skill-builder"] == Comparison(2, 1, 1, 1)  # ann mailed, emma held out
    assert personas["compelled"] == Comparison(2, 1, 0, 0)  # bob


def test_the_report_shows_the_campaign_as_it_stood_at_now(project: Project) -> None:
    [then] = build_report(project, BETWEEN).campaigns
    assert [(s.step, s.sent) for s in then.steps] == [("hello", 7), ("first-course", 0)]
    assert then.sends_by_day == [("2026-12-01", 7)]
    assert then.overall is not None and then.overall.comparison == Comparison(7, 1, 1, 1)
    assert then.exits == {} and then.active == 8


def test_a_hypothesis_is_undecided_while_people_are_in_the_sequence(project: Project) -> None:
    [then] = build_report(project, BETWEEN).campaigns
    words = Report("", language="en").words
    assert then.hypothesis_status == "undecided"
    assert then.hypothesis_reason(words).startswith(
        "8 people are still in the sequence; so far the interval (")
    [done] = build_report(project, AFTER).campaigns
    assert done.hypothesis_status == "not-supported"
    assert done.hypothesis_reason(words).endswith("lies below the expected +30.0 pp")


def test_the_fit_share_counts_each_enrolled_respondents_latest_answer(
        after: CampaignReport) -> None:
    shares = {f.persona: (f.answers, f.did_not_fit, f.distribution) for f in after.fit}
    # ann changed her mind to "yes"; nobody@ is not enrolled; hanna answered after `now`.
    assert shares["all"] == (3, 1, {"yes": 2, "no": 1})
    assert shares["compelled"] == (1, 1, {"no": 1})
    assert shares["skill-builder"] == (1, 0, {"yes": 1})
    everyone = after.fit[0]
    assert everyone.persona == "all" and everyone.share == pytest.approx(1 / 3)
    assert everyone.under_target is False  # 33% is over the 10% bar


def test_json_holds_the_same_figures(project: Project) -> None:
    data = json.loads(to_json(build_report(project, AFTER)))
    assert data["generated_at"] == "2026-12-04T23:00:00Z"
    [campaign] = data["campaigns"]
    conversion = campaign["conversion"]
    assert (conversion["treatment_n"], conversion["treatment_converted"],
            conversion["holdout_n"], conversion["holdout_converted"]) == (7, 2, 1, 1)
    assert conversion["uplift_pp"] == pytest.approx(100 * (2 / 7 - 1))
    assert conversion["outcome"] == "unclear"
    assert campaign["hypothesis"]["status"] == "not-supported"
    assert campaign["sends_by_day"] == [{"day": "2026-12-01", "sent": 7},
                                        {"day": "2026-12-04", "sent": 5}]


def test_a_dutch_csv_opens_in_columns_in_dutch_excel_and_a_script_csv_stays_plain(
        project: Project) -> None:
    dutch = to_csv(build_report(project, AFTER, language="nl"))
    assert dutch.startswith("\ufeffcampaign;record;step;")
    rows = list(csv.DictReader(io.StringIO(dutch.lstrip("\ufeff")), delimiter=";"))
    [overall] = [r for r in rows if r["record"] == "conversion" and r["segment"] == "all"]
    assert (overall["treatment_rate"], overall["uplift_pp"]) == ("0,286", "-71,4")
    assert overall["verdict"].startswith("nog geen duidelijk effect (p = 0,375)")
    plain = to_csv(build_report(project, AFTER, language="nl"), excel=False)
    assert plain.startswith("campaign,record,step,")
    rows = list(csv.DictReader(io.StringIO(plain)))
    [overall] = [r for r in rows if r["record"] == "conversion" and r["segment"] == "all"]
    assert (overall["treatment_rate"], overall["p_value"]) == ("0.286", "0.3750")
    assert {r["record"] for r in rows} == {"step", "conversion", "fit"}


def test_no_csv_cell_runs_as_a_formula() -> None:
    segment = Segment("=HYPERLINK(\"http://evil\")", Comparison(10, 5, 10, 1), None, None)
    campaign = CampaignReport(
        id="c", title="t", phase="activate", goal="registered (any)", enrolled=20,
        treatment=10, holdout=10, exits={}, steps=[], overall=segment, personas=[],
        sends_by_day=[])
    [row] = csv.DictReader(io.StringIO(to_csv(Report("2026-12-01T00:00:00Z", [campaign]),
                                              excel=False)))
    assert not row["segment"].startswith("=")
    assert "HYPERLINK" in row["segment"]


def test_a_detectable_uplift_under_one_point_keeps_a_decimal_in_every_language() -> None:
    found = Sensitivity("c", 9_000_000, 1_000_000, 0.1, 0.1, 0.004, None)
    campaign = CampaignReport(
        id="c", title="t", phase="activate", goal="registered (any)", enrolled=10_000_000,
        treatment=9_000_000, holdout=1_000_000, exits={}, steps=[], overall=None,
        personas=[], sends_by_day=[], holdout_share=0.1, sensitivity=found)
    assert "can detect +0.4 pp or more" in (campaign.detectable_line(Words("en")) or "")
    for language in ("nl", "de"):
        line = campaign.detectable_line(Words(language)) or ""
        assert "+0,4" in line, line
    bigger = replace(campaign, sensitivity=replace(found, detectable=0.07))
    assert "can detect +7 pp or more" in (bigger.detectable_line(Words("en")) or "")


def test_each_variant_is_compared_with_the_first_listed_counting_later_goals() -> None:
    step = Step.model_validate({"id": "hello", "after": "0d", "variants": [
        {"id": "plain", "template": "welcome/hello"},
        {"id": "story", "template": "welcome/hello", "weight": 3}]})

    def sent(email: str, variant: str, state: MessageState = MessageState.SENT) -> MessageFacts:
        return MessageFacts("hello", state, "2026-12-01T09:00:00Z", email, variant)

    messages = [sent("a@x.org", "plain"), sent("b@x.org", "plain"), sent("c@x.org", "story"),
                sent("d@x.org", "story"), sent("e@x.org", "story", MessageState.FAILED),
                sent("f@x.org", "retired")]
    reached = {"a@x.org": datetime(2026, 11, 30, tzinfo=AMSTERDAM),  # before: not counted
               "c@x.org": datetime(2026, 12, 2, tzinfo=AMSTERDAM),
               "e@x.org": datetime(2026, 12, 2, tzinfo=AMSTERDAM)}
    arms = variant_arms(step, messages, reached)
    assert [(a.variant, a.share, a.received, a.converted) for a in arms] == [
        ("plain", 0.25, 2, 0), ("story", 0.75, 2, 1), ("retired", 0.0, 1, 0)]
    assert arms[0].comparison is None  # the reference
    assert arms[1].comparison == Comparison(2, 1, 2, 0)
    words = Report("").words
    assert arms[0].verdict(words) == "the reference: the other variants are compared with it"
    assert variant_arms(Step.model_validate({"id": "x", "after": "0d", "template": "a/b"}),
                        messages, reached) == []


def test_the_report_language_is_asked_for_or_the_projects_if_the_report_speaks_it(
        scaffold: Path) -> None:
    project = load_project(scaffold)  # default_language: en
    assert report_language(project, "de").code == "de"
    assert report_language(project, None).code == "en"
    settings = scaffold / "ldmail.yaml"
    settings.write_text(settings.read_text(encoding="utf-8").replace(
        "default_language: en\nlanguages: [en, nl]", "default_language: fr\nlanguages: [fr, en]"),
        encoding="utf-8")
    french = report_language(load_project(scaffold), None)
    assert (french.code, french.untranslated) == ("en", "fr")


def test_an_unknown_campaign_is_refused(project: Project) -> None:
    with pytest.raises(ConfigError, match="no campaign 'nope'"):
        build_report(project, AFTER, campaign="nope")
