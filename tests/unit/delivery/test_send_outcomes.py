"""Delivery decisions in-process, against a MemoryTransport with scripted outcomes: no server,
no subprocess, and every outcome's effect on the ledger checked row by row."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from ldmail.delivery.send import send
from ldmail.delivery.transport import MemoryTransport, Outcome
from ldmail.errors import TransportUnavailable
from ldmail.project.config import load_project

from ...projects import BACKOFF, NOW, PEOPLE, edit_yaml, iso, write_people

LEDGER = Path(".ldmail") / "ledger.db"


@pytest.fixture
def five(scaffold: Path) -> Path:
    """The scaffold with five known people and no holdout."""
    write_people(scaffold, PEOPLE)
    edit_yaml(scaffold / "campaigns" / "welcome.yaml", lambda c: c.update(holdout="0%"))
    return scaffold


def messages(project: Path) -> dict[str, tuple[str, int, str | None, str | None]]:
    """The first step's row per person: state, attempts, error, next attempt."""
    with sqlite3.connect(project / LEDGER) as db:
        return {email: (state, attempts, error, retry_at) for email, state, attempts, error,
                retry_at in db.execute("SELECT email, state, attempts, error, next_attempt_at"
                                       " FROM messages WHERE step = 'hello'")}


def suppressed(project: Path) -> set[str]:
    with sqlite3.connect(project / LEDGER) as db:
        return {email for (email,) in db.execute("SELECT email FROM suppressions")}


def test_every_outcome_lands_in_its_state(five: Path) -> None:
    transport = MemoryTransport({
        "ann@example.org": [Outcome("temporary", "451 4.7.1 try again later")],
        "bob@example.org": [Outcome("permanent", "550 5.1.1 user unknown", user_unknown=True)],
        "chloe@example.org": [Outcome("unknown", "no reply after the message was sent")],
        "dirk@example.org": [Outcome("permanent", "554 5.7.1 rejected as spam")],
    })
    summary = send(load_project(five), NOW, transports=[transport])
    assert (summary.sent, summary.deferred, summary.failed, len(summary.unknown)) == (1, 1, 2, 1)
    assert not summary.ok
    rows = messages(five)
    assert rows["emma@example.org"][0] == "sent"
    assert rows["ann@example.org"] == ("deferred", 1, "451 4.7.1 try again later",
                                       iso(NOW + BACKOFF))
    assert rows["bob@example.org"][:3] == ("failed", 1, "550 5.1.1 user unknown")
    assert rows["chloe@example.org"][0] == "unknown"
    assert rows["dirk@example.org"][:3] == ("failed", 1, "554 5.7.1 rejected as spam")
    # Only the address the server said does not exist is suppressed.
    assert suppressed(five) == {"bob@example.org"}
    assert sorted(recipient for recipient, _ in transport.accepted) == \
        ["chloe@example.org", "emma@example.org"]


def test_a_second_run_sends_nothing_again(five: Path) -> None:
    transport = MemoryTransport()
    assert send(load_project(five), NOW, transports=[transport]).sent == 5
    again = send(load_project(five), NOW, transports=[transport])
    assert again.sent == 0 and again.ok
    assert sorted(transport.attempts) == sorted(PEOPLE)


def test_a_temporary_failure_is_retried_after_the_backoff(five: Path) -> None:
    transport = MemoryTransport({"ann@example.org": [Outcome("temporary", "451 later"),
                                                     Outcome("sent")]})
    send(load_project(five), NOW, transports=[transport])
    early = send(load_project(five), NOW + BACKOFF / 2, transports=[transport])
    assert early.sent == 0
    late = send(load_project(five), NOW + BACKOFF, transports=[transport])
    assert late.sent == 1
    assert messages(five)["ann@example.org"][:2] == ("sent", 2)
    assert transport.attempts.count("ann@example.org") == 2


def test_an_unreachable_server_stops_the_run_and_loses_nothing(five: Path) -> None:
    """The message in hand goes back in the queue; the rest were never claimed."""
    first = sorted(PEOPLE)[0]
    transport = MemoryTransport({first: [TransportUnavailable("connection refused")]})
    summary = send(load_project(five), NOW, transports=[transport])
    assert summary.stopped is not None and "connection refused" in summary.stopped
    assert transport.attempts == [first]
    assert messages(five) == {first: ("deferred", 1, "connection refused",
                                        iso(NOW + BACKOFF))}
