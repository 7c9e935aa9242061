"""The mailboxes `ldmail inbox` reads: an IMAP folder, or a Maildir or mbox in the project."""

from __future__ import annotations

import base64
import imaplib
import mailbox
import os
import re
import ssl
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

from ..config import SETTINGS_FILE, Project
from ..errors import InboxUnavailable, LdmailError
from ..models import Inbox, is_loopback
from .bounces import one_line

MOVE_BATCH = 200  # mails moved to the done folder with one command


# -- mailboxes ---------------------------------------------------------------------------------

class Folder(Protocol):
    where: str  # for messages: what is read
    done: str  # for messages: where handled mails go

    def keys(self) -> list[str]: ...

    def fetch(self, key: str) -> bytes: ...

    def move(self, keys: list[str]) -> None: ...

    def close(self) -> None: ...


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


def _said(data: Sequence[object] | None) -> str:
    """A server's answer text, for a message."""
    parts = [item.decode("utf-8", "replace") if isinstance(item, bytes) else str(item)
             for item in data or () if item is not None]
    return one_line(" ".join(parts), 160)


class ImapFolder:
    """A folder on an IMAP server: TLS (verified, except to a loopback host) or STARTTLS,
    password login; mails read with BODY.PEEK (nothing is marked read), handled ones moved
    with UID MOVE, or COPY, STORE \\Deleted and (UID) EXPUNGE where the server has no MOVE."""

    def __init__(self, settings: Inbox, project: Project) -> None:
        self.settings = settings
        host = settings.host or "localhost"
        port = settings.port or (993 if settings.security == "tls" else 143)
        self.where = f"imap {host}:{port} folder {settings.folder}"
        self.done = settings.done_folder
        self._server = f"imap {host}:{port}"
        password = os.environ.get(settings.password_env)
        if settings.auth == "password" and not password:
            raise InboxUnavailable(
                f"{self._server}: user {settings.user} needs a password in the environment "
                f"variable {settings.password_env}; set it (never in a file or on the command "
                "line)")
        context = ssl.create_default_context()
        if is_loopback(host):
            context.check_hostname = False  # a test server's own certificate
            context.verify_mode = ssl.CERT_NONE
        timeout = settings.timeout.total_seconds()
        try:
            if settings.security == "tls":
                self.conn: imaplib.IMAP4 = imaplib.IMAP4_SSL(host, port, ssl_context=context,
                                                             timeout=timeout)
            else:
                self.conn = imaplib.IMAP4(host, port, timeout=timeout)
                if settings.security == "starttls":
                    self.conn.starttls(ssl_context=context)
        except ssl.SSLError as exc:
            raise InboxUnavailable(f"{self._server}: TLS failed ({exc.reason or exc}); check "
                                   f"inbox.host, inbox.port and inbox.security "
                                   f"({settings.security}) in {SETTINGS_FILE}") from None
        except (OSError, imaplib.IMAP4.error) as exc:
            detail = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            raise InboxUnavailable(
                f"cannot reach the IMAP server {host}:{port} ({detail or 'timed out'}); check "
                f"inbox.host and inbox.port in {SETTINGS_FILE} and that this machine can "
                "reach it") from None
        try:
            if settings.auth == "oauth2":
                self._login_oauth2(project)
            else:
                self.conn.login(settings.user or "", password or "")
        except imaplib.IMAP4.error as exc:
            self._quit()
            raise InboxUnavailable(
                f"{self._server}: login as {settings.user} refused ({one_line(exc, 160)}); "
                f"check inbox.user in {SETTINGS_FILE} and the password in "
                f"{settings.password_env}") from None
        except (OSError, imaplib.IMAP4.abort) as exc:
            raise self._lost(exc) from None
        except LdmailError:
            self._quit()
            raise
        self.capabilities = self._capabilities()
        self._select()

    def _login_oauth2(self, project: Project) -> None:
        """AUTHENTICATE XOAUTH2 with a token from transport.oauth2 (oauth.py: Entra ID's client
        credentials, or a token_command); a refused token is replaced once."""
        from ..oauth import SMTP_SCOPE, token_source, xoauth2

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
        try:
            self.conn.authenticate("XOAUTH2", _sasl(xoauth2(user, token)))
            return
        except imaplib.IMAP4.error:
            token = tokens.refresh(token)
        try:
            self.conn.authenticate("XOAUTH2", _sasl(xoauth2(user, token)))
        except imaplib.IMAP4.error as exc:
            raise InboxUnavailable(
                f"{self._server}: XOAUTH2 login as {user} refused "
                f"({tokens.redact(one_line(exc, 160))}), with a fresh token too; check "
                f"inbox.user, and for Microsoft 365 that the app registration "
                f"({tokens.who}) has IMAP.AccessAsApp with admin consent and access to the "
                "mailbox (Add-MailboxPermission for its service principal)") from None

    def _lost(self, exc: BaseException) -> InboxUnavailable:
        return InboxUnavailable(f"{self._server}: the connection failed ({one_line(exc, 160)});"
                                " what was applied is recorded, the rest waits for the next run")

    def _check(self, answer: tuple[str, Sequence[Any]], what: str) -> Sequence[Any]:
        kind, data = answer
        if kind != "OK":
            raise InboxUnavailable(f"{self._server}: {what} failed ({_said(data)})")
        return data

    def _capabilities(self) -> set[str]:
        try:
            data = self._check(self.conn.capability(), "CAPABILITY")
        except (OSError, imaplib.IMAP4.abort) as exc:
            raise self._lost(exc) from None
        return {word.upper() for item in data if isinstance(item, bytes)
                for word in item.decode("ascii", "replace").split()}

    def _select(self) -> None:
        kind, data = self.conn.select(imap_name(self.settings.folder))
        if kind != "OK":
            raise InboxUnavailable(f"{self._server}: cannot open the folder "
                                   f"{self.settings.folder} ({_said(data)}); check inbox.folder "
                                   f"in {SETTINGS_FILE}")

    def keys(self) -> list[str]:
        try:
            data = self._check(self.conn.uid("SEARCH", "ALL"), "UID SEARCH")
        except (OSError, imaplib.IMAP4.abort) as exc:
            raise self._lost(exc) from None
        return [uid.decode("ascii") for item in data if isinstance(item, bytes)
                for uid in item.split()]

    def fetch(self, key: str) -> bytes:
        try:
            data = self._check(self.conn.uid("FETCH", key, "(BODY.PEEK[])"), "UID FETCH")
        except (OSError, imaplib.IMAP4.abort) as exc:
            raise self._lost(exc) from None
        for item in data:
            if isinstance(item, tuple) and len(item) == 2 and isinstance(item[1], bytes):
                return item[1]
        return b""  # expunged meanwhile by another client: an empty mail is left alone

    def _done_name(self) -> str:
        """The done folder in the server's own hierarchy separator; created if missing."""
        data = self._check(self.conn.list('""', imap_name(self.settings.folder)), "LIST")
        match = re.match(rb'\([^)]*\) (?:"((?:[^"\\]|\\.)*)"|NIL)',
                         data[0] if data and isinstance(data[0], bytes) else b"")
        separator = match[1].decode("ascii").replace("\\", "") if match and match[1] else "/"
        name = imap_name(separator.join(part for part in self.done.split("/") if part))
        kind, found = self.conn.list('""', name)
        if kind != "OK" or not any(isinstance(item, bytes) for item in found):
            kind, said = self.conn.create(name)
            if kind != "OK" and b"ALREADYEXISTS" not in b" ".join(
                    item for item in said if isinstance(item, bytes)):
                raise InboxUnavailable(f"{self._server}: cannot create the folder {self.done}"
                                       f" ({_said(said)}); create it, or set inbox.done_folder "
                                       f"in {SETTINGS_FILE}")
            self.conn.subscribe(name)
        return name

    def move(self, keys: list[str]) -> None:
        if not keys:
            return
        try:
            target = self._done_name()
            for start in range(0, len(keys), MOVE_BATCH):
                uids = ",".join(keys[start:start + MOVE_BATCH])
                if "MOVE" in self.capabilities:
                    self._check(self.conn.uid("MOVE", uids, target), "UID MOVE")
                    continue
                self._check(self.conn.uid("COPY", uids, target), "UID COPY")
                self._check(self.conn.uid("STORE", uids, "+FLAGS.SILENT", r"(\Deleted)"),
                            "UID STORE")
                # UID EXPUNGE removes only these; a plain EXPUNGE would also remove mails
                # someone else marked deleted.
                self._check(self.conn.uid("EXPUNGE", uids) if "UIDPLUS" in self.capabilities
                            else self.conn.expunge(), "EXPUNGE")
        except (OSError, imaplib.IMAP4.abort) as exc:
            raise self._lost(exc) from None

    def _quit(self) -> None:
        try:
            self.conn.logout()
        except (OSError, imaplib.IMAP4.error):
            pass

    def close(self) -> None:
        # LOGOUT only: CLOSE would expunge every mail marked \Deleted in the folder, also
        # those someone else marked and did not mean to remove yet.
        self._quit()


