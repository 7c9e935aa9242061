"""ldmail.delivery.send promises to deliver each due message at most once and never lose one
silently: every message is claimed in the ledger before the transport gets it and its outcome
recorded after; a temporary failure is tried again after the backoff (until retry.max_attempts),
a transport that cannot be reached stops the run and leaves the message due, and a claim whose
outcome nobody recorded becomes `unknown`, sent again only on request (--resend-unknown).
"""

from __future__ import annotations

import email
import threading
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from ldmail.delivery.send import Due, Sender, send
from ldmail.delivery.transport import MemoryTransport, Outcome
from ldmail.errors import LdmailError, LedgerReplaced, TransportFatal, TransportUnavailable
from ldmail.ledger import Ledger
from ldmail.project.config import Project, load_project

from ...projects import BACKOFF, NOW, PEOPLE, edit_yaml, iso
from .conftest import hello

ANN, BOB, CHLOE, DIRK, EMMA = sorted(PEOPLE)


class ThreadedMemory(MemoryTransport):
    """A MemoryTransport whose messages go through a lane thread, as SMTP's and Graph's do."""

    name = "smtp"


def test_each_person_due_gets_the_first_step_once_and_it_is_recorded_sent(project: Project) -> None:
    transport = MemoryTransport()
    summary = send(project, NOW, transports=[transport])
    assert (summary.enrolled, summary.due, summary.sent) == (5, 5, 5)
    assert summary.ok and summary.steps == {"welcome/hello": 5}
    assert sorted(recipient for recipient, _ in transport.accepted) == sorted(PEOPLE)
    for recipient, data in transport.accepted:
        message = email.message_from_bytes(data)
        assert recipient in str(message["To"])
        row = hello(project, recipient)
        assert row is not None and (row.state, row.attempts) == ("sent", 1)
        assert row.message_id == message["Message-ID"]


def test_a_second_send_sends_nothing_again(project: Project) -> None:
    transport = MemoryTransport()
    send(project, NOW, transports=[transport])
    for later in (NOW, NOW + timedelta(hours=1)):
        again = send(project, later, transports=[transport])
        assert again.sent == 0 and again.ok
    assert sorted(transport.attempts) == sorted(PEOPLE)


def test_a_temporary_failure_is_retried_after_the_backoff_and_not_before(project: Project) -> None:
    transport = MemoryTransport({ANN: [Outcome("temporary", "451 later"), Outcome("sent")]})
    first = send(project, NOW, transports=[transport])
    assert (first.sent, first.deferred) == (4, 1)
    row = hello(project, ANN)
    assert row is not None
    assert (row.state, row.attempts, row.error, row.next_attempt_at) == \
        ("deferred", 1, "451 later", iso(NOW + BACKOFF))
    assert send(project, NOW + BACKOFF / 2, transports=[transport]).sent == 0
    assert send(project, NOW + BACKOFF, transports=[transport]).sent == 1
    row = hello(project, ANN)
    assert row is not None and (row.state, row.attempts) == ("sent", 2)
    assert transport.attempts.count(ANN) == 2


def test_temporary_failures_give_up_after_max_attempts(people: Path) -> None:
    edit_yaml(people / "ldmail.yaml", lambda s: s.update(retry={"max_attempts": 2}))
    project = load_project(people)
    transport = MemoryTransport({ANN: [Outcome("temporary", "451 later")]})
    send(project, NOW, transports=[transport])
    last = send(project, NOW + BACKOFF, transports=[transport])
    assert last.failed == 1 and not last.ok
    row = hello(project, ANN)
    assert row is not None and (row.state, row.attempts) == ("failed", 2)
    assert row.error == "gave up after 2 attempts: 451 later"


