"""`ldmail inbox`: bounces and unsubscribe mails in the sender's mailbox, each applied once.

A relay accepts a message; days later a non-delivery report (a bounce) or an "unsubscribe"
mail arrives in the sender's mailbox, where nobody reads it. This reads every mail in the
folder named by the `inbox:` block of ldmail.yaml (over IMAP, or a Maildir or mbox file):

- a bounce, an RFC 3464 delivery status notification (read with the standard library: a
  5.x.x Status is hard, 4.x.x soft, the Diagnostic-Code is the reason) or one of the older
  formats flufl.bounce knows: the message it is about is found by the Message-ID in the
  attached original (message/rfc822 or text/rfc822-headers), In-Reply-To or References, or
  else is the most recent message sent to the failed address. That message becomes `bounced`
  with the reason; a hard bounce also suppresses the address, which ends its enrolments as
  "bounced";
- an unsubscribe mail sent to the List-Unsubscribe mailto address, with the person's token in
  its subject or body: the person is suppressed for good, their enrolments end as
  "unsubscribed";
- anything else is left where it is, and counted.

Handled mails are moved to the done folder. The ledger also records each mail it applied (a
keyed hash of its Message-ID), in the same transaction as its changes, so a mail left in the
folder (a move that failed, a run stopped in between) is moved later but never applied twice.
"""

from __future__ import annotations

import base64
import email
import email.policy
import hashlib
import imaplib
import json
import mailbox
import os
import re
import ssl
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from email.message import EmailMessage, Message
from email.parser import HeaderParser
from email.utils import getaddresses, parseaddr
from pathlib import Path
from typing import Any, Literal, Protocol

from .clock import iso
from .config import SETTINGS_FILE, Project
from .errors import IllegalTransition, LdmailError
from .ledger import FORGOTTEN, Ledger, MessageOp, MessageState, SentMessage
from .ledger.states import message_sources
from .models import Inbox, is_loopback

NOT_OURS = "not a bounce or an unsubscribe"
NOT_SENT = "a bounce of a message ldmail did not send"
NO_TOKEN = "an unsubscribe token no person in the ledger has"
UNSUBSCRIBED_BY_MAIL = "unsubscribed by mail"
FORGOTTEN_SHOWN = "(forgotten)"  # how a person erased on request is named in the output
INBOX_SETTING = f"inbox in {SETTINGS_FILE}"
MAX_REASON = 300  # characters of a server's diagnostic kept as the reason
MOVE_BATCH = 200  # mails moved to the done folder with one command

_STATUS = re.compile(r"(?<![\d.])([245])\.(\d{1,3})\.(\d{1,3})(?![\d.])")
_MESSAGE_ID = re.compile(r"<[^<>\s]+>")
_TOKEN = re.compile(r"unsubscribe(?:%20|[\s:=_+-]){1,3}([0-9a-f]{32})(?![0-9a-f])", re.I)
_DAEMONS = ("mailer-daemon", "postmaster", "mail-daemon", "mailerdaemon")
_RECIPIENT_HEADERS = ("to", "cc", "delivered-to", "x-original-to", "envelope-to", "resent-to")


class InboxUnavailable(LdmailError):
    """The mailbox cannot be read: refused login, unreachable server, missing folder."""


# -- reading a mail ----------------------------------------------------------------------------

@dataclass(frozen=True)
class Failure:
    """One failed recipient named by a bounce."""

    address: str | None  # as the bounce names it, lower-cased (None: it names none)
    status: str  # the enhanced status code, e.g. 5.1.10, or "" when it gives none
    hard: bool
    diagnostic: str  # the server's words, one line (the Diagnostic-Code without "smtp;")

    @property
    def reason(self) -> str:
        """The status and the server's words ("550 5.1.1 <…>: User unknown" holds both)."""
        if self.status and self.status in self.diagnostic:
            return self.diagnostic
        return f"{self.status} {self.diagnostic}".strip() or "no reason given"


def _one_line(text: object, limit: int = MAX_REASON) -> str:
    shown = " ".join(str(text).split())
    return shown if len(shown) <= limit else shown[:limit - 1] + "…"


def _address(text: str) -> str | None:
    """`rfc822; Ann@Example.org` or `<ann@example.org>` as ann@example.org."""
    value = text.partition(";")[2] if ";" in text else text
    found = parseaddr(value.strip())[1].strip().lower()
    return found if "@" in found else None


def _hardness(status: str, fallback: bool) -> bool:
    return status.startswith("5") if status[:1] in ("4", "5") else fallback


