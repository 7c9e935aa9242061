"""Reading a mail: whether it is a bounce, whom it names as failed and why (each recipient
with its own status and words, classified by reasons.py), which Message-IDs it carries (its
proof of what it is about), and an unsubscribe token."""

from __future__ import annotations

import email
import email.policy
import hashlib
import re
from dataclasses import dataclass
from email.message import EmailMessage, Message
from email.utils import getaddresses, parseaddr
from functools import cached_property

from .reasons import Effect, Reason, classify, effect

MAX_REASON = 300  # characters of a server's diagnostic kept as the reason
MAX_TEXT = 200_000  # characters of a bounce's own text read for addresses and reasons
MAX_RAW = 4_000_000  # bytes of a mail (and of each part) searched for cited Message-IDs
MAX_CITED = 200  # Message-IDs looked up in the ledger per mail
MAX_FAILED = 200  # failed recipients read per mail (a report naming more is read in part)

_STATUS = re.compile(r"(?<![\d.])([245])\.(\d{1,3})\.(\d{1,3})(?![\d.])")
_MESSAGE_ID = re.compile(r"<[^<>\s@]{1,200}@[^<>\s@]{1,255}>")
_TOKEN = re.compile(r"unsubscribe(?:%20|[\s:=_+-]){1,3}([0-9a-f]{32})(?![0-9a-f])", re.I)
_DAEMONS = ("mailer-daemon", "postmaster", "mail-daemon", "mailerdaemon")
# A machine's report of a failure, as the formats without a DSN say it.
_FAILURE_WORDS = re.compile(
    r"could ?n[o']t be delivered|delivery (?:has )?failed|undeliver|permanent(?:ly)? "
    r"(?:error|fail)|error (?:has )?occurred|error delivering|returned mail|did not like|"
    r"failed to deliver|delivery to the following", re.I)
_RECIPIENT_HEADERS = ("to", "cc", "delivered-to", "x-original-to", "envelope-to", "resent-to")


# -- reading a mail ----------------------------------------------------------------------------

@dataclass(frozen=True)
class Failure:
    """One failed recipient named by a bounce."""

    address: str | None  # as the bounce names it, lower-cased (None: it names none)
    status: str  # the enhanced status code, e.g. 5.1.10, or "" when it gives none
    hard: bool  # permanent (5.x.x, or "failed" without a code), not whether it suppresses
    diagnostic: str  # the server's words, one line (the Diagnostic-Code without "smtp;")
    final: str | None = None  # a DSN's Final-Recipient when it differs from `address`

    @property
    def reason(self) -> str:
        """The status and the server's words ("550 5.1.1 <…>: User unknown" holds both)."""
        if self.status and self.status in self.diagnostic:
            return self.diagnostic
        return f"{self.status} {self.diagnostic}".strip() or "no reason given"

    @cached_property
    def kind(self) -> Reason:
        return classify(self.status, self.diagnostic)

    @property
    def effect(self) -> Effect:
        return effect(self.kind, self.hard)

    @property
    def names(self) -> set[str]:
        return {name for name in (self.address, self.final) if name}


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


def _status_of(*texts: str) -> str:
    for text in texts:
        found = _STATUS.search(text)
        if found:
            return ".".join(found.groups())
    return ""


# The fields RFC 3464 gives each recipient; the others are about the whole message.
_RECIPIENT_FIELDS = frozenset({
    "original-recipient", "final-recipient", "action", "status", "remote-mta",
    "diagnostic-code", "last-attempt-date", "final-log-id", "will-retry-until"})


def _recipient_fields(blocks: list[list[tuple[str, str]]]) -> list[dict[str, str]]:
    """The fields of each recipient, in order. A recipient starts at a blank line or at a
    field the current one already has: some servers (AOL) write every recipient, and the
    per-message fields, without blank lines between them; others (Exim, Amazon WorkMail)
    put Action before Final-Recipient. Original-Recipient comes just before or just after
    Final-Recipient (Postfix, Amazon SES), so it starts the next recipient once the current
    one has its Final-Recipient and its Status."""
    groups: list[dict[str, str]] = []
    for block in blocks:
        current: dict[str, str] | None = None
        for name, value in block:
            key = name.lower()
            if key not in _RECIPIENT_FIELDS:
                continue
            if current is None or key in current or (
                    key == "original-recipient" and {"final-recipient", "status"} <= set(current)):
                current = {}
                groups.append(current)
            current[key] = str(value)
    return [group for group in groups if "final-recipient" in group or
            "original-recipient" in group][:MAX_FAILED]


