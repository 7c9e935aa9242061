"""`ldmail report`: the funnel per step and the uplift against the holdout, per persona."""

from __future__ import annotations

import csv
import io
import json
import statistics
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import Any, ClassVar

from ..audience.enrolment import goal_reached_at
from ..clock import from_iso, iso
from ..ledger import EnrolmentFacts, Group, Ledger, MessageFacts, MessageState
from ..project.config import Project
from ..project.models import Campaign, Step
from ..sandbox.hygiene import csv_cell
from .report_text import DASH, LANGUAGES, Words
from .sensitivity import Sensitivity, points_digits, sensitivity
from .stats import Comparison, HypothesisStatus, judge_hypothesis

PHASE_ORDER = ("inform", "activate", "retain")  # the order a reader follows the programme in

ALL = "all"


@dataclass(frozen=True)
class StepFunnel:
    step: str
    sent: int
    failed: int
    unknown: int
    pending: int
    bounced: int = 0  # handed over, then a bounce came back for it (ldmail inbox)
    skipped: int = 0  # its when: condition was false: never sent, on purpose
    # Who gets it: "person", "manager" (to: manager) or "person, cc manager" (cc_manager).
    to: str = "person"

    # The figures of a step, in the order the table, the HTML and the CSV show them.
    COUNTS: ClassVar[tuple[str, ...]] = ("sent", "bounced", "failed", "unknown", "pending",
                                         "skipped")


@dataclass(frozen=True)
class Segment:
    """Conversion of one slice of a campaign (everyone, or one persona)."""

    name: str
    comparison: Comparison
    median_days_treatment: float | None
    median_days_holdout: float | None

    HEADERS = ("segment", "mailed", "holdout", "uplift", "interval", "p", "days_to_goal",
               "verdict")  # phrase keys of `row`'s columns

    def row(self, words: Words) -> list[str]:
        """The segment's line in the goal table, as the terminal and the HTML show it."""
        c = self.comparison
        return [words.segment(self.name), words.rate(c.treatment_converted, c.treatment_n),
                words.rate(c.holdout_converted, c.holdout_n), words.pp(c.uplift),
                words.interval(c.interval), words.p_value(c.p_value).lstrip("= "),
                DASH if self.median_days_treatment is None
                else words.number(self.median_days_treatment),
                words.verdict(c.outcome, c.p_value)]

    def as_dict(self, words: Words) -> dict[str, Any]:
        c = self.comparison
        interval = c.interval
        return {
            "segment": self.name,
            "treatment_n": c.treatment_n, "treatment_converted": c.treatment_converted,
            "treatment_rate": c.treatment_rate,
            "holdout_n": c.holdout_n, "holdout_converted": c.holdout_converted,
            "holdout_rate": c.holdout_rate,
            "uplift_pp": None if c.uplift is None else c.uplift * 100,
            "ci_low_pp": None if interval is None else interval[0] * 100,
            "ci_high_pp": None if interval is None else interval[1] * 100,
            "p_value": c.p_value,
            "outcome": c.outcome,
            "verdict": words.verdict(c.outcome, c.p_value),
            "median_days_to_goal_treatment": self.median_days_treatment,
            "median_days_to_goal_holdout": self.median_days_holdout,
        }


@dataclass(frozen=True)
class VariantArm:
    """One A/B variant of a step: who received it, and how many reached the goal after it.

    Each variant is compared with its step's first listed variant, the reference, by the
    holdout comparison's statistics (`comparison`: this variant in the place of the mailed
    group, the reference in the place of the holdout; None for the reference itself). The
    first listed is the one an author usually writes first: the current text, the others
    the challengers.
    """

    step: str
    variant: str
    reference: str
    share: float  # its share of the step's weights as configured (0: no longer listed)
    received: int  # people whose message of the step, in this variant, was sent
    converted: int  # of them, who reached the goal after it was sent
    comparison: Comparison | None

    HEADERS = ("step", "variant", "variant_weight", "variant_reached", "difference",
               "interval", "p", "verdict")  # phrase keys of `row`'s columns

    def verdict(self, words: Words) -> str:
        c = self.comparison
        if c is None:
            return words.t("variant_reference")
        return words.t(f"variant_{c.outcome}", p=words.p_value(c.p_value),
                       variant=self.variant, reference=self.reference)

    def row(self, words: Words) -> list[str]:
        """The variant's line in the table and the HTML."""
        c = self.comparison
        return [self.step, self.variant, words.pct(self.share, 0),
                words.rate(self.converted, self.received),
                DASH if c is None else words.pp(c.uplift),
                DASH if c is None else words.interval(c.interval),
                DASH if c is None else words.p_value(c.p_value).lstrip("= "),
                self.verdict(words)]

    def as_dict(self, words: Words) -> dict[str, Any]:
        """Its figures by the CSV's column names; the reference's own are its reference_*."""
        c = self.comparison
        ref_n, ref_k = (self.received, self.converted) if c is None else \
            (c.holdout_n, c.holdout_converted)
        interval = None if c is None else c.interval
        uplift = None if c is None else c.uplift
        return {
            "step": self.step, "variant": self.variant, "variant_share": self.share,
            "variant_n": self.received, "variant_converted": self.converted,
            "variant_rate": self.converted / self.received if self.received else None,
            "reference": self.reference, "reference_n": ref_n, "reference_converted": ref_k,
            "reference_rate": ref_k / ref_n if ref_n else None,
            "uplift_pp": None if uplift is None else uplift * 100,
            "ci_low_pp": None if interval is None else interval[0] * 100,
            "ci_high_pp": None if interval is None else interval[1] * 100,
            "p_value": None if c is None else c.p_value,
            "outcome": "reference" if c is None else c.outcome,
            "verdict": self.verdict(words),
        }