def _dsn_failures(message: Message) -> list[Failure] | None:
    """The failed and delayed recipients of every message/delivery-status part (RFC 3464);
    None when the mail has no such part."""
    found: list[Failure] | None = None
    for part in message.walk():
        if part.get_content_type() != "message/delivery-status":
            continue
        found = found if found is not None else []
        blocks = part.get_payload()
        for block in blocks if isinstance(blocks, list) else ():
            if not isinstance(block, Message):
                continue
            action = str(block.get("Action", "")).strip().lower()
            if not action.startswith(("fail", "delay", "error")):
                continue  # the per-message block, or a recipient delivered or relayed
            diagnostic = _one_line(block.get("Diagnostic-Code", ""))
            diagnostic = diagnostic.partition(";")[2].strip() if ";" in diagnostic[:12] \
                else diagnostic
            status_match = _STATUS.search(str(block.get("Status", ""))) or \
                _STATUS.search(diagnostic)
            status = ".".join(status_match.groups()) if status_match else ""
            recipient = block.get("Original-Recipient") or block.get("Final-Recipient") or ""
            failed = not action.startswith("delay")
            found.append(Failure(_address(str(recipient)), status,
                                 failed and _hardness(status, True), diagnostic))
    return found


def _automated(message: Message) -> bool:
    """Whether the mail says it was made by a mail system rather than written by a person."""
    sender = parseaddr(str(message.get("From", "")))
    local = sender[1].partition("@")[0].lower()
    auto = str(message.get("Auto-Submitted", "")).strip().lower()
    return (local in _DAEMONS or "mail delivery" in sender[0].lower()
            or str(message.get("Return-Path", "")).strip() == "<>"
            or (auto not in ("", "no")) or message.get("X-Failed-Recipients") is not None
            or message.get_content_type() == "multipart/report")


def _report_text(message: EmailMessage) -> str:
    """The bounce's own human-readable text (not the attached original)."""
    texts = []
    for part in message.walk():
        if part.get_content_type() == "message/rfc822":
            break
        if part.get_content_type() == "text/plain" and not part.is_attachment():
            try:
                texts.append(str(part.get_content()))
            except (LookupError, ValueError):
                continue
    return "\n".join(texts)


def _heuristic_failures(message: EmailMessage, compat: Message) -> list[Failure]:
    """Recipients found by flufl.bounce's detectors (Postfix, Exim's X-Failed-Recipients,
    qmail, Microsoft and others), with a status code and line from the bounce's text."""
    from flufl.bounce import all_failures

    temporary, permanent = all_failures(compat)
    text = _report_text(message)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    failures = []
    for raw, hard in [*((a, False) for a in temporary), *((a, True) for a in permanent)]:
        address = raw.decode("ascii", "replace").strip().lower()
        near = [line for line in lines if _STATUS.search(line)]
        mentions = [line for line in lines if address in line.lower() and line.lower() != address]
        line = (near or mentions or [""])[0]
        status_match = _STATUS.search(line)
        status = ".".join(status_match.groups()) if status_match else ""
        failures.append(Failure(address, status, _hardness(status, hard), _one_line(line)))
    return failures


def bounce_failures(message: EmailMessage, compat: Message) -> list[Failure] | None:
    """The recipients a bounce reports as failed (or delayed); None when it is no bounce."""
    reported = _dsn_failures(message)
    if reported:
        return reported
    if reported is not None or not _automated(message):
        return None  # a delivery receipt (delivered, relayed), or a mail a person wrote
    return _heuristic_failures(message, compat) or None


def original_ids(message: EmailMessage) -> list[str]:
    """Message-IDs of the message a bounce is about: from the attached original (or its
    headers), then In-Reply-To and References."""
    ids: list[str] = []
    for part in message.walk():
        kind = part.get_content_type()
        headers: Message | None = None
        if kind == "message/rfc822":
            inner = part.get_payload()
            headers = inner[0] if isinstance(inner, list) and inner and \
                isinstance(inner[0], Message) else None
        elif kind == "text/rfc822-headers":
            payload = part.get_payload(decode=True)
            if isinstance(payload, bytes):
                headers = HeaderParser(policy=email.policy.compat32).parsestr(
                    payload.decode("utf-8", "replace"))
        if headers is not None:
            ids += _MESSAGE_ID.findall(str(headers.get("Message-ID", "")))
    for name in ("In-Reply-To", "References"):
        ids += _MESSAGE_ID.findall(str(message.get(name, "")))
    return list(dict.fromkeys(ids))


