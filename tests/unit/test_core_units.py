"""Small direct tests of the core's pure parts: units, schedule, stats, expressions, textify and
the MIME builder. The end-to-end tests drive them through the CLI; these pin their contracts."""

from __future__ import annotations

import email
from datetime import UTC, datetime, time, timedelta
from email.message import EmailMessage
from email.policy import default as default_policy
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from ldmail import units
from ldmail.content.render import Rendered
from ldmail.content.textify import html_to_text
from ldmail.errors import ExpressionError, HeaderInjection, SecurityError
from ldmail.project.models import Campaign, SendWindow, Settings
from ldmail.project.schedule import (
    StepRecord,
    anchor_moment,
    in_holdout,
    next_window_open,
    upcoming,
)
from ldmail.sandbox.expressions import evaluate

AMSTERDAM = ZoneInfo("Europe/Amsterdam")

# -- units ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "expected"), [
    ("3d", timedelta(days=3)), ("2w", timedelta(weeks=2)), ("36h", timedelta(hours=36)),
    (" 90m ", timedelta(minutes=90)), ("30s", timedelta(seconds=30)), (0, timedelta(0))])
def test_durations(text: object, expected: timedelta) -> None:
    assert units.parse_duration(text) == expected
    assert units.parse_duration(units.format_duration(expected)) == expected


@pytest.mark.parametrize("text", ["3", "3 days", "-1d", "1.5d", "", True, [1]])
def test_bad_durations_say_how_to_write_one(text: object) -> None:
    with pytest.raises(ValueError, match="90m, 36h, 3d or 2w"):
        units.parse_duration(text)


def test_percentages() -> None:
    assert units.parse_percentage("10%") == pytest.approx(0.10)
    assert units.parse_percentage(0) == 0.0
    with pytest.raises(ValueError, match="10%"):
        units.parse_percentage(0.1)  # a fraction: asked to write 10%
    with pytest.raises(ValueError, match="from 0% to 99%"):
        units.parse_percentage("100%")


def test_weekdays_wrap_around_the_weekend() -> None:
    assert units.parse_weekdays("mon-fri") == (0, 1, 2, 3, 4)
    assert units.parse_weekdays("fri-mon") == (0, 4, 5, 6)
    assert units.parse_weekdays(["Monday", "wed"]) == (0, 2)
    with pytest.raises(ValueError, match="not a weekday"):
        units.parse_weekdays("mo-fr")


def test_times_and_hours() -> None:
    assert units.parse_time(900) == time(15, 0)  # YAML 1.1 read an unquoted 15:00 as 900
    assert units.parse_hours("09:00-17:00") == (time(9), time(17))
    with pytest.raises(ValueError, match="must end after it starts"):
        units.parse_hours("17:00-09:00")


def test_time_zones_refuse_offsets_and_suggest_names() -> None:
    assert units.parse_timezone("Europe/Amsterdam") == AMSTERDAM
    with pytest.raises(ValueError, match="UTC offset"):
        units.parse_timezone("UTC+1")
    with pytest.raises(ValueError, match="did you mean 'Europe/Amsterdam'"):
        units.parse_timezone("Europe/Amsterdan")


def test_rates() -> None:
    assert units.parse_rate("30/min") == pytest.approx(0.5)
    with pytest.raises(ValueError, match="30/min"):
        units.parse_rate("0/min")


# -- schedule ---------------------------------------------------------------------------------

WINDOW = SendWindow.model_validate({"days": "mon-fri", "hours": "09:00-17:00",
                                     "timezone": "Europe/Amsterdam"})


def utc(year: int, month: int, day: int) -> datetime:
    return datetime(year, month, day, tzinfo=UTC)


def test_a_moment_in_the_window_goes_at_once() -> None:
    tuesday_noon = datetime(2026, 12, 1, 12, tzinfo=AMSTERDAM)
    assert next_window_open(tuesday_noon, WINDOW) == tuesday_noon.astimezone(UTC)


def test_friday_evening_waits_for_monday_morning() -> None:
    friday_evening = datetime(2026, 12, 4, 18, tzinfo=AMSTERDAM)
    assert next_window_open(friday_evening, WINDOW) == \
        datetime(2026, 12, 7, 9, tzinfo=AMSTERDAM).astimezone(UTC)


def test_the_window_follows_the_readers_zone() -> None:
    """09:00 in New York is 15:00 in Amsterdam: the reader's zone decides."""
    new_york = ZoneInfo("America/New_York")
    moment = datetime(2026, 12, 1, 8, tzinfo=AMSTERDAM)
    assert next_window_open(moment, WINDOW, new_york) == \
        datetime(2026, 12, 1, 9, tzinfo=new_york).astimezone(UTC)


def test_an_anchor_date_is_midnight_local() -> None:
    campaign = _campaign(anchor="start_date")
    moment = anchor_moment(campaign, datetime(2026, 12, 1).date(), utc(2026, 1, 1), None)
    assert moment == datetime(2026, 12, 1, tzinfo=AMSTERDAM).astimezone(UTC)
    assert anchor_moment(campaign, "not a date", utc(2026, 1, 1), None) is None


def _campaign(**extra: Any) -> Campaign:
    return Campaign.model_validate({
        "title": "t", "phase": "activate", "starts": "2026-01-01", "sender": "a@example.org",
        "steps": [{"id": "one", "after": "0d", "template": "x/one"},
                  {"id": "two", "after": "1d", "template": "x/two"}], **extra})


def test_a_late_joiner_catches_up_one_step_at_a_time() -> None:
    """Both steps are overdue, but the second waits min_gap (1d) after the first goes out."""
    campaign = _campaign()
    now = datetime(2026, 12, 1, 10, tzinfo=AMSTERDAM)
    anchor = now - timedelta(days=10)
    first, second = upcoming(campaign, anchor, {}, None, now)
    assert first.send_at == now.astimezone(UTC)
    assert second.due_at == first.send_at + timedelta(days=1)


