"""ldmail.measurement.report_text promises the report's words in English, Dutch or German
(English for any other language), every sentence from one table so that the table, the HTML
and the CSV say the same thing, and numbers, percentages, points, intervals, p-values and
dates written as the reader's locale writes them (12.5% and 1,234 in English, 12,5% and
1.234 in Dutch and German), moments in the project's zone with its name."""

from __future__ import annotations

import string
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest

from ldmail.measurement.report import PHASE_ORDER, StepFunnel
from ldmail.measurement.report_text import DASH, LANGUAGES, PHRASES, Words
from ldmail.measurement.stats import VERDICT_RULES
from ldmail.states import ExitReason

AMSTERDAM = ZoneInfo("Europe/Amsterdam")


def placeholders(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


def test_every_phrase_has_all_three_languages_with_the_same_placeholders() -> None:
    for key, texts in PHRASES.items():
        assert len(texts) == len(LANGUAGES) and all(t.strip() for t in texts), key
        english = placeholders(texts[0])
        assert all(placeholders(t) == english for t in texts[1:]), key


def test_every_verdict_has_its_phrase_for_the_holdout_and_for_variants() -> None:
    assert all(f"verdict_{outcome}" in PHRASES for outcome in VERDICT_RULES)
    assert all(f"variant_{outcome}" in PHRASES for outcome in VERDICT_RULES)


@pytest.mark.parametrize("language", ["nl", "de"])
@pytest.mark.parametrize("reason", list(ExitReason))
def test_every_exit_reason_is_worded_in_the_readers_language(reason: ExitReason,
                                                             language: str) -> None:
    assert f"exit_{reason}" in PHRASES
    assert Words("en").exit_reason(reason) == reason.value
    assert Words(language).exit_reason(reason) != reason.value


def test_every_count_of_a_step_and_every_phase_has_its_phrase() -> None:
    assert all(count in PHRASES for count in StepFunnel.COUNTS)
    assert all(f"phase_{phase}" in PHRASES for phase in PHASE_ORDER)


@pytest.mark.parametrize(("language", "count", "pct", "rate", "points", "interval", "p"), [
    ("en", "1,234,567", "12.5%", "40/200 (20.0%)", "+3.4 pp", "−2.0 to +15.5 pp", "= 0.034"),
    ("nl", "1.234.567", "12,5%", "40/200 (20,0%)", "+3,4 %-punt", "−2,0 tot +15,5 %-punt",
     "= 0,034"),
    ("de", "1.234.567", "12,5%", "40/200 (20,0%)", "+3,4 Pp.", "−2,0 bis +15,5 Pp.",
     "= 0,034"),
])
def test_figures_are_written_as_the_readers_locale_writes_them(
        language: str, count: str, pct: str, rate: str, points: str, interval: str,
        p: str) -> None:
    words = Words(language)
    assert words.count(1234567) == count
    assert words.pct(0.125) == pct
    assert words.rate(40, 200) == rate
    assert words.pp(0.034) == points
    assert words.interval((-0.02, 0.155)) == interval
    assert words.p_value(0.0345) == p


def test_signs_are_real_minus_and_plus_minus_for_zero_and_missing_figures_a_dash() -> None:
    words = Words("en")
    assert words.pp(-0.02) == "\u22122.0 pp"
    assert words.pp(0.0001) == "\u00b10.0 pp"
    assert words.p_value(0.0001) == "< 0.001"
    assert [words.pct(None), words.pp(None), words.interval(None), words.p_value(None),
            words.rate(0, 0)] == [DASH] * 5


def test_another_language_falls_back_to_english() -> None:
    words = Words("fr")
    assert words.language == "en"
    assert words.t("verdict_raised", p="= 0.010") == "the campaign raised conversion (p = 0.010)"


def test_a_verdict_carries_its_p_value() -> None:
    assert Words("nl").verdict("unclear", 0.375) == \
        "nog geen duidelijk effect (p = 0,375); blijf meten of vergroot de doelgroep"


def test_exit_reasons_keep_their_detail_and_unknown_ones_pass_through() -> None:
    words = Words("de")
    assert words.exit_reason("no longer in the audience (persona x)") == \
        "nicht mehr in der Zielgruppe (persona x)"
    assert words.exit_reason("something new") == "something new"


def test_steps_segments_and_phases_are_named_in_the_language() -> None:
    words = Words("nl")
    assert words.step("reminder", "manager") == "reminder (aan de leidinggevende)"
    assert words.step("reminder", "person, cc manager") == "reminder (cc leidinggevende)"
    assert words.step("reminder", "person") == "reminder"
    assert (words.segment("all"), words.segment("(none)"), words.segment("newcomer")) == \
        ("iedereen", "(geen persona)", "newcomer")
    assert (words.phase("retain"), words.phase("unknown-phase")) == \
        ("vasthouden", "unknown-phase")


def test_dates_and_moments_are_local_with_the_zones_name() -> None:
    assert Words("de").date(date(2027, 1, 26)) == "26 Jan."
    winter, summer = datetime(2027, 1, 26, 13, tzinfo=UTC), datetime(2027, 7, 26, 13, tzinfo=UTC)
    assert Words("en", AMSTERDAM).moment(winter) == "26 January 2027, 14:00 (CET)"
    assert Words("nl", AMSTERDAM).moment(summer) == "26 juli 2027, 15:00 (CEST)"
    assert Words("en").moment(winter) == "26 January 2027, 13:00 (UTC)"