def _text_fields(text: str) -> list[tuple[str, str]]:
    """`Name: value` lines of a DSN written into a text part (Amazon WorkMail), unfolded."""
    fields: list[tuple[str, str]] = []
    for line in text.splitlines():
        if line[:1] in (" ", "\t") and fields:
            fields[-1] = (fields[-1][0], fields[-1][1] + " " + line.strip())
        elif (found := re.match(r"([A-Za-z][\w-]{1,40}):\s*(.*)", line)) is not None:
            fields.append((found[1], found[2]))
    return fields


def _dsn_blocks(message: Message, text: str) -> list[list[tuple[str, str]]] | None:
    """The field blocks of every message/delivery-status part, or else of a DSN a mail
    system wrote into its text; None when the mail has neither."""
    blocks: list[list[tuple[str, str]]] | None = None
    for part in message.walk():
        if part.get_content_type() == "message/delivery-status":
            payload = part.get_payload()
            blocks = (blocks or []) + [
                [(name, str(value)) for name, value in block.items()]
                for block in (payload if isinstance(payload, list) else ())
                if isinstance(block, Message)]
    if not blocks and _automated(message) and re.search(r"^final-recipient:", text, re.I | re.M):
        blocks = [_text_fields(text)]
    return blocks


def _dsn_failures(message: EmailMessage) -> list[Failure] | None:
    """The failed and delayed recipients of an RFC 3464 report, each with its own status
    and diagnostic (or, when the report gives only x.0.0 or no words, what the text says
    about that address); None when the mail has no report that names a recipient."""
    text = _report_text(message)
    blocks = _dsn_blocks(message, text)
    groups = _recipient_fields(blocks) if blocks else []
    if not groups:
        return None
    lines = _own_lines(text)
    addresses = {_address(group.get("final-recipient", "")) for group in groups}
    found = []
    for fields in groups:
        action = fields.get("action", "").strip().lower()
        if not action.startswith(("fail", "delay", "error")):
            continue  # a recipient delivered, relayed or expanded
        diagnostic = one_line(fields.get("diagnostic-code", ""))
        diagnostic = diagnostic.partition(";")[2].strip() if ";" in diagnostic[:24] \
            else diagnostic
        status = _status_of(fields.get("status", ""), diagnostic)
        original = _address(fields.get("original-recipient", ""))
        final = _address(fields.get("final-recipient", ""))
        if (not diagnostic or status.endswith(".0.0")) and (final or original):
            said = _reason_near(str(final or original), lines, {
                other for other in addresses if other and other != final})
            if said and (not diagnostic or not status.endswith(".0.0") or
                         not _status_of(said).endswith(".0.0")):
                diagnostic, status = said, _status_of(said) or status
        failed = not action.startswith("delay")
        found.append(Failure(original or final, status, failed and _hardness(status, True),
                             diagnostic, final if final != original else None))
    return found


def _automated(message: Message) -> bool:
    """Whether the mail says it was made by a mail system rather than written by a person."""
    name, address = parseaddr(str(message.get("From", "")))
    local = (address or name).partition("@")[0].strip().lower()  # dma: MAILER-DAEMON <>
    auto = str(message.get("Auto-Submitted", "")).strip().lower()
    return (local in _DAEMONS or name.strip().lower() in _DAEMONS
            or "mail delivery" in name.lower()
            or str(message.get("Return-Path", "")).strip() == "<>"
            or (auto not in ("", "no")) or message.get("X-Failed-Recipients") is not None
            or message.get_content_type() == "multipart/report")


# Where a bounce's own words end and its copy of the original begins.
_COPY_STARTS = re.compile(
    r"copy of (?:the |your )?(?:original )?message|original message (?:follows|headers)|"
    r"below this line is a copy|^-+ ?original message|message headers follow|"
    r"^-+ ?(?:the )?header of (?:the )?original", re.I | re.M)
# A header line of a quoted message, or a Received line's tail ("for <…>; date").
_HEADER_LINE = re.compile(
    r"^(?:(?:received|delivered-to|x-[\w-]+|to|from|cc|subject|date|message-id|return-path|"
    r"reply-to|mime-version|content-[\w-]+|envelope-to|sender|references|in-reply-to|"
    r"thread-[\w-]+|dkim-signature|authentication-results|arc-[\w-]+):\s|for <[^>]*>;|"
    r"by \S+ |from \S+ \()", re.I)
_ADDRESS = re.compile(r"[\w.+'=-]{1,64}@[a-z0-9](?:[a-z0-9-]{0,62}\.)+[a-z]{2,63}", re.I)
_SMTP_REPLY = re.compile(r"(?<!\d)[245]\d\d[ -]|(?<![\d.])[245]\.\d{1,3}\.\d{1,3}")