def unsubscribe_token(message: EmailMessage, mailto: set[str]) -> str | None:
    """The token of an unsubscribe mail sent to one of the `mailto` addresses (its subject,
    or else its own text), lower-cased; None for any other mail."""
    recipients = {address.lower() for _, address in getaddresses(
        [str(value) for name in _RECIPIENT_HEADERS for value in message.get_all(name, [])])}
    if not recipients & mailto:
        return None
    found = _TOKEN.search(str(message.get("Subject", "")))
    if found is None:
        body = message.get_body(preferencelist=("plain",))
        if body is not None:
            try:
                found = _TOKEN.search(str(body.get_content()))
            except (LookupError, ValueError):
                found = None
    return found[1].lower() if found else None


def _mail_identity(message: Message, raw: bytes) -> str:
    """What names a mail for good: its Message-ID, or else a digest of its bytes."""
    ids = _MESSAGE_ID.findall(str(message.get("Message-ID", "")))
    return f"mail {ids[0]}" if ids else f"bytes {hashlib.sha256(raw).hexdigest()}"


# -- the result --------------------------------------------------------------------------------

@dataclass(frozen=True)
class Handled:
    """One bounce or unsubscribe applied (or, in a dry run, that would be)."""

    kind: Literal["bounce", "unsubscribe"]
    email: str  # as the ledger has it; FORGOTTEN_SHOWN for a person erased on request
    reason: str  # the bounce's status and diagnostic, or "unsubscribed by mail"
    hard: bool = False
    campaign: str | None = None
    step: str | None = None
    suppressed: bool = False  # suppressed by this mail (not already before)

    @property
    def label(self) -> str:
        return ("hard bounce" if self.hard else "soft bounce") if self.kind == "bounce" \
            else "unsubscribe"

    @property
    def effect(self) -> str:
        if self.suppressed:
            return "suppressed"
        if self.kind == "bounce" and not self.hard:
            return "recorded"
        return "already suppressed"


@dataclass
class InboxResult:
    source: str
    done_folder: str
    dry_run: bool = False
    handled: list[Handled] = field(default_factory=list)
    left_alone: Counter[str] = field(default_factory=Counter)
    applied_before: int = 0  # mails an earlier run applied but left in the folder
    moved: int = 0

    @property
    def bounces(self) -> list[Handled]:
        return [item for item in self.handled if item.kind == "bounce"]

    @property
    def unsubscribes(self) -> list[Handled]:
        return [item for item in self.handled if item.kind == "unsubscribe"]

    def summary(self) -> str:
        bounces = self.bounces
        hard = sum(1 for item in bounces if item.hard)
        left = sum(self.left_alone.values())
        why = ", ".join(reason if len(self.left_alone) == 1 else f"{n} {reason}"
                        for reason, n in sorted(self.left_alone.items()))
        line = (f"inbox{' (dry run: nothing changed or moved)' if self.dry_run else ''}: "
                f"{_count(len(bounces), 'bounce', 'bounces')} ({hard} hard, "
                f"{len(bounces) - hard} soft), "
                f"{_count(len(self.unsubscribes), 'unsubscribe', 'unsubscribes')}, "
                f"{left} left alone" + (f" ({why})" if left else ""))
        if self.applied_before:
            line += (f", {self.applied_before} applied by an earlier run"
                     + ("" if self.dry_run else " (moved now)"))
        return line

    def lines(self) -> list[str]:
        """One line per handled mail: what, whose address, which message, why, and effect."""
        shown = []
        for item in self.handled:
            where = f" {item.campaign}/{item.step}" if item.campaign else ""
            why = f": {item.reason}" if item.kind == "bounce" else ""
            shown.append(f"{item.label:<12} {item.email}{where}{why} ({item.effect})")
        return shown

    def to_json(self) -> str:
        bounces = self.bounces
        return json.dumps({
            "dry_run": self.dry_run, "source": self.source, "done_folder": self.done_folder,
            "bounces": len(bounces), "hard": sum(1 for item in bounces if item.hard),
            "soft": sum(1 for item in bounces if not item.hard),
            "unsubscribes": len(self.unsubscribes),
            "left_alone": sum(self.left_alone.values()),
            "left_alone_reasons": dict(sorted(self.left_alone.items())),
            "applied_before": self.applied_before, "moved": self.moved,
            "handled": [asdict(item) for item in self.handled]}, indent=2, ensure_ascii=False)