def test_refusals_fail_an_unknown_address_is_suppressed_and_a_lost_reply_is_never_resent(
        project: Project) -> None:
    transport = MemoryTransport({
        BOB: [Outcome("permanent", "550 5.1.1 user unknown", user_unknown=True)],
        CHLOE: [Outcome("unknown", "no reply after the data")],
        DIRK: [Outcome("permanent", "554 5.7.1 rejected as spam")],
    })
    summary = send(project, NOW, transports=[transport])
    assert (summary.sent, summary.failed, summary.ok) == (2, 2, False)
    assert sorted((f.email, f.reason) for f in summary.failures) == \
        [(BOB, "550 5.1.1 user unknown"), (DIRK, "554 5.7.1 rejected as spam")]
    assert [(f.email, f.reason) for f in summary.unknown] == [(CHLOE, "no reply after the data")]
    states = {address: row.state for address in PEOPLE if (row := hello(project, address))}
    assert states == {ANN: "sent", BOB: "failed", CHLOE: "unknown", DIRK: "failed",
                      EMMA: "sent"}
    with Ledger.of(project, readonly=True) as ledger:
        assert ledger.is_suppressed(BOB) and not ledger.is_suppressed(DIRK)
    again = send(project, NOW + timedelta(hours=1), transports=[transport])
    assert again.sent == 0 and again.unknown_total == 1
    assert sorted(transport.attempts) == sorted(PEOPLE)  # none of them tried twice


def test_an_unreachable_transport_stops_the_run_and_leaves_the_message_due(
        project: Project) -> None:
    transport = MemoryTransport({ANN: [TransportUnavailable("connection refused"),
                                       Outcome("sent")]})
    summary = send(project, NOW, transports=[transport])
    assert summary.stopped is not None and "connection refused" in summary.stopped
    assert transport.attempts == [ANN] and not transport.accepted
    row = hello(project, ANN)
    assert row is not None and (row.state, row.next_attempt_at) == ("deferred",
                                                                    iso(NOW + BACKOFF))
    assert all(hello(project, other) is None for other in (BOB, CHLOE, DIRK, EMMA))
    # The rest were never claimed: the next run sends them; the one in hand after the backoff.
    assert send(project, NOW, transports=[transport]).sent == 4
    assert send(project, NOW + BACKOFF, transports=[transport]).sent == 1
    assert sorted(recipient for recipient, _ in transport.accepted) == sorted(PEOPLE)


def test_a_transport_that_fails_outright_raises_and_its_message_stays_due(project: Project) -> None:
    transport = MemoryTransport({ANN: [TransportFatal("outbox: disk full"), Outcome("sent")]})
    with pytest.raises(TransportFatal, match="disk full"):
        send(project, NOW, transports=[transport])
    row = hello(project, ANN)
    assert row is not None and row.state == "deferred"
    assert (row.error, row.next_attempt_at) == ("transport failed before sending",
                                                iso(NOW + BACKOFF))


def send_within(seconds: float, project: Project, *args: Any, **kwargs: Any
                ) -> BaseException | None:
    """send() in a thread: what it raised (None when nothing); a send that hangs fails the
    test after `seconds` instead of hanging the suite."""
    raised: list[BaseException] = []

    def run() -> None:
        try:
            send(project, *args, **kwargs)
        except BaseException as exc:  # noqa: BLE001 - handed to the test as is
            raised.append(exc)

    thread = threading.Thread(target=run, daemon=True, name="test-send")
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"the send still runs after {seconds} s: it hangs"
    return raised[0] if raised else None


LANES = pytest.mark.parametrize("lane", [MemoryTransport, ThreadedMemory],
                                ids=["unthreaded", "threaded"])


@LANES
@pytest.mark.parametrize("error", [RuntimeError("a bug"), KeyboardInterrupt(), MemoryError()],
                         ids=["bug", "ctrl-c", "no-memory"])
def test_an_unexpected_error_in_the_transport_raises_and_leaves_its_message_unknown(
        project: Project, lane: type[MemoryTransport], error: BaseException) -> None:
    """The transport may have written or sent the message before it raised: the run stops,
    the message is unknown at once and never sent again by itself; the rest stay due."""
    transport = lane({CHLOE: [error, Outcome("sent")]})
    assert send_within(30, project, NOW, transports=[transport]) is error
    states = {address: row.state if (row := hello(project, address)) else None
              for address in PEOPLE}
    assert states == {ANN: "sent", BOB: "sent", CHLOE: "unknown", DIRK: None, EMMA: None}
    row = hello(project, CHLOE)
    assert row is not None and type(error).__name__ in (row.error or "")
    later = send(project, NOW + BACKOFF, transports=[transport])
    assert (later.sent, later.unknown_total) == (2, 1)
    assert transport.attempts.count(CHLOE) == 1
    resent = send(project, NOW + 2 * BACKOFF, transports=[transport], resend_unknown=True)
    assert (resent.requeued_unknown, resent.sent) == (1, 1)
    assert sorted(transport.attempts) == sorted([*PEOPLE, CHLOE])


