"""A truncated export ends nobody's campaign; someone missing for a day simply continues."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from ..projects import NOW, PEOPLE, edit_yaml, write_people
from .conftest import Cli
from .smtp_server import ledger_rows, send

EVERYONE = {f"learner{i:03d}@example.org": list(PEOPLE.values())[i % len(PEOPLE)]
            for i in range(200)}


def _enrolments(project: Path) -> dict[str, int]:
    counts: dict[str, int] = {}
    for row in ledger_rows(project, "SELECT state FROM enrolments"):
        counts[row["state"]] = counts.get(row["state"], 0) + 1
    return counts


def _outbox_project(project: Path) -> Path:
    edit_yaml(project / "campaigns" / "welcome.yaml", lambda c: c.update(holdout="0%"))
    write_people(project, EVERYONE)
    return project


def test_a_ten_row_export_stops_the_run_and_changes_nothing(project: Path, cli: Cli) -> None:
    _outbox_project(project)
    first = send(cli, project, NOW)
    assert first.exit_code == 0, first.output
    before = ledger_rows(project, "SELECT * FROM enrolments ORDER BY email")
    sent = len(list((project / ".ldmail" / "outbox").glob("*.eml")))
    assert _enrolments(project) == {"active": 200} and sent == 200

    write_people(project, dict(list(EVERYONE.items())[:10]))  # a half-written export
    later = NOW + timedelta(days=3)
    stopped = send(cli, project, later)
    assert stopped.exit_code == 1
    assert "people.csv lacks the people of 190 of 200 active enrolments (95%, more than the " \
           "10% allowed)" in stopped.stderr
    assert "nothing was changed" in stopped.stderr and "--accept-exits" in stopped.stderr
    assert "Traceback" not in stopped.output
    assert ledger_rows(project, "SELECT * FROM enrolments ORDER BY email") == before
    assert len(list((project / ".ldmail" / "outbox").glob("*.eml"))) == sent
    dry = send(cli, project, later, "--dry-run")  # a dry run and plan say the same
    assert dry.exit_code == 1 and "lacks the people of 190" in dry.stderr
    plan = cli("plan", "--project", project, "--now", later.isoformat())
    assert plan.exit_code == 1 and "lacks the people of 190" in plan.stderr

    accepted = send(cli, project, later, "--accept-exits")
    assert accepted.exit_code == 0, accepted.output
    # They are missing now; they leave once missing for the grace period (2 days). The ten
    # still there got their second step.
    assert _enrolments(project) == {"active": 190, "completed": 10}
    gone = send(cli, project, later + timedelta(days=2, hours=1))
    assert gone.exit_code == 0, gone.output
    assert _enrolments(project) == {"completed": 10, "left": 190}
    reasons = {row["exit_reason"] for row in ledger_rows(
        project, "SELECT exit_reason FROM enrolments WHERE state = 'left'")}
    assert reasons == {"no longer in the people export"}


def test_someone_missing_for_a_day_is_not_exited(project: Path, cli: Cli) -> None:
    _outbox_project(project)
    assert send(cli, project, NOW).exit_code == 0
    gone = dict(EVERYONE)
    missing = "learner007@example.org"
    del gone[missing]
    write_people(project, gone)
    assert send(cli, project, NOW + timedelta(days=1)).exit_code == 0  # 1 of 200: no guard
    row = ledger_rows(project, "SELECT state, missing_since FROM enrolments WHERE email = ?",
                      (missing,))[0]
    assert row["state"] == "active" and row["missing_since"]
    write_people(project, EVERYONE)  # back the next day
    back = send(cli, project, NOW + timedelta(days=3))
    assert back.exit_code == 0, back.output
    row = ledger_rows(project, "SELECT state, missing_since FROM enrolments WHERE email = ?",
                      (missing,))[0]
    assert row == {"state": "completed", "missing_since": None}
    steps = ledger_rows(project, "SELECT step FROM messages WHERE email = ? ORDER BY step",
                        (missing,))
    assert [s["step"] for s in steps] == ["first-course", "hello"]  # the second step too


def test_grace_zero_exits_at_once(project: Path, cli: Cli) -> None:
    _outbox_project(project)
    edit_yaml(project / "ldmail.yaml", lambda s: s.update(exits={"grace": "0d"}))
    assert send(cli, project, NOW).exit_code == 0
    gone = dict(EVERYONE)
    del gone["learner007@example.org"]
    write_people(project, gone)
    assert send(cli, project, NOW + timedelta(hours=1)).exit_code == 0
    assert _enrolments(project) == {"active": 199, "left": 1}


def test_a_rejected_row_is_neither_missing_nor_leaving(project: Path, cli: Cli) -> None:
    _outbox_project(project)
    assert send(cli, project, NOW).exit_code == 0
    typo = dict(EVERYONE)
    person = "learner003@example.org"
    typo[person] = typo[person].replace("-20", "-02")  # a start date in year 02xx: rejected
    write_people(project, typo)
    for days in (1, 3, 5):  # well past the grace period
        result = send(cli, project, NOW + timedelta(days=days))
        assert result.exit_code == 0, result.output
    row = ledger_rows(project, "SELECT state, missing_since FROM enrolments WHERE email = ?",
                      (person,))[0]
    assert row == {"state": "active", "missing_since": None}
    write_people(project, EVERYONE)  # fixed: the second step follows
    assert send(cli, project, NOW + timedelta(days=6)).exit_code == 0
    steps = ledger_rows(project, "SELECT step FROM messages WHERE email = ?", (person,))
    assert sorted(s["step"] for s in steps) == ["first-course", "hello"]