def variant_arms(step: Step, messages: list[MessageFacts],
                 converted_at: dict[str, datetime]) -> list[VariantArm]:
    """The A/B comparison of one step: per variant, the people whose message was sent in it
    (as the ledger recorded it) and who of them reached the goal afterwards; each variant
    against the first listed. Variants the ledger holds but the step no longer lists come
    last, with a share of 0."""
    if not step.variants:
        return []
    counts: dict[str, list[int]] = {}
    for message in messages:
        if message.step != step.id or message.variant is None or \
                message.state != MessageState.SENT or message.sent_at is None:
            continue
        tally = counts.setdefault(message.variant, [0, 0])
        tally[0] += 1
        reached = converted_at.get(message.email)
        if reached is not None and reached > from_iso(message.sent_at):
            tally[1] += 1
    shares = step.shares()
    reference = step.variants[0].id
    ref_n, ref_k = counts.get(reference, [0, 0])
    arms = []
    for variant in [*shares, *sorted(set(counts) - set(shares))]:
        n, k = counts.get(variant, [0, 0])
        arms.append(VariantArm(step.id, variant, reference, shares.get(variant, 0.0), n, k,
                               None if variant == reference else Comparison(n, k, ref_n, ref_k)))
    return arms


@dataclass(frozen=True)
class FitShare:
    """The evaluation survey's "did the training fit me" answers of one persona (or "all"):
    each respondent's latest answer up to the report's moment."""

    persona: str
    answers: int
    did_not_fit: int
    target: float  # the bar: the did-not-fit share should stay under it (0.05 is 5%)
    distribution: dict[str, int]  # answer as written -> how many gave it

    @property
    def share(self) -> float | None:
        return self.did_not_fit / self.answers if self.answers else None

    @property
    def under_target(self) -> bool | None:
        share = self.share
        return None if share is None else share < self.target

    def row(self, words: Words) -> list[str]:
        """The persona's line in the table and the HTML: answers, did not fit, share, bar."""
        under = self.under_target
        return [words.segment(self.persona), words.count(self.answers),
                words.count(self.did_not_fit), words.pct(self.share),
                words.t("fit_none") if under is None else
                words.t("fit_under" if under else "fit_over"),
                " · ".join(f"{answer} {words.count(n)}" for answer, n in sorted(
                    self.distribution.items(), key=lambda item: (-item[1], item[0])))]

    def as_dict(self) -> dict[str, Any]:
        return {"persona": self.persona, "answers": self.answers,
                "did_not_fit": self.did_not_fit, "share": self.share, "target": self.target,
                "under_target": self.under_target, "distribution": dict(self.distribution)}


