"""E-mail messages built from values, never parsed from rendered text."""

from __future__ import annotations

import binascii
import os
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email import policy
from email.charset import Charset
from email.header import Header
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr
from functools import lru_cache
from urllib.parse import quote, urlencode
from zoneinfo import ZoneInfo

from ..errors import HeaderInjection
from ..project.models import Calendar, Campaign, Settings, Step
from .render import Rendered

# Long ASCII values (List-Unsubscribe URLs) must stay readable: with the default 78-column
# limit an unbreakable URL gets RFC 2047-encoded, which mail clients do not decode there.
_POLICY = policy.default.clone(max_line_length=998)
# For a message with an internationalised address: UTF-8 headers (RFC 6532).
_POLICY_UTF8 = _POLICY.clone(utf8=True)


def _clean(name: str, value: str) -> str:
    if any(ch in value for ch in "\r\n\x00"):
        raise HeaderInjection(
            f"the {name} header value contains a line break ({value[:40]!r}…); this message is "
            "refused so no header can be injected: fix the data in the export or template")
    return value


def parse_sender(text: str) -> Address:
    name, address = parseaddr(_clean("From", text))
    local, _, domain = address.partition("@")
    return Address(display_name=name, username=local, domain=domain)


def new_message_id(sender: Address) -> str:
    return f"<{random_hex()}@{sender.domain}>"


def random_hex(size: int = 16) -> str:
    """`size` random bytes from the OS's CSPRNG, as hex (Message-IDs, MIME boundaries)."""
    return os.urandom(size).hex()


def unsubscribe_links(settings: Settings, sender: Address, token: str) -> tuple[str, str | None]:
    """The mailto target and (when configured) the https one-click URL for one person."""
    mailto_address = settings.unsubscribe.mailto or sender.addr_spec
    # Tokens are hex, which URL quoting leaves alone: spare quote() on every message.
    hex_token = _HEX.fullmatch(token) is not None
    subject = "unsubscribe%20" + token if hex_token else quote("unsubscribe " + token)
    mailto = f"mailto:{mailto_address}?subject={subject}"
    https = None
    if settings.unsubscribe.url:
        joiner = "&" if "?" in settings.unsubscribe.url else "?"
        query = "token=" + token if hex_token else urlencode({"token": token})
        https = f"{settings.unsubscribe.url}{joiner}{query}"
    return mailto, https


_HEX = re.compile(r"[0-9a-f]+")


def _first_occurrence(calendar: Calendar, after: datetime, zone: ZoneInfo) -> datetime:
    local = after.astimezone(zone)
    day = local.date()
    for offset in range(8):
        candidate = datetime.combine(day + timedelta(days=offset), calendar.time, tzinfo=zone)
        if candidate.weekday() == calendar.weekday and candidate > local:
            return candidate
    raise AssertionError("a weekday occurs within eight days")  # pragma: no cover


def calendar_invite(calendar: Calendar, uid: str, organizer: Address, attendee: str,
                    now: datetime, zone: ZoneInfo) -> bytes:
    """A recurring event (RFC 5545) as a meeting request that calendar apps offer to accept."""
    from icalendar import Calendar as ICalendar
    from icalendar import Event, vCalAddress, vText

    cal = ICalendar()
    cal.add("prodid", "-//ldmail//learning moments//EN")
    cal.add("version", "2.0")
    cal.add("method", "REQUEST")
    event = Event()
    start = _first_occurrence(calendar, now, zone)
    event.add("uid", uid)
    event.add("dtstamp", now.astimezone(UTC))
    event.add("dtstart", start)
    event.add("dtend", start + calendar.duration)
    event.add("rrule", {"freq": "weekly", "count": calendar.weeks})
    event.add("summary", calendar.title)
    if calendar.description:
        event.add("description", calendar.description)
    if calendar.location:
        event.add("location", calendar.location)
    organizer_address = vCalAddress(f"mailto:{organizer.addr_spec}")
    organizer_address.params["cn"] = vText(organizer.display_name or organizer.addr_spec)
    event.add("organizer", organizer_address)
    guest = vCalAddress(f"mailto:{attendee}")
    guest.params["rsvp"] = vText("FALSE")
    guest.params["partstat"] = vText("NEEDS-ACTION")
    event.add("attendee", guest)
    event.add("transp", "OPAQUE")
    cal.add_component(event)
    cal.add_missing_timezones()
    return bytes(cal.to_ical())


