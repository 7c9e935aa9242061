"""ledger/survey.py promises: each survey answer is recorded once (the same identity in the same
campaign adds nothing, in another campaign it is an answer of its own), the identity is kept
only as its keyed hash, and a campaign's answers read back up to a moment, earliest first."""

from __future__ import annotations

from pathlib import Path

from ldmail.ledger import Ledger, StoredAnswer, SurveyAnswer
from tests.unit.ledger.conftest import ANN, BOB, CAMPAIGN, LATER, NOW

EARLY = "2026-03-01T09:00:00Z"
ANSWERS = [SurveyAnswer(CAMPAIGN, ANN, "Yes", NOW, f"R_7f3a9 {ANN}"),
           SurveyAnswer(CAMPAIGN, BOB, "No", EARLY, f"R_8b2c1 {BOB}"),
           SurveyAnswer(CAMPAIGN, ANN, "Partly", LATER, f"R_9d4e2 {ANN}")]


def test_each_answer_is_recorded_once_per_campaign(ledger: Ledger) -> None:
    assert ledger.record_survey_answers(ANSWERS, "forms.xlsx") == (3, 0)
    assert ledger.record_survey_answers(ANSWERS[:2], "forms-again.xlsx") == (0, 2)
    other = SurveyAnswer("onboarding", ANN, "Yes", NOW, ANSWERS[0].identity)
    assert ledger.record_survey_answers([other], "forms.xlsx") == (1, 0)
    assert len(ledger.survey_answers(CAMPAIGN, LATER)) == 3


def test_answers_read_back_up_to_a_moment_earliest_first(ledger: Ledger) -> None:
    ledger.record_survey_answers(ANSWERS, "forms.xlsx")
    assert ledger.survey_answers(CAMPAIGN, NOW) == [StoredAnswer(BOB, "No", EARLY),
                                                    StoredAnswer(ANN, "Yes", NOW)]
    assert [answer.answer for answer in ledger.survey_answers(CAMPAIGN, LATER)] == [
        "No", "Yes", "Partly"]
    assert ledger.survey_answers("onboarding", LATER) == []


def test_the_identity_of_an_answer_is_kept_only_as_its_keyed_hash(ledger: Ledger,
                                                                  path: Path) -> None:
    ledger.record_survey_answers(ANSWERS, "forms.xlsx")
    ledger.close()
    stored = b"".join(part.read_bytes() for part in path.parent.glob(path.name + "*"))
    assert ANN.encode() in stored  # the answer's own address column
    assert b"R_7f3a9" not in stored and b"R_8b2c1" not in stored