@dataclass
class CampaignReport:
    id: str
    title: str
    phase: str
    goal: str | None
    enrolled: int
    treatment: int
    holdout: int
    exits: dict[str, int]
    steps: list[StepFunnel]
    overall: Segment | None
    personas: list[Segment]
    sends_by_day: list[tuple[str, int]]
    description: str = ""  # what the campaign is, as written in its YAML
    holdout_share: float = 0.0  # the configured control-group share (0.1 is 10%)
    model: Campaign | None = None  # the campaign as configured (its hypothesis, its goal)
    sensitivity: Sensitivity | None = None  # what these group sizes can detect
    active: int = 0  # enrolments still running at the report's moment

    def detectable_line(self, words: Words) -> str | None:
        """What these group sizes can detect, in one sentence; None without a holdout."""
        found = self.sensitivity
        if found is None or found.holdout_share <= 0:
            return None
        values = {"mailed": words.count(found.mailed), "holdout": words.count(found.holdout)}
        if found.detectable is None:
            return words.t("undetectable", **values)
        return words.t("detectable", uplift=words.pp(found.detectable,
                                                     points_digits(found.detectable)),
                       baseline=words.pct(found.baseline, 0), **values)

    @staticmethod
    def fit_headers(words: Words) -> list[str]:
        return [words.t(key) for key in ("segment", "answers", "did_not_fit", "share_label",
                                         "bar", "answers_given")]

    fit: list[FitShare] = field(default_factory=list)  # the survey's fit answers, "all" first
    # The A/B variants of its steps on the goal, step by step, each step's reference first.
    variants: list[VariantArm] = field(default_factory=list)

    @property
    def hypothesis_status(self) -> HypothesisStatus | None:
        """Supported, not supported or undecided; None when there is no hypothesis or goal."""
        hypothesis = self.model.hypothesis if self.model else None
        if hypothesis is None or self.overall is None:
            return None
        return judge_hypothesis(self.overall.comparison, hypothesis.expected_uplift,
                                running=self.active > 0)

    def hypothesis_reason(self, words: Words) -> str:
        """The data behind `hypothesis_status`, in one clause."""
        hypothesis = self.model.hypothesis if self.model else None
        if hypothesis is None or self.overall is None:
            return ""
        interval = self.overall.comparison.interval
        if interval is None:
            return words.t("why_no_data")
        values = {"interval": words.interval(interval),
                  "expected": words.pp(hypothesis.expected_uplift)}
        if interval[1] < hypothesis.expected_uplift and self.active:
            return words.t("why_running", active=words.count(self.active), **values)
        return words.t({"supported": "why_supported", "not-supported": "why_smaller"}.get(
            self.hypothesis_status or "", "why_undecided"), **values)

    def as_dict(self, words: Words) -> dict[str, Any]:
        hypothesis = self.model.hypothesis if self.model else None
        found = self.sensitivity
        return {
            "campaign": self.id, "title": self.title, "phase": self.phase, "goal": self.goal,
            "description": self.description, "holdout_share": self.holdout_share,
            "hypothesis": None if hypothesis is None else {
                "belief": hypothesis.belief.strip(),
                "expected_uplift_pp": round(hypothesis.expected_uplift * 100, 2),
                "baseline": hypothesis.baseline, "kpi": hypothesis.kpi,
                "status": self.hypothesis_status, "reason": self.hypothesis_reason(words)},
            "detectable_uplift_pp": None if found is None or found.detectable is None
            else round(found.detectable * 100, 1),
            "enrolled": self.enrolled, "treatment": self.treatment, "holdout": self.holdout,
            "exits": self.exits,
            "steps": [s.__dict__ for s in self.steps],
            "conversion": self.overall.as_dict(words) if self.overall else None,
            "personas": [p.as_dict(words) for p in self.personas],
            "sends_by_day": [{"day": d, "sent": n} for d, n in self.sends_by_day],
            "fit": [f.as_dict() for f in self.fit],
            "variants": [v.as_dict(words) for v in self.variants],
        }


@dataclass
class Report:
    generated_at: str
    campaigns: list[CampaignReport] = field(default_factory=list)
    organisation: str = ""
    language: str = "en"  # the language of the report's words (see report_text)
    zone: tzinfo = UTC  # the project's: the one its times are shown in

    @property
    def words(self) -> Words:
        return Words(self.language, self.zone)

    def as_dict(self) -> dict[str, Any]:
        words = self.words
        return {"generated_at": self.generated_at, "organisation": self.organisation,
                "language": words.language,
                "campaigns": [c.as_dict(words) for c in self.campaigns]}


def _median_days(deltas: list[float]) -> float | None:
    return round(statistics.median(deltas), 1) if deltas else None


def _segment(name: str, enrolments: list[EnrolmentFacts],
             converted_at: dict[str, datetime]) -> Segment:
    counts = {"treatment": [0, 0], "holdout": [0, 0]}
    days: dict[str, list[float]] = {"treatment": [], "holdout": []}
    for row in enrolments:
        group = "holdout" if row.group == Group.HOLDOUT else "treatment"
        counts[group][0] += 1
        reached = converted_at.get(row.email)
        if reached is not None:
            counts[group][1] += 1
            delta = (reached - from_iso(row.enrolled_at)).total_seconds() / 86400
            if delta >= 0:
                days[group].append(delta)
    comparison = Comparison(counts["treatment"][0], counts["treatment"][1],
                            counts["holdout"][0], counts["holdout"][1])
    return Segment(name, comparison, _median_days(days["treatment"]),
                   _median_days(days["holdout"]))


