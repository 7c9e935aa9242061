"""ldmail.audience.enrolment promises to bring enrolments in line with the export: targeted
people are enrolled (a deterministic share held out), people who reach the goal or stay missing
past the grace period leave, a sync with persist=False writes nothing, and an export that lost
too many people at once stops the sync before anything is changed."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from ldmail.audience.enrolment import (
    active_enrolments,
    export_mark,
    goal_reached_at,
    sync,
    triggered_at,
)
from ldmail.errors import MassExit
from ldmail.ledger import GoalEvent, Group, Ledger
from ldmail.project.config import Project, load_project
from ldmail.project.models import Goal
from ldmail.project.schedule import in_holdout

AMSTERDAM = ZoneInfo("Europe/Amsterdam")
NOW = datetime(2026, 12, 1, 10, tzinfo=AMSTERDAM)
LATER = "2030-01-01T00:00:00Z"
EVERYONE = ["ann.devries", "bob.smith", "chloe.martin", "dirk.jansen", "emma.bakker",
            "fatima.elamrani", "george.brown", "hanna.visser"]


def keep_rows(project: Path, count: int) -> Project:
    """The scaffold's export cut to its header and first `count` people, loaded again."""
    path = project / "people.csv"
    lines = path.read_text(encoding="utf-8").splitlines()
    path.write_text("\n".join(lines[:count + 1]) + "\n", encoding="utf-8")
    return load_project(project)


def exits(ledger: Ledger) -> dict[str, str]:
    return {e.email: e.exit_reason for e in ledger.campaign_enrolments("welcome", LATER)
            if e.exit_reason}


def test_everyone_targeted_is_enrolled_and_the_holdout_is_the_deterministic_draw(
        loaded: Project) -> None:
    with Ledger.of(loaded) as ledger:
        result = sync(loaded, ledger, NOW, persist=True)
        assert (result.enrolled, result.people, result.exited) == (8, 8, 0)
        enrolments = {e.email: e.group for e in ledger.campaign_enrolments("welcome", LATER)}
    assert sorted(enrolments) == [f"{name}@example.org" for name in EVERYONE]
    for email, group in enrolments.items():
        expected = Group.HOLDOUT if in_holdout("welcome", email, 0.10) else Group.TREATMENT
        assert group == expected


def test_a_sync_that_does_not_persist_counts_but_writes_nothing(loaded: Project) -> None:
    with Ledger.of(loaded) as ledger:
        result = sync(loaded, ledger, NOW, persist=False)
        assert (result.enrolled, result.people) == (8, 8)
        assert ledger.campaign_enrolments("welcome", LATER) == []
        # A later sync that writes still enrols everyone.
        assert sync(loaded, ledger, NOW, persist=True).enrolled == 8
        assert sync(loaded, ledger, NOW, persist=True).enrolled == 0  # once only


def test_the_holdout_gets_no_steps_and_the_mailed_group_gets_the_sequence(
        loaded: Project) -> None:
    with Ledger.of(loaded) as ledger:
        sync(loaded, ledger, NOW, persist=True)
        plans = {e.email: (e.group, [p.step.id for p in steps], [p.send_at for p in steps])
                 for e, steps in active_enrolments(loaded, ledger, NOW)}
    assert len(plans) == 8
    for group, steps, moments in plans.values():
        if group == Group.HOLDOUT:
            assert steps == []
        else:
            assert steps == ["hello", "first-course"]
            assert moments[1] - moments[0] == timedelta(days=3)  # `after: 3d`: Tuesday to Friday


def test_someone_missing_leaves_only_after_the_grace_period(scaffold: Path) -> None:
    project = load_project(scaffold)
    with Ledger.of(project) as ledger:
        sync(project, ledger, NOW, persist=True)
        project = keep_rows(scaffold, 7)  # hanna.visser is gone
        first = sync(project, ledger, NOW + timedelta(hours=1), persist=True)
        assert (first.vanished, first.exited) == (1, 0)
        assert exits(ledger) == {}
        after = sync(project, ledger, NOW + timedelta(days=3), persist=True)  # grace: 2d
        assert after.exited == 1
        assert exits(ledger) == {"hanna.visser@example.org": "no longer in the people export"}


