"""Reading a mail: whether it is a bounce, whom it names as failed and why, which message it
is about, and an unsubscribe token."""

from __future__ import annotations

import email.policy
import hashlib
import re
from dataclasses import dataclass
from email.message import EmailMessage, Message
from email.parser import HeaderParser
from email.utils import getaddresses, parseaddr

MAX_REASON = 300  # characters of a server's diagnostic kept as the reason

_STATUS = re.compile(r"(?<![\d.])([245])\.(\d{1,3})\.(\d{1,3})(?![\d.])")
_MESSAGE_ID = re.compile(r"<[^<>\s]+>")
_TOKEN = re.compile(r"unsubscribe(?:%20|[\s:=_+-]){1,3}([0-9a-f]{32})(?![0-9a-f])", re.I)
_DAEMONS = ("mailer-daemon", "postmaster", "mail-daemon", "mailerdaemon")
_RECIPIENT_HEADERS = ("to", "cc", "delivered-to", "x-original-to", "envelope-to", "resent-to")


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


def one_line(text: object, limit: int = MAX_REASON) -> str:
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
            diagnostic = one_line(block.get("Diagnostic-Code", ""))
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
        failures.append(Failure(address, status, _hardness(status, hard), one_line(line)))
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


def mail_identity(message: Message, raw: bytes) -> str:
    """What names a mail for good: its Message-ID, or else a digest of its bytes."""
    ids = _MESSAGE_ID.findall(str(message.get("Message-ID", "")))
    return f"mail {ids[0]}" if ids else f"bytes {hashlib.sha256(raw).hexdigest()}"