def _report_text(message: EmailMessage) -> str:
    """The bounce's own human-readable text (not the attached or quoted original)."""
    texts = []
    for part in message.walk():
        if part.get_content_type() in ("message/rfc822", "text/rfc822-headers"):
            break
        if part.get_content_type() == "text/plain" and not part.is_attachment():
            try:
                texts.append(str(part.get_content()))
            except (LookupError, ValueError):
                continue
    text = "\n".join(texts)[:MAX_TEXT]
    cut = _COPY_STARTS.search(text)
    return text[:text.rfind("\n", 0, cut.start()) + 1] if cut else text


def _own_lines(text: str) -> list[str]:
    """The report's lines without blank ones and without quoted header lines."""
    return [line.strip() for line in text.splitlines()
            if line.strip() and not _HEADER_LINE.match(line.strip())]


def _reason_near(address: str, lines: list[str], others: set[str]) -> str:
    """The words the report says about `address`: the lines from where it is named up to the
    next failed address, the first one with an SMTP reply or status code; or else the lone
    reply of a report about one address."""
    for index, line in enumerate(lines):
        if address not in line.lower():
            continue
        block = [line]
        for after in lines[index + 1:index + 6]:
            if any(other in after.lower() for other in others):
                break
            block.append(after)
        replies = [text for text in block if _SMTP_REPLY.search(text)]
        if replies:
            return one_line(" ".join(block[block.index(replies[0]):]))
        words = " ".join(text for text in block if text.lower().strip("<>") != address)
        if words:
            return one_line(words)
    replies = [line for line in lines if _SMTP_REPLY.search(line)]
    return one_line(replies[0]) if replies and not others else ""


def _heuristic_failures(message: EmailMessage, compat: Message) -> list[Failure]:
    """Recipients found by flufl.bounce's detectors (Postfix, Exim's X-Failed-Recipients,
    qmail, Microsoft and others), or else addresses the report's own lines name beside an SMTP
    reply (dma, OpenSMTPD); each with the status code and words said about it."""
    from flufl.bounce import all_failures

    temporary, permanent = all_failures(compat)
    text = _report_text(message)
    lines = _own_lines(text)
    named = [(raw.decode("ascii", "replace").strip().lower(), hard)
             for raws, hard in ((temporary, False), (permanent, True)) for raw in raws]
    named += [(address.lower(), True) for _, address in getaddresses(
        [str(value) for value in message.get_all("X-Failed-Recipients", [])])]
    if not named and _FAILURE_WORDS.search(text):
        named = [(found.lower(), True) for line in lines for found in _ADDRESS.findall(line)
                 if found.partition("@")[0].lower() not in _DAEMONS]
    own = _own_addresses(message)
    addresses = {address: hard for address, hard in reversed(named[:MAX_FAILED])
                 if address not in own}
    failures = []
    for address, hard in reversed(addresses.items()):
        words = _reason_near(address, lines, set(addresses) - {address})
        status = _status_of(words)
        failures.append(Failure(address, status, _hardness(status, hard), words))
    return failures


def _own_addresses(message: Message) -> set[str]:
    """The bounce's own sender and recipients: never the address that failed."""
    return {address.lower() for _, address in getaddresses(
        [str(value) for name in ("From", "To", "Cc", "Reply-To", "Sender")
         for value in message.get_all(name, [])])}


def bounce_failures(message: EmailMessage, compat: Message) -> list[Failure] | None:
    """The recipients a bounce reports as failed (or delayed); None when it is no bounce."""
    reported = _dsn_failures(message)
    if reported is not None:
        return reported or None  # [] : a delivery receipt (delivered, relayed)
    if not _automated(message):
        return None  # a mail a person wrote
    return _heuristic_failures(message, compat) or None


def parse(raw: bytes) -> tuple[EmailMessage, Message]:
    """A mail as the modern and the compat32 parser read it, line ends made LF first (a
    copy with CR alone would read as one long header line)."""
    raw = raw.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message, email.message_from_bytes(raw, policy=email.policy.compat32)


def cited_ids(message: EmailMessage, raw: bytes) -> list[str]:
    """Every Message-ID-like `<…@…>` the bounce carries anywhere (its headers, the attached
    original or its headers, quoted text, also base64 or quoted-printable), first ones first;
    at most MAX_CITED, so a mail stuffed with them costs one bounded ledger look-up."""
    texts = [raw[:MAX_RAW].decode("latin-1")]
    for part in message.walk():
        if part.get_content_maintype() == "multipart" or part.get_content_type() == \
                "message/rfc822":
            continue
        payload = part.get_payload(decode=True)
        if isinstance(payload, bytes):
            texts.append(payload[:MAX_RAW].decode("latin-1"))
    found: dict[str, None] = {}
    for text in texts:
        for cited in _MESSAGE_ID.findall(text):
            found.setdefault(cited, None)
            if len(found) >= MAX_CITED:
                return list(found)
    return list(found)


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


