"""ledger/enrolments.py promises: a sync enrols each targeted person once, in the state the table
gives (active, or converted when the goal was reached before); it keeps suppressed and
forgotten people out; active enrolments end as left or converted with their reason, people
missing from the export only after the grace period; a sync that does not persist writes
nothing; duplicate rows of the export are dropped; triggered campaigns start further rounds
and voided goals resume, each only from the state the table allows."""

from __future__ import annotations

from ldmail.ledger import (
    FORGOTTEN,
    EnrolmentState,
    ExitReason,
    Ledger,
    MessageKey,
    MessageState,
    step_records,
)
from tests.unit.ledger.conftest import (
    ANN,
    BOB,
    CAMPAIGN,
    LATER,
    NOW,
    Synced,
    put,
    sync,
)

E, M = EnrolmentState, MessageState
CARL = "carl@example.org"


def states(ledger: Ledger, *emails: str) -> list[EnrolmentState]:
    return [ledger.enrolment_state(CAMPAIGN, email) for email in emails]


def reason(ledger: Ledger, email: str) -> str | None:
    (enrolment,) = ledger.history(email).enrolments
    return enrolment.exit_reason


def test_a_sync_enrols_each_targeted_person_once(ledger: Ledger) -> None:
    assert sync(ledger, [ANN, BOB], campaigns=[CAMPAIGN, "onboarding"]) == Synced(4, 2, 0, 0)
    assert states(ledger, ANN, BOB) == [E.ACTIVE, E.ACTIVE]
    (enrolment,) = ledger.history(ANN).enrolments[:1]
    assert (enrolment.enrolled_at, enrolment.anchor_at, enrolment.grp) == (NOW, NOW, "treatment")
    assert sync(ledger, [ANN, BOB], LATER, campaigns=[CAMPAIGN, "onboarding"]).enrolled == 0


def test_someone_who_reached_the_goal_before_is_enrolled_as_converted(ledger: Ledger) -> None:
    sync(ledger, [ANN, BOB], reached=[(CAMPAIGN, ANN)])
    assert states(ledger, ANN, BOB) == [E.CONVERTED, E.ACTIVE]
    assert reason(ledger, ANN) == ExitReason.GOAL_REACHED_BEFORE


def test_suppressed_and_forgotten_people_are_never_enrolled(ledger: Ledger) -> None:
    ledger.suppress(ANN, "asked", "command", NOW)
    ledger.suppress(FORGOTTEN + ledger.address_hash(BOB), "forgotten on request", "forget", NOW)
    assert sync(ledger, [ANN, BOB, CARL]) == Synced(1, 1, 0, 0)
    assert states(ledger, ANN, BOB, CARL) == [E.NEW, E.NEW, E.ACTIVE]


def test_reaching_the_goal_ends_an_active_enrolment_as_converted(ledger: Ledger) -> None:
    sync(ledger, [ANN, BOB])
    assert sync(ledger, [ANN, BOB], LATER, reached=[(CAMPAIGN, ANN)]).exited == 1
    assert states(ledger, ANN, BOB) == [E.CONVERTED, E.ACTIVE]
    assert reason(ledger, ANN) == ExitReason.GOAL_REACHED
    assert ledger.history(ANN).enrolments[0].exited_at == LATER


def test_someone_no_longer_targeted_leaves_with_the_persona_in_the_reason(
        ledger: Ledger) -> None:
    sync(ledger, [ANN, BOB])
    sync(ledger, [ANN, BOB], LATER, targets={CAMPAIGN: [BOB]}, persona="contractor")
    assert states(ledger, ANN, BOB) == [E.LEFT, E.ACTIVE]
    assert reason(ledger, ANN) == f"{ExitReason.NOT_IN_AUDIENCE} (persona contractor)"


def test_someone_missing_from_the_export_leaves_only_after_the_grace_period(
        ledger: Ledger) -> None:
    sync(ledger, [ANN, BOB])
    first = sync(ledger, [BOB], "2026-03-03T09:00:00Z", grace_cut="2026-02-27T09:00:00Z")
    assert (first.exited, first.vanished) == (0, 1)
    assert states(ledger, ANN) == [E.ACTIVE]
    assert ledger.history(ANN).enrolments[0].missing_since == "2026-03-03T09:00:00Z"
    later = sync(ledger, [BOB], "2026-03-10T09:00:00Z", grace_cut="2026-03-03T09:00:00Z")
    assert (later.exited, later.vanished) == (1, 0)  # noted before: not newly missing
    assert states(ledger, ANN) == [E.LEFT]
    assert reason(ledger, ANN) == ExitReason.NOT_IN_EXPORT


