"""An IMAP folder as `ldmail inbox` reads it, with a server that may be slow, rude or hostile.

Every command has a total deadline (inbox.timeout), not only a time per read: a watchdog
thread shuts the socket down under a command that outlives it, or at once when a stop
(SIGTERM, Ctrl-C) is asked for, so a server that trickles one byte a second holds nothing.
Lines are bounded (1 MB; the SEARCH answer 16 MB), literals too (1 MB; a mail's body
inbox.max_mail_size plus one byte, fetched partially so a server that does not tell or
under-tells a mail's RFC822.SIZE sends no more, and the mail counts as too large). Every failure,
a BYE included, is one InboxUnavailable line naming the server; what was applied before it
stays applied and the rest waits for the next run.
"""

from __future__ import annotations

import base64
import imaplib
import os
import re
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Literal, cast

from ..errors import InboxUnavailable, LdmailError, StopRequested
from ..project.config import SETTINGS_FILE, Project
from ..project.models import Inbox, is_loopback
from .bounces import one_line

MOVE_BATCH = 200  # mails moved to the done folder with one command
ANSWER_LITERAL = 1_000_000  # imaplib's own bound on a line; no other answer needs more
ANSWER_LINE = 1_000_000  # imaplib's bound on a line (its _MAXLINE)
# The UID SEARCH ALL answer is one line of every UID in the folder: about 110,000 mails make
# it longer than 1 MB. One bounded line is simpler than searching in UID windows (which takes
# UIDNEXT and a command per window); 16 MB holds the UIDs of over 1.4 million mails at their
# widest (10 digits and a space), which no bounce mailbox reaches.
SEARCH_LINE = 16_000_000
WATCH_STEP = 0.1  # seconds between the watchdog's looks at a stop request


def imap_name(name: str) -> str:
    """A folder name as an IMAP quoted string, in modified UTF-7 (RFC 3501, 5.1.3)."""
    out: list[str] = []
    run: list[str] = []

    def flush() -> None:
        if run:
            data = base64.b64encode("".join(run).encode("utf-16-be")).decode("ascii")
            out.append("&" + data.rstrip("=").replace("/", ",") + "-")
            run.clear()

    for char in name:
        if " " <= char <= "~":
            flush()
            out.append("&-" if char == "&" else char)
        else:
            run.append(char)
    flush()
    return '"' + "".join(out).replace("\\", "\\\\").replace('"', '\\"') + '"'


def _sasl(answer: Callable[..., str]) -> Callable[[bytes], bytes | None]:
    """oauth.xoauth2's answers (text) as imaplib's authenticate wants them (bytes)."""
    return lambda challenge: answer(challenge).encode()


def _shown(text: object) -> str:
    """A server's words for one line of output: printable characters only, bounded."""
    return one_line("".join(c if c.isprintable() else " " for c in str(text)), 160)


def _reason(exc: BaseException) -> str:
    """What went wrong, without the command imaplib repeats in front of it."""
    return _shown(re.sub(r"^command: .*? => ", "", str(exc)))


def _said(data: Sequence[object] | None) -> str:
    """A server's answer text, for a message."""
    return _shown(" ".join(item.decode("utf-8", "replace") if isinstance(item, bytes)
                           else str(item) for item in data or () if item is not None))


class _Watchdog:
    """Ends the command in hand by shutting its socket down: past its deadline, or once a
    stop is asked for. `fired` says which, for the message.

    It holds duplicates of the socket's descriptor: STARTTLS wraps the socket, and the wrap
    detaches the original object (its shutdown would fail with EBADF during the handshake),
    while a duplicate's shutdown still ends the connection. `release` closes them."""

    def __init__(self, seconds: float, stop: threading.Event | None) -> None:
        self.seconds, self.stop = seconds, stop
        self.fired: str | None = None  # "deadline" or "stop"
        self._socks: list[socket.socket] = []
        self._lock = threading.Lock()
        self._finished = threading.Event()

    def attach(self, sock: socket.socket) -> None:
        with self._lock:
            self._socks.append(sock.dup())
            if self.fired:
                self._shut()

    def release(self) -> None:
        with self._lock:
            for sock in self._socks:
                sock.close()
            self._socks.clear()

    @contextmanager
    def command(self) -> Iterator[None]:
        if self.stop is not None and self.stop.is_set():
            self.fired = "stop"
            raise StopRequested
        self.fired = None
        finished = threading.Event()
        watch = threading.Thread(target=self._watch,
                                 args=(finished, time.monotonic() + self.seconds), daemon=True)
        watch.start()
        try:
            yield
        finally:
            with self._lock:
                finished.set()
            watch.join()

    def _watch(self, finished: threading.Event, deadline: float) -> None:
        while not finished.wait(max(0.0, min(WATCH_STEP, deadline - time.monotonic()))):
            reason = "stop" if self.stop is not None and self.stop.is_set() else \
                "deadline" if time.monotonic() >= deadline else None
            if reason is None:
                continue
            with self._lock:
                if not finished.is_set():
                    self.fired = reason
                    self._shut()
            return

    def _shut(self) -> None:
        for sock in self._socks:
            try:
                # A plain socket's shutdown, also under TLS: it wakes the reading thread at
                # once, where SSLSocket's own would first try to talk to the server.
                socket.socket.shutdown(sock, socket.SHUT_RDWR)
            except OSError:
                pass  # already closed