def _addr_spec(header: str, address: str) -> str:
    local, _, domain = _clean(header, address).partition("@")
    return Address(username=local, domain=domain).addr_spec


def _set_written(message: EmailMessage, line: str) -> None:
    """A header line written by the fast path's rules, stored as is: the email package would
    decode an "=?...?="-looking text at once, and RFC 2047-encode a non-ASCII local part
    (which RFC 2047 forbids inside an address)."""
    name, _, value = line.partition(": ")
    message.set_raw(name, value)


def build_message(*, rendered: Rendered, campaign_id: str, campaign: Campaign, step: Step,
                  recipient: str, recipient_name: str, settings: Settings, token: str,
                  message_id: str, now: datetime, zone: ZoneInfo | None,
                  cc: tuple[str, str] | None = None) -> EmailMessage:
    """One multipart/alternative message; raises HeaderInjection for CR/LF in any value.

    `cc`: (name, address) of a person copied in (a learner's manager). A non-ASCII address
    makes it an RFC 6532 message (UTF-8 headers), which only goes out over SMTPUTF8.
    """
    sender = parse_sender(campaign.sender)
    addresses = [("From", sender.display_name, sender.addr_spec),
                 ("To", recipient_name, recipient)]
    if cc is not None:
        addresses.append(("Cc", *cc))
    if campaign.reply_to:
        addresses.append(("Reply-To", *parseaddr(_clean("Reply-To", campaign.reply_to))))
    international = not all(address.isascii() for _, _, address in addresses)
    message = EmailMessage(policy=_POLICY_UTF8 if international else _POLICY)
    for header, name, address in addresses:
        _set_written(message, _address_header(header, name, _addr_spec(header, address)))
    _set_written(message, _text_header("Subject", rendered.subject))
    message["Date"] = format_datetime(now.astimezone(UTC))
    message["Message-ID"] = _clean("Message-ID", message_id)
    mailto, https = unsubscribe_links(settings, sender, token)
    targets = [f"<{_clean('List-Unsubscribe', mailto)}>"]
    if https:
        targets.append(f"<{_clean('List-Unsubscribe', https)}>")
        message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    message["List-Unsubscribe"] = ", ".join(targets)
    message["List-Id"] = _clean("List-Id", f"{campaign_id} <{campaign_id}.{sender.domain}>")
    message["X-Ldmail-Campaign"] = _clean("X-Ldmail-Campaign", campaign_id)
    message["X-Ldmail-Step"] = _clean("X-Ldmail-Step", step.id)
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(rendered.text, subtype="plain", charset="utf-8")
    message.add_alternative(rendered.html, subtype="html", charset="utf-8")
    if step.calendar is not None:
        invite = calendar_invite(step.calendar, f"{campaign_id}.{step.id}.{token}@{sender.domain}",
                                 sender, recipient, now, zone or campaign.send_window.timezone)
        message.add_alternative(invite.decode("utf-8"), subtype="calendar", charset="utf-8",
                                params={"method": "REQUEST"})
    # Only now: set_content() clears the Content-* headers and add_alternative() moves them
    # into the first part.
    message["Content-Language"] = _clean("Content-Language", rendered.language)
    return message


# -- the fast path: bytes written directly, headers still built from values -----------------
#
# EmailMessage with policy.default parses and refolds every header it is given and walks its
# content managers for each part: about 2 ms a message, more than rendering. The common case
# (ASCII addresses, ids and URLs) is written here by hand, following the same rules: RFC 2047
# encoded words (via email.header) for non-ASCII or "=?"-looking display names and subjects,
# quoted strings for display names with specials, folding on whitespace towards 78 columns and
# never past 998, 7bit/8bit bodies with quoted-printable for over-long lines. Anything else
# (an internationalised address, say) goes through build_message above.

_ATEXT = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~ -]*")
_PLAIN_ADDRESS = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
                            r"@[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?")
_PRINTABLE_ASCII = re.compile(r"[\x20-\x7e]*")
_MAX_LINE = 998  # RFC 5322's hard limit, CRLF excluded
_FOLD_AT = 78  # and its recommended one


@dataclass(frozen=True)
class Built:
    """A message ready to hand over: its bytes (CRLF line ends) and envelope."""

    data: bytes
    sender: str
    recipient: str
    cc: tuple[str, ...] = ()  # envelope recipients besides `recipient` (the Cc header's)