def _fit_shares(ledger: Ledger, campaign_id: str, model: Campaign,
                enrolments: list[EnrolmentFacts], now: datetime) -> list[FitShare]:
    """The survey's fit answers submitted up to `now`, for everyone and per persona (the
    persona of the respondent's enrolment in the campaign); each respondent counts once,
    with their latest answer. Answers from people not enrolled by `now` are left out."""
    from .survey import answer_key, did_not_fit

    survey = model.survey
    if survey is None:
        return []
    persona_of = {row.email: row.persona or "(none)" for row in enrolments}
    latest: dict[str, str] = {}
    for item in ledger.survey_answers(campaign_id, iso(now)):  # earliest first
        if item.email in persona_of:
            latest[item.email] = item.answer

    def share(name: str, answers: list[str]) -> FitShare:
        spelling: dict[str, str] = {}  # one key per answer, written as first seen
        counts: Counter[str] = Counter()
        for answer in answers:
            counts[spelling.setdefault(answer_key(answer), answer)] += 1
        return FitShare(name, len(answers), sum(did_not_fit(survey, a) for a in answers),
                        survey.target, dict(counts.most_common()))

    personas = sorted(set(persona_of.values()))
    return [share(ALL, list(latest.values())),
            *(share(p, [a for e, a in latest.items() if persona_of[e] == p]) for p in personas)]


@dataclass(frozen=True)
class Language:
    """The language a report is written in."""

    code: str
    # The project's default_language when the report has no text in it (it is in English).
    untranslated: str | None = None


def report_language(project: Project, wanted: str | None) -> Language:
    """--lang when given, else the project's default language if the report speaks it, else
    English."""
    if wanted is not None:
        return Language(wanted)
    default = project.settings.default_language
    return Language(default) if default in LANGUAGES else Language("en", default)


def build_report(project: Project, now: datetime, *, db: Path | None = None,
                 campaign: str | None = None, language: str | None = None) -> Report:
    """Read the ledger (never write it) and compute every campaign's figures as they stood
    at `now`, campaigns in phase order (inform, activate, retain)."""
    ids = [campaign] if campaign else sorted(
        project.campaigns, key=lambda c: PHASE_ORDER.index(project.campaigns[c].model.phase))
    if campaign:
        project.campaign(campaign)
    report = Report(generated_at=iso(now), organisation=project.settings.organisation,
                    language=language or project.settings.default_language,
                    zone=project.settings.timezone)
    with Ledger.of(project, db, readonly=True) as ledger:
        for campaign_id in ids:
            model = project.campaigns[campaign_id].model
            enrolments = ledger.campaign_enrolments(campaign_id, iso(now))
            messages = ledger.campaign_messages(campaign_id, iso(now))
            goal = model.goal
            converted_at = {} if goal is None else goal_reached_at(ledger, goal, now)
            states = Counter((m.step, m.state) for m in messages)
            ended = (MessageState.SENT, MessageState.FAILED, MessageState.UNKNOWN,
                     MessageState.BOUNCED, MessageState.SKIPPED)
            steps = [StepFunnel(s.id, states[(s.id, MessageState.SENT)],
                                states[(s.id, MessageState.FAILED)],
                                states[(s.id, MessageState.UNKNOWN)],
                                sum(n for (step, state), n in states.items()
                                    if step == s.id and state not in ended),
                                states[(s.id, MessageState.BOUNCED)],
                                states[(s.id, MessageState.SKIPPED)],
                                "person, cc manager" if s.cc_manager else s.to)
                     for s in model.steps]
            # A bounced message went out that day too.
            by_day = Counter(m.sent_at[:10] for m in messages
                             if m.state in (MessageState.SENT, MessageState.BOUNCED)
                             and m.sent_at)
            personas = sorted({row.persona or "" for row in enrolments})
            mailed = sum(1 for r in enrolments if r.group != Group.HOLDOUT)
            held = len(enrolments) - mailed
            report.campaigns.append(CampaignReport(
                id=campaign_id, title=model.title, phase=model.phase,
                goal=None if goal is None else f"{goal.event} {goal.object or '(any)'}",
                enrolled=len(enrolments), treatment=mailed, holdout=held,
                exits=dict(Counter(r.exit_reason for r in enrolments if r.exit_reason)),
                steps=steps,
                overall=_segment(ALL, enrolments, converted_at) if goal else None,
                personas=[_segment(p or "(none)", [r for r in enrolments
                                                   if (r.persona or "") == p], converted_at)
                          for p in personas] if goal else [],
                sends_by_day=sorted(by_day.items()),
                description=model.description.strip(), holdout_share=model.holdout,
                model=model, active=sum(1 for r in enrolments if r.exit_reason is None),
                fit=_fit_shares(ledger, campaign_id, model, enrolments, now),
                variants=[] if goal is None else [
                    arm for step in model.steps if step.variants
                    for arm in variant_arms(step, messages, converted_at)],
                sensitivity=None if goal is None else sensitivity(campaign_id, model, mailed,
                                                                  held)))
    return report