class _Imap(imaplib.IMAP4):
    """imaplib's client with its socket under the watchdog, TLS from the first byte when
    given a context, and a bound on every literal the server sends."""

    def __init__(self, host: str, port: int, *, timeout: float, watchdog: _Watchdog,
                 tls: ssl.SSLContext | None) -> None:
        self.watchdog, self.tls = watchdog, tls
        self.literal_limit = ANSWER_LITERAL
        self.line_limit = ANSWER_LINE
        super().__init__(host, port, timeout)

    def _create_socket(self, timeout: float | None) -> socket.socket:
        sock: socket.socket = super()._create_socket(timeout)  # type: ignore[misc]
        self.watchdog.attach(sock)  # the plain socket: an SSLSocket has no dup()
        if self.tls is not None:
            sock = self.tls.wrap_socket(sock, server_hostname=self.host,
                                        do_handshake_on_connect=False)
        if isinstance(sock, ssl.SSLSocket):
            sock.do_handshake()  # under the watchdog: a trickled handshake is cut short too
        return sock

    def read(self, size: int) -> bytes:
        if size > self.literal_limit:
            raise self.abort(f"the server announced {size:,} bytes where at most "
                             f"{self.literal_limit:,} are expected")
        return super().read(size)

    def readline(self) -> bytes:
        # imaplib's own, with the bound of the answer in hand in place of its _MAXLINE.
        line = cast(bytes, self.file.readline(self.line_limit + 1))
        if len(line) > self.line_limit:
            raise self.error(f"got more than {self.line_limit} bytes")
        return line

    def starttls(self, ssl_context: Any = None) -> tuple[Literal["OK"], list[None]]:
        # The watchdog holds a duplicate of the plain socket from _create_socket, which
        # still ends the connection during and after the handshake here.
        return super().starttls(ssl_context)


