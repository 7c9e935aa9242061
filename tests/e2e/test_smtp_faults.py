"""SMTP servers that misbehave before any message, and a ledger that is damaged or locked:
each ends in a clear state, nothing lost."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from aiosmtpd.smtp import AuthResult

from .conftest import Cli
from .smtp_server import SmtpServer, _Controller, ledger_rows, loopback_listener, use_smtp

DAY1 = "2026-12-01T10:00+01:00"
# Loopback test servers have no TLS; the warning about AUTH without TLS is expected here.
pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH:UserWarning")
SECRET = "s3cret-Pa55word!"


class RawServer:
    """A loopback TCP server that answers each connection with `greet` (or not at all)."""

    def __init__(self, greet: Callable[[socket.socket], None]) -> None:
        self.listener = loopback_listener()
        self.port = int(self.listener.getsockname()[1])
        self.greet = greet
        self.done = threading.Event()
        self.connections = 0
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self.done.is_set():
            try:
                conn, _ = self.listener.accept()
            except TimeoutError:
                continue
            self.connections += 1
            self.greet(conn)

    def close(self) -> None:
        self.done.set()
        self.thread.join(5)
        self.listener.close()


def no_messages(project: Path) -> bool:
    return not ledger_rows(project, "SELECT id FROM messages")


def test_421_on_connect_claims_nothing_and_later_delivers(project: Path, cli: Cli,
                                                         smtp_server: SmtpServer) -> None:
    def busy(conn: socket.socket) -> None:
        conn.sendall(b"421 4.3.2 mx.test too busy, try later\r\n")
        conn.close()

    server = RawServer(busy)
    try:
        use_smtp(project, server.port)
        result = cli("send", "--project", project, "--now", DAY1)
    finally:
        server.close()
    assert result.exit_code == 1
    assert "transport unavailable" in result.stderr and "421" in result.stderr
    assert "Traceback" not in result.output
    assert server.connections == 1  # one attempt, not one per message
    assert no_messages(project)
    use_smtp(project, smtp_server.port)
    assert cli("send", "--project", project, "--now", DAY1).exit_code == 0
    assert len(smtp_server.received) == 7


def test_server_that_stalls_past_the_timeout(project: Path, cli: Cli) -> None:
    held: list[socket.socket] = []
    server = RawServer(held.append)  # accepts, then never says a word
    try:
        use_smtp(project, server.port, timeout="2s")
        result = cli("send", "--project", project, "--now", DAY1)
    finally:
        server.close()
        for conn in held:
            conn.close()
    assert result.exit_code == 1
    assert "transport unavailable" in result.stderr and "timed out" in result.stderr
    assert no_messages(project)


@pytest.fixture
def auth_server() -> Iterator[SmtpServer]:
    """An SMTP server that demands a login and refuses every password."""
    server = SmtpServer()
    server.controller = _Controller(
        server, hostname="127.0.0.1", port=0, server_hostname="mx.test.invalid",
        auth_require_tls=False, auth_required=True,
        authenticator=lambda *args: AuthResult(success=False, handled=False))
    server.start()
    yield server
    server.stop()


def test_rejected_login_stops_the_run_and_never_shows_the_password(
        project: Path, cli: Cli, auth_server: SmtpServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LDMAIL_SMTP_PASSWORD", SECRET)
    use_smtp(project, auth_server.port, user="learning@example.org")
    result = cli("send", "--project", project, "--now", DAY1)
    assert result.exit_code == 1
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, lines
    assert "login as learning@example.org refused (535)" in lines[0]
    assert "nothing was sent" in lines[0]
    assert auth_server.received == [] and no_messages(project)
    assert SECRET not in result.output
    for path in (project / ".ldmail").rglob("*"):
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path


def test_missing_password_variable_is_named(project: Path, cli: Cli, auth_server: SmtpServer,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LDMAIL_SMTP_PASSWORD", raising=False)
    use_smtp(project, auth_server.port, user="learning@example.org")
    result = cli("send", "--project", project, "--now", DAY1)
    assert result.exit_code == 1
    assert "needs a password in the environment variable LDMAIL_SMTP_PASSWORD" in result.stderr


def test_starttls_required_but_not_offered(project: Path, cli: Cli,
                                          smtp_server: SmtpServer) -> None:
    use_smtp(project, smtp_server.port, security="starttls")
    result = cli("send", "--project", project, "--now", DAY1)
    assert result.exit_code == 1
    assert "does not offer STARTTLS" in result.stderr and "nothing was sent" in result.stderr
    assert smtp_server.received == [] and no_messages(project)


def test_plaintext_to_a_remote_host_is_refused(project: Path, cli: Cli) -> None:
    use_smtp(project, 25)
    text = (project / "ldmail.yaml").read_text("utf-8").replace("127.0.0.1", "smtp.example.org")
    (project / "ldmail.yaml").write_text(text, "utf-8")
    result = cli("send", "--project", project, "--now", DAY1)
    assert result.exit_code == 1
    assert "security 'none' is only allowed to a loopback host" in result.stderr


def test_damaged_ledger_is_reported_and_left_alone(project: Path, cli: Cli) -> None:
    ledger = project / ".ldmail" / "ledger.db"
    ledger.parent.mkdir()
    ledger.write_bytes(b"this is not a database" * 100)
    result = cli("send", "--project", project, "--now", DAY1)
    assert result.exit_code == 1
    assert "cannot use the ledger" in result.stderr and "restore it from a backup" in result.stderr
    assert "Traceback" not in result.output
    assert ledger.read_bytes() == b"this is not a database" * 100
    assert not (project / ".ldmail" / "outbox").exists() or \
        not list((project / ".ldmail" / "outbox").iterdir())


def test_a_ledger_locked_by_another_program_stops_the_run_and_loses_nothing(
        project: Path, cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    import sqlite3

    import ldmail.ledger.core

    monkeypatch.setattr(ldmail.ledger.core, "BUSY_TIMEOUT", 0.3)  # 30 s in real use
    outbox = project / ".ldmail" / "outbox"
    assert cli("send", "--project", project, "--now", DAY1).exit_code == 0
    first = sorted(outbox.iterdir())
    assert first
    holder = sqlite3.connect(project / ".ldmail" / "ledger.db", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # an open sqlite3 shell in the middle of a write, say
    try:
        later = "2026-12-04T10:00+01:00"  # the second step is due
        result = cli("send", "--project", project, "--now", later)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert result.exit_code == 1
    assert "the ledger stayed locked by another program for 0.3 s" in result.stderr
    assert "run it again once that program is done" in result.stderr
    assert sorted(outbox.iterdir()) == first
    again = cli("send", "--project", project, "--now", later)
    assert again.exit_code == 0, again.output
    steps = ledger_rows(project, "SELECT step, count(*) AS n FROM messages WHERE state = 'sent'"
                                 " GROUP BY step ORDER BY step")
    assert [row["n"] for row in steps] == [len(first), len(first)]
    assert len(list(outbox.iterdir())) == 2 * len(first)