CSV_FIELDS = ["campaign", "record", "step", "sent", "bounced", "failed", "unknown", "pending",
              "skipped", "to",
              "segment", "treatment_n", "treatment_converted", "treatment_rate", "holdout_n",
              "holdout_converted", "holdout_rate", "uplift_pp", "ci_low_pp", "ci_high_pp",
              "p_value", "outcome", "verdict", "median_days_to_goal_treatment",
              "median_days_to_goal_holdout", "answers", "did_not_fit", "did_not_fit_share",
              "target", "under_target", "variant", "variant_share", "variant_n",
              "variant_converted", "variant_rate", "reference", "reference_n",
              "reference_converted", "reference_rate"]
# How many decimals each figure keeps: a rate as 0.458, points as 12.5, p as 0.0034.
DECIMALS = {"treatment_rate": 3, "holdout_rate": 3, "uplift_pp": 1, "ci_low_pp": 1,
            "ci_high_pp": 1, "p_value": 4, "median_days_to_goal_treatment": 1,
            "median_days_to_goal_holdout": 1, "did_not_fit_share": 3, "target": 3,
            "variant_share": 3, "variant_rate": 3, "reference_rate": 3}
# Languages whose Excel reads `;` as the separator and `,` as the decimal mark.
DECIMAL_COMMA = ("nl", "de")


def to_csv(report: Report, *, excel: bool = True) -> str:
    """One row per step (record=step), per conversion segment (record=conversion), per
    persona's survey answers (record=fit) and per A/B variant of a step (record=variant: its
    figures against the step's reference variant in uplift_pp, ci_*, p_value and verdict).

    With `excel` the file opens in columns in Excel of the report's language: a byte order
    mark (so the UTF-8 is read as such), and for Dutch and German `;` between cells and a
    decimal comma. Without it: `,`, a decimal point and no mark, for scripts.
    """
    words = report.words
    comma = excel and words.language in DECIMAL_COMMA
    buffer = io.StringIO()
    if excel:
        buffer.write("\ufeff")
    writer = csv.DictWriter(buffer, fieldnames=CSV_FIELDS, extrasaction="ignore",
                            delimiter=";" if comma else ",", lineterminator="\r\n")
    writer.writeheader()
    rows: list[dict[str, object]] = []
    for campaign in report.campaigns:
        for step in campaign.steps:
            rows.append({"campaign": campaign.id, "record": "step", **step.__dict__})
        segments = ([campaign.overall] if campaign.overall else []) + campaign.personas
        for segment in segments:
            rows.append({"campaign": campaign.id, "record": "conversion",
                         **segment.as_dict(words)})
        for fit in campaign.fit:
            rows.append({"campaign": campaign.id, "record": "fit", "segment": fit.persona,
                         "answers": fit.answers, "did_not_fit": fit.did_not_fit,
                         "did_not_fit_share": fit.share, "target": fit.target,
                         "under_target": fit.under_target})
        for arm in campaign.variants:
            rows.append({"campaign": campaign.id, "record": "variant", **arm.as_dict(words)})

    def figure(key: str, value: object) -> object:
        if isinstance(value, float) and not isinstance(value, bool):
            text = f"{round(value, DECIMALS.get(key, 3)):.{DECIMALS.get(key, 3)}f}"
            return text.replace(".", ",") if comma else text
        return csv_cell(value)  # ids and names must not run as formulas in Excel

    for row in rows:
        writer.writerow({key: figure(key, value) for key, value in row.items()})
    return buffer.getvalue()


def to_json(report: Report) -> str:
    return json.dumps(report.as_dict(), indent=2, ensure_ascii=False)
