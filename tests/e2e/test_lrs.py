"""`ldmail events pull` against a real Learning Record Store (Ralph, file-system backend) and,
for what Ralph cannot produce (a 429, an absolute `more`, an answer that is not JSON), a tiny
scripted stand-in."""

from __future__ import annotations

import json
import os
import random
import re
import resource
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
import zlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import httpx
import pytest

from ldmail.project.schedule import in_holdout

from ..projects import PEOPLE, edit_yaml
from .conftest import REPO, Cli
from .smtp_server import SmtpServer, free_port, http_serving, ldmail_running, ledger_rows, wait_for
from .test_events import CONTROLLED, assert_only_plain_events, events, refusal, statement
from .test_report import DAY_1, DAY_4, SCAFFOLD_PEOPLE, rows, send

PASSWORD = "s3cret-reader"
ENV = "LDMAIL_TEST_LRS_PASSWORD"


@dataclass
class Ralph:
    endpoint: str
    data: Path
    log: Path  # its access log

    def post(self, statements: list[dict[str, Any]]) -> None:
        answer = httpx.post(f"{self.endpoint}/statements", json=statements,
                            auth=("reader", PASSWORD),
                            headers={"X-Experience-API-Version": "1.0.3"}, timeout=30)
        assert answer.status_code == 200, answer.text

    def append(self, statements: list[dict[str, Any]]) -> None:
        """Ralph's fs backend takes one POST per data file: later statements are appended."""
        with (self.data / "fs_lrs.jsonl").open("a", encoding="utf-8") as file:
            for item in statements:
                file.write(json.dumps(item) + "\n")


def ralph_program() -> str | None:
    """Ralph lives in a venv of its own (.venv/ralph, made by ./install.sh test): its CLI
    pins click below what sqlite-utils needs, so it cannot share ldmail's environment."""
    for candidate in (os.environ.get("LDMAIL_RALPH"), str(REPO / ".venv/ralph/bin/ralph")):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    return shutil.which("ralph")


@pytest.fixture(scope="module")
def ralph_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ralph]:
    """One real Ralph for the module's tests (starting one takes seconds); `ralph` empties
    its store before each test."""
    program = ralph_program()
    if program is None:
        pytest.skip("ralph is not installed: run ./install.sh test (it puts Ralph in "
                    ".venv/ralph), or set LDMAIL_RALPH to a ralph program")
    home = tmp_path_factory.mktemp("ralph")
    data = home / "ralph-data"
    env = {**os.environ, "RALPH_APP_DIR": str(home / "ralph-app"),
           "RALPH_RUNSERVER_BACKEND": "fs",
           "RALPH_BACKENDS__LRS__FS__DEFAULT_DIRECTORY_PATH": str(data),
           "RALPH_BACKENDS__DATA__FS__DEFAULT_DIRECTORY_PATH": str(data)}
    made = subprocess.run([program, "auth", "-u", "reader", "-p", PASSWORD, "-s",
                           "statements/read", "-s", "statements/write", "-M",
                           "mailto:reader@example.org", "-w"],
                          env=env, check=False, capture_output=True, text=True, timeout=120)
    assert made.returncode == 0, f"ralph auth failed: {made.stderr[-2000:]}"
    port = free_port()
    log = (home / "ralph.log").open("wb")
    server = subprocess.Popen([program, "runserver", "-b", "fs", "--host", "127.0.0.1",
                               "--port", str(port)], env=env, stdout=log,
                              stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: _beating(port, server, home / "ralph.log"), 60, "ralph to start")
        yield Ralph(f"http://127.0.0.1:{port}/xAPI", data, home / "ralph.log")
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()


def _beating(port: int, server: subprocess.Popen[bytes], log: Path) -> bool:
    assert server.poll() is None, log.read_text()
    try:
        httpx.get(f"http://127.0.0.1:{port}/__heartbeat__", timeout=1)
        return True
    except httpx.TransportError:
        return False


@pytest.fixture
def ralph(ralph_server: Ralph) -> Ralph:
    """The module's Ralph with an empty store: its fs backend reads the file at each query."""
    for stored in ralph_server.data.glob("*"):
        stored.unlink()
    return ralph_server


def configure(project: Path, endpoint: str, monkeypatch: pytest.MonkeyPatch,
              password: str = PASSWORD, page_size: int = 10) -> None:
    monkeypatch.setenv(ENV, password)
    with (project / "ldmail.yaml").open("a", encoding="utf-8") as file:
        file.write(f"\nlrs:\n  endpoint: {endpoint}\n  user: reader\n  password_env: {ENV}\n"
                   f"  page_size: {page_size}\n")


def registrations(first: int, count: int) -> list[dict[str, Any]]:
    return [{**statement(f"learner{n}@example.org", "registered", "course:excel",
                         f"2026-11-{1 + n % 28:02d}T09:00:{n % 60:02d}Z"),
             "id": str(uuid.uuid4())} for n in range(first, first + count)]


def soon() -> datetime:
    """A moment just ahead of now: statements appended to Ralph's file are stored after
    those its API stored, and not so far ahead that the pull takes the LRS's clock for
    wrong (lrs.FUTURE_SKEW)."""
    return datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=2)