def test_coming_back_or_a_rejected_row_keeps_someone_from_leaving(ledger: Ledger) -> None:
    sync(ledger, [ANN, BOB])
    sync(ledger, [BOB], "2026-03-03T09:00:00Z", grace_cut="2026-02-27T09:00:00Z")
    sync(ledger, [ANN, BOB], "2026-03-04T09:00:00Z", grace_cut="2026-02-28T09:00:00Z")
    assert ledger.history(ANN).enrolments[0].missing_since is None
    # A row rejected for a typo is still a person in the export: neither missing nor leaving.
    assert sync(ledger, [BOB], LATER, rejected=[ANN]) == Synced(0, 0, 0, 0)
    assert states(ledger, ANN) == [E.ACTIVE]


def test_a_sync_that_does_not_persist_writes_nothing_but_shows_the_result(
        ledger: Ledger) -> None:
    sync(ledger, [ANN])
    dry = sync(ledger, [ANN, BOB, CARL], LATER, persist=False, holdout=0.5,
               group=lambda campaign, email, share: "holdout" if email == CARL else "treatment")
    assert dry == Synced(2, 2, 0, 0)
    assert states(ledger, BOB, CARL) == [E.NEW, E.NEW]
    assert sorted(row[1] for row in ledger.synced_enrolments()) == [ANN, BOB, CARL]
    assert ledger.group_sizes() == {CAMPAIGN: (2, 1)}
    assert ledger.meta("staged") is None


def test_the_later_rows_of_an_address_in_the_export_twice_are_dropped(ledger: Ledger) -> None:
    run = ledger.enrolment_sync(NOW, persist=True, group=lambda c, e, s: "treatment")
    run.start_staging()
    run.stage([(1, ANN, None, "en", "staff", None, None), (2, BOB, None, "en", "staff", None,
                                                           None),
               (3, ANN, None, "de", "staff", None, None)],
              [(CAMPAIGN, ANN, 1, "", "staff", "en"), (CAMPAIGN, BOB, 2, "", "staff", "en"),
               (CAMPAIGN, ANN, 3, "", "staff", "de")])
    assert run.finish_staging([]) == [(3, ANN, 1)]
    assert ledger.staged_rows([ANN, BOB]) == {ANN: 1, BOB: 2}


def test_the_synced_enrolments_carry_their_steps_history(ledger: Ledger) -> None:
    sync(ledger, [ANN])
    put(ledger, M.SENT)
    put(ledger, M.DEFERRED, MessageKey(CAMPAIGN, "reminder", ANN), LATER)
    sync(ledger, [ANN], LATER)
    ((campaign, email, group, row, *_, history),) = list(ledger.synced_enrolments())
    assert (campaign, email, group, row) == (CAMPAIGN, ANN, "treatment", 1)
    assert sorted(step_records(history)) == [
        ["hello", "sent", NOW, "", "1"], ["reminder", "deferred", LATER, LATER, "1"]]
    assert list(step_records(None)) == []


def test_a_triggered_campaign_starts_the_next_round_only_from_completed(ledger: Ledger) -> None:
    sync(ledger, [ANN, BOB], triggered=[(CAMPAIGN, ANN, NOW, "course:excel"),
                                        (CAMPAIGN, BOB, NOW, "course:word")])
    assert ledger.history(ANN).enrolments[0].occurrence == "course:excel"
    put(ledger, M.SENT, MessageKey(CAMPAIGN, "well-done@course:excel", ANN), last_step=True)
    sync(ledger, [ANN, BOB], LATER, triggered=[(CAMPAIGN, BOB, NOW, "course:word")])
    assert ledger.finished_rounds(CAMPAIGN) == {ANN: {"course:excel"}}
    rounds = [(ANN, LATER, "course:access"), (BOB, LATER, "course:access")]
    assert ledger.next_round(CAMPAIGN, rounds) == 1  # Bob is active: no move from there
    (enrolment,) = ledger.history(ANN).enrolments
    assert (enrolment.state, enrolment.anchor_at, enrolment.occurrence) == (
        E.ACTIVE, LATER, "course:access")
    assert ledger.history(BOB).enrolments[0].occurrence == "course:word"


def test_a_voided_goal_resumes_only_a_converted_enrolment(ledger: Ledger) -> None:
    sync(ledger, [ANN, BOB], reached=[(CAMPAIGN, ANN)])
    started = ledger.interventions()
    assert ledger.resume_voided(CAMPAIGN, [ANN, BOB]) == 1
    assert states(ledger, ANN, BOB) == [E.ACTIVE, E.ACTIVE]
    assert reason(ledger, ANN) is None
    assert ledger.interventions() != started  # a running send re-checks its claims
