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

from ..projects import BACKOFF, NOW, PEOPLE, iso, write_people
from .conftest import Cli, summary_line
from .smtp_server import (
    DROP,
    SmtpServer,
    free_port,
    known_people,
    ledger_rows,
    send,
    start_ldmail,
    states,
)


def message(project: Path, email: str, step: str = "hello") -> dict[str, object]:
    rows = ledger_rows(project, "SELECT * FROM messages WHERE email = ? AND step = ?",
                       (email, step))
    assert len(rows) == 1, rows
    return rows[0]


def recipients(server: SmtpServer) -> Counter[str]:
    return Counter(r.rcpt_tos[0] for r in server.received)




# -- 4. SMTP faults -----------------------------------------------------------------------------


@pytest.mark.parametrize("stage", ["rcpt", "data"])
def test_temporary_refusal_is_deferred_then_delivered_after_the_backoff(
        mailing: Path, cli: Cli, smtp_server: SmtpServer, stage: str) -> None:
    script = smtp_server.rcpt_replies if stage == "rcpt" else smtp_server.data_replies
    script("bob@example.org", "451 4.7.1 Greylisted, please try again later")

    first = send(cli, mailing, NOW)
    assert first.exit_code == 0, first.output  # a deferral is not a failure
    assert "retry later 1" in summary_line(first.stdout)
    row = message(mailing, "bob@example.org")
    assert row["state"] == "deferred" and row["attempts"] == 1
    assert str(row["error"]).startswith("451 4.7.1 Greylisted")
    assert row["next_attempt_at"] == iso(NOW + BACKOFF)
    assert "bob@example.org" not in recipients(smtp_server)
    assert set(recipients(smtp_server)) == set(PEOPLE) - {"bob@example.org"}

    early = send(cli, mailing, NOW + BACKOFF / 2)
    assert early.exit_code == 0, early.output
    assert summary_line(early.stdout).startswith("sent 0 ")
    assert message(mailing, "bob@example.org")["state"] == "deferred"

    later = send(cli, mailing, NOW + BACKOFF + timedelta(minutes=1))
    assert later.exit_code == 0, later.output
    assert summary_line(later.stdout).startswith("sent 1 ")
    row = message(mailing, "bob@example.org")
    assert row["state"] == "sent" and row["attempts"] == 2 and row["error"] is None
    assert recipients(smtp_server) == Counter(PEOPLE.keys())  # everyone exactly once
    log = [entry for entry in smtp_server.log if entry[1] == "bob@example.org"]
    assert [reply[:3] for _, _, reply in log] == (
        ["451", "250", "250"] if stage == "rcpt" else ["250", "451", "250", "250"])


@pytest.mark.parametrize("stage", ["rcpt", "data"])
def test_unknown_user_fails_that_message_only_and_suppresses_the_address(
        mailing: Path, cli: Cli, smtp_server: SmtpServer, stage: str) -> None:
    reason = "550 5.1.1 <bob@example.org>: Recipient address rejected: User unknown"
    script = smtp_server.rcpt_replies if stage == "rcpt" else smtp_server.data_replies
    script("bob@example.org", reason)

    result = send(cli, mailing, NOW)
    assert result.exit_code == 1, result.output
    assert "failed 1" in summary_line(result.stdout)
    assert "failed: welcome/hello to bob@example.org: 550 5.1.1" in result.stderr
    row = message(mailing, "bob@example.org")
    assert row["state"] == "failed" and reason in str(row["error"])
    suppressed = ledger_rows(mailing, "SELECT * FROM suppressions")
    assert [s["email"] for s in suppressed] == ["bob@example.org"]
    assert "550 5.1.1" in suppressed[0]["reason"]
    assert recipients(smtp_server) == Counter(set(PEOPLE) - {"bob@example.org"})

    # Three days on, everyone else gets the second step; the suppressed address gets nothing.
    later = send(cli, mailing, NOW + timedelta(days=3))
    assert later.exit_code == 0, later.output
    assert summary_line(later.stdout).startswith(f"sent {len(PEOPLE) - 1} ")
    assert "bob@example.org" not in recipients(smtp_server)
    assert "bob@example.org" not in smtp_server.rcpts[-(len(PEOPLE) - 1):]
    enrolment = ledger_rows(mailing, "SELECT state FROM enrolments WHERE email = ?",
                            ("bob@example.org",))
    assert enrolment == [{"state": "left"}]
    history = cli("history", "bob@example.org", "--project", mailing)
    assert "Suppressed since" in history.stdout and "550 5.1.1" in history.stdout