def _fold(line: str) -> str:
    """Fold one `Name: value` line on spaces towards 78 columns (words are never split)."""
    if len(line) <= _FOLD_AT:
        return line
    name, _, value = line.partition(": ")
    words = value.split(" ")
    out: list[str] = []
    current = f"{name}: {words[0]}"
    for word in words[1:]:
        if len(current) + 1 + len(word) > _FOLD_AT and current.strip():
            out.append(current)
            current = " " + word
        else:
            current += " " + word
    out.append(current)
    return "\r\n".join(out)


_UTF8 = Charset("utf-8")


@lru_cache(maxsize=8192)  # subjects and names repeat across a run
def _encoded(text: str) -> str:
    """Text as one RFC 2047 encoded word (several, folded, only past 900 characters).

    For non-ASCII text, and for text that merely looks like an encoded word ("=?...?=",
    which decoders would decode). One word, as build_message's policy writes it: split
    words are joined with a space by some decoders and without by others.
    """
    word = _UTF8.header_encode(text)
    return word if len(word) < 900 else Header(text, "utf-8").encode(linesep="\r\n")


# A word this long cannot be folded (folding happens only between words): it is encoded
# instead, as encoded words that can be split over lines, so no line passes 998 characters.
_LONGEST_WORD = 900


def _foldable(value: str) -> bool:
    return max(map(len, value.split(" ")), default=0) < _LONGEST_WORD


def _text_header(name: str, value: str) -> str:
    value = _clean(name, value)
    if _PRINTABLE_ASCII.fullmatch(value) and "=?" not in value and _foldable(value):
        return _fold(f"{name}: {value}")
    return f"{name}: {_encoded(value)}"


@lru_cache(maxsize=8192)  # names repeat across a run
def _phrase(display: str) -> str:
    """A display name as an atom phrase, a quoted string, or an encoded word."""
    if "=?" in display or not _PRINTABLE_ASCII.fullmatch(display) or not _foldable(display):
        return _encoded(display)
    if _ATEXT.fullmatch(display) and display == display.strip() and "  " not in display:
        return display
    return '"' + display.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _address_header(name: str, display: str, address: str) -> str:
    display = _clean(name, display)
    if not display:
        return f"{name}: {address}"
    phrase = _phrase(display)
    # A long name is folded between its words (inside a quoted string too: RFC 5322 allows
    # folding white space there), or one line could pass the 998 characters servers accept.
    line = phrase if "\r\n" in phrase else _fold(f"{name}: {phrase}")[len(name) + 2:]
    last = line.rpartition("\r\n")[2]
    if len(name) + 2 + len(last) + len(address) + 3 > _FOLD_AT:
        return f"{name}: {line}\r\n <{address}>"
    return f"{name}: {line} <{address}>"


def _body(text: str) -> tuple[str, bytes]:
    """(Content-Transfer-Encoding, body with CRLF line ends) for one text part."""
    raw = text.encode("utf-8")
    lines = raw.splitlines()
    if max(map(len, lines), default=0) <= _MAX_LINE:
        return ("7bit" if raw.isascii() else "8bit"), b"\r\n".join(lines) + b"\r\n"
    encoded = binascii.b2a_qp(b"\n".join(lines) + b"\n", istext=True)
    return "quoted-printable", encoded.replace(b"\n", b"\r\n")


def _part(content_type: str, text: str) -> bytes:
    encoding, body = _body(text)
    return (f"Content-Type: {content_type}\r\nContent-Transfer-Encoding: {encoding}\r\n\r\n"
            .encode("ascii") + body)


@dataclass(frozen=True)
class _Campaign:
    """What every message of one campaign shares, worked out once."""

    sender: Address
    from_header: str
    reply_to: str | None
    list_id: str
    campaign_header: str
    ascii_only: bool


