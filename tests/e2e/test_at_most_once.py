"""At most once at every boundary: a server that takes the whole message and then drops the
connection, stalls, or trickles its greeting never gets a message twice, and never hangs a run.

The server is tests/e2e/hostile_smtp.py: it keeps every message whose final "." it read, as a
real server would, whether or not it answered.
"""

from __future__ import annotations

import signal
import time
from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest

from ..projects import NOW, PEOPLE, write_people
from .conftest import Cli
from .hostile_smtp import ACCEPT, DROP, STALL, HostileSmtp
from .smtp_server import known_people, ldmail_running, ledger_rows, send, states, use_smtp, wait_for


@pytest.mark.parametrize("pipelining", [True, False], ids=["pipelining", "plain-sendmail"])
@pytest.mark.parametrize("action", [DROP, STALL])
def test_fifty_lost_replies_zero_duplicates_without_resend_unknown(
        project: Path, cli: Cli, pipelining: bool, action: str) -> None:
    """Every reply lost after the final ".": each message is held once by the server and
    unknown in the ledger, run after run; only --resend-unknown sends one again."""
    server = HostileSmtp(pipelining=pipelining, after_data=lambda n: action, stall_seconds=3)
    # 25 people x 2 steps = 50 lost replies when dropped; stalls cost the 1 s time-out each.
    people = {f"learner{i:02d}@example.org": rest for i, rest in
              enumerate(list(PEOPLE.values()) * 5)} if action == DROP else dict(PEOPLE)
    try:
        known_people(project, server.port)
        write_people(project, people)
        use_smtp(project, server.port, timeout="1s")
        now = NOW
        for _ in range(6):  # both steps fall due on the way; nothing is sent twice
            result = send(cli, project, now)
            assert "Traceback" not in result.output
            now += timedelta(days=1)
    finally:
        server.close()
    held = server.keys()
    assert len(held) == 2 * len(people) and set(held.values()) == {1}, held
    assert set(states(project).values()) == {"unknown"}
    assert len(states(project)) == 2 * len(people)


def test_a_trickling_server_is_cut_off_by_the_deadline(project: Path, cli: Cli) -> None:
    server = HostileSmtp(trickle=True)
    try:
        known_people(project, server.port)
        use_smtp(project, server.port, timeout="5s", deadline="3s")
        started = time.monotonic()
        result = send(cli, project, NOW)
        elapsed = time.monotonic() - started
    finally:
        server.close()
    assert result.exit_code == 1
    assert "transport unavailable" in result.stderr and "deadline" in result.stderr
    assert elapsed < 10, elapsed
    assert not ledger_rows(project, "SELECT id FROM messages")


def _sigterm_when(project: Path, ready: Callable[[], bool]) -> tuple[int, str, float]:
    """Start a send, SIGTERM it once `ready()`: (exit code, stderr, seconds it took to end)."""
    with ldmail_running("send", "--project", project, "--now", NOW.isoformat()) as process:
        wait_for(ready, 20, "the send to reach the server")
        time.sleep(0.5)
        process.send_signal(signal.SIGTERM)
        started = time.monotonic()
        _out, err = process.communicate(timeout=15)
        return process.returncode, err, time.monotonic() - started


def test_sigterm_while_the_server_trickles_ends_within_five_seconds(project: Path,
                                                                   cli: Cli) -> None:
    server = HostileSmtp(trickle=True)
    try:
        known_people(project, server.port)  # the default two-minute deadline applies
        code, err, elapsed = _sigterm_when(project, lambda: server.connections >= 1)
    finally:
        server.close()
    assert elapsed < 5, elapsed
    assert code == 1 and "stopped" in err and "Traceback" not in err
    # The send lock was released: the next run starts at once (and reaches the server).
    accept = HostileSmtp()
    try:
        use_smtp(project, accept.port)
        later = send(cli, project, NOW + timedelta(minutes=5))
    finally:
        accept.close()
    assert later.exit_code == 0, later.output
    assert len(accept.messages) == len(PEOPLE)


def test_sigterm_while_a_sent_message_waits_for_its_reply_marks_it_unknown(
        project: Path, cli: Cli) -> None:
    server = HostileSmtp(after_data=lambda n: STALL if n == 1 else ACCEPT, stall_seconds=60)
    try:
        known_people(project, server.port)
        code, _err, elapsed = _sigterm_when(project, lambda: len(server.messages) >= 2)
        assert elapsed < 5, elapsed
        assert code == 1
        found = Counter(states(project).values())
        assert found == Counter({"sent": 1, "unknown": 1}), found
        later = send(cli, project, NOW + timedelta(minutes=5))  # the rest, not the unknown
        assert later.exit_code == 0, later.output
    finally:
        server.close()
    assert max(server.keys().values()) == 1
    assert len(server.messages) == len(PEOPLE)
