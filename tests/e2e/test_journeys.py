"""Journeys that react to what learners do: campaigns a learning event starts, through the
real CLI, the outbox and the ledger."""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from ..projects import edit_yaml
from .conftest import Cli
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
    # Each message of a triggered campaign is keyed with the object its round is for.
    assert sent_at(project, "recognition") == [
        ("bob.smith@example.org", "recognition@course:gdpr", "2026-12-04"),
        ("bob.smith@example.org", "evaluation@course:gdpr", "2026-12-07")]
    assert rows(project, "SELECT email, anchor_at, state, occurrence FROM enrolments WHERE "
                         "campaign = 'recognition'") == [
        ("bob.smith@example.org", "2026-12-02T15:00:00Z", "completed", "course:gdpr")]
    assert outbox(project)["recognition"] == {"bob.smith@example.org"}


@pytest.mark.parametrize("repeat", ["per-object", "once"])
def test_each_finished_course_starts_a_round_of_its_own(project: Path, cli: Cli,
                                                        repeat: str) -> None:
    """Two courses finished a day apart: the second round starts once the first is done,
    with day 0 at the second completion, so its steps catch up one at a time (min_gap). With
    repeat: once the second completion starts nothing."""
    recognition_project(project)
    path = project / "campaigns" / "recognition.yaml"
    path.write_text(path.read_text().replace(
        'trigger: {event: completed, object: "course:*"}',
        f'trigger: {{event: completed, object: "course:*", repeat: {repeat}}}'))
    import_events(cli, project, [
        "bob.smith@example.org;completed;course:gdpr;2026-12-02T15:00:00Z",
        "bob.smith@example.org;completed;course:excel;2026-12-03T09:00:00Z",
        "bob.smith@example.org;completed;course:gdpr;2026-12-20T09:00:00Z"])  # again: no round
    for day in range(1, 29):
        send(cli, project, f"2026-12-{day:02d}T10:00+01:00")
    first = [("bob.smith@example.org", "recognition@course:gdpr", "2026-12-04"),
             ("bob.smith@example.org", "evaluation@course:gdpr", "2026-12-07")]
    second = [("bob.smith@example.org", "recognition@course:excel", "2026-12-08"),
              ("bob.smith@example.org", "evaluation@course:excel", "2026-12-09")]
    assert sent_at(project, "recognition") == (first + second if repeat == "per-object"
                                               else first)
    # The report counts the rounds' messages under their step.
    report = json.loads(cli("report", "-c", "recognition", "--project", project, "--now",
                            "2026-12-28T12:00+01:00", "--format", "json").stdout)
    sent = {s["step"]: s["sent"] for s in report["campaigns"][0]["steps"]}
    assert sent == dict.fromkeys(("recognition", "evaluation"),
                                 2 if repeat == "per-object" else 1)


def branching_project(project: Path) -> Path:
    """The welcome campaign as a journey: a nudge only for who registered, the course tip
    only for who did not, and a last step that waits up to 3 days for a registration."""
    def journey(campaign: dict[str, Any]) -> None:
        campaign.update(holdout="0%", goal={"event": "completed"}, steps=[
            {"id": "hello", "after": "0d", "template": "welcome/hello"},
            {"id": "finish", "after": "2d", "template": "welcome/hello",
             "when": "reached('registered', 'course:*') and not reached('completed')"},
            {"id": "first-course", "after": "3d", "template": "welcome/first-course",
             "when": "not reached('registered')"},
            {"id": "well-begun", "after": "4d", "template": "welcome/hello",
             "when": "count('registered') >= 1 and days_since('registered') < 30",
             "wait_until": True, "timeout": "3d"}])
    edit_yaml(project / "campaigns" / "welcome.yaml", journey)
    return project


def steps_of(project: Path) -> dict[str, list[tuple[str, str]]]:
    found: dict[str, list[tuple[str, str]]] = {}
    for email, step, state in rows(project, "SELECT email, step, state FROM messages "
                                            "ORDER BY email, id"):
        found.setdefault(email, []).append((step, state))
    return found


