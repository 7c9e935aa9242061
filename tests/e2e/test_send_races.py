"""What an operator does while a send runs, and a template mistake, never cost a message.

`forget`, `suppress` and a goal event arrive in the middle of a 200-message send to a slow
server; a template typo holds messages until it is fixed.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from ..projects import NOW, PEOPLE, write_people
from .conftest import Cli, summary_line
from .hostile_smtp import HostileSmtp
from .smtp_server import (
    SmtpServer,
    known_people,
    ldmail_running,
    ledger_rows,
    send,
    serve,
    states,
    wait_for,
)

ORDER = [f"learner{i:03d}@example.org" for i in range(200)]


@pytest.fixture
def slow_server() -> Iterator[HostileSmtp]:
    server = HostileSmtp(reply_delay=0.03)
    try:
        yield server
    finally:
        server.close()


def _ledger_bytes(project: Path) -> bytes:
    folder = project / ".ldmail"
    return b"".join(path.read_bytes() for path in sorted(folder.glob("ledger.db*"))
                    if path.is_file())


def test_forget_suppress_and_a_goal_during_a_send_stop_their_messages(
        project: Path, cli: Cli, slow_server: HostileSmtp, tmp_path: Path) -> None:
    known_people(project, slow_server.port)
    rest = list(PEOPLE.values())
    write_people(project, {email: rest[i % len(rest)] for i, email in enumerate(ORDER)})
    forgotten, suppressed, converted = ORDER[150], ORDER[160], ORDER[170]
    events = tmp_path / "lms.csv"
    events.write_text(f"email;event;object;timestamp\n{converted};registered;course:any;"
                      "2026-12-01 09:00\n", encoding="utf-8")

    with ldmail_running("send", "--project", project, "--now", NOW.isoformat()) as process:
        wait_for(lambda: len(slow_server.messages) >= 20, 60, "the send to start")
        quiet = cli("suppress", suppressed, "--project", project)
        assert quiet.exit_code == 0 and "is now suppressed" in quiet.stdout
        goal = cli("events", "import", events, "--project", project)
        assert goal.exit_code == 0, goal.output
        gone = cli("forget", forgotten, "--project", project)  # waits for the send to end
        assert gone.exit_code == 0, gone.output
        assert "the running send mails them nothing more" in gone.stderr
        assert len(slow_server.messages) == 197  # it returned once the send was done
        assert forgotten.encode() not in _ledger_bytes(project)
        _out, err = process.communicate(timeout=120)
    assert process.returncode == 0, err
    recipients = [key[2] for key in slow_server.keys()]
    assert len(recipients) == len(set(recipients)) == 197
    assert {forgotten, suppressed, converted}.isdisjoint(recipients)
    assert forgotten.encode() not in _ledger_bytes(project)
    assert not list((project / ".ldmail").rglob("*.eml"))  # SMTP: no outbox files at all
    # As forget says: the person leaves the HR export too (else the next run stages the row).
    write_people(project, {email: rest[i % len(rest)] for i, email in enumerate(ORDER)
                           if email != forgotten})
    later = send(cli, project, NOW + timedelta(days=4))  # the second step: not to them either
    assert later.exit_code == 0, later.output
    assert {forgotten, suppressed, converted}.isdisjoint(key[2] for key in slow_server.keys())
    assert forgotten.encode() not in _ledger_bytes(project)


def test_a_template_typo_holds_messages_until_it_is_fixed(project: Path, cli: Cli) -> None:
    hello = project / "templates" / "en" / "welcome" / "hello.md"
    good = hello.read_text("utf-8")
    hello.write_text(good.replace("person.first_name }},", "person.firstname }},"), "utf-8")
    broken = send(cli, project, NOW)
    assert broken.exit_code == 1
    assert "not sent: campaign 'welcome' does not render: templates/en/welcome/hello.md:1: " \
        "undefined variable: person has no 'firstname'" in broken.stderr
    held = ledger_rows(project, "SELECT state, error FROM messages")
    assert held and {row["state"] for row in held} == {"held"}
    assert all("firstname" in row["error"] for row in held)
    assert not list((project / ".ldmail" / "outbox").glob("*.eml"))
    still = send(cli, project, NOW + timedelta(hours=1))  # not fixed yet: held again, no more
    assert still.exit_code == 1 and len(ledger_rows(project, "SELECT id FROM messages")) == \
        len(held)

    hello.write_text(good, "utf-8")
    fixed = send(cli, project, NOW + timedelta(hours=2))
    assert fixed.exit_code == 0, fixed.output
    assert summary_line(fixed.stdout).startswith(f"sent {len(held)} ")
    assert set(states(project).values()) == {"sent"}
    files = list((project / ".ldmail" / "outbox").glob("*.eml"))
    assert len(files) == len(held)
    again = send(cli, project, NOW + timedelta(hours=3))
    assert summary_line(again.stdout).startswith("sent 0 ")
    assert len(list((project / ".ldmail" / "outbox").glob("*.eml"))) == len(held)


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    yield from serve()


def test_retry_requeues_failed_messages_only_when_asked(project: Path, cli: Cli,
                                                        smtp_server: SmtpServer) -> None:
    known_people(project, smtp_server.port)
    smtp_server.data_replies("bob@example.org", "554 5.7.1 message refused by policy")
    first = send(cli, project, NOW)
    assert first.exit_code == 1 and "failed: welcome/hello to bob@example.org: 554" in \
        first.stderr
    assert summary_line(send(cli, project, NOW + timedelta(hours=1)).stdout).startswith("sent 0 ")
    held_only = cli("retry", "--project", project, "--now", NOW.isoformat())
    assert held_only.exit_code == 0 and held_only.stdout.startswith("No held messages to requeue")
    wrong = cli("retry", "--failed", "--campaign", "welcome", "--step", "nope", "--project",
                project)
    assert wrong.exit_code == 2 and "has no step 'nope'" in wrong.output
    requeued = cli("retry", "--failed", "--campaign", "welcome", "--step", "hello",
                   "--project", project, "--now", (NOW + timedelta(hours=2)).isoformat())
    assert requeued.exit_code == 0, requeued.output
    assert requeued.stdout.startswith("1 held or failed message(s) requeued")
    again = send(cli, project, NOW + timedelta(hours=2))
    assert again.exit_code == 0 and summary_line(again.stdout).startswith("sent 1 "), again.output
    assert Counter(r.rcpt_tos[0] for r in smtp_server.received)["bob@example.org"] == 1
    assert states(project)[("welcome", "hello", "bob@example.org")] == "sent"
