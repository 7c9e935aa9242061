"""Journeys that react to what learners do: campaigns a learning event starts, through the
real CLI, the outbox and the ledger."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .conftest import Cli
from .smtp_server import edit_yaml
from .test_report import import_events, outbox, rows, send

RECOGNITION = """\
title: Well done
phase: retain
audience: {personas: [compelled, newcomer, skill-builder, broad-developer]}
starts: 2026-11-01
trigger: {event: completed, object: "course:*"}
sender: "Learning Team <learning@example.org>"
send_window: {days: mon-fri, hours: "09:00-17:00", timezone: Europe/Amsterdam}
steps:
  - {id: recognition, after: 1d, template: welcome/hello}
  - {id: evaluation, after: 3d, template: welcome/first-course}
"""


def recognition_project(project: Path) -> Path:
    (project / "campaigns" / "recognition.yaml").write_text(RECOGNITION, encoding="utf-8")
    edit_yaml(project / "campaigns" / "welcome.yaml", lambda c: c.update(ends="2026-01-31"))
    return project


def sent_at(project: Path, campaign: str) -> list[tuple[Any, ...]]:
    return rows(project, "SELECT email, step, substr(sent_at, 1, 10) FROM messages WHERE "
                         "campaign = ? AND state = 'sent' ORDER BY sent_at, email", campaign)


def test_a_completion_starts_recognition_and_evaluation(project: Path, cli: Cli) -> None:
    """Day 0 is the completion (Wed 2 Dec, 16:00 in Amsterdam): recognition is due on Thu 3
    Dec at 16:00 and goes with the Friday run; the evaluation is due on Saturday 5 Dec and
    goes on Monday. A completion before the campaign starts enrols no one, nor does any other
    event; the campaign enrols nobody before their event."""
    recognition_project(project)
    send(cli, project, "2026-12-01T10:00+01:00")
    assert rows(project, "SELECT count(*) FROM enrolments WHERE campaign = 'recognition'") \
        == [(0,)]
    import_events(cli, project, [
        "bob.smith@example.org;completed;course:gdpr;2026-12-02T15:00:00Z",
        "ann.devries@example.org;completed;course:excel;2026-10-20T09:00:00Z",  # before starts
        "dirk.jansen@example.org;registered;course:excel;2026-12-02T09:00:00Z",  # not completed
    ])
    for day in range(2, 10):
        send(cli, project, f"2026-12-{day:02d}T10:00+01:00")
    assert sent_at(project, "recognition") == [
        ("bob.smith@example.org", "recognition", "2026-12-04"),
        ("bob.smith@example.org", "evaluation", "2026-12-07")]
    assert rows(project, "SELECT email, anchor_at, state FROM enrolments WHERE campaign = "
                         "'recognition'") == [
        ("bob.smith@example.org", "2026-12-02T15:00:00Z", "completed")]
    assert outbox(project)["recognition"] == {"bob.smith@example.org"}