def test_sent_steps_are_not_planned_and_deferred_ones_wait_for_their_retry() -> None:
    campaign = _campaign()
    now = datetime(2026, 12, 1, 10, tzinfo=AMSTERDAM)
    retry_at = now + timedelta(minutes=20)
    planned = upcoming(campaign, now - timedelta(days=3), {
        "one": StepRecord("sent", now - timedelta(days=3)),
        "two": StepRecord("deferred", None, retry_at, attempts=2)}, None, now)
    assert [p.step.id for p in planned] == ["two"]
    assert planned[0].retry and planned[0].attempts == 2
    assert planned[0].send_at == retry_at.astimezone(UTC)


def test_holdout_membership_is_stable_and_near_its_share() -> None:
    members = sum(in_holdout("welcome", f"p{i}@example.org", 0.1) for i in range(10_000))
    assert 900 < members < 1100
    assert in_holdout("welcome", "Ann@Example.org", 0.5) == \
        in_holdout("welcome", "ann@example.org", 0.5)
    assert not in_holdout("welcome", "ann@example.org", 0.0)


# -- expressions -------------------------------------------------------------------------------


def test_expressions_answer_yes_or_no() -> None:
    assert evaluate("department in ['Sales', 'IT']", {"department": "IT"}) is True
    assert evaluate("tenure_days < 90", {"tenure_days": 400}) is False
    # A comparison with a missing value is false, as in SQL.
    assert evaluate("tenure_days < 90", {"tenure_days": None}) is False


def test_expression_errors_name_what_to_use() -> None:
    with pytest.raises(ExpressionError, match="names you can use are: department"):
        evaluate("departmnet == 'IT'", {"department": "IT"})
    with pytest.raises(ExpressionError, match="Jinja writes and, or, not"):
        evaluate("a && b", {"a": True, "b": True})


def test_the_sandbox_blocks_python_internals() -> None:
    with pytest.raises((ExpressionError, SecurityError)):
        evaluate("department.__class__.__mro__", {"department": "IT"})


# -- textify ------------------------------------------------------------------------------------


def test_text_part_keeps_paragraphs_lists_and_links() -> None:
    html = ("<style>p{color:red}</style><h1>Hi Ann</h1><p>Read <strong>this</strong> and"
            " <a href='https://x.test/c'>register</a>.</p><ul><li>one</li><li>two</li></ul>"
            "<p><a href='https://x.test/'>https://x.test/</a></p>")
    assert html_to_text(html) == ("Hi Ann\n\nRead *this* and register <https://x.test/c>.\n\n"
                                  "- one\n- two\n\nhttps://x.test/")


def test_text_part_drops_scripts_and_collapses_space() -> None:
    assert html_to_text("<script>alert(1)</script><p>a \n\n  b</p>") == "a b"


# -- the MIME builder -----------------------------------------------------------------------------


def _built(name: str = "Anna de Vries", subject: str = "Welcome, Anna") -> EmailMessage:
    from ldmail.content.message import MessageBuilder

    campaign = _campaign()
    rendered = Rendered(subject=subject, preheader="p", wiifm="w", html="<p>Hello</p>",
                        text="Hello\n", template_file="x/one.md", language="en")
    builder = MessageBuilder(Settings(), datetime(2026, 12, 1, 10, tzinfo=UTC))
    built = builder.build(rendered=rendered, campaign_id="welcome", campaign=campaign,
                          step=campaign.steps[0], recipient="anna@example.org",
                          recipient_name=name, token="0" * 32, message_id="<1@example.org>",
                          zone=None)
    assert built.recipient == "anna@example.org" and built.sender == "a@example.org"
    assert b"\n" not in built.data.replace(b"\r\n", b"")  # CRLF line ends only
    parsed = email.message_from_bytes(built.data, policy=default_policy)
    assert isinstance(parsed, EmailMessage)
    return parsed


def test_mime_message_has_both_parts_and_the_list_headers() -> None:
    message = _built()
    assert message["To"] == "Anna de Vries <anna@example.org>"
    assert message["Subject"] == "Welcome, Anna"
    assert message["X-Ldmail-Step"] == "one"
    assert message["List-Unsubscribe"].startswith("<mailto:")
    assert [part.get_content_type() for part in message.iter_parts()] == \
        ["text/plain", "text/html"]


def test_mime_encodes_non_ascii_names_and_subjects() -> None:
    message = _built(name="Chloé Martin", subject="Één cursus voor jou")
    assert str(message["To"]) == "Chloé Martin <anna@example.org>"
    assert message["Subject"] == "Één cursus voor jou"


def test_mime_refuses_a_line_break_in_a_header() -> None:
    with pytest.raises(HeaderInjection):
        _built(subject="Hi\r\nBcc: everyone@example.org")


@pytest.mark.parametrize("display", [" ".join(["Annemarie"] * 150),
                                     " ".join(["O'Neil,"] * 150)])
def test_a_long_display_name_is_folded_and_reads_back_whole(display: str) -> None:
    """A 1,500-character name with spaces once made one 1,505-character To line, which a
    server refuses (500 Line too long)."""
    from email.policy import default

    from ldmail.content.message import _address_header

    header = _address_header("To", display, "ann@example.org")
    assert max(len(line) for line in header.split("\r\n")) <= 78
    parsed = email.message_from_bytes((header + "\r\n\r\nbody\r\n").encode(), policy=default)
    address = parsed["To"].addresses[0]
    assert address.addr_spec == "ann@example.org"
    assert " ".join(address.display_name.split()) == " ".join(display.split())