def stored_later(first: int, count: int, start: datetime, *,
                 batch: int = 1) -> list[dict[str, Any]]:
    """Registrations for the JSONL file, stored (and, for Ralph 5.1's fs backend, which
    compares `since` with timestamps, happened) 100 ms apart from `start` on, `batch` at a
    time sharing one moment (as a batch POSTed to an LRS shares its stored time)."""
    made = registrations(first, count)
    for n, item in zip(range(first, first + count), made, strict=True):
        moment = start + timedelta(milliseconds=100 * (n // batch))
        item["timestamp"] = item["stored"] = moment.isoformat()
    return made


def statement_requests(ralph: Ralph) -> int:
    """GET requests for statements in Ralph's access log."""
    return ralph.log.read_text().count('"GET /xAPI/statements')


@pytest.mark.slow
def test_a_thousand_statements_in_batches(project: Path, cli: Cli, ralph: Ralph,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """1,000 statements in four batches with pulls in between: each goal event exactly once,
    and a pull with nothing new makes one request and adds nothing."""
    configure(project, ralph.endpoint, monkeypatch, page_size=100)
    ralph.post(registrations(0, 250))  # the first batch through Ralph's xAPI API
    expected = {"pulled 250 statements: 250 goal events recorded (0 already known)"}
    assert next(iter(expected)) in cli("events", "pull", "--project", project).stdout
    start = soon()
    ralph.append(second_batch := stored_later(250, 250, start))
    second = cli("events", "pull", "--project", project)
    assert "pulled 250 statements: 250 goal events recorded (0 already known), 0 skipped; " \
        f"cursor now {second_batch[-1]['stored']}" in second.stdout, second.output
    ralph.append(stored_later(500, 250, start))
    ralph.append(last := stored_later(750, 250, start))  # two batches, one pull: five pages
    third = cli("events", "pull", "--project", project)
    assert "pulled 500 statements: 500 goal events recorded (0 already known), 0 skipped; " \
        f"cursor now {last[-1]['stored']}" in third.stdout, third.output
    recorded = events(project)
    assert len(recorded) == 1000 == len(set(recorded))
    assert {e[0] for e in recorded} == {f"learner{n}@example.org" for n in range(1000)}

    before = statement_requests(ralph)
    idle = cli("events", "pull", "--project", project)
    assert "pulled 0 statements: 0 goal events recorded (0 already known), 0 skipped" \
        in idle.stdout, idle.output
    assert statement_requests(ralph) == before + 1
    assert len(events(project)) == 1000


def recorded_statements(project: Path) -> list[str]:
    try:
        return [r[0] for r in rows(project, "SELECT statement FROM events")]
    except sqlite3.OperationalError:  # the ledger does not have its tables yet
        return []


@pytest.mark.slow
def test_pulls_killed_at_random_lose_no_statement_of_a_shared_stored_time(
        project: Path, ralph: Ralph, monkeypatch: pytest.MonkeyPatch) -> None:
    """`ldmail events pull` killed (SIGKILL) 10 times at random moments while it reads 100
    pages of 10, whose statements share their stored time 7 at a time (so batches straddle
    page boundaries), then run to the end: each of the 1,000 statements recorded exactly
    once."""
    configure(project, ralph.endpoint, monkeypatch, page_size=10)
    statements = stored_later(0, 1000, soon(), batch=7)
    ralph.append(statements)
    command = [sys.executable, "-m", "ldmail", "events", "pull", "--project", str(project)]
    chance = random.Random(17)
    counts: list[int] = []
    while len(counts) < 10 and len(recorded_statements(project)) < 1000:
        before = len(recorded_statements(project))
        puller = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        # Killed once this pull has recorded a random number of new statements, a random
        # moment later: mid-way through reading, checking or recording a page.
        wanted = before + chance.randint(1, 60)
        deadline = time.monotonic() + 60
        while len(recorded_statements(project)) < wanted and puller.poll() is None:
            assert time.monotonic() < deadline, "the pull recorded too little in 60 s"
            time.sleep(0.002)
        time.sleep(chance.uniform(0.0, 0.05))
        puller.kill()
        _, stderr = puller.communicate(timeout=30)
        assert b"Traceback" not in stderr, stderr.decode()
        counts.append(len(recorded_statements(project)))
    assert len([n for n in counts if 0 < n < 1000]) >= 5, counts
    last = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    assert last.returncode == 0, last.stderr
    assert f"0 skipped; cursor now {statements[-1]['stored']}" in last.stdout, last.stdout
    recorded = recorded_statements(project)
    assert sorted(recorded) == sorted(s["id"] for s in statements)
    assert {e[0] for e in events(project)} == {f"learner{n}@example.org" for n in range(1000)}


def test_two_batches_each_event_once(project: Path, cli: Cli, ralph: Ralph,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    configure(project, ralph.endpoint, monkeypatch)
    ralph.post(registrations(0, 35))  # four pages of ten, through Ralph's relative `more`
    first = cli("events", "pull", "--project", project)
    assert first.exit_code == 0, first.output
    assert "pulled 35 statements: 35 goal events recorded (0 already known), 0 skipped" \
        in first.stdout
    later, start = registrations(35, 15), soon()
    for n, item in enumerate(later):
        # Ralph 5.1's fs backend compares `since` with each statement's timestamp (not its
        # stored time): appended statements are stored, and happened, after the cursor.
        item["timestamp"] = (start + timedelta(seconds=n)).isoformat()
        item["stored"] = (start + timedelta(seconds=30)).isoformat()
    ralph.append(later)
    second = cli("events", "pull", "--project", project)
    assert second.exit_code == 0, second.output
    assert "pulled 15 statements: 15 goal events recorded (0 already known), 0 skipped; " \
        f"cursor now {later[0]['stored']}" in second.stdout
    again = cli("events", "pull", "--project", project)
    assert again.exit_code == 0, again.output
    assert "pulled 0 statements: 0 goal events recorded" in again.stdout
    recorded = events(project)
    assert len(recorded) == 50 == len(set(recorded))
    assert {e[0] for e in recorded} == {f"learner{n}@example.org" for n in range(50)}


def test_malformed_statement_skipped_by_id(project: Path, cli: Cli, ralph: Ralph,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    configure(project, ralph.endpoint, monkeypatch)
    ralph.post(registrations(0, 2))
    bad = {**registrations(2, 1)[0], "id": str(uuid.uuid4()),
           "timestamp": soon().isoformat(), "stored": soon().isoformat()}
    bad["object"] = {"objectType": "Activity"}  # no object.id
    ralph.append([bad])
    result = cli("events", "pull", "--project", project)
    assert result.exit_code == 0, result.output
    assert "pulled 3 statements: 2 goal events recorded (0 already known), 1 skipped" \
        in result.stdout
    # Ralph 5.1 answers a page newest first: the position is where the statement stood.
    assert re.search(rf"page 1 statement \d \(id {bad['id']}\): no object.id", result.stdout)


def test_events_pull_refuses_control_characters_by_statement_id(
        project: Path, cli: Cli, ralph: Ralph, monkeypatch: pytest.MonkeyPatch) -> None:
    configure(project, ralph.endpoint, monkeypatch)
    made = [{**statement("ann.devries@example.org", event, course, "2026-12-02T15:00:00Z"),
             "id": str(uuid.uuid4()), "stored": "2026-12-02T15:00:00Z"}
            for event, course in [("completed", "course:excel"),
                                  *((e, c) for e, c, _, _ in CONTROLLED)]]
    ralph.append(made)  # as stored: Ralph's own checks would refuse some of them

    result = cli("events", "pull", "--project", project)

    assert result.exit_code == 0, result.output
    for item, (_, _, what, control) in zip(made[1:], CONTROLLED, strict=True):
        assert re.search(rf"statement \d+ \(id {item['id']}\): {re.escape(refusal(what, control))}",
                         result.stdout), result.stdout
    assert_only_plain_events(project, result.output)


def test_refused_credentials_one_clear_line(project: Path, cli: Cli, ralph: Ralph,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    configure(project, ralph.endpoint, monkeypatch, password="wrong")
    result = cli("events", "pull", "--project", project)
    assert result.exit_code == 1
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    assert ralph.endpoint in lines[0] and "'reader'" in lines[0] and ENV in lines[0]


@pytest.mark.parametrize("resume", [False, True], ids=["stays-ended", "resumes"])
def test_voided_registration_ends_the_goal(project: Path, cli: Cli, ralph: Ralph,
                                           monkeypatch: pytest.MonkeyPatch,
                                           resume: bool) -> None:
    """A registration the LRS voids no longer counts: the report says not converted, history
    shows it voided, and the sequence resumes only when the goal says resume_when_voided."""
    if resume:
        path = project / "campaigns/welcome.yaml"
        path.write_text(path.read_text().replace(
            "goal: {event: registered}", "goal: {event: registered, resume_when_voided: true}"))
    configure(project, ralph.endpoint, monkeypatch)
    learner = next(e for e in SCAFFOLD_PEOPLE if not in_holdout("welcome", e, 0.10))
    send(cli, project, DAY_1)  # everyone in the treatment group gets `hello`
    registration = {**statement(learner, "registered", "course:excel",
                                "2026-12-01T12:00:00Z"), "id": str(uuid.uuid4())}
    ralph.post([registration])
    assert cli("events", "pull", "--project", project).exit_code == 0
    send(cli, project, "2026-12-02T10:00+01:00")  # the goal ends the learner's sequence
    assert rows(project, "SELECT state FROM enrolments WHERE email = ?", learner) == \
        [("converted",)]
    void = {"id": str(uuid.uuid4()),
            "actor": {"objectType": "Agent", "mbox": "mailto:lms@example.org"},
            "verb": {"id": "http://adlnet.gov/expapi/verbs/voided"},
            "object": {"objectType": "StatementRef", "id": registration["id"]},
            "timestamp": soon().isoformat(), "stored": soon().isoformat()}
    ralph.append([void])
    pulled = cli("events", "pull", "--project", project, "--now", "2026-12-03T09:00+01:00")
    assert pulled.exit_code == 0, pulled.output
    # (Ralph's fs backend compares `since` with timestamps: the registration, dated after
    # the moment it was stored, may come again, and is then already known.)
    assert re.search(r"pulled [12] statements: 0 goal events recorded \([01] already known\), "
                     r"1 revoked by voiding statements, 0 skipped", pulled.stdout), pulled.stdout

    history = cli("history", learner, "--project", project)
    assert re.search(r"registered .*course:excel.*voided by the LRS", history.stdout), \
        history.stdout
    send(cli, project, DAY_4)  # `first-course` is due on day 3
    first_course = rows(project, "SELECT count(*) FROM messages WHERE email = ? AND step = "
                                 "'first-course' AND state = 'sent'", learner)
    assert first_course == [(1 if resume else 0,)]
    report = json.loads(cli("report", "--project", project, "--now", DAY_4,
                            "--format", "json").stdout)
    assert report["campaigns"][0]["conversion"]["treatment_converted"] == 0
    state = rows(project, "SELECT state, exit_reason FROM enrolments WHERE email = ?", learner)
    assert state == ([("completed", "all steps done")] if resume
                     else [("converted", "goal reached")])


class Trickle:
    """A document answered one byte every half second, status line and headers included."""


Reply = tuple[int, dict[str, str], dict[str, Any] | bytes | Trickle | None]


class _Scripted(BaseHTTPRequestHandler):
    """Answers from `script` in order (the last one again once it runs out); `seen` keeps
    each request's path and query, `times` when it came. A document given as bytes is sent
    as it is; `{n}` in a `more` link becomes the request's number (an endless chain)."""

    script: list[Reply] = []
    seen: list[str] = []
    times: list[float] = []  # when each request came (monotonic seconds)

    def do_GET(self) -> None:  # noqa: N802 (the name http.server calls)
        self.seen.append(self.path)
        self.times.append(time.monotonic())
        status, headers, document = self.script[min(len(self.seen), len(self.script)) - 1]
        if isinstance(document, Trickle):
            self._trickle()
            return
        if isinstance(document, dict) and "{n}" in str(document.get("more")):
            document = {**document, "more": document["more"].format(n=len(self.seen))}
        body = document if isinstance(document, bytes) else \
            json.dumps(document).encode() if document is not None else b""
        self.send_response(status)
        for name, value in {"Content-Type": "application/json", **headers}.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _trickle(self) -> None:
        answer = b'HTTP/1.1 200 OK\r\nContent-Length: 20\r\n\r\n{"statements": []}  '
        try:
            for byte in answer:
                self.wfile.write(bytes([byte]))
                self.wfile.flush()
                time.sleep(0.5)
        except OSError:
            pass
        self.close_connection = True

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def scripted(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[type[_Scripted], str]]:
    import ldmail.measurement.lrs

    monkeypatch.setattr(ldmail.measurement.lrs, "MAX_WAIT", 0.01)  # retries without the real pauses
    _Scripted.script, _Scripted.seen, _Scripted.times = [], [], []
    with http_serving(_Scripted) as base:
        yield _Scripted, base


def page(n: int, more: str) -> dict[str, Any]:
    return {"more": more, "statements": [
        {**statement(f"p{n}@example.org", "registered", "course:excel",
                     f"2026-11-0{n}T09:00:00Z"), "id": str(uuid.uuid4()),
         "stored": f"2026-11-0{n}T09:00:01Z"}]}


@pytest.mark.parametrize("form", ["seconds", "http-date"])
def test_429_is_retried_after_retry_after(
        project: Path, cli: Cli, scripted: tuple[type[_Scripted], str],
        monkeypatch: pytest.MonkeyPatch, form: str) -> None:
    import ldmail.measurement.lrs

    monkeypatch.setattr(ldmail.measurement.lrs, "MAX_WAIT", 60.0)  # the real pause this time
    lrs, base = scripted
    # Retry-After is a number of seconds or an HTTP date (RFC 9110, 10.2.3); a date two
    # seconds ahead, cut to whole seconds, is one to two seconds away.
    after = "1" if form == "seconds" else format_datetime(
        datetime.now(UTC) + timedelta(seconds=2), usegmt=True)
    lrs.script = [(429, {"Retry-After": after}, None),
                  (200, {"X-Experience-API-Consistent-Through": "2026-11-02T09:00:00Z"},
                   page(2, ""))]
    configure(project, f"{base}/xAPI", monkeypatch)
    result = cli("events", "pull", "--project", project)
    assert result.exit_code == 0, result.output
    assert len(lrs.times) == 2 and lrs.times[1] - lrs.times[0] >= 0.9
    # The cursor is capped at X-Experience-API-Consistent-Through.
    assert "pulled 1 statements: 1 goal events recorded (0 already known), 0 skipped; " \
        "cursor now 2026-11-02T09:00:00Z" in result.stdout


def test_absolute_more_followed_and_a_loop_stopped(
        project: Path, cli: Cli, scripted: tuple[type[_Scripted], str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    lrs, base = scripted
    lrs.script = [(200, {}, page(1, f"{base}/xAPI/statements?page=2")),
                  (200, {}, page(2, "/xAPI/statements?page=3")),
                  (200, {}, page(3, "/xAPI/statements?page=3"))]
    configure(project, f"{base}/xAPI", monkeypatch)
    result = cli("events", "pull", "--project", project)
    assert result.exit_code == 1
    assert "the same 'more' link twice" in result.output
    assert lrs.seen[1:] == ["/xAPI/statements?page=2", "/xAPI/statements?page=3"]
    # What was read before the loop showed is recorded, the cursor after it.
    assert [e[0] for e in events(project)] == ["p1@example.org", "p2@example.org",
                                               "p3@example.org"]


def pull_fails(cli: Cli, project: Path, expected: str) -> None:
    """`events pull` exits 1 with `expected` in one line, and no traceback."""
    failed = cli("events", "pull", "--project", project)
    assert failed.exit_code == 1
    lines = [line for line in failed.output.splitlines() if line.strip()]
    assert len(lines) == 1 and expected in lines[0], failed.output


def stored_at(name: str, stored: str) -> dict[str, Any]:
    return {**statement(f"{name}@example.org", "registered", "course:excel",
                        "2026-11-01T09:00:00Z"), "id": str(uuid.uuid4()), "stored": stored}


def test_a_503_between_pages_loses_no_statement_of_a_shared_stored_time(
        project: Path, cli: Cli, scripted: tuple[type[_Scripted], str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """B and C were stored in one batch (one stored time) that page 1 and page 2 split; the
    LRS fails on page 2. The cursor stays at A's time, the last one read whole, so the next
    pull (since is exclusive) gets B again and C: each statement once."""
    lrs, base = scripted
    a, b, c, d = (stored_at("a", "2026-11-01T09:00:01Z"), stored_at("b", "2026-11-01T09:00:02Z"),
                  stored_at("c", "2026-11-01T09:00:02Z"), stored_at("d", "2026-11-01T09:00:03Z"))
    lrs.script = [(200, {}, {"more": "/xAPI/statements?page=2", "statements": [a, b]}),
                  (503, {}, None)]
    configure(project, f"{base}/xAPI", monkeypatch)
    pull_fails(cli, project, "HTTP 503 after 5 attempts")
    assert len(lrs.seen) == 6
    # What an LRS answers to since=A's time: B, C and D.
    lrs.script, lrs.seen = [(200, {}, {"more": "", "statements": [b, c, d]})], []
    again = cli("events", "pull", "--project", project)
    assert again.exit_code == 0, again.output
    assert "since=2026-11-01T09%3A00%3A01Z" in lrs.seen[0]
    assert "pulled 3 statements: 2 goal events recorded (1 already known), 0 skipped; " \
        "cursor now 2026-11-01T09:00:03Z" in again.stdout
    assert [e[0] for e in events(project)] == [f"{n}@example.org" for n in "abcd"]
    assert sorted(r[0] for r in rows(project, "SELECT statement FROM events")) == \
        sorted(s["id"] for s in (a, b, c, d))


def test_a_statement_stored_in_the_future_does_not_move_the_cursor(
        project: Path, cli: Cli, scripted: tuple[type[_Scripted], str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    lrs, base = scripted
    now = datetime.now(UTC)
    real = stored_at("real", (now - timedelta(minutes=1)).isoformat())
    ahead = stored_at("ahead", "2126-12-01T00:00:00Z")
    lrs.script = [(200, {}, {"more": "", "statements": [real, ahead]})]
    configure(project, f"{base}/xAPI", monkeypatch)
    first = cli("events", "pull", "--project", project)
    assert first.exit_code == 0, first.output
    assert f"cursor now {real['stored']}" in first.stdout
    assert first.stdout.count("in the future") == 1
    # Later real statements are still pulled; the one from the future is known, said once.
    later = stored_at("later", now.isoformat())
    lrs.script, lrs.seen = [(200, {}, {"more": "", "statements": [later, ahead]})], []
    second = cli("events", "pull", "--project", project)
    assert second.exit_code == 0, second.output
    assert f"cursor now {later['stored']}" in second.stdout
    assert "in the future" not in second.stdout
    assert sorted(e[0] for e in events(project)) == \
        ["ahead@example.org", "later@example.org", "real@example.org"]


def test_one_id_with_other_content_is_a_conflict_reported_once(
        project: Path, cli: Cli, scripted: tuple[type[_Scripted], str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    lrs, base = scripted
    first = stored_at("first", "2026-11-01T09:00:01Z")
    other = {**stored_at("other", "2026-11-01T09:00:02Z"), "id": first["id"]}
    lrs.script = [(200, {}, {"more": "/xAPI/statements?page=2", "statements": [first, other]}),
                  (200, {}, {"more": "", "statements": [other]})]
    configure(project, f"{base}/xAPI", monkeypatch)
    result = cli("events", "pull", "--project", project)
    assert result.exit_code == 0, result.output
    assert result.stdout.count("conflict") == 1, result.stdout
    assert "pulled 3 statements: 1 goal events recorded" in result.stdout
    assert [e[0] for e in events(project)] == ["first@example.org"]


def test_oversized_fields_and_deep_nesting_are_refused_rows(
        project: Path, cli: Cli, scripted: tuple[type[_Scripted], str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    lrs, base = scripted
    huge_actor = stored_at("huge", "2026-11-01T09:00:01Z")
    huge_actor["actor"]["mbox"] = "mailto:" + "x" * 1_000_000 + "@example.org"
    huge_object = stored_at("object", "2026-11-01T09:00:02Z")
    huge_object["object"]["id"] = "course:" + "y" * 1_000_000
    deep = stored_at("deep", "2026-11-01T09:00:03Z")
    nested: dict[str, Any] = {}
    deep["result"] = {"extensions": {"https://example.org/x": nested}}
    for _ in range(100):
        nested["n"] = {}
        nested = nested["n"]
    fine = stored_at("fine", "2026-11-01T09:00:04Z")
    lrs.script = [(200, {}, {"more": "", "statements": [huge_actor, huge_object, deep, fine]})]
    configure(project, f"{base}/xAPI", monkeypatch)
    result = cli("events", "pull", "--project", project)
    assert result.exit_code == 0, result.output
    assert "pulled 4 statements: 1 goal events recorded (0 already known), 3 skipped" \
        in result.stdout
    assert "actor.mbox of 1,000,019 characters (at most 320)" in result.stdout
    assert "object.id of 1,000,007 characters (at most 2,048)" in result.stdout
    assert "nested more than 64 levels deep" in result.stdout
    assert len(result.output) < 2000
    assert [e[0] for e in events(project)] == ["fine@example.org"]


def test_an_endless_chain_of_more_links_stops_at_the_page_bound(
        project: Path, cli: Cli, scripted: tuple[type[_Scripted], str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    import ldmail.measurement.lrs

    monkeypatch.setattr(ldmail.measurement.lrs, "MAX_PAGES", 30)
    lrs, base = scripted
    chain = {"more": "/xAPI/statements?page={n}", "statements": [
        stored_at("a", "2026-11-01T09:00:01Z"), stored_at("b", "2026-11-01T09:00:02Z")]}
    lrs.script = [(200, {}, chain)]
    configure(project, f"{base}/xAPI", monkeypatch)
    pull_fails(cli, project, "more than 30 pages in one pull; stopped")
    assert len(lrs.seen) == 30


def bomb() -> bytes:
    """0.6 MB of gzip that unpacks to 600 MB, made without holding 600 MB."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    zeros = b"\0" * 1_000_000
    return b"".join(packer.compress(zeros) for _ in range(600)) + packer.flush()


@pytest.mark.parametrize("body", ["bomb", "broken"])
def test_a_gzip_bomb_or_a_broken_gzip_ends_in_one_line(
        project: Path, scripted: tuple[type[_Scripted], str],
        monkeypatch: pytest.MonkeyPatch, body: str) -> None:
    lrs, base = scripted
    data = bomb() if body == "bomb" else b"\x1f\x8b\x08\x00" + b"not gzip at all" * 10
    lrs.script = [(200, {"Content-Encoding": "gzip"}, data)]
    configure(project, f"{base}/xAPI", monkeypatch)
    pulled = subprocess.run([sys.executable, "-m", "ldmail", "events", "pull", "--project",
                             str(project)], capture_output=True, text=True, timeout=120,
                            check=False)
    assert pulled.returncode == 1
    lines = pulled.stderr.strip().splitlines() + pulled.stdout.strip().splitlines()
    assert len(lines) == 1, lines
    expected = "larger than 67,108,864 bytes" if body == "bomb" else "a broken gzip answer"
    assert expected in lines[0]
    # The child never held the 600 MB (a Python process with ldmail is about 100 MB).
    assert resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss < 400 * 1024


def test_send_pull_goes_on_when_the_lrs_fails(
        project: Path, cli: Cli, scripted: tuple[type[_Scripted], str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    lrs, base = scripted
    lrs.script = [(401, {}, None)]
    configure(project, f"{base}/xAPI", monkeypatch)
    result = cli("send", "--pull", "--project", project)
    assert "warning: lrs pull failed, sending anyway" in result.output
    assert "refused user 'reader' (HTTP 401)" in result.output
    assert re.search(r"^(?:\S+ )?sent \d+ ", result.output, re.M), result.output


def test_run_pulls_before_sending(project: Path, cli: Cli,
                                  scripted: tuple[type[_Scripted], str],
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    lrs, base = scripted
    lrs.script = [(200, {}, page(1, ""))]
    configure(project, f"{base}/xAPI", monkeypatch)
    result = cli("run", "--runs", "1", "--interval", "1s", "--project", project)
    assert result.exit_code == 0, result.output
    assert len(lrs.seen) == 1
    assert [e[0] for e in events(project)] == ["p1@example.org"]


def test_account_matched_through_a_people_column(
        project: Path, cli: Cli, scripted: tuple[type[_Scripted], str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    lrs, base = scripted
    item = {**statement("x@example.org", "registered", "course:excel", "2026-11-02T09:00:00Z"),
            "id": str(uuid.uuid4()), "stored": "2026-11-02T09:00:01Z"}
    item["actor"] = {"objectType": "Agent",
                     "account": {"homePage": "https://lms.example.org", "name": "Smith"}}
    lrs.script = [(200, {}, {"more": "", "statements": [item]})]
    configure(project, f"{base}/xAPI", monkeypatch)
    with (project / "ldmail.yaml").open("a", encoding="utf-8") as file:
        file.write("  account_column: last_name\n")
    result = cli("events", "pull", "--project", project)
    assert result.exit_code == 0, result.output
    assert [e[0] for e in events(project)] == ["bob.smith@example.org"]


def cursor(project: Path) -> str | None:
    found = rows(project, "SELECT value FROM meta WHERE key = 'lrs_cursor'")
    return found[0][0] if found else None


def test_an_answer_that_is_not_json_loses_nothing(
        project: Path, cli: Cli, scripted: tuple[type[_Scripted], str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    lrs, base = scripted
    lrs.script = [(200, {}, page(1, "/xAPI/statements?page=2")),
                  (200, {"Content-Type": "text/html"}, b"<html><h1>502 Bad Gateway</h1>")]
    configure(project, f"{base}/xAPI", monkeypatch)
    failed = cli("events", "pull", "--project", project)
    assert failed.exit_code == 1
    assert "/xAPI/statements?page=2: the answer is not JSON" in failed.output
    assert "Traceback" not in failed.output
    # Page 1 is kept; its stored time might go on in page 2, so the cursor stays before it,
    # and the next pull reads it again as already known.
    assert cursor(project) is None
    lrs.script, lrs.seen = [(200, {}, page(1, "/xAPI/statements?page=2")),
                            (200, {}, page(2, ""))], []
    again = cli("events", "pull", "--project", project)
    assert again.exit_code == 0, again.output
    assert "pulled 2 statements: 1 goal events recorded (1 already known)" in again.stdout
    assert [e[0] for e in events(project)] == ["p1@example.org", "p2@example.org"]


def test_a_statement_without_actor_is_skipped_and_the_rest_kept(
        project: Path, cli: Cli, scripted: tuple[type[_Scripted], str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    lrs, base = scripted
    document = page(1, "")
    nameless = {**page(2, "")["statements"][0]}
    del nameless["actor"]
    document["statements"].append(nameless)
    document["statements"].append(page(3, "")["statements"][0])
    lrs.script = [(200, {}, document)]
    configure(project, f"{base}/xAPI", monkeypatch)
    result = cli("events", "pull", "--project", project)
    assert result.exit_code == 0, result.output
    assert "pulled 3 statements: 2 goal events recorded (0 already known), 1 skipped; " \
        "cursor now 2026-11-03T09:00:01Z" in result.stdout
    assert f"page 1 statement 2 (id {nameless['id']}): no actor" in result.stdout
    assert [e[0] for e in events(project)] == ["p1@example.org", "p3@example.org"]


@pytest.mark.slow
def test_registered_between_run_ticks_get_no_further_step(
        mailing: Path, ralph: Ralph, smtp_server: SmtpServer,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """`ldmail run` every 2 s over a drip of three steps 4 s apart: two people register in
    the LRS after the first step went out, and get nothing more; the others get all three."""
    def drip(campaign: dict[str, Any]) -> None:
        campaign.update(min_gap="1s", goal={"event": "registered"},
                        send_window={"days": "mon-sun", "hours": "00:00-23:59",
                                     "timezone": "UTC"},
                        steps=[{"id": "first", "after": "0s", "template": "welcome/hello"},
                               {"id": "second", "after": "4s",
                                "template": "welcome/first-course"},
                               {"id": "third", "after": "8s", "template": "welcome/hello"}])

    edit_yaml(mailing / "campaigns/welcome.yaml", drip)
    configure(mailing, ralph.endpoint, monkeypatch)
    registered = ["ann@example.org", "bob@example.org"]
    with ldmail_running("run", "--interval", "2s", "--runs", "6", "--project", mailing) as run:
        deadline = time.monotonic() + 60
        while len(smtp_server.received) < len(PEOPLE):  # the first tick's step
            assert run.poll() is None and time.monotonic() < deadline, run.communicate()
            time.sleep(0.05)
        ralph.post([{**statement(email, "registered", "course:excel",
                                 datetime.now(UTC).isoformat()), "id": str(uuid.uuid4())}
                    for email in registered])
        _, stderr = run.communicate(timeout=120)
    assert run.returncode == 0, stderr
    assert "pulled 2 statements: 2 goal events recorded" in stderr
    received = Counter(r.rcpt_tos[0] for r in smtp_server.received)
    assert received == {email: 1 if email in registered else 3 for email in PEOPLE}, received
    ended = ledger_rows(mailing, "SELECT email, state, exit_reason FROM enrolments "
                                 "WHERE state != 'completed' ORDER BY email")
    assert [(r["email"], r["state"], r["exit_reason"]) for r in ended] == \
        [(email, "converted", "goal reached") for email in registered]


# Each command that pulls, with arguments that make it end on its own.
PULLING = {"events pull": ("events", "pull"), "send --pull": ("send", "--pull"),
           "run": ("run", "--runs", "1", "--interval", "1h")}


@pytest.mark.parametrize("command", PULLING)
def test_a_trickling_lrs_ends_each_command_by_its_deadline(
        project: Path, scripted: tuple[type[_Scripted], str],
        monkeypatch: pytest.MonkeyPatch, command: str) -> None:
    """An LRS that answers a byte every half second: the pull gives up at lrs.timeout (the
    whole answer's time, not one read's), is not asked again, and the command goes on."""
    lrs, base = scripted
    lrs.script = [(200, {}, Trickle())]
    configure(project, f"{base}/xAPI", monkeypatch)
    with (project / "ldmail.yaml").open("a", encoding="utf-8") as file:
        file.write("  timeout: 3s\n")
    started = time.monotonic()
    with ldmail_running(*PULLING[command], "--project", project) as process:
        stdout, stderr = process.communicate(timeout=120)
    assert time.monotonic() - started < 25  # 3 s for the pull, the rest to start and send
    assert "no complete answer within 3 s" in stdout + stderr, stdout + stderr
    assert "Traceback" not in stdout + stderr
    assert len(lrs.seen) == 1


@pytest.mark.parametrize("command", PULLING)
def test_sigterm_ends_each_command_within_seconds_while_a_pull_trickles(
        project: Path, scripted: tuple[type[_Scripted], str],
        monkeypatch: pytest.MonkeyPatch, command: str) -> None:
    lrs, base = scripted
    lrs.script = [(200, {}, Trickle())]
    configure(project, f"{base}/xAPI", monkeypatch)
    with (project / "ldmail.yaml").open("a", encoding="utf-8") as file:
        file.write("  timeout: 10m\n")
    with ldmail_running(*PULLING[command], "--project", project) as process:
        wait_for(lambda: len(lrs.seen) == 1, 60, "the pull's first request")
        process.send_signal(signal.SIGTERM)
        stopped = time.monotonic()
        stdout, stderr = process.communicate(timeout=60)
        assert time.monotonic() - stopped < 5
    assert "stopped on request" in stdout + stderr, stdout + stderr
    assert "Traceback" not in stdout + stderr


BAD_MORE = {"port out of range": "http://127.0.0.1:99999/xAPI/statements?p=2",
            "broken IPv6 literal": "https://[::1/xAPI/statements",
            "NUL character": "/xAPI/statements?p=\x00"}


def one_page_then(more: str, project: Path, scripted: tuple[type[_Scripted], str],
                  monkeypatch: pytest.MonkeyPatch) -> type[_Scripted]:
    """The scripted LRS answers one page whose `more` link is `more`, for `project`."""
    lrs, base = scripted
    lrs.script = [(200, {}, page(1, more))]
    configure(project, f"{base}/xAPI", monkeypatch)
    return lrs


@pytest.mark.parametrize("more", BAD_MORE.values(), ids=BAD_MORE.keys())
def test_a_more_link_that_is_not_a_url_ends_the_pull_in_one_line(
        project: Path, cli: Cli, scripted: tuple[type[_Scripted], str],
        monkeypatch: pytest.MonkeyPatch, more: str) -> None:
    lrs = one_page_then(more, project, scripted, monkeypatch)
    pull_fails(cli, project, "'more' link that is not a usable URL")
    # The first page is recorded; the bad link was never asked for.
    assert [e[0] for e in events(project)] == ["p1@example.org"]
    assert len(lrs.seen) == 1


@pytest.mark.parametrize("more", BAD_MORE.values(), ids=BAD_MORE.keys())
def test_send_pull_sends_although_a_more_link_is_not_a_url(
        project: Path, cli: Cli, scripted: tuple[type[_Scripted], str],
        monkeypatch: pytest.MonkeyPatch, more: str) -> None:
    one_page_then(more, project, scripted, monkeypatch)
    result = cli("send", "--pull", "--project", project, "--now", DAY_1)
    assert "warning: lrs pull failed, sending anyway" in result.output
    assert "Traceback" not in result.output
    assert re.search(r"^(?:\S+ )?sent [1-9]\d* ", result.output, re.M), result.output


@pytest.mark.parametrize("command", PULLING)
def test_an_endpoint_idna_refuses_is_one_line_and_sending_goes_on(
        project: Path, cli: Cli, monkeypatch: pytest.MonkeyPatch, command: str) -> None:
    configure(project, "https://lrs..example.org/xAPI", monkeypatch)
    result = cli(*PULLING[command], "--project", project, "--now", DAY_1)
    assert "Traceback" not in result.output
    assert "https://lrs..example.org/xAPI/statements: cannot connect" in result.output, \
        result.output
    if command == "events pull":
        assert result.exit_code == 1
        assert len(result.output.strip().splitlines()) == 1, result.output
    else:
        assert result.exit_code == 0, result.output
        assert rows(project, "SELECT count(*) FROM messages WHERE state = 'sent'")[0][0]


def holds_open(pid: int, path: Path) -> bool:
    """Whether process `pid` has `path` open (it is waiting for its lock)."""
    try:
        return any(os.path.realpath(f"/proc/{pid}/fd/{fd}") == str(path.resolve())
                   for fd in os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return False


@pytest.mark.parametrize("command", PULLING)
def test_sigterm_ends_a_pull_waiting_for_a_running_forget(
        project: Path, scripted: tuple[type[_Scripted], str],
        monkeypatch: pytest.MonkeyPatch, command: str) -> None:
    from ldmail.ledger import ledger_path
    from ldmail.ledger.lock import fence_path, forget_fence
    from ldmail.project.config import load_project

    lrs, base = scripted
    configure(project, f"{base}/xAPI", monkeypatch)
    ledger = ledger_path(load_project(project), None)
    with forget_fence(ledger, 0), \
            ldmail_running(*PULLING[command], "--project", project) as process:
        wait_for(lambda: holds_open(process.pid, fence_path(ledger)), 60,
                 "the pull waiting for the fence")
        process.send_signal(signal.SIGTERM)
        stopped = time.monotonic()
        stdout, stderr = process.communicate(timeout=60)
        assert time.monotonic() - stopped < 5
    assert "stopped on request while waiting for a running forget" in stdout + stderr
    assert "Traceback" not in stdout + stderr
    assert lrs.seen == []
