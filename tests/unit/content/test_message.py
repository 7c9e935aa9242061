"""content.message promises messages built from values: the hand-written fast path and the
email package agree on every header a reader or server sees; a line break in any value refuses
the message (no header injection); List-Unsubscribe carries the mailto target and, when
configured, the one-click https one; every line ends in CRLF and none passes 998 characters;
a step with a calendar carries a weekly meeting request."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from zoneinfo import ZoneInfo

import pytest

from ldmail.content.message import (
    Built,
    MessageBuilder,
    build_message,
    calendar_invite,
    parse_sender,
    unsubscribe_links,
)
from ldmail.content.render import Rendered
from ldmail.errors import HeaderInjection
from ldmail.project.config import Project
from ldmail.project.models import Calendar, Settings, Step

NOW = datetime(2026, 12, 1, 9, tzinfo=UTC)  # a Tuesday
TOKEN = "0123456789abcdef0123456789abcdef"
MESSAGE_ID = "<a1b2c3@example.org>"
SEEN = ("From", "To", "Cc", "Subject", "Date", "Message-ID", "List-Unsubscribe",
        "List-Unsubscribe-Post", "List-Id", "X-Ldmail-Campaign", "X-Ldmail-Step",
        "Auto-Submitted", "Content-Language")


def rendered(subject: str = "Your course", text: str = "Hello\n",
             html: str = "<p>Hello</p>\n") -> Rendered:
    return Rendered(subject, "pre", "wiifm", html, text, "templates/en/welcome/hello.md", "en")


def built(project: Project, *, name: str = "Ann de Vries", subject: str = "Your course",
          text: str = "Hello\n", step: Step | None = None, recipient: str = "ann@example.org",
          cc: tuple[str, str] | None = None, settings: Settings | None = None) -> Built:
    campaign = project.campaign("welcome")
    return MessageBuilder(settings or project.settings, NOW).build(
        rendered=rendered(subject, text), campaign_id="welcome", campaign=campaign,
        step=step or campaign.steps[0], recipient=recipient, recipient_name=name, token=TOKEN,
        message_id=MESSAGE_ID, zone=None, cc=cc)


def parsed(data: bytes) -> EmailMessage:
    """A message as a mail store keeps it (native line ends), parsed."""
    message = message_from_bytes(data.replace(b"\r\n", b"\n"), policy=policy.default)
    assert isinstance(message, EmailMessage)
    return message


def with_url(settings: Settings, url: str) -> Settings:
    return settings.model_copy(update={
        "unsubscribe": settings.unsubscribe.model_copy(update={"url": url})})


def slow_build(project: Project, name: str, subject: str, recipient: str = "ann@example.org"
               ) -> EmailMessage:
    campaign = project.campaign("welcome")
    return build_message(
        rendered=rendered(subject), campaign_id="welcome", campaign=campaign,
        step=campaign.steps[0], recipient=recipient, recipient_name=name,
        settings=project.settings, token=TOKEN, message_id=MESSAGE_ID, now=NOW, zone=None,
        cc=("Max Boss", "max@example.org"))


@pytest.mark.parametrize(("name", "subject"), [
    ("Ann de Vries", "Your first course"),
    ("Zoë O'Brien, Jr.", "Zoë, your first course"),
    ('Dr. "Bob" Smith', "A long subject" + " word" * 40),
    ("Max =?utf-8?q?x?=", "Looks like =?utf-8?q?x?= a word"),
])
def test_the_fast_path_writes_what_the_email_package_writes(
        loaded: Project, name: str, subject: str) -> None:
    fast = parsed(built(loaded, name=name, subject=subject, cc=("Max Boss", "max@example.org"))
                  .data)
    slow = slow_build(loaded, name, subject)
    for header in SEEN:
        assert str(fast[header]) == str(slow[header]), header
    assert str(fast["Subject"]) == subject
    assert fast["Content-Language"] == "en"
    assert fast["To"].addresses[0].display_name == name
    assert parsed(slow.as_bytes())["To"].addresses[0].display_name == name
    plain, html = (fast.get_body(preferencelist=(kind,)) for kind in ("plain", "html"))
    assert plain is not None and plain.get_content() == "Hello\n"
    assert html is not None and html.get_content() == "<p>Hello</p>\n"


def test_a_subject_that_looks_like_an_encoded_word_is_shown_as_written(
        loaded: Project) -> None:
    subject = "Zoë: a subject that looks like =?utf-8?q?x?= an encoded word"
    assert parsed(built(loaded, subject=subject).data)["Subject"] == subject


def test_the_email_package_path_keeps_content_language(loaded: Project) -> None:
    assert slow_build(loaded, "Ann", "Hi")["Content-Language"] == "en"


def test_the_email_package_path_shows_an_encoded_word_lookalike_as_written(
        loaded: Project) -> None:
    subject = "Zoë: looks like =?utf-8?q?x?= a word"
    sent = slow_build(loaded, "Ann", subject)
    assert parsed(sent.as_bytes())["Subject"] == subject


def test_the_built_message_names_its_envelope(loaded: Project) -> None:
    message = built(loaded, cc=("Max Boss", "max@example.org"))
    assert (message.sender, message.recipient, message.cc) == \
        ("learning@example.org", "ann@example.org", ("max@example.org",))
    headers = parsed(message.data)
    assert headers["Cc"] == "Max Boss <max@example.org>"
    assert headers["Date"] == "Tue, 01 Dec 2026 09:00:00 +0000"
    assert headers["Message-ID"] == MESSAGE_ID
    assert headers["List-Id"] == "welcome <welcome.example.org>"


@pytest.mark.parametrize("field", ["subject", "name"])
def test_a_line_break_in_a_value_refuses_the_message(loaded: Project, field: str) -> None:
    bad = "Hi\r\nBcc: everyone@example.org"
    with pytest.raises(HeaderInjection, match=f"the {field.title().replace('Name', 'To')} "
                       "header value contains a line break"):
        if field == "subject":
            built(loaded, subject=bad)
        else:
            built(loaded, name=bad)


def test_one_click_unsubscribe_only_when_an_https_url_is_configured(loaded: Project) -> None:
    plain = parsed(built(loaded).data)
    assert plain["List-Unsubscribe"] == \
        f"<mailto:unsubscribe@example.org?subject=unsubscribe%20{TOKEN}>"
    assert plain["List-Unsubscribe-Post"] is None
    settings = with_url(loaded.settings, "https://learn.example.org/unsubscribe?list=1")
    one_click = parsed(built(loaded, settings=settings).data)
    assert one_click["List-Unsubscribe"] == (
        f"<mailto:unsubscribe@example.org?subject=unsubscribe%20{TOKEN}>, "
        f"<https://learn.example.org/unsubscribe?list=1&token={TOKEN}>")
    assert one_click["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"


def test_unsubscribe_links_quote_a_token_that_is_not_hex(loaded: Project) -> None:
    settings = with_url(loaded.settings, "https://learn.example.org/u")
    sender = parse_sender("Learning Team <learning@example.org>")
    assert unsubscribe_links(settings, sender, "a b&c") == (
        "mailto:unsubscribe@example.org?subject=unsubscribe%20a%20b%26c",
        "https://learn.example.org/u?token=a+b%26c")


def test_without_an_unsubscribe_mailto_the_sender_receives_the_unsubscribe_mails(
        loaded: Project) -> None:
    settings = loaded.settings.model_copy(update={
        "unsubscribe": loaded.settings.unsubscribe.model_copy(update={"mailto": None})})
    sender = parse_sender("Learning Team <learning@example.org>")
    assert unsubscribe_links(settings, sender, TOKEN)[0] == \
        f"mailto:learning@example.org?subject=unsubscribe%20{TOKEN}"


def test_lines_end_in_crlf_and_none_passes_998_characters(loaded: Project) -> None:
    text = "x" * 3000 + "\n"
    message = built(loaded, subject="y" * 2000, text=text).data
    lines = message.split(b"\r\n")
    assert b"\n" not in b"".join(lines) and max(map(len, lines)) <= 998
    body = parsed(message).get_body(preferencelist=("plain",))
    assert body is not None and body["Content-Transfer-Encoding"] == "quoted-printable"
    assert body.get_content() == text
    assert str(parsed(message)["Subject"]) == "y" * 2000


def test_an_internationalised_address_is_the_envelope_recipient(loaded: Project) -> None:
    message = built(loaded, recipient="zoë@example.org", name="Zoë")
    assert (message.sender, message.recipient) == ("learning@example.org", "zoë@example.org")
    assert parsed(message.data)["X-Ldmail-Step"] == "hello"


def test_an_internationalised_address_is_written_as_utf8_in_the_to_header(
        loaded: Project) -> None:
    data = built(loaded, recipient="zoë@example.org", name="Zoë").data
    to = next(line for line in data.split(b"\r\n") if line.startswith(b"To: "))
    assert "zoë@example.org".encode() in to


def test_a_step_with_a_calendar_carries_a_weekly_meeting_request(loaded: Project) -> None:
    step = Step(id="meet", after=timedelta(0), template="welcome/hello",
                calendar=Calendar(title="Coffee", weekday="mon", time="10:00", weeks=6))
    message = parsed(built(loaded, step=step).data)
    invite = [part for part in message.walk() if part.get_content_type() == "text/calendar"]
    assert len(invite) == 1 and invite[0].get_param("method") == "REQUEST"
    ics = str(invite[0].get_content())
    assert "SUMMARY:Coffee" in ics and "RRULE:FREQ=WEEKLY;COUNT=6" in ics
    # The first Monday after Tuesday 1 December, in the campaign's time zone.
    assert "DTSTART;TZID=Europe/Amsterdam:20261207T100000" in ics
    assert f"UID:welcome.meet.{TOKEN}@example.org" in ics


def test_an_invite_starts_today_when_the_time_is_still_ahead() -> None:
    calendar = Calendar(title="Standup", weekday="tue", time="15:00")
    organizer = parse_sender("Learning Team <learning@example.org>")
    ics = calendar_invite(calendar, "u@example.org", organizer, "ann@example.org", NOW,
                          ZoneInfo("Europe/Amsterdam")).decode()
    assert re.search(r"DTSTART;TZID=Europe/Amsterdam:20261201T150000", ics)
    assert "ORGANIZER;CN=\"Learning Team\":mailto:learning@example.org" in ics
