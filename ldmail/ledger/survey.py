"""Answers to a campaign's evaluation survey: recorded once each, read for the report."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from .core import LedgerFile


@dataclass(frozen=True, slots=True)
class SurveyAnswer:
    campaign: str
    email: str  # lower-cased
    answer: str  # the fit question's answer, as written (spaces trimmed)
    submitted_at: str  # ISO UTC
    # What names this answer within its campaign: the form's response ID with the address,
    # or the address with its time and answer. Only its keyed hash is stored.
    identity: str


@dataclass(frozen=True, slots=True)
class StoredAnswer:
    email: str
    answer: str
    submitted_at: str  # ISO UTC


class SurveyMoves(LedgerFile):
    def record_survey_answers(self, answers: Iterable[SurveyAnswer], source: str
                              ) -> tuple[int, int]:
        """Record survey answers in one transaction; returns how many were new and how many
        already known (the same identity in the same campaign)."""
        added = known = 0
        with self.transaction() as db:
            for item in answers:
                if db.conn.execute(
                        "INSERT OR IGNORE INTO survey_answers (campaign, email, answer,"
                        " submitted_at, response, source) VALUES (?, ?, ?, ?, ?, ?)",
                        (item.campaign, item.email, item.answer, item.submitted_at,
                         self.address_hash(item.identity), source)).rowcount:
                    added += 1
                else:
                    known += 1
        return added, known

    def survey_answers(self, campaign: str, until: str) -> list[StoredAnswer]:
        """A campaign's survey answers submitted up to `until` (ISO UTC), earliest first."""
        return [StoredAnswer(*row) for row in self.db.conn.execute(
            "SELECT email, answer, submitted_at FROM survey_answers WHERE campaign = ?"
            " AND submitted_at <= ? ORDER BY submitted_at, id", (campaign, until))]