class LocalFolder:
    """A Maildir folder or mbox file in the project (an export, or tests); handled mails go
    to `done_folder` beside it (a Maildir, or an mbox file with the same extension)."""

    def __init__(self, project: Project, settings: Inbox) -> None:
        relative = Path(settings.path or "")
        path = project.path(str(relative), f"inbox.path in {SETTINGS_FILE}")
        done = relative.parent / settings.done_folder
        if settings.kind == "mbox" and relative.suffix:
            done = done.with_name(done.name + relative.suffix)
        self.done_path = project.path(str(done), f"inbox.done_folder in {SETTINGS_FILE}")
        self.where, self.done = f"{settings.kind} {relative}", str(done)
        self.kind = settings.kind
        self.box: mailbox.Mailbox[mailbox.Message]
        if settings.kind == "maildir":
            if not (path / "cur").is_dir() and not (path / "new").is_dir():
                raise InboxUnavailable(f"{relative}: no Maildir folder there (it has no cur/ "
                                       f"or new/); check inbox.path in {SETTINGS_FILE}")
            self.box = mailbox.Maildir(path, factory=None, create=False)
        else:
            if not path.is_file():
                raise InboxUnavailable(f"{relative}: no mbox file there; check inbox.path in "
                                       f"{SETTINGS_FILE}")
            self.box = mailbox.mbox(path, create=False)
            self.box.lock()

    def keys(self) -> list[str]:
        return sorted(self.box.keys())

    def fetch(self, key: str) -> bytes:
        return self.box.get_bytes(key)

    def move(self, keys: list[str]) -> None:
        if not keys:
            return
        self.done_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        done: mailbox.Mailbox[mailbox.Message] = mailbox.Maildir(self.done_path, create=True) \
            if self.kind == "maildir" else mailbox.mbox(self.done_path, create=True)
        done.lock()
        try:
            for key in keys:
                done.add(self.box.get_message(key))
            done.flush()
        finally:
            done.unlock()
            done.close()
        for key in keys:
            self.box.remove(key)
        self.box.flush()

    def close(self) -> None:
        if self.kind == "mbox":
            self.box.unlock()
        self.box.close()


def open_folder(project: Project, settings: Inbox) -> Folder:
    if settings.kind == "imap":
        return ImapFolder(settings, project)
    return LocalFolder(project, settings)