def test_an_export_that_lost_most_people_stops_the_sync_before_any_change(
        scaffold: Path) -> None:
    project = load_project(scaffold)
    with Ledger.of(project) as ledger:
        sync(project, ledger, NOW, persist=True)
        project = keep_rows(scaffold, 2)
        with pytest.raises(MassExit) as raised:
            sync(project, ledger, NOW + timedelta(days=3), persist=True)
        assert str(raised.value).startswith(
            "people.csv lacks the people of 6 of 8 active enrolments (75%, more than the 10% "
            "allowed)")
        assert "ldmail send --accept-exits" in str(raised.value)
        assert exits(ledger) == {}
        # Accepted, the sync goes on: they are missing from now and leave after the grace.
        result = sync(project, ledger, NOW + timedelta(days=3), persist=True,
                      accept_exits=True)
        assert (result.vanished, result.exited) == (6, 0)
        assert sync(project, ledger, NOW + timedelta(days=6), persist=True).exited == 6
        assert set(exits(ledger).values()) == {"no longer in the people export"}


def test_reaching_the_goal_ends_the_enrolment(loaded: Project) -> None:
    with Ledger.of(loaded) as ledger:
        sync(loaded, ledger, NOW, persist=True)
        ledger.record_events([GoalEvent("ann.devries@example.org", "registered", "course:x",
                                        "2026-12-02T12:00:00Z")], "test")
        assert sync(loaded, ledger, NOW + timedelta(days=2), persist=True).exited == 1
        assert exits(ledger) == {"ann.devries@example.org": "goal reached"}
        emails = [e.email for e, _ in active_enrolments(loaded, ledger, NOW + timedelta(days=2))]
    assert "ann.devries@example.org" not in emails and len(emails) == 7


def test_the_goal_counts_the_first_matching_event_up_to_now(loaded: Project) -> None:
    with Ledger.of(loaded) as ledger:
        ledger.record_events([
            GoalEvent("ann@example.org", "registered", "course:b", "2026-12-03T09:00:00Z"),
            GoalEvent("ann@example.org", "registered", "course:a", "2026-12-02T09:00:00Z"),
            GoalEvent("bob@example.org", "registered", "other:a", "2026-12-02T09:00:00Z"),
            GoalEvent("cid@example.org", "registered", "course:a", "2026-12-09T09:00:00Z"),
            GoalEvent("dan@example.org", "completed", "course:a", "2026-12-02T09:00:00Z"),
        ], "test")
        reached = goal_reached_at(ledger, Goal(event="registered", object="course:*"),
                                  datetime(2026, 12, 5, tzinfo=AMSTERDAM))
    # ann's earliest course (b came later), not bob's other object, not cid's future event
    # nor dan's other event.
    assert {email: at.isoformat() for email, at in reached.items()} == \
        {"ann@example.org": "2026-12-02T09:00:00+00:00"}


def test_a_trigger_counts_one_round_per_object_from_the_campaign_start(
        scaffold: Path) -> None:
    (scaffold / "campaigns" / "followup.yaml").write_text(
        "title: Follow-up\nphase: retain\nstarts: 2026-12-01\n"
        "trigger: {event: completed, object: 'course:*'}\n"
        "sender: 'Learning Team <learning@example.org>'\n"
        "steps:\n  - {id: hello, after: 1d, template: welcome/hello}\n", encoding="utf-8")
    project = load_project(scaffold)
    with Ledger.of(project) as ledger:
        ledger.record_events([
            # 30 November, 23:30 UTC is already 1 December in Amsterdam: counted.
            GoalEvent("ann@example.org", "completed", "course:a", "2026-11-30T23:30:00Z"),
            GoalEvent("ann@example.org", "completed", "course:a", "2026-12-02T09:00:00Z"),
            GoalEvent("ann@example.org", "completed", "course:b", "2026-12-03T09:00:00Z"),
            GoalEvent("bob@example.org", "completed", "course:a", "2026-11-30T22:30:00Z"),
            GoalEvent("cid@example.org", "completed", "quiz:a", "2026-12-02T09:00:00Z"),
        ], "test")
        rounds = triggered_at(ledger, project.campaigns["followup"].model,
                              datetime(2026, 12, 5, tzinfo=AMSTERDAM))
    assert {email: [(at.isoformat(), target) for at, target in found]
            for email, found in rounds.items()} == {
        "ann@example.org": [("2026-11-30T23:30:00+00:00", "course:a"),
                            ("2026-12-03T09:00:00+00:00", "course:b")]}


def test_the_export_mark_follows_the_export_and_the_day(scaffold: Path) -> None:
    project = load_project(scaffold)
    mark = export_mark(project, NOW)
    assert export_mark(project, NOW + timedelta(hours=1)) == mark
    assert export_mark(project, NOW + timedelta(days=1)) != mark
    changed = keep_rows(scaffold, 7)
    assert export_mark(changed, NOW) != mark