def test_conditions_branch_skip_and_wait(project: Path, cli: Cli) -> None:
    branching_project(project)
    send(cli, project, "2026-12-01T10:00+01:00")  # Tuesday: everyone gets hello
    import_events(cli, project, [
        "bob.smith@example.org;registered;course:gdpr;2026-12-01T12:00:00Z",
        "dirk.jansen@example.org;registered;course:excel;2026-12-08T07:00:00Z"])
    for day in (2, 3, 4):
        send(cli, project, f"2026-12-{day:02d}T10:00+01:00")
    # Monday: the last step (due Saturday) waits for seven of the eight.
    monday = cli("send", "--project", project, "--now", "2026-12-07T10:00+01:00")
    assert "7 due message(s) wait for their when: condition (wait_until)" in monday.stdout, \
        monday.output
    for day in (8, 9, 10, 11):
        send(cli, project, f"2026-12-{day:02d}T10:00+01:00")
    found = steps_of(project)
    # Bob registered on day 0: the nudge, no course tip, and the last step at once.
    assert found["bob.smith@example.org"] == [
        ("hello", "sent"), ("finish", "sent"), ("first-course", "skipped"),
        ("well-begun", "sent")]
    # Dirk registered on Tuesday 8 Dec, while the last step waited for it (due Sat 5 Dec).
    assert found["dirk.jansen@example.org"] == [
        ("hello", "sent"), ("finish", "skipped"), ("first-course", "sent"),
        ("well-begun", "sent")]
    # The others never registered: the last step waited its three days, then was skipped.
    assert found["ann.devries@example.org"] == [
        ("hello", "sent"), ("finish", "skipped"), ("first-course", "sent"),
        ("well-begun", "skipped")]
    reasons = dict(rows(project, "SELECT step, error FROM messages WHERE email = ? AND "
                                 "state = 'skipped'", "ann.devries@example.org"))
    assert reasons == {
        "finish": "condition false: reached('registered', 'course:*') and not "
                  "reached('completed')",
        "well-begun": "condition still false after 3d: count('registered') >= 1 and "
                      "days_since('registered') < 30"}
    history = cli("history", "ann.devries@example.org", "--project", project)
    assert "skipped" in history.stdout and "condition false" in history.stdout
    # The report counts skipped steps apart from sent and pending ones.
    report = json.loads(cli("report", "-c", "welcome", "--project", project, "--now",
                            "2026-12-11T12:00+01:00", "--format", "json").stdout)
    funnel = {s["step"]: (s["sent"], s["skipped"], s["pending"])
              for s in report["campaigns"][0]["steps"]}
    assert funnel == {"hello": (8, 0, 0), "finish": (1, 7, 0), "first-course": (7, 1, 0),
                      "well-begun": (2, 6, 0)}


def test_validate_names_a_bad_condition_and_an_unknown_event(project: Path, cli: Cli) -> None:
    def typo(campaign: dict[str, Any]) -> None:
        campaign["steps"][1]["when"] = "reachd('registered')"
    edit_yaml(project / "campaigns" / "welcome.yaml", typo)
    result = cli("validate", "--project", project)
    assert result.exit_code == 1
    assert re.search(r"campaigns/welcome\.yaml:\d+: expression uses unknown helper or attribute "
                     r"'reachd'; did you mean 'reached'\?", result.output), result.output

    def misspelt(campaign: dict[str, Any]) -> None:
        campaign["steps"][1]["when"] = "not reached('regsitered', 'course:*')"
    edit_yaml(project / "campaigns" / "welcome.yaml", misspelt)
    result = cli("validate", "--project", project)
    assert result.exit_code == 0, result.output
    assert re.search(r"warning: campaigns/welcome\.yaml:\d+: event 'regsitered' is not a goal, "
                     r"trigger or common xAPI verb; did you mean 'registered'\?", result.output)


def test_validate_warns_of_a_trigger_the_lrs_is_not_read_for(project: Path, cli: Cli) -> None:
    recognition_project(project)
    with (project / "ldmail.yaml").open("a", encoding="utf-8") as file:
        file.write("\nlrs:\n  endpoint: https://lrs.example.org/xAPI\n  user: reader\n"
                   "  verbs: [http://adlnet.gov/expapi/verbs/registered]\n")
    result = cli("validate", "--project", project)
    assert result.exit_code == 0, result.output
    assert re.search(r"warning: campaigns/recognition\.yaml:5: trigger event 'completed' is not "
                     r"among lrs\.verbs", result.output), result.output


def test_plan_shows_a_persons_branches(project: Path, cli: Cli) -> None:
    branching_project(project)
    send(cli, project, "2026-12-01T10:00+01:00")
    import_events(cli, project, ["bob.smith@example.org;registered;course:gdpr;"
                                 "2026-12-01T12:00:00Z"])
    def journey(email: str) -> list[tuple[str, str, str]]:
        result = cli("plan", "--person", email, "--project", project, "--now",
                     "2026-12-02T09:00+01:00", "--format", "json")
        assert result.exit_code == 0, result.output
        return [(s["step"], s["status"], s["note"]) for s in json.loads(result.stdout)]

    finish = "reached('registered', 'course:*') and not reached('completed')"
    assert journey("bob.smith@example.org")[:3] == [
        ("hello", "sent", ""), ("finish", "planned", f"if {finish}: true now"),
        ("first-course", "planned",
         "if not reached('registered'): false now, so skipped unless it changes")]
    assert journey("ann.devries@example.org")[1] == (
        "finish", "planned", f"if {finish}: false now, so skipped unless it changes")
    table = cli("plan", "--person", "ann.devries@example.org", "--project", project, "--now",
                "2026-12-02T09:00+01:00")
    assert "Journey of ann.devries@example.org" in table.stdout and "false now" in table.stdout


