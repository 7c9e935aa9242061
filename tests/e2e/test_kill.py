"""SIGKILL in the middle of a send: `python -m ldmail send` is killed while the SMTP server holds
one message's DATA. Nothing may arrive twice, the message in flight becomes `unknown` and stays
so until the user asks for it with `--resend-unknown`.
"""

from __future__ import annotations

import os
import signal
import stat
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest

from ..projects import NOW, PEOPLE
from .conftest import Cli, summary_line
from .smtp_server import (
    SmtpServer,
    history_messages,
    known_people,
    ledger_rows,
    send,
    start_ldmail,
    states,
)


# The scaffold's campaign has two steps, three days apart: kill the first, or the last.
@pytest.mark.parametrize("step", ["hello", "first-course"])
def test_sigkill_mid_send_leaves_the_message_unknown_and_sends_nothing_twice(
        project: Path, cli: Cli, smtp_server: SmtpServer, step: str) -> None:
    known_people(project, smtp_server.port)
    order = list(PEOPLE)
    now = NOW
    if step == "first-course":
        assert send(cli, project, now).exit_code == 0
        now += timedelta(days=3)
    done = len(smtp_server.received)
    victim = order[2]  # the third message of the run
    in_data = smtp_server.pause_data(victim, 30)

    process = start_ldmail("send", "--project", project, "--now", now.isoformat())
    try:
        assert in_data.started.wait(30), "the run never reached the third message"
        # Claimed in the ledger before it was handed over: the at-most-once guarantee.
        assert states(project)[("welcome", step, victim)] == "claimed"
        # A dry run meanwhile sees a send in progress, not an interrupted one.
        live = send(cli, project, now, "--dry-run")
        assert live.exit_code == 0, live.output
        assert "were being sent" not in live.stderr and "would send 2 " in live.stdout
        os.kill(process.pid, signal.SIGKILL)
        process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == -signal.SIGKILL
    for path in (project / ".ldmail").iterdir():  # what SQLite left behind is private too
        assert path.is_dir() or stat.S_IMODE(path.stat().st_mode) == 0o600, path

    def of_step() -> dict[str, str]:
        return {e: s for (_, st, e), s in states(project).items() if st == step}

    assert of_step() == {order[0]: "sent", order[1]: "sent", victim: "claimed"}
    assert [r.rcpt_tos[0] for r in smtp_server.received[done:]] == order[:2]
    dead = send(cli, project, now, "--dry-run")  # now the claim is an interrupted one
    assert dead.exit_code == 1 and "1 message(s) were being sent" in dead.stderr
    assert of_step()[victim] == "claimed"  # … and a dry run still changes nothing

    # The next run reports the interrupted message as unknown, does not resend it, and sends
    # the rest.
    rerun = send(cli, project, now + timedelta(minutes=1))
    assert rerun.exit_code == 1, rerun.output
    assert "1 message(s) were being sent when an earlier run stopped" in rerun.stderr
    assert "--resend-unknown" in rerun.stderr
    assert "unknown 1" in rerun.stdout
    assert of_step() == {e: "unknown" if e == victim else "sent" for e in order}
    assert victim not in {r.rcpt_tos[0] for r in smtp_server.received[done:]}

    # It stays unknown, run after run, until asked for.
    quiet = send(cli, project, now + timedelta(minutes=2))
    assert quiet.exit_code == 0, quiet.output
    assert "unknown 1" in quiet.stdout and "were being sent" not in quiet.stderr
    assert of_step()[victim] == "unknown"
    history = cli("history", victim, "--project", project)
    shown_states = history_messages(history.stdout)[1]
    assert shown_states.count("unknown") == 1 and "interrupted" in history.stdout

    resend = send(cli, project, now + timedelta(minutes=3), "--resend-unknown")
    assert resend.exit_code == 0, resend.output
    assert "1 unknown message(s) queued to resend" in resend.stdout
    assert summary_line(resend.stdout).startswith("sent 1 "), resend.stdout
    assert of_step() == dict.fromkeys(order, "sent")
    keys = Counter(r.key for r in smtp_server.received[done:])
    assert keys == Counter(("welcome", step, e) for e in order)  # each exactly once
    if step == "first-course":  # every step delivered: the enrolments are complete again
        enrolments = ledger_rows(project, "SELECT state FROM enrolments")
        assert {e["state"] for e in enrolments} == {"completed"}
