"""`forget` at the same moment as `send`, `events pull` and `inbox`, round after round: nothing is
sent twice, no event is lost, and once forget has returned no byte of the address is left
under .ldmail/ or in what any later command prints.

Each round adds two people (one whose relay rejects the address with a reply that names it)
and forgets the two of the round before, while their bounce waits in the mailbox, their new
statements wait in the LRS, and a send, a pull and an inbox run start with the forgets.
"""

from __future__ import annotations

import json
import mailbox
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import pytest

from ..projects import NOW, write_people
from .bounce_mails import postfix_bounce
from .conftest import Cli, CliResult
from .smtp_server import (
    SmtpServer,
    http_serving,
    known_people,
    ldmail_running,
    ledger_rows,
    send,
    start_ldmail,
    wait_for,
)
from .test_events import statement
from .test_inbox import use_inbox
from .test_lrs import configure

ROUNDS = 20
PAGE_DELAY = 0.02  # seconds per page: a pull spans the other commands of its round

def rows(emails: list[str]) -> dict[str, str]:
    """The export's row of each learner (a name of their own, from their address)."""
    return {email: f"Learner;{email.split('@')[0].title()};EN;Sales;03-02-2019;"
            for email in emails}


class _StandIn(BaseHTTPRequestHandler):
    """An LRS that answers `since` (exclusive, by `stored`), `limit` and a `more` link."""

    statements: list[dict[str, Any]] = []
    held = threading.Event()  # set when a request for a later page is held back
    gate = threading.Event()  # later pages wait for it

    def do_GET(self) -> None:  # noqa: N802 (the name http.server calls)
        query = parse_qs(urlsplit(self.path).query)
        if "offset" in query:
            self.held.set()
            self.gate.wait(60)
        since = query.get("since", [""])[0]
        limit, offset = int(query.get("limit", ["10"])[0]), int(query.get("offset", ["0"])[0])
        newer = [item for item in list(self.statements) if item["stored"] > since]
        more = "" if len(newer) <= offset + limit else \
            f"/xAPI/statements?since={quote(since)}&limit={limit}&offset={offset + limit}"
        time.sleep(PAGE_DELAY)
        body = json.dumps({"statements": newer[offset:offset + limit], "more": more}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def lrs() -> Iterator[tuple[list[dict[str, Any]], str]]:
    statements: list[dict[str, Any]] = []
    _StandIn.statements = statements
    _StandIn.held, _StandIn.gate = threading.Event(), threading.Event()
    _StandIn.gate.set()
    with http_serving(_StandIn) as base:
        yield statements, f"{base}/xAPI"


def completions(statements: list[dict[str, Any]], emails: list[str]) -> None:
    """One statement per person, each stored (and done) a second after the one before."""
    start = datetime(2026, 11, 1, 9, tzinfo=UTC)
    for email in emails:
        moment = (start + timedelta(seconds=len(statements))).isoformat()
        statements.append({**statement(email, "completed", "course:excel", moment),
                           "id": str(uuid.uuid4()), "stored": moment})


def every_byte(root: Path) -> bytes:
    return b"".join(path.read_bytes() for path in sorted(root.rglob("*"))
                    if path.is_file() and not path.is_symlink())


def forget_command(email: str, project: Path) -> list[str | Path]:
    return ["forget", email, "--project", project]


def run_together(*commands: list[str | Path]) -> list[tuple[list[str | Path], int, str]]:
    """Start every command at once; (command, exit code, stdout + stderr) of each."""
    started = [(command, start_ldmail(*command)) for command in commands]
    finished = []
    for command, process in started:
        out, err = process.communicate(timeout=300)
        finished.append((command, process.returncode, out + err))
    return finished


PERSON = "ann.devries@example.org"


@contextmanager
def pull_held_at_page_two(project: Path, lrs: tuple[list[dict[str, Any]], str],
                          monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """`events pull` that has recorded page 1 and waits for page 2, which holds PERSON's
    statement; page 2 comes once the block ends, and the pull's exit code, stdout and stderr
    are then added to the list yielded."""
    statements, endpoint = lrs
    configure(project, endpoint, monkeypatch, page_size=5)
    completions(statements, [f"learner{n}@example.org" for n in range(5)] + [PERSON])
    _StandIn.gate.clear()
    ended: list[str] = []
    with ldmail_running("events", "pull", "--project", project) as pull:
        assert _StandIn.held.wait(60), "the pull did not ask for page 2"
        try:
            yield ended
        finally:
            _StandIn.gate.set()
            ended.extend([str(pull.wait(60)), *pull.communicate(timeout=60)])


def test_forget_during_a_slow_pull_waits_and_the_pull_keeps_only_the_hash(
        project: Path, cli: Cli, lrs: tuple[list[dict[str, Any]], str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Forget waits for the pull to end, and the pull records the person's statement (read
    after forget began) under the hash."""
    gone: list[CliResult] = []
    forgetting = threading.Thread(target=lambda: gone.append(
        cli("forget", PERSON, "--project", project)))
    with pull_held_at_page_two(project, lrs, monkeypatch) as pull:
        forgetting.start()
        wait_for(lambda: bool(ledger_rows(project, "SELECT 1 FROM suppressions WHERE source ="
                                                   " 'forget'")), 30, "forget to begin")
        time.sleep(0.5)  # forget waits for the pull (it would be done in far less)
        assert forgetting.is_alive()
    forgetting.join(60)
    code, out, err = pull
    assert code == "0" and "pulled 6 statements: 6 goal events recorded" in out, err
    assert gone[0].exit_code == 0, gone[0].output
    recorded = ledger_rows(project, "SELECT email FROM events")
    assert len(recorded) == 6 and sum(r["email"].startswith("forgotten:") for r in recorded) == 1
    assert PERSON.encode() not in every_byte(project / ".ldmail")


def test_forget_that_cannot_wait_long_enough_says_so_in_one_line(
        project: Path, cli: Cli, lrs: tuple[list[dict[str, Any]], str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    with pull_held_at_page_two(project, lrs, monkeypatch) as pull:
        stuck = cli("forget", PERSON, "--wait", "0.5", "--project", project)
    code, _out, err = pull
    assert stuck.exit_code == 1 and "Traceback" not in stuck.output, stuck.output
    assert stuck.stderr.strip().count("\n") == 0 and PERSON not in stuck.output
    assert "a running events pull or inbox run still works on this ledger after 0.5 s; the " \
        "person is suppressed and no command stores their address again, but nothing was " \
        "erased yet: run forget again once it has ended" in stuck.stderr, stuck.stderr
    assert code == "0", err
    assert PERSON.encode() not in every_byte(project / ".ldmail")  # stored as the hash
    assert cli("forget", PERSON, "--project", project).exit_code == 0


@pytest.mark.slow
def test_forget_with_send_pull_and_inbox_at_once(
        project: Path, cli: Cli, smtp_server: SmtpServer,
        lrs: tuple[list[dict[str, Any]], str], monkeypatch: pytest.MonkeyPatch) -> None:
    statements, endpoint = lrs
    known_people(project, smtp_server.port)
    configure(project, endpoint, monkeypatch, page_size=5)
    use_inbox(project, kind="maildir", path="exports/inbox")
    (project / "exports").mkdir()
    box = mailbox.Maildir(project / "exports" / "inbox", create=True)
    people = [f"learner{n:02d}@example.org" for n in range(10)]
    write_people(project, rows(people))
    assert send(cli, project, NOW).exit_code == 0
    forgotten: list[str] = []
    targets = people[:2]
    outputs: list[tuple[int, str]] = []  # (round, output) of every command
    for round_ in range(ROUNDS):
        accepted, rejected = f"new{round_:02d}a@example.org", f"new{round_:02d}b@example.org"
        smtp_server.data_replies(rejected, f"550 5.1.1 <{rejected}>: Recipient address "
                                           "rejected: User unknown")
        people = [email for email in people if email not in targets] + [accepted, rejected]
        write_people(project, rows(people))
        for target in targets:  # its bounce waits in the mailbox, its events in the LRS
            for received in smtp_server.to(target):
                box.add(postfix_bounce(received.data, target))
        completions(statements, people + targets)
        when = (NOW + timedelta(minutes=10 * (round_ + 1))).isoformat()
        finished = run_together(
            ["send", "--wait", "120", "--project", project, "--now", when],
            ["events", "pull", "--project", project],
            ["inbox", "--project", project, "--now", when],
            *(forget_command(target, project) for target in targets))
        for command, code, output in finished:
            assert "Traceback" not in output, (command, output)
            assert code in ((0, 1) if command[0] == "send" else (0,)), (command, output)
            outputs.append((round_, output))
        forgotten += targets
        left = every_byte(project / ".ldmail")
        for email in forgotten:
            assert email.encode() not in left, (round_, email)
        targets = [accepted, rejected]

    final = cli("events", "pull", "--project", project)
    assert final.exit_code == 0, final.output
    for round_, output in outputs:  # what any command printed after the person was forgotten
        for email in forgotten[:2 * round_]:
            assert email not in output, (round_, email, output)
    assert not [e for e in forgotten if e in final.output + cli(
        "report", "--project", project).output + cli("history", e, "--project", project).output]
    keys = smtp_server.keys()
    assert len(keys) == len(set(keys))  # nothing received twice
    recorded = ledger_rows(project, "SELECT statement, email FROM events")
    assert sorted(row["statement"] for row in recorded) == sorted(s["id"] for s in statements)
    hashed = [row for row in recorded if row["email"].startswith("forgotten:")]
    assert hashed and len(hashed) < len(recorded)
    left = every_byte(project / ".ldmail")
    assert not [email for email in forgotten if email.encode() in left]