def test_preview_says_which_branch_a_person_gets(project: Path, cli: Cli) -> None:
    branching_project(project)
    send(cli, project, "2026-12-01T10:00+01:00")
    import_events(cli, project, ["bob.smith@example.org;registered;course:gdpr;"
                                 "2026-12-01T12:00:00Z"])
    finish = "reached('registered', 'course:*') and not reached('completed')"

    def condition(email: str) -> str:
        result = cli("preview", "-c", "welcome", "--step", "finish", "--person", email,
                     "--project", project, "--now", "2026-12-02T09:00+01:00")
        assert result.exit_code == 0, result.output
        found = re.search(r"Condition: (.*?) *│", result.stdout)
        assert found, result.stdout
        return found[1]

    assert condition("bob.smith@example.org").startswith(f"{finish}: true for this person")
    assert condition("ann.devries@example.org").startswith(f"{finish}: false for this person")
    persona = cli("preview", "-c", "welcome", "--step", "finish", "--project", project)
    assert f"Condition: sent only when {finish}" in persona.stdout


# -- what a review found ------------------------------------------------------------------------


def test_an_object_with_control_characters_is_refused(project: Path, cli: Cli) -> None:
    """The ledger keys a round step@object: an id with a control character in it would break
    every later send, so import (and pull, which shares the code) refuses it."""
    path = project / "events.csv"
    path.write_text("E-mail;Event;Course;Timestamp\nann.devries@example.org;completed;"
                    "course:excel;2026-12-02T15:00:00Z\nbob.smith@example.org;completed;"
                    "course:a\x1fb;2026-12-02T15:00:00Z\n", encoding="utf-8")
    out = cli("events", "import", path, "--project", project).stdout
    assert "1 event(s) added, 0 already recorded, 1 skipped" in out
    assert "row 3: the course or activity id holds control characters" in out


def test_a_condition_that_fails_for_one_person_holds_their_step(project: Path,
                                                                cli: Cli) -> None:
    """Held (retried every run, and the run exits 1), not skipped for good; the others go."""
    def failing(campaign: dict[str, Any]) -> None:
        campaign.update(holdout="0%")
        campaign["steps"][0]["when"] = "first_name != 'Bob' or 'x'.encode('zz') == 'x'"
    edit_yaml(project / "campaigns" / "welcome.yaml", failing)
    result = cli("send", "--project", project, "--now", "2026-12-01T10:00+01:00")
    assert result.exit_code == 1
    states = dict(rows(project, "SELECT email, state FROM messages WHERE step = 'hello'"))
    assert states.pop("bob.smith@example.org") == "held"
    assert set(states.values()) == {"sent"} and len(states) == 7
    reason = rows(project, "SELECT error FROM messages WHERE email = ?", "bob.smith@example.org")
    assert "condition failed" in reason[0][0] and "unknown encoding: zz" in reason[0][0]


def test_days_since_an_event_that_never_happened_compares_false(project: Path,
                                                                cli: Cli) -> None:
    """Only the comparison is false: the rest of the condition still decides."""
    def condition(campaign: dict[str, Any]) -> None:
        campaign.update(holdout="0%")
        campaign["steps"][0]["when"] = ("days_since('completed') > 30 or "
                                        "not reached('completed')")
    edit_yaml(project / "campaigns" / "welcome.yaml", condition)
    send(cli, project, "2026-12-01T10:00+01:00")
    assert rows(project, "SELECT DISTINCT state FROM messages WHERE step = 'hello'") == \
        [("sent",)]


