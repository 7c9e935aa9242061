"""A scriptable SMTP server on loopback for the delivery tests: real sockets, real SMTP.

`SmtpServer` wraps an aiosmtpd Controller bound to 127.0.0.1 on a free port. It records every
message it accepts and every RCPT it is given, and can be told, per recipient address, how to
answer successive attempts:

    server.rcpt_replies("ann@example.org", "451 4.7.1 try again later", "250 OK")
    server.data_replies("bob@example.org", "550 5.1.1 user unknown")
    server.rcpt_replies("eve@example.org", DROP)       # close the connection instead
    hold = server.pause_data("dirk@example.org", 20)   # hold the reply to that DATA up to 20 s
    hold.started.wait(10); ...; hold.release()         # wait until it is held; end it early
    server.messages_per_connection = 2                 # then drop it at the next MAIL FROM

Replies queued for an address are used one per attempt, in order; once they run out the server
accepts. A test module declares its fixture as

    @pytest.fixture
    def smtp_server() -> Iterator[SmtpServer]:
        yield from serve()
"""

from __future__ import annotations

import asyncio
import email
import re
import socket
import sqlite3
import subprocess
import sys
import threading
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from email.message import EmailMessage
from email.policy import default as default_policy
from functools import cached_property
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from time import monotonic, sleep
from time import time as wall_clock
from typing import Any

from aiosmtpd.controller import Controller

from ..projects import (
    LEDGER,
    PEOPLE,
    edit_yaml,
    write_people,
)
from .conftest import Cli, CliResult

DROP = "drop"  # pseudo-reply: close the connection instead of answering
ACCEPT_RCPT = "250 OK"
ACCEPT_DATA = "250 2.0.0 Message accepted for delivery"


@dataclass(frozen=True)
class Received:
    """One message the server accepted (answered 250 to its DATA)."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    data: bytes
    at: float = 0.0  # when the server accepted it (wall-clock seconds)

    @cached_property
    def message(self) -> EmailMessage:
        parsed = email.message_from_bytes(self.data, policy=default_policy)
        assert isinstance(parsed, EmailMessage)
        return parsed

    @cached_property
    def key(self) -> tuple[str, str, str]:
        """(campaign, step, recipient): what must never arrive twice."""
        message = self.message
        return (str(message["X-Ldmail-Campaign"]), str(message["X-Ldmail-Step"]),
                self.rcpt_tos[0].lower())


@dataclass
class Hold:
    """A DATA reply held back: `started` is set when the hold begins; release() ends it."""

    seconds: float
    started: threading.Event = field(default_factory=threading.Event)
    released: threading.Event = field(default_factory=threading.Event)

    def release(self) -> None:
        self.released.set()


class _Controller(Controller):
    """Binds port 0 and learns the real port before aiosmtpd's start-up probe connects."""

    def _trigger_server(self) -> None:
        assert isinstance(self.server, asyncio.Server)
        self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()  # type: ignore[no-untyped-call]


