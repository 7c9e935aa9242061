"""`ldmail send` against a real SMTP server on loopback when things go wrong: temporary and
permanent refusals, a server that is not there, dropped connections (for one message, and
between messages), header injection from the people export, and two runs started at once.
Section numbers follow the delivery test plan.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest

from .conftest import Cli
from .smtp_server import (
    BACKOFF,
    DROP,
    NOW,
    PEOPLE,
    SmtpServer,
    free_port,
    iso,
    known_people,
    ledger_rows,
    send,
    start_ldmail,
    states,
    write_people,
)


def message(project: Path, email: str, step: str = "hello") -> dict[str, object]:
    rows = ledger_rows(project, "SELECT * FROM messages WHERE email = ? AND step = ?",
                       (email, step))
    assert len(rows) == 1, rows
    return rows[0]


def recipients(server: SmtpServer) -> Counter[str]:
    return Counter(r.rcpt_tos[0] for r in server.received)


def summary_line(output: str) -> str:
    match = re.search(r"^(would send|sent) \d+ .*$", output, re.M)
    assert match, output
    return match[0]


# -- 4. SMTP faults -----------------------------------------------------------------------------


def test_dropped_connection_before_data_defers_that_message_and_the_run_reconnects(
        mailing: Path, cli: Cli, smtp_server: SmtpServer) -> None:
    # Twice: a reused connection found dropped is retried once at once.
    smtp_server.rcpt_replies("bob@example.org", DROP, DROP)
    result = send(cli, mailing, NOW)
    assert result.exit_code == 0, result.output
    row = message(mailing, "bob@example.org")
    assert row["state"] == "deferred" and "connection" in str(row["error"]).lower()
    # Everyone after bob in the export was still delivered, over a new connection.
    assert recipients(smtp_server) == Counter(set(PEOPLE) - {"bob@example.org"})

    later = send(cli, mailing, NOW + BACKOFF + timedelta(minutes=1))
    assert later.exit_code == 0, later.output
    assert recipients(smtp_server) == Counter(PEOPLE.keys())


def test_a_reply_lost_after_the_whole_message_makes_it_unknown(
        mailing: Path, cli: Cli, smtp_server: SmtpServer) -> None:
    # The content and its final "." went out; the server may hold it: never resent blindly.
    smtp_server.data_replies("bob@example.org", DROP)
    result = send(cli, mailing, NOW)
    assert result.exit_code == 1, result.output
    assert "unknown: welcome/hello to bob@example.org" in result.stderr
    row = message(mailing, "bob@example.org")
    assert row["state"] == "unknown" and "reply was lost" in str(row["error"])
    assert recipients(smtp_server) == Counter(set(PEOPLE) - {"bob@example.org"})

    later = send(cli, mailing, NOW + BACKOFF + timedelta(minutes=1))
    assert later.exit_code == 0, later.output  # reported once; not a failure of every run
    assert "unknown 1" in later.stdout
    assert "bob@example.org" not in recipients(smtp_server)
    again = send(cli, mailing, NOW + BACKOFF + timedelta(minutes=2), "--resend-unknown")
    assert again.exit_code == 0, again.output
    assert recipients(smtp_server) == Counter(PEOPLE.keys())


def test_a_connection_the_server_closed_between_messages_is_reopened_at_once(
        mailing: Path, cli: Cli, smtp_server: SmtpServer) -> None:
    # Nothing of the next message was handed over when the drop shows, so sending it at once
    # over a new connection cannot duplicate it; deferring it would only delay it.
    smtp_server.messages_per_connection = 2
    result = send(cli, mailing, NOW)
    assert result.exit_code == 0, result.output
    assert summary_line(result.stdout).startswith(f"sent {len(PEOPLE)} ")
    assert recipients(smtp_server) == Counter(PEOPLE.keys())
    assert smtp_server.connections_dropped == 2
    assert set(states(mailing).values()) == {"sent"}


# -- 8. header injection from the people export --------------------------------------------------


def test_line_break_in_a_name_injects_no_header_and_fails_that_message(
        mailing: Path, cli: Cli, smtp_server: SmtpServer) -> None:
    people = dict(PEOPLE)
    people["eve@example.org"] = '"Eve\r\nBcc: evil@example.org";Doe;EN;HR;01-01-2015;'
    write_people(mailing, people)

    result = send(cli, mailing, NOW)
    assert result.exit_code == 1, result.output
    assert not [a for a in smtp_server.rcpts if "evil" in a.lower()]
    assert smtp_server.rcpts == [r.rcpt_tos[0] for r in smtp_server.received]
    assert recipients(smtp_server) == Counter(PEOPLE.keys())  # everyone but eve, once each
    for item in smtp_server.received:
        headers = item.data.split(b"\r\n\r\n", 1)[0]
        assert not re.search(rb"^bcc:", headers, re.I | re.M) and b"evil" not in headers
    row = message(mailing, "eve@example.org")
    assert row["state"] == "failed" and "line break" in str(row["error"])
    assert re.search(r"failed: welcome/hello to eve@example\.org: .*line break", result.stderr)
    again = send(cli, mailing, NOW + timedelta(hours=1))  # refused for good, not retried
    assert summary_line(again.stdout).startswith("sent 0 ")
    assert "eve@example.org" not in smtp_server.rcpts


# -- 6. two runs at once ----------------------------------------------------------------------


@pytest.mark.parametrize("wait", ["0", "30"])
def test_two_runs_started_together_never_send_a_message_twice(
        mailing: Path, smtp_server: SmtpServer, wait: str) -> None:
    # The first message's DATA is held until the other run has had its go at the lock, so the
    # two runs certainly overlap.
    hold = smtp_server.pause_data("ann@example.org", 20)
    args = ("send", "--project", mailing, "--now", NOW.isoformat(), "--wait", wait)
    runs = [start_ldmail(*args), start_ldmail(*args)]
    try:
        assert hold.started.wait(30), "no run reached the first message"
        if wait == "0":  # the other run gives up at once
            deadline = time.monotonic() + 30
            while all(run.poll() is None for run in runs) and time.monotonic() < deadline:
                time.sleep(0.02)
        else:  # the other run is waiting for the lock meanwhile
            time.sleep(0.5)
        hold.release()
        outputs = [run.communicate(timeout=60) for run in runs]
    finally:
        for run in runs:
            if run.poll() is None:
                run.kill()
                run.communicate()
    assert [run.returncode for run in runs] == [0, 0], outputs

    assert recipients(smtp_server) == Counter(PEOPLE.keys())  # each exactly once
    busy = [out for out, _ in outputs if "another ldmail send is running" in out]
    sent = sorted(int(m[1]) for out, _ in outputs if (m := re.search(r"^sent (\d+) ", out, re.M)))
    if wait == "0":
        assert len(busy) == 1 and sent == [len(PEOPLE)], outputs
    else:  # the second waited for the first, then found nothing left to send
        assert not busy and sent == [0, len(PEOPLE)], outputs
    assert set(states(mailing).values()) == {"sent"}
    runs_table = ledger_rows(mailing, "SELECT status FROM runs")
    assert [r["status"] for r in runs_table] == ["ok"] * (1 if wait == "0" else 2)