def test_permanent_refusal_of_the_content_fails_without_suppressing(
        mailing: Path, cli: Cli, smtp_server: SmtpServer) -> None:
    smtp_server.data_replies("ann@example.org", "554 5.7.1 Message rejected as spam")
    result = send(cli, mailing, NOW)
    assert result.exit_code == 1, result.output
    row = message(mailing, "ann@example.org")
    assert row["state"] == "failed" and "554 5.7.1" in str(row["error"])
    assert ledger_rows(mailing, "SELECT * FROM suppressions") == []
    assert recipients(smtp_server) == Counter(set(PEOPLE) - {"ann@example.org"})
    again = send(cli, mailing, NOW + timedelta(hours=1))  # a failure is never retried
    assert summary_line(again.stdout).startswith("sent 0 ")
    assert "ann@example.org" not in recipients(smtp_server)


def test_connection_refused_claims_nothing_and_everything_stays_due(project: Path,
                                                                     cli: Cli) -> None:
    port = free_port()  # nothing listens there
    known_people(project, port)

    result = send(cli, project, NOW)
    assert result.exit_code == 1, result.output
    assert re.search(rf"transport unavailable: .*127\.0\.0\.1:{port}.*refused", result.stderr,
                     re.I), result.stderr
    assert f"all {len(PEOPLE)} due message(s) wait" in result.stderr
    assert ledger_rows(project, "SELECT * FROM messages") == []  # nothing was claimed
    dry = send(cli, project, NOW, "--dry-run")
    assert summary_line(dry.stdout).startswith(f"would send {len(PEOPLE)} ")

    with SmtpServer() as server:
        known_people(project, server.port)
        retry = send(cli, project, NOW + timedelta(minutes=5))
        assert retry.exit_code == 0, retry.output
        assert recipients(server) == Counter(PEOPLE.keys())
    assert set(states(project).values()) == {"sent"}


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


def test_line_break_in_a_name_injects_no_header_and_holds_that_message(
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
    assert row["state"] == "held" and "line break" in str(row["error"])
    assert re.search(r"held: welcome/hello to eve@example\.org: .*line break", result.stderr)
    again = send(cli, mailing, NOW + timedelta(hours=1))  # held until the export is fixed
    assert summary_line(again.stdout).startswith("sent 0 ") and again.exit_code == 1
    assert "eve@example.org" not in smtp_server.rcpts
    people["eve@example.org"] = "Eve;Doe;EN;HR;01-01-2015;"
    write_people(mailing, people)
    fixed = send(cli, mailing, NOW + timedelta(hours=2))
    assert fixed.exit_code == 0 and summary_line(fixed.stdout).startswith("sent 1 ")
    assert recipients(smtp_server)["eve@example.org"] == 1


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
    sent = sorted(int(m[1]) for out, _ in outputs
                  if (m := re.search(r"^(?:\S+ )?sent (\d+) ", out, re.M)))
    if wait == "0":
        assert len(busy) == 1 and sent == [len(PEOPLE)], outputs
    else:  # the second waited for the first, then found nothing left to send
        assert not busy and sent == [0, len(PEOPLE)], outputs
    assert set(states(mailing).values()) == {"sent"}
    runs_table = ledger_rows(mailing, "SELECT status FROM runs")
    assert [r["status"] for r in runs_table] == ["ok"] * (1 if wait == "0" else 2)