@LANES
def test_a_message_claimed_but_not_handed_over_when_the_run_stops_is_due_again(
        project: Project, lane: type[MemoryTransport], monkeypatch: pytest.MonkeyPatch) -> None:
    claim = Sender.claim

    def claim_then_stop(sender: Sender, item: Due, message_id: str, token: str) -> bool:
        claimed = claim(sender, item, message_id, token)
        if item.enrolment.email == BOB:
            raise KeyboardInterrupt
        return claimed

    monkeypatch.setattr(Sender, "claim", claim_then_stop)
    transport = lane()
    assert isinstance(send_within(30, project, NOW, transports=[transport]), KeyboardInterrupt)
    assert transport.attempts == [ANN]
    row = hello(project, BOB)
    assert row is not None and (row.state, row.attempts, row.next_attempt_at) == \
        ("deferred", 0, iso(NOW))
    monkeypatch.undo()
    assert send(project, NOW, transports=[transport]).sent == 4
    assert sorted(transport.attempts) == sorted(PEOPLE)


def test_a_dry_run_sends_and_records_nothing(project: Project) -> None:
    summary = send(project, NOW, dry_run=True, show=2)
    assert summary.dry_run and summary.sent == 5 and len(summary.first) == 2
    assert not (project.root / ".ldmail" / "ledger.db").exists()


def test_a_limit_and_a_daily_cap_hold_the_rest_for_later(people: Path) -> None:
    edit_yaml(people / "ldmail.yaml", lambda s: s["transport"].update(daily_cap=4))
    project = load_project(people)
    transport = MemoryTransport()
    first = send(project, NOW, transports=[transport], limit=2)
    assert (first.sent, first.held_by_cap, first.held_by_limit) == (2, 1, 2)
    capped = send(project, NOW + timedelta(hours=1), transports=[transport])
    assert (capped.sent, capped.held_by_cap, capped.cap_frees_at) == \
        (2, 1, iso(NOW + timedelta(days=1)))
    assert send(project, NOW + timedelta(days=1), transports=[transport]).sent == 1
    assert sorted(transport.attempts) == sorted(PEOPLE)


def test_a_stop_request_before_the_first_message_sends_nothing(project: Project) -> None:
    stop = threading.Event()
    stop.set()
    transport = MemoryTransport()
    summary = send(project, NOW, transports=[transport], stop=stop)
    assert summary.stopped is not None and summary.sent == 0 and not transport.attempts
    assert all(hello(project, address) is None for address in PEOPLE)


def test_a_moment_before_an_earlier_run_is_refused(project: Project) -> None:
    send(project, NOW, transports=[MemoryTransport()], limit=0)  # a run, even one sending none
    with pytest.raises(LdmailError, match="time only moves forward"):
        send(project, NOW - timedelta(days=1), transports=[MemoryTransport()])
    assert send(project, NOW - timedelta(days=1), transports=[MemoryTransport()],
                allow_past=True).sent == 0


def test_a_missing_ledger_is_refused_when_the_outbox_shows_earlier_runs(people: Path) -> None:
    project = load_project(people)
    summary = send(project, NOW)  # to the project's transport: the outbox
    outbox = people / ".ldmail" / "outbox"
    assert str(summary.destination) == f"outbox {outbox}"
    assert len(list(outbox.glob("*.eml"))) == summary.sent == 5
    ledger = people / ".ldmail" / "ledger.db"
    for leftover in ledger.parent.glob("ledger.db*"):
        leftover.unlink()
    with pytest.raises(LedgerReplaced, match="holds messages of earlier runs"):
        send(project, NOW + BACKOFF, transports=[MemoryTransport()])
