"""`ldmail run`: the send job on an interval, and a clean stop on SIGTERM."""

from __future__ import annotations

import signal
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path

from ..projects import NOW, PEOPLE, from_iso
from .conftest import Cli
from .smtp_server import SmtpServer, ledger_rows, send, start_ldmail, states


def recipients(server: SmtpServer) -> Counter[str]:
    return Counter(r.rcpt_tos[0] for r in server.received)


def test_run_sends_on_an_interval_and_stops_after_the_runs_asked_for(
        mailing: Path, cli: Cli, smtp_server: SmtpServer) -> None:
    started = time.monotonic()
    result = cli("run", "--interval", "1s", "--runs", "2", "--project", mailing,
                 "--now", NOW.isoformat())
    assert result.exit_code == 0, result.output
    assert time.monotonic() - started < 15
    assert recipients(smtp_server) == Counter(PEOPLE.keys())
    runs = ledger_rows(mailing, "SELECT command, now, status FROM runs ORDER BY id")
    assert [(r["command"], r["status"]) for r in runs] == [("send", "ok")] * 2
    first, second = (from_iso(r["now"]) for r in runs)
    assert abs(first - NOW) < timedelta(seconds=5)  # --now moves the scheduler's clock too
    assert timedelta(seconds=0.5) < second - first < timedelta(seconds=10)


def test_sigterm_mid_send_finishes_the_message_in_hand_and_exits_0(
        mailing: Path, cli: Cli, smtp_server: SmtpServer) -> None:
    order = list(PEOPLE)
    in_data = smtp_server.pause_data(order[1], 20)
    process = start_ldmail("run", "--interval", "1s", "--project", mailing,
                           "--now", NOW.isoformat())
    try:
        assert in_data.started.wait(30), "the run never reached the second message"
        process.send_signal(signal.SIGTERM)  # while the second message is in hand
        time.sleep(0.3)
        in_data.release()
        _, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, stderr
    assert "SIGTERM" in stderr

    found = states(mailing)
    assert "claimed" not in found.values()
    # The message in hand was finished and recorded; the rest waits for the next start.
    assert recipients(smtp_server) == Counter(order[:2])
    assert {found[("welcome", "hello", e)] for e in order[:2]} == {"sent"}
    assert not [k for k in found if k[2] in order[2:]]
    later = send(cli, mailing, NOW + timedelta(minutes=1))
    assert later.exit_code == 0, later.output
    assert recipients(smtp_server) == Counter(PEOPLE.keys())


def test_sigterm_between_runs_exits_0_at_once(mailing: Path, smtp_server: SmtpServer) -> None:
    process = start_ldmail("run", "--interval", "1h", "--project", mailing,
                           "--now", NOW.isoformat())
    try:
        deadline = time.monotonic() + 30
        while len(smtp_server.received) < len(PEOPLE) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(smtp_server.received) == len(PEOPLE)
        time.sleep(0.3)  # let the run record its last message and finish
        stopped = time.monotonic()
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, stderr
    assert time.monotonic() - stopped < 5
    assert set(states(mailing).values()) == {"sent"}