class MessageBuilder:
    """Builds message bytes for one run; per-campaign headers are made once."""

    def __init__(self, settings: Settings, now: datetime) -> None:
        self.settings = settings
        self.now = now
        self.date = f"Date: {format_datetime(now.astimezone(UTC))}"
        self._campaigns: dict[str, _Campaign] = {}

    def _campaign(self, campaign_id: str, campaign: Campaign) -> _Campaign:
        found = self._campaigns.get(campaign_id)
        if found is None:
            sender = parse_sender(campaign.sender)
            reply_to = None
            ascii_only = bool(_PLAIN_ADDRESS.fullmatch(sender.addr_spec)) and \
                campaign_id.isascii()
            if campaign.reply_to:
                name, address = parseaddr(_clean("Reply-To", campaign.reply_to))
                ascii_only = ascii_only and bool(_PLAIN_ADDRESS.fullmatch(address))
                reply_to = _address_header("Reply-To", name, address)
            found = _Campaign(
                sender, _address_header("From", sender.display_name, sender.addr_spec)
                if ascii_only else "", reply_to,
                "List-Id: " + _clean("List-Id", f"{campaign_id} <{campaign_id}.{sender.domain}>"),
                "X-Ldmail-Campaign: " + _clean("X-Ldmail-Campaign", campaign_id), ascii_only)
            self._campaigns[campaign_id] = found
        return found

    def sender(self, campaign_id: str, campaign: Campaign) -> Address:
        return self._campaign(campaign_id, campaign).sender

    def build(self, *, rendered: Rendered, campaign_id: str, campaign: Campaign, step: Step,
              recipient: str, recipient_name: str, token: str, message_id: str,
              zone: ZoneInfo | None, links: tuple[str, str | None] | None = None,
              cc: tuple[str, str] | None = None) -> Built:
        """One multipart/alternative message; raises HeaderInjection for CR/LF in any value.

        `links` are unsubscribe_links() for this token, when the caller has them already;
        `cc` the (name, address) of a person copied in.
        """
        shared = self._campaign(campaign_id, campaign)
        mailto, https = links or unsubscribe_links(self.settings, shared.sender, token)
        targets = [f"<{_clean('List-Unsubscribe', mailto)}>"]
        if https:
            targets.append(f"<{_clean('List-Unsubscribe', https)}>")
        copied = () if cc is None else (cc[1],)
        simple = shared.ascii_only and _PLAIN_ADDRESS.fullmatch(recipient) is not None and \
            all(_PLAIN_ADDRESS.fullmatch(address) for address in copied) and \
            all(_PRINTABLE_ASCII.fullmatch(t) for t in targets) and rendered.language.isascii()
        if not simple:
            message = build_message(
                rendered=rendered, campaign_id=campaign_id, campaign=campaign, step=step,
                recipient=recipient, recipient_name=recipient_name, settings=self.settings,
                token=token, message_id=message_id, now=self.now, zone=zone, cc=cc)
            data = message.as_bytes(policy=message.policy.clone(linesep="\r\n"))
            return Built(data, shared.sender.addr_spec, recipient, copied)
        headers = [shared.from_header, _address_header("To", recipient_name, recipient)]
        if cc is not None:
            headers.append(_address_header("Cc", *cc))
        if shared.reply_to:
            headers.append(shared.reply_to)
        headers += [_text_header("Subject", rendered.subject), self.date,
                    "Message-ID: " + _clean("Message-ID", message_id)]
        if https:
            headers.append("List-Unsubscribe-Post: List-Unsubscribe=One-Click")
        headers += [_fold("List-Unsubscribe: " + ", ".join(targets)), shared.list_id,
                    shared.campaign_header, "X-Ldmail-Step: " + _clean("X-Ldmail-Step", step.id),
                    "Auto-Submitted: auto-generated",
                    "Content-Language: " + _clean("Content-Language", rendered.language),
                    "MIME-Version: 1.0"]
        parts = [_part('text/plain; charset="utf-8"', rendered.text),
                 _part('text/html; charset="utf-8"', rendered.html)]
        if step.calendar is not None:
            invite = calendar_invite(
                step.calendar, f"{campaign_id}.{step.id}.{token}@{shared.sender.domain}",
                shared.sender, recipient, self.now, zone or campaign.send_window.timezone)
            parts.append(_part('text/calendar; charset="utf-8"; method="REQUEST"',
                               invite.decode("utf-8")))
        boundary = f"=_ldmail_{random_hex()}"
        marker = boundary.encode("ascii")
        while any(marker in part for part in parts):  # pragma: no cover - 128 random bits
            boundary = f"=_ldmail_{random_hex()}"
            marker = boundary.encode("ascii")
        headers.append(f'Content-Type: multipart/alternative;\r\n boundary="{boundary}"')
        separator = b"\r\n--" + marker + b"\r\n"
        data = ("\r\n".join(headers) + "\r\n\r\n").encode("ascii") + separator[2:] + \
            separator.join(parts) + b"\r\n--" + marker + b"--\r\n"
        return Built(data, shared.sender.addr_spec, recipient, copied)