def _count(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"


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
    return _one_line(" ".join(parts), 160)


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
                f"{self._server}: login as {settings.user} refused ({_one_line(exc, 160)}); "
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
        from .oauth import SMTP_SCOPE, token_source, xoauth2

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
                f"({tokens.redact(_one_line(exc, 160))}), with a fresh token too; check "
                f"inbox.user, and for Microsoft 365 that the app registration "
                f"({tokens.who}) has IMAP.AccessAsApp with admin consent and access to the "
                "mailbox (Add-MailboxPermission for its service principal)") from None

    def _lost(self, exc: BaseException) -> InboxUnavailable:
        return InboxUnavailable(f"{self._server}: the connection failed ({_one_line(exc, 160)});"
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


# -- applying ----------------------------------------------------------------------------------

def _mailto_addresses(project: Project) -> set[str]:
    """Where List-Unsubscribe mails go: unsubscribe.mailto, or else each campaign's sender
    (as message.unsubscribe_links builds them)."""
    if project.settings.unsubscribe.mailto:
        return {project.settings.unsubscribe.mailto.strip().lower()}
    return {parseaddr(item.model.sender)[1].lower() for item in project.campaigns.values()}


@dataclass(frozen=True)
class _Unsubscribe:
    key: str
    mail: str
    token: str


class _Reader:
    """Classifies each mail and applies it to the ledger (in a dry run: says what it would)."""

    def __init__(self, project: Project, ledger: Ledger, now: datetime, result: InboxResult
                 ) -> None:
        self.ledger, self.result = ledger, result
        self.at = iso(now)
        self.dry_run = result.dry_run
        self.mailto = _mailto_addresses(project)
        self.unsubscribes: list[_Unsubscribe] = []

    def read(self, key: str, raw: bytes) -> bool:
        """Apply one mail; True when it is to be moved to the done folder."""
        try:
            message = email.message_from_bytes(raw, policy=email.policy.default)
            assert isinstance(message, EmailMessage)
            mail = self.ledger.address_hash(_mail_identity(message, raw))
            if self.ledger.mail_applied(mail) is not None:
                self.result.applied_before += 1
                return True
            failures = bounce_failures(message, email.message_from_bytes(raw))
            token = None if failures is not None else unsubscribe_token(message, self.mailto)
            ids = original_ids(message) if failures is not None else []
        except Exception as exc:  # one unreadable mail must not stop the others
            self.result.left_alone[f"unreadable ({type(exc).__name__})"] += 1
            return False
        if failures is not None:
            return self._bounce(mail, failures, ids)
        if token is not None:
            self.unsubscribes.append(_Unsubscribe(key, mail, token))
            return False  # decided once every token is looked up (see unsubscribe_all)
        self.result.left_alone[NOT_OURS] += 1
        return False

    # -- bounces ------------------------------------------------------------------------------

    def _bounce(self, mail: str, failures: list[Failure], ids: list[str]) -> bool:
        targets: list[tuple[SentMessage, Failure]] = []
        for message_id in ids:
            found = self.ledger.message_with_id(message_id)
            if found is not None:  # ldmail sends one recipient a message: it is about that one
                targets.append((found, _worst(failures)))
                break
        if not targets:
            for address in dict.fromkeys(f.address for f in failures if f.address):
                sent = self.ledger.last_bounceable_to(address)
                if sent is not None:
                    targets.append((sent, _worst([f for f in failures if f.address == address])))
        if not targets:
            self.result.left_alone[NOT_SENT] += 1
            return False
        applied = False
        for index, (sent, failure) in enumerate(targets):
            last = index == len(targets) - 1
            copy = _copy_failure(sent, failures)
            if copy is not None:
                applied |= self._apply_copy_bounce(sent, copy, mail if last else None)
            else:
                applied |= self._apply_bounce(sent, failure, mail if last else None)
        return applied

    def _apply_copy_bounce(self, sent: SentMessage, failure: Failure, mail: str | None) -> bool:
        """Only the copy to the person's manager bounced: the message stays as it is, and a
        hard bounce suppresses the manager's address."""
        address = sent.cc
        assert address is not None  # _copy_failure found the copy's failure
        suppression = f"bounced: {failure.reason}" if failure.hard else None
        if self.dry_run:
            added = suppression is not None and not self.ledger.is_suppressed(address)
        else:
            added = self.ledger.bounced_again(address, self.at, mail=mail,
                                              suppression=suppression)
        self.result.handled.append(Handled("bounce", address, failure.reason, failure.hard,
                                           sent.key.campaign, sent.key.step, added))
        return True

    def _apply_bounce(self, sent: SentMessage, failure: Failure, mail: str | None) -> bool:
        key, email_address = sent.key, sent.recipient
        forgotten = email_address.startswith(FORGOTTEN)
        suppression = f"bounced: {failure.reason}" if failure.hard and not forgotten else None
        kind = "hard" if failure.hard else "soft"
        again = sent.state == MessageState.BOUNCED
        if not again and sent.state not in message_sources(MessageOp.BOUNCE):
            self.result.left_alone[f"a bounce of a message the ledger has as {sent.state}"] += 1
            return False
        if self.dry_run:
            added = suppression is not None and not self.ledger.is_suppressed(email_address)
        else:
            try:
                if again:
                    added = self.ledger.bounced_again(email_address, self.at, mail=mail,
                                                      suppression=suppression)
                else:
                    added = self.ledger.bounce(key, f"{kind} bounce: {failure.reason}",
                                               self.at, mail=mail, suppression=suppression,
                                               address=email_address)
            except IllegalTransition as exc:  # changed meanwhile (a resend of an unknown one)
                self.result.left_alone[f"a bounce of a message the ledger has as "
                                       f"{exc.state}"] += 1
                return False
        self.result.handled.append(Handled(
            "bounce", FORGOTTEN_SHOWN if forgotten else email_address, failure.reason,
            failure.hard, key.campaign, key.step, added))
        return True

    # -- unsubscribes -------------------------------------------------------------------------

    def unsubscribe_all(self) -> list[str]:
        """Look every token up in one pass over the ledger's addresses, then apply them;
        returns the keys of the mails to move."""
        if not self.unsubscribes:
            return []
        wanted = {item.token for item in self.unsubscribes}
        found: dict[str, str] = {}
        for known in self.ledger.known_addresses():
            token = self.ledger.address_hash(known)
            if token in wanted:
                found[token] = known
                if len(found) == len(wanted):
                    break
        forgotten = self.ledger.forgotten_hashes() & (wanted - set(found))
        moved = []
        for item in self.unsubscribes:
            address: str | None = found.get(item.token)
            if address is None and item.token in forgotten:
                address = FORGOTTEN + item.token  # erased on request: suppressed already
            if address is None:
                self.result.left_alone[NO_TOKEN] += 1
                continue
            if self.dry_run:
                added = not self.ledger.is_suppressed(address)
            else:
                added = self.ledger.unsubscribed(address, UNSUBSCRIBED_BY_MAIL, self.at,
                                                 mail=item.mail)
            self.result.handled.append(Handled(
                "unsubscribe", FORGOTTEN_SHOWN if address.startswith(FORGOTTEN) else address,
                UNSUBSCRIBED_BY_MAIL, suppressed=added))
            moved.append(item.key)
        return moved


def _copy_failure(sent: SentMessage, failures: list[Failure]) -> Failure | None:
    """The failure of the copy to a manager, when the bounce names that address alone."""
    if sent.cc is None:
        return None
    named = {f.address.lower() for f in failures if f.address}
    if named != {sent.cc}:
        return None
    return _worst([f for f in failures if f.address and f.address.lower() == sent.cc])


def _worst(failures: list[Failure]) -> Failure:
    """A hard failure before a soft one; the first with a status code among equals."""
    return sorted(failures, key=lambda f: (not f.hard, not f.status))[0]


def read_inbox(project: Project, now: datetime, *, db: Path | None = None,
               dry_run: bool = False) -> InboxResult:
    """Apply every bounce and unsubscribe mail in the inbox folder once, and move them to the
    done folder; a dry run reads the ledger only and moves nothing."""
    settings = project.settings.inbox
    if settings is None:
        raise LdmailError(f"{SETTINGS_FILE} has no inbox: block; add one that names the "
                          "sender's mailbox (kind: imap with host, user and password_env, or "
                          "kind: maildir or mbox with a path); see the README's 'The sender's "
                          "mailbox'")
    folder = open_folder(project, settings)
    try:
        result = InboxResult(folder.where, folder.done, dry_run=dry_run)
        with Ledger.of(project, db, readonly=dry_run) as ledger:
            reader = _Reader(project, ledger, now, result)
            handled = [key for key in folder.keys() if reader.read(key, folder.fetch(key))]
            handled += reader.unsubscribe_all()
        if not dry_run:
            folder.move(handled)
            result.moved = len(handled)
        return result
    finally:
        folder.close()