def test_a_round_done_by_a_skip_lets_the_next_start_at_once(project: Path, cli: Cli) -> None:
    """The last step of Bob's first round is skipped (he had finished two courses by then):
    the round is done in that run, and the run five minutes later starts his second round,
    instead of a quiet cron run waiting for the next day."""
    recognition_project(project)
    path = project / "campaigns" / "recognition.yaml"
    path.write_text(path.read_text().replace(
        "template: welcome/first-course}",
        "template: welcome/first-course, when: \"count('completed') <= 1\"}"))
    import_events(cli, project, [
        "bob.smith@example.org;completed;course:gdpr;2026-12-02T15:00:00Z",
        "bob.smith@example.org;completed;course:excel;2026-12-03T09:00:00Z"])
    for day in (2, 3, 4, 7):
        send(cli, project, f"2026-12-{day:02d}T10:00+01:00")
    send(cli, project, "2026-12-07T10:05+01:00")
    assert rows(project, "SELECT step, state, substr(coalesce(sent_at, claimed_at), 1, 16) "
                         "FROM messages WHERE campaign = 'recognition' ORDER BY id") == [
        ("recognition@course:gdpr", "sent", "2026-12-04T09:00"),
        ("evaluation@course:gdpr", "skipped", "2026-12-07T09:00"),
        ("recognition@course:excel", "sent", "2026-12-07T09:05")]


def test_retry_of_a_triggered_step_requeues_the_current_round_only(project: Path,
                                                                   cli: Cli) -> None:
    recognition_project(project)
    import_events(cli, project, [
        "bob.smith@example.org;completed;course:gdpr;2026-12-02T15:00:00Z",
        "bob.smith@example.org;completed;course:excel;2026-12-03T09:00:00Z"])
    for day in (2, 3, 4, 7, 8):
        send(cli, project, f"2026-12-{day:02d}T10:00+01:00")
    # As if both rounds' recognition had failed (a 5xx reply): the excel round is current.
    db = sqlite3.connect(project / ".ldmail" / "ledger.db")
    with db:
        db.execute("UPDATE messages SET state = 'failed' WHERE step LIKE 'recognition@%'")
    db.close()
    result = cli("retry", "--failed", "-c", "recognition", "--step", "recognition",
                 "--project", project, "--now", "2026-12-09T09:00+01:00")
    assert result.exit_code == 0, result.output
    assert dict(rows(project, "SELECT step, state FROM messages WHERE step LIKE "
                              "'recognition@%'")) == {"recognition@course:gdpr": "failed",
                                                      "recognition@course:excel": "deferred"}


def test_no_new_round_for_who_was_suppressed(project: Path, cli: Cli) -> None:
    """Bob's first round is done when he opts out: his second completion starts nothing
    (his completed enrolment stays completed, not ended as `left`)."""
    recognition_project(project)
    import_events(cli, project, [
        "bob.smith@example.org;completed;course:gdpr;2026-12-02T15:00:00Z",
        "bob.smith@example.org;completed;course:excel;2026-12-03T09:00:00Z"])
    for day in (2, 3, 4, 7):
        send(cli, project, f"2026-12-{day:02d}T10:00+01:00")
    assert cli("suppress", "bob.smith@example.org", "--project", project).exit_code == 0
    for day in (8, 9, 10):
        send(cli, project, f"2026-12-{day:02d}T10:00+01:00")
    assert [step for (_, step, _) in sent_at(project, "recognition")] == [
        "recognition@course:gdpr", "evaluation@course:gdpr"]
    assert rows(project, "SELECT state, occurrence FROM enrolments WHERE campaign = "
                         "'recognition'") == [("completed", "course:gdpr")]


# Slow by construction (half a second here, on any machine well over a millisecond), yet
# within the 2 s that each evaluation may take.
SLOW_CONDITION = "('x ' * 300000).split()|sort|unique|list|length > 0"