class SmtpServer:
    """The handler (aiosmtpd calls handle_RCPT / handle_DATA) plus the controller around it."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.host = host
        self._lock = threading.Lock()
        self._received: list[Received] = []
        self._rcpts: list[str] = []
        self._log: list[tuple[str, str, str]] = []
        self._rcpt_script: dict[str, deque[str]] = {}
        self._data_script: dict[str, deque[str]] = {}
        self._pauses: dict[str, deque[Hold]] = {}
        self._per_session: dict[int, int] = {}
        self.messages_per_connection: int | None = None
        self.connections_dropped = 0
        # A fixed server name spares aiosmtpd a reverse DNS lookup per connection.
        self.controller = _Controller(self, hostname=host, port=0,
                                      server_hostname="mx.test.invalid")

    # -- running ----------------------------------------------------------------------------

    @property
    def port(self) -> int:
        return int(self.controller.port)

    def start(self) -> SmtpServer:
        self.controller.start()
        return self

    def stop(self) -> None:
        self.controller.stop()

    def __enter__(self) -> SmtpServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- script -----------------------------------------------------------------------------

    def rcpt_replies(self, address: str, *replies: str) -> None:
        """Answer successive RCPT TO:<address> with these replies (then accept)."""
        with self._lock:
            self._rcpt_script.setdefault(address.lower(), deque()).extend(replies)

    def data_replies(self, address: str, *replies: str) -> None:
        """Answer successive DATA for messages to address with these replies (then accept)."""
        with self._lock:
            self._data_script.setdefault(address.lower(), deque()).extend(replies)

    def pause_data(self, address: str, seconds: float) -> Hold:
        """Hold the reply to the next DATA for address up to `seconds` (or until released)."""
        hold = Hold(seconds)
        with self._lock:
            self._pauses.setdefault(address.lower(), deque()).append(hold)
        return hold

    # -- what happened ----------------------------------------------------------------------

    @property
    def received(self) -> list[Received]:
        with self._lock:
            return list(self._received)

    @property
    def rcpts(self) -> list[str]:
        """Every address given in a RCPT command, accepted or not, in order."""
        with self._lock:
            return list(self._rcpts)

    @property
    def log(self) -> list[tuple[str, str, str]]:
        """(command, address, reply) for every RCPT and DATA, in order."""
        with self._lock:
            return list(self._log)

    def keys(self) -> list[tuple[str, str, str]]:
        return [r.key for r in self.received]

    def to(self, address: str) -> list[Received]:
        return [r for r in self.received if address.lower() in (a.lower() for a in r.rcpt_tos)]

    # -- aiosmtpd hooks ---------------------------------------------------------------------

    def _next(self, script: dict[str, deque[str]], address: str, default: str) -> str:
        with self._lock:
            queue = script.get(address.lower())
            return queue.popleft() if queue else default

    async def handle_MAIL(self, server: Any, session: Any, envelope: Any, address: str,
                          mail_options: list[str]) -> str:
        limit = self.messages_per_connection
        if limit is not None and self._per_session.get(id(session), 0) >= limit:
            # Like a relay's per-connection limit or idle timeout: the client finds out when it
            # starts the next message.
            with self._lock:
                self._log.append(("MAIL", address, DROP))
                self.connections_dropped += 1
            server.transport.close()
            return "421 4.4.2 closing connection"
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str,
                          rcpt_options: list[str]) -> str:
        reply = self._next(self._rcpt_script, address, ACCEPT_RCPT)
        with self._lock:
            self._rcpts.append(address)
            self._log.append(("RCPT", address, reply))
        if reply == DROP:
            server.transport.close()
            return "421 4.4.2 closing connection"
        if reply.startswith("2"):
            envelope.rcpt_tos.append(address)
        return reply

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        address = envelope.rcpt_tos[0] if envelope.rcpt_tos else ""
        with self._lock:
            pauses = self._pauses.get(address.lower())
            pause = pauses.popleft() if pauses else None
        if pause is not None:
            pause.started.set()
            try:
                deadline = monotonic() + pause.seconds
                while not pause.released.is_set() and monotonic() < deadline:
                    await asyncio.sleep(0.01)
            except asyncio.CancelledError:  # the client went away while we held its DATA
                with self._lock:
                    self._log.append(("DATA", address, "connection lost"))
                raise
            if server.transport is None or server.transport.is_closing():
                # Like a real MTA: a message whose sender vanished before our reply is dropped.
                with self._lock:
                    self._log.append(("DATA", address, "connection lost"))
                return "421 4.4.2 connection lost"
        reply = self._next(self._data_script, address, ACCEPT_DATA)
        with self._lock:
            self._log.append(("DATA", address, reply))
        if reply == DROP:
            server.transport.close()
            return "421 4.4.2 closing connection"
        if reply.startswith("2"):
            data = envelope.original_content or envelope.content
            with self._lock:
                self._received.append(Received(str(envelope.mail_from),
                                               tuple(envelope.rcpt_tos), bytes(data),
                                               wall_clock()))
                self._per_session[id(session)] = self._per_session.get(id(session), 0) + 1
        return reply


def serve() -> Iterator[SmtpServer]:
    """Body of the `smtp_server` fixture each test module declares: start, yield, stop."""
    server = SmtpServer().start()
    try:
        yield server
    finally:
        server.stop()


def use_smtp(project: Path, port: int, **transport: Any) -> None:
    """Switch a project's ldmail.yaml to SMTP on loopback, without TLS (allowed to loopback)."""
    edit_yaml(project / "ldmail.yaml", lambda settings: settings.update(transport={
        "kind": "smtp", "host": "127.0.0.1", "port": port, "security": "none", **transport}))