class ImapFolder:
    """A folder on an IMAP server: TLS (verified, except to a loopback host) or STARTTLS,
    password login; mails read with BODY.PEEK (nothing is marked read), handled ones moved
    with UID MOVE, or COPY, STORE \\Deleted and (UID) EXPUNGE where the server has no MOVE."""

    def __init__(self, settings: Inbox, project: Project,
                 stop: threading.Event | None = None) -> None:
        self.settings = settings
        host = settings.host or "localhost"
        port = settings.port or (993 if settings.security == "tls" else 143)
        self.where = f"imap {host}:{port} folder {settings.folder}"
        self.done = settings.done_folder
        self._server = f"imap {host}:{port}"
        self._sizes: dict[str, int] = {}
        password = os.environ.get(settings.password_env)
        if settings.auth == "password" and not password:
            raise InboxUnavailable(
                f"{self._server}: user {settings.user} needs a password in the environment "
                f"variable {settings.password_env}; set it (never in a file or on the command "
                "line)")
        self.watchdog = _Watchdog(settings.timeout.total_seconds(), stop)
        self.conn = self._connect(host, port)
        try:
            self._login(project, password)
            self.capabilities = self._capabilities()
            self._select()
        except BaseException:
            self.close()
            raise

    # -- every command --------------------------------------------------------------------

    @contextmanager
    def _command(self, what: str) -> Iterator[None]:
        """One command under the watchdog; any way it fails becomes one line."""
        try:
            with self.watchdog.command():
                yield
        except (OSError, EOFError, ValueError, imaplib.IMAP4.error) as exc:
            raise self._failed(what, exc) from None

    def _failed(self, what: str, exc: BaseException) -> Exception:
        if self.watchdog.fired == "stop":
            return StopRequested()
        rest = "what was applied is recorded, the rest waits for the next run"
        if self.watchdog.fired == "deadline" or isinstance(exc, TimeoutError):
            return InboxUnavailable(
                f"{self._server}: no complete answer to {what} within "
                f"{self.watchdog.seconds:g} s (inbox.timeout in {SETTINGS_FILE}); {rest}; if "
                "the server is only slow, raise inbox.timeout")
        return InboxUnavailable(f"{self._server}: {what} failed ({_reason(exc)}); {rest}; if "
                                "it repeats, check that inbox.host and inbox.port name an "
                                "IMAP server")

    def _check(self, answer: tuple[str, Sequence[Any]], what: str) -> Sequence[Any]:
        kind, data = answer
        if kind != "OK":
            raise InboxUnavailable(f"{self._server}: {what} failed ({_said(data)})")
        return data

    # -- connecting -----------------------------------------------------------------------

    def _connect(self, host: str, port: int) -> _Imap:
        settings = self.settings
        context = ssl.create_default_context()
        if is_loopback(host):
            context.check_hostname = False  # a test server's own certificate
            context.verify_mode = ssl.CERT_NONE
        try:
            with self.watchdog.command():
                conn = _Imap(host, port, timeout=settings.timeout.total_seconds(),
                             watchdog=self.watchdog,
                             tls=context if settings.security == "tls" else None)
            if settings.security == "starttls":
                with self._command("STARTTLS"):
                    conn.starttls(ssl_context=context)
            return conn
        except BaseException as exc:
            self.watchdog.release()
            if isinstance(exc, (OSError, EOFError, imaplib.IMAP4.error)):
                raise self._unreachable(host, port, exc) from None
            raise

    def _unreachable(self, host: str, port: int, exc: BaseException) -> Exception:
        if self.watchdog.fired == "stop":
            return StopRequested()
        if self.watchdog.fired == "deadline":
            detail = f"no greeting within {self.watchdog.seconds:g} s"
        elif isinstance(exc, ssl.SSLError):
            return InboxUnavailable(f"{self._server}: TLS failed ({exc.reason or exc}); check "
                                    f"inbox.host, inbox.port and inbox.security "
                                    f"({self.settings.security}) in {SETTINGS_FILE}")
        else:
            detail = exc.strerror if isinstance(exc, OSError) and exc.strerror else _reason(exc)
        return InboxUnavailable(
            f"cannot reach the IMAP server {host}:{port} ({_shown(detail or 'timed out')}); "
            f"check inbox.host and inbox.port in {SETTINGS_FILE} and that this machine can "
            "reach it")

    def _login(self, project: Project, password: str | None) -> None:
        if self.settings.auth == "oauth2":
            self._login_oauth2(project)
            return
        with self._command("LOGIN"):
            try:
                self.conn.login(self.settings.user or "", password or "")
            except imaplib.IMAP4.abort:
                raise
            except imaplib.IMAP4.error as exc:
                raise InboxUnavailable(
                    f"{self._server}: login as {self.settings.user} refused ({_shown(exc)}); "
                    f"check inbox.user in {SETTINGS_FILE} and the password in "
                    f"{self.settings.password_env}") from None

    def _login_oauth2(self, project: Project) -> None:
        """AUTHENTICATE XOAUTH2 with a token from transport.oauth2 (oauth.py: Entra ID's client
        credentials, or a token_command); a refused token is replaced once."""
        from ..delivery.transport.oauth import SMTP_SCOPE, token_source, xoauth2

        transport, user = project.settings.transport, self.settings.user or ""
        if transport.oauth2 is None:
            raise InboxUnavailable(
                f"inbox auth: oauth2 takes its tokens from transport.oauth2 in {SETTINGS_FILE}, "
                "which has none; add the app registration there (see the README's 'Sending "
                "from Microsoft 365')")
        if "AUTH=XOAUTH2" not in {str(c).upper() for c in self.conn.capabilities}:
            raise InboxUnavailable(f"{self._server} does not offer AUTH=XOAUTH2, which inbox "
                                   "auth: oauth2 needs; check inbox.host and inbox.port")
        # Microsoft 365's IMAP takes the same resource's tokens as its SMTP.
        tokens = token_source(transport, SMTP_SCOPE, project.path)
        token, _ = tokens.get()
        for attempt in ("first", "fresh"):
            with self._command("AUTHENTICATE XOAUTH2"):
                try:
                    self.conn.authenticate("XOAUTH2", _sasl(xoauth2(user, token)))
                    return
                except imaplib.IMAP4.abort:
                    raise
                except imaplib.IMAP4.error as exc:
                    refused = exc
            if attempt == "first":
                token = tokens.refresh(token)
        raise InboxUnavailable(
            f"{self._server}: XOAUTH2 login as {user} refused "
            f"({tokens.redact(_shown(refused))}), with a fresh token too; check "
            f"inbox.user, and for Microsoft 365 that the app registration "
            f"({tokens.who}) has IMAP.AccessAsApp with admin consent and access to the "
            "mailbox (Add-MailboxPermission for its service principal)")

    def _capabilities(self) -> set[str]:
        with self._command("CAPABILITY"):
            data = self._check(self.conn.capability(), "CAPABILITY")
        return {word.upper() for item in data if isinstance(item, bytes)
                for word in item.decode("ascii", "replace").split()}

    def _select(self) -> None:
        with self._command("SELECT"):
            kind, data = self.conn.select(imap_name(self.settings.folder))
        if kind != "OK":
            raise InboxUnavailable(f"{self._server}: cannot open the folder "
                                   f"{self.settings.folder} ({_said(data)}); check inbox.folder "
                                   f"in {SETTINGS_FILE}")

    # -- the Folder protocol --------------------------------------------------------------

    def keys(self) -> list[str]:
        self.conn.line_limit = SEARCH_LINE
        try:
            with self._command("UID SEARCH"):
                data = self._check(self.conn.uid("SEARCH", "ALL"), "UID SEARCH")
        finally:
            self.conn.line_limit = ANSWER_LINE
        uids = [uid.decode("ascii") for item in data if isinstance(item, bytes)
                for uid in item.split()]
        if uids:
            # Each mail's size before any body: a huge one is never fetched.
            with self._command("UID FETCH RFC822.SIZE"):
                sizes = self._check(self.conn.uid("FETCH", "1:*", "(RFC822.SIZE)"),
                                    "UID FETCH RFC822.SIZE")
            for item in sizes:
                uid = re.search(rb"\bUID (\d+)", item) if isinstance(item, bytes) else None
                size = re.search(rb"\bRFC822\.SIZE (\d+)", item) if uid else None
                if uid and size:
                    self._sizes[uid[1].decode("ascii")] = int(size[1])
        return uids

    def size(self, key: str) -> int:
        return self._sizes.get(key, 0)  # a size the server did not say: fetch's bound

    def fetch(self, key: str, limit: int) -> bytes:
        # A partial fetch: the server sends at most limit + 1 bytes, also of a mail whose size
        # it did not say (or under-said), and the caller counts one that long as too large.
        self.conn.literal_limit = limit + 1
        try:
            with self._command("UID FETCH"):
                data = self._check(self.conn.uid("FETCH", key, f"(BODY.PEEK[]<0.{limit + 1}>)"),
                                   "UID FETCH")
        finally:
            self.conn.literal_limit = ANSWER_LITERAL
        for item in data:
            if isinstance(item, tuple) and len(item) == 2 and isinstance(item[1], bytes):
                return item[1]
        return b""  # expunged meanwhile by another client: an empty mail is left alone

    def _done_name(self) -> str:
        """The done folder in the server's own hierarchy separator; created if missing."""
        with self._command("LIST"):
            data = self._check(self.conn.list('""', imap_name(self.settings.folder)), "LIST")
        match = re.match(rb'\([^)]*\) (?:"((?:[^"\\]|\\.)*)"|NIL)',
                         data[0] if data and isinstance(data[0], bytes) else b"")
        separator = match[1].decode("ascii").replace("\\", "") if match and match[1] else "/"
        name = imap_name(separator.join(part for part in self.done.split("/") if part))
        with self._command("LIST"):
            kind, found = self.conn.list('""', name)
        if kind == "OK" and any(isinstance(item, bytes) for item in found):
            return name
        with self._command("CREATE"):
            kind, said = self.conn.create(name)
        if kind != "OK" and b"ALREADYEXISTS" not in b" ".join(
                item for item in said if isinstance(item, bytes)):
            raise InboxUnavailable(f"{self._server}: cannot create the folder {self.done}"
                                   f" ({_said(said)}); create it, or set inbox.done_folder "
                                   f"in {SETTINGS_FILE}")
        with self._command("SUBSCRIBE"):
            self.conn.subscribe(name)
        return name

    def move(self, keys: list[str]) -> None:
        if not keys:
            return
        target = self._done_name()
        for start in range(0, len(keys), MOVE_BATCH):
            uids = ",".join(keys[start:start + MOVE_BATCH])
            if "MOVE" in self.capabilities:
                self._uid("MOVE", uids, target)
                continue
            self._uid("COPY", uids, target)
            self._uid("STORE", uids, "+FLAGS.SILENT", r"(\Deleted)")
            # UID EXPUNGE removes only these; a plain EXPUNGE would also remove mails
            # someone else marked deleted.
            if "UIDPLUS" in self.capabilities:
                self._uid("EXPUNGE", uids)
            else:
                with self._command("EXPUNGE"):
                    self._check(self.conn.expunge(), "EXPUNGE")

    def _uid(self, command: str, *args: str) -> None:
        with self._command(f"UID {command}"):
            self._check(self.conn.uid(command, *args), f"UID {command}")

    def close(self) -> None:
        # LOGOUT only: CLOSE would expunge every mail marked \Deleted in the folder, also
        # those someone else marked and did not mean to remove yet.
        try:
            with self._command("LOGOUT"):
                self.conn.logout()
        except (LdmailError, StopRequested):
            pass  # the connection is gone either way
        finally:
            try:
                self.conn.shutdown()
            except OSError:
                pass  # LOGOUT closed it already
            self.watchdog.release()