def test_conditions_have_a_time_for_the_whole_run(project: Path, cli: Cli,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """A condition each evaluation of which passes its own budget cannot make a run slow for
    everyone: once the run's time for conditions is spent, the remaining people's steps are
    held with one line, the run exits 1, and the next run answers and sends them."""
    def slow(campaign: dict[str, Any]) -> None:
        campaign.update(holdout="0%")
        campaign["steps"][0]["when"] = SLOW_CONDITION
    edit_yaml(project / "campaigns" / "welcome.yaml", slow)
    monkeypatch.setenv("LDMAIL_CONDITION_SECONDS", "0.001")  # spent by the first answer

    result = cli("send", "--project", project, "--now", "2026-12-01T10:00+01:00")

    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    assert re.findall("^held: .*$", result.stderr, re.M) == [
        "held: 7 due step(s) whose when: condition was not answered: the run's 0.001 s for "
        "conditions (LDMAIL_CONDITION_SECONDS) ran out; the next run tries them again; make "
        "the slow condition simpler"]
    states = rows(project, "SELECT state, error, count(*) FROM messages WHERE step = 'hello' "
                           "GROUP BY state, error ORDER BY state")
    assert states == [
        ("held", "condition not answered: the run's time for when: conditions "
                 "(LDMAIL_CONDITION_SECONDS) ran out; tried again at the next run", 7),
        ("sent", None, 1)]

    monkeypatch.setenv("LDMAIL_CONDITION_SECONDS", "600")  # time for all, on any machine
    result = cli("send", "--project", project, "--now", "2026-12-01T10:05+01:00")

    assert result.exit_code == 0, result.output
    assert rows(project, "SELECT state, count(*) FROM messages WHERE step = 'hello' "
                         "GROUP BY state") == [("sent", 8)]
    assert len(outbox(project)["hello"]) == 8


class ConditionClock:
    """The run's clock for conditions, moved by what happens instead of the machine's speed:
    one second per condition answered, an hour per skipped step written. Records who each
    run answered (the set of addresses per run)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        from ldmail.delivery import send as deliver
        from ldmail.ledger.delivery import Delivery
        from ldmail.sandbox import conditions as journeys
        from ldmail.sandbox.budget import RunAllowance

        self.now = 0.0
        self.runs: list[list[str]] = []
        holds, skip = journeys.condition_holds, Delivery.skip

        def answered(condition: str, attributes: Any, *rest: Any) -> bool:
            self.now += 1
            self.runs[-1].append(attributes["email"])
            return holds(condition, attributes, *rest)

        def skipped(delivery: Delivery, *args: Any) -> None:
            self.now += 3600
            skip(delivery, *args)

        def allowance() -> RunAllowance:
            self.runs.append([])
            return RunAllowance(clock=lambda: self.now)

        monkeypatch.setattr(journeys, "condition_holds", answered)
        monkeypatch.setattr(Delivery, "skip", skipped)
        monkeypatch.setattr(deliver, "RunAllowance", allowance)


def test_every_person_waiting_for_a_condition_is_answered_in_turn(
        project: Path, cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    """A step that waits (wait_until) stays due for weeks. With time for 3 answers a run, the
    8 people are answered 3 at a time in turn, each of them within any 3 runs in a row (in
    due-date order the same 3 were answered every run, the others held run after run)."""
    def waiting(campaign: dict[str, Any]) -> None:
        campaign.update(holdout="0%")
        campaign["steps"][0].update(when="reached('completed')", wait_until=True,
                                    timeout="30d")
    edit_yaml(project / "campaigns" / "welcome.yaml", waiting)
    clock = ConditionClock(monkeypatch)
    monkeypatch.setenv("LDMAIL_CONDITION_SECONDS", "2.5")  # 3 answers of a second each

    for minute in range(0, 60, 10):
        result = cli("send", "--project", project, "--now", f"2026-12-01T10:{minute:02d}+01:00")
        assert result.exit_code == 1, result.output
        assert "held: 5 due step(s) whose when: condition was not answered" in result.stderr

    assert [len(set(run)) for run in clock.runs] == [3] * 6
    for first in range(4):
        assert len(set().union(*clock.runs[first:first + 3])) == 8, clock.runs


def test_only_the_time_spent_answering_conditions_counts(
        project: Path, cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    """Writing 8 skipped steps (an hour each, on this clock) between the first pass and the
    next does not spend the run's time: all 16 conditions are answered in one run."""
    def skip_then_wait(campaign: dict[str, Any]) -> None:
        campaign.update(holdout="0%")
        campaign["steps"][0].update(when="false")
        campaign["steps"][1].update(when="reached('completed')", wait_until=True,
                                    timeout="30d", after="0d")
    edit_yaml(project / "campaigns" / "welcome.yaml", skip_then_wait)
    clock = ConditionClock(monkeypatch)
    monkeypatch.setenv("LDMAIL_CONDITION_SECONDS", "16.5")

    result = cli("send", "--project", project, "--now", "2026-12-01T10:00+01:00")

    assert result.exit_code == 0, result.output
    assert len(clock.runs[0]) == 16
    assert rows(project, "SELECT step, state, count(*) FROM messages GROUP BY step, state") \
        == [("hello", "skipped", 8)]


def test_the_time_for_conditions_is_the_operators_to_set(project: Path, cli: Cli,
                                                         monkeypatch: pytest.MonkeyPatch
                                                         ) -> None:
    edit_yaml(project / "campaigns" / "welcome.yaml",
              lambda c: c["steps"][0].update(when="true"))
    monkeypatch.setenv("LDMAIL_CONDITION_SECONDS", "a minute")

    result = cli("send", "--project", project, "--now", "2026-12-01T10:00+01:00")

    assert result.exit_code == 1
    assert "Traceback" not in result.output
    assert "LDMAIL_CONDITION_SECONDS='a minute' is not a number of seconds; unset it for the " \
        "default of 10 s" in result.output