@contextmanager
def http_serving(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    """A threaded HTTP server on a free loopback port answering with `handler`, for the
    stand-ins of outside services; yields its base URL and shuts it down afterwards."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def free_port() -> int:
    """A loopback port nothing listens on (bound, read, released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# -- helpers shared by the delivery tests ---------------------------------------------------

def known_people(project: Path, port: int) -> Path:
    """The scaffold with the five PEOPLE, no holdout, sending to the SMTP server on `port`."""
    write_people(project, PEOPLE)
    edit_yaml(project / "campaigns" / "welcome.yaml", lambda c: c.update(holdout="0%"))
    use_smtp(project, port)
    return project


def send(cli: Cli, project: Path, now: datetime, *extra: str) -> CliResult:
    """`ldmail send --project PROJECT --now NOW EXTRA…`, in-process."""
    return cli("send", "--project", project, "--now", now.isoformat(), *extra)


def ledger_rows(project: Path, sql: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
    """Rows from the project's real SQLite ledger, read with the sqlite3 module."""
    path = project / LEDGER
    assert path.exists(), f"no ledger at {path}"
    conn = sqlite3.connect(path, timeout=30)
    try:
        conn.row_factory = sqlite3.Row
        return [dict(row) for row in conn.execute(sql, params)]
    finally:
        conn.close()


def states(project: Path) -> dict[tuple[str, str, str], str]:
    """(campaign, step, email) -> message state, for every message row in the ledger."""
    return {(r["campaign"], r["step"], r["email"]): r["state"]
            for r in ledger_rows(project, "SELECT campaign, step, email, state FROM messages")}


def group(project: Path, grp: str, campaign: str | None = None) -> set[str]:
    """Addresses enrolled in the treatment or holdout group (of one campaign, or any)."""
    sql = "SELECT email FROM enrolments WHERE grp = ?"
    params: tuple[Any, ...] = (grp,)
    if campaign is not None:
        sql += " AND campaign = ?"
        params += (campaign,)
    return {r["email"] for r in ledger_rows(project, sql, params)}


def history_messages(output: str) -> tuple[list[str], list[str]]:
    """Message-IDs and states in `ldmail history`'s message table (cells may be folded)."""
    lines = output.splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith("Messages to ")), None)
    if start is None:
        return [], []
    top = next(i for i in range(start, len(lines)) if lines[i].startswith("┃"))
    bottom = next(i for i in range(top, len(lines)) if not lines[i].startswith("┃"))
    cells = [line.strip().strip("┃").split("┃") for line in lines[top:bottom]]
    names = ["".join(c.strip() for c in column) for column in zip(*cells, strict=True)]
    columns: dict[str, str] = dict.fromkeys(names, "")
    for line in lines[bottom + 1:]:  # the rule under the header, then the rows
        if not line.startswith("│"):
            break
        for name, cell in zip(names, line.strip().strip("│").split("│"), strict=True):
            columns[name] += cell.strip()
    ids = re.findall(r"<[^<>]+>", columns["message-id"])
    found_states = re.findall(r"sent|failed|deferred|unknown|claimed", columns["state"])
    return ids, found_states


def ldmail_command(*args: str | Path) -> list[str]:
    """The real CLI as a separate process: `python -m ldmail ARGS…`."""
    return [sys.executable, "-m", "ldmail", *(str(a) for a in args)]


def start_ldmail(*args: str | Path) -> subprocess.Popen[str]:
    return subprocess.Popen(ldmail_command(*args), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


@contextmanager
def ldmail_running(*args: str | Path) -> Iterator[subprocess.Popen[str]]:
    """`ldmail ARGS…` as a separate process, killed if the test leaves it running."""
    process = start_ldmail(*args)
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()


def wait_for(condition: Callable[[], bool], seconds: float, what: str) -> None:
    """Poll `condition` until it holds; fail the test naming `what` after `seconds`."""
    deadline = monotonic() + seconds
    while not condition():
        assert monotonic() < deadline, f"timed out waiting for {what}"
        sleep(0.02)


def loopback_listener() -> socket.socket:
    """A listening TCP socket on 127.0.0.1 and a free port, polled every 0.1 s or so."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    listener.settimeout(0.1)
    return listener
