"""E-mail messages built from values, never parsed from rendered text."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email import policy
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr
from urllib.parse import quote, urlencode
from zoneinfo import ZoneInfo

from .errors import LdmailError
from .models import Calendar, Campaign, Settings, Step
from .render import Rendered

# Long ASCII values (List-Unsubscribe URLs) must stay readable: with the default 78-column
# limit an unbreakable URL gets RFC 2047-encoded, which mail clients do not decode there.
_POLICY = policy.default.clone(max_line_length=998)


class HeaderInjection(LdmailError):
    "A header value holds a line break; the message is refused rather than sent altered."


@dataclass(frozen=True)
class Envelope:
    sender: str
    recipient: str


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
    return f"<{uuid.uuid4().hex}@{sender.domain}>"


def unsubscribe_links(settings: Settings, sender: Address, token: str) -> tuple[str, str | None]:
    """The mailto target and (when configured) the https one-click URL for one person."""
    mailto_address = settings.unsubscribe.mailto or sender.addr_spec
    mailto = f"mailto:{mailto_address}?subject={quote('unsubscribe ' + token)}"
    https = None
    if settings.unsubscribe.url:
        joiner = "&" if "?" in settings.unsubscribe.url else "?"
        https = f"{settings.unsubscribe.url}{joiner}{urlencode({'token': token})}"
    return mailto, https


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


def build_message(*, rendered: Rendered, campaign_id: str, campaign: Campaign, step: Step,
                  recipient: str, recipient_name: str, settings: Settings, token: str,
                  message_id: str, now: datetime, zone: ZoneInfo | None) -> EmailMessage:
    """One multipart/alternative message; raises HeaderInjection for CR/LF in any value."""
    sender = parse_sender(campaign.sender)
    local, _, domain = recipient.partition("@")
    to = Address(display_name=_clean("To", recipient_name), username=local, domain=domain)
    message = EmailMessage(policy=_POLICY)
    message["From"] = sender
    message["To"] = to
    if campaign.reply_to:
        message["Reply-To"] = _clean("Reply-To", campaign.reply_to)
    message["Subject"] = _clean("Subject", rendered.subject)
    message["Date"] = format_datetime(now.astimezone(UTC))
    message["Message-ID"] = message_id
    mailto, https = unsubscribe_links(settings, sender, token)
    targets = [f"<{_clean('List-Unsubscribe', mailto)}>"]
    if https:
        targets.append(f"<{_clean('List-Unsubscribe', https)}>")
        message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    message["List-Unsubscribe"] = ", ".join(targets)
    message["List-Id"] = f"{campaign_id} <{campaign_id}.{sender.domain}>"
    message["X-Ldmail-Campaign"] = campaign_id
    message["X-Ldmail-Step"] = step.id
    message["Auto-Submitted"] = "auto-generated"
    message["Content-Language"] = rendered.language
    message.set_content(rendered.text, subtype="plain", charset="utf-8")
    message.add_alternative(rendered.html, subtype="html", charset="utf-8")
    if step.calendar is not None:
        invite = calendar_invite(step.calendar, f"{campaign_id}.{step.id}.{token}@{sender.domain}",
                                 sender, recipient, now, zone or campaign.send_window.timezone)
        message.add_alternative(invite.decode("utf-8"), subtype="calendar", charset="utf-8",
                                params={"method": "REQUEST"})
    return message
