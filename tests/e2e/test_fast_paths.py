"""The fast paths keep the semantics of the slow ones.

- SMTP PIPELINING (which Postfix, Exchange and most relays offer, and aiosmtpd does not): the
  fault and SIGKILL tests run again against a server that offers it.
- Several connections at once: every message once, the claims bounded by the connections.
- Message bytes written by hand: they parse as the standard library's EmailMessage would
  build them, with RFC 2047 names and subjects, folded headers and no injected header.
- Rendering memos: a message rendered from memos equals one rendered from scratch.
- Quiet cron runs: nothing is skipped once anything that decides what is due has changed.
"""

from __future__ import annotations

import email
import re
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from email.header import decode_header, make_header
from email.message import EmailMessage
from email.policy import default as default_policy
from pathlib import Path
from typing import Any

import pytest

from ldmail.content.message import MessageBuilder
from ldmail.content.render import Rendered, Renderer
from ldmail.errors import HeaderInjection
from ldmail.project.config import load_project
from ldmail.project.schedule import assign_variant

from ..projects import NOW, PEOPLE, edit_yaml
from .conftest import Cli, summary_line
from .smtp_server import SmtpServer, known_people, ledger_rows, send, states
from .test_kill import (
    test_sigkill_mid_send_leaves_the_message_unknown_and_sends_nothing_twice as _kill,
)
from .test_send_smtp import (
    test_a_connection_the_server_closed_between_messages_is_reopened_at_once as _reopened,
)
from .test_send_smtp import (
    test_a_reply_lost_after_the_whole_message_makes_it_unknown as _lost_reply,
)
from .test_send_smtp import (
    test_dropped_connection_before_data_defers_that_message_and_the_run_reconnects as _dropped,
)
from .test_send_smtp import (
    test_permanent_refusal_of_the_content_fails_without_suppressing as _permanent,
)
from .test_send_smtp import (
    test_temporary_refusal_is_deferred_then_delivered_after_the_backoff as _temporary,
)
from .test_send_smtp import (
    test_two_runs_started_together_never_send_a_message_twice as _overlap,
)
from .test_send_smtp import (
    test_unknown_user_fails_that_message_only_and_suppresses_the_address as _unknown,
)


class PipeliningServer(SmtpServer):
    """The delivery tests' server, offering PIPELINING (aiosmtpd reads commands in order)."""

    async def handle_EHLO(self, server: Any, session: Any, envelope: Any, hostname: str,
                          responses: list[str]) -> list[str]:
        session.host_name = hostname
        return [*responses[:-1], "250-PIPELINING", responses[-1]]


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    server = PipeliningServer().start()
    try:
        yield server
    finally:
        server.stop()


# The same scenarios, over a pipelining server (this module's smtp_server fixture).
test_pipelined_temporary_refusal = _temporary
test_pipelined_unknown_user = _unknown
test_pipelined_permanent_refusal = _permanent
test_pipelined_dropped_connection = _dropped
test_pipelined_lost_reply = _lost_reply
test_pipelined_connection_closed_between_messages = _reopened
test_pipelined_two_runs_at_once = _overlap
test_pipelined_sigkill_mid_send = _kill


def test_the_pipelining_server_is_offered_and_used(smtp_server: SmtpServer) -> None:
    import smtplib

    connection = smtplib.SMTP("127.0.0.1", smtp_server.port)
    try:
        connection.ehlo()
        assert connection.has_extn("pipelining")
    finally:
        connection.quit()


@pytest.mark.parametrize("connections", [2, 4])
def test_several_connections_send_every_message_once(
        project: Path, cli: Cli, smtp_server: SmtpServer, connections: int) -> None:
    known_people(project, smtp_server.port)
    edit_yaml(project / "ldmail.yaml",
              lambda s: s["transport"].update(connections=connections, rate="600/min"))
    started = datetime.now(UTC)
    result = send(cli, project, NOW)
    assert result.exit_code == 0, result.output
    assert Counter(r.rcpt_tos[0] for r in smtp_server.received) == Counter(PEOPLE.keys())
    assert set(states(project).values()) == {"sent"}
    # One rate for all connections together: 600/min is one message every 0.1 s.
    assert datetime.now(UTC) - started >= timedelta(seconds=0.1 * (len(PEOPLE) - 1))
    again = send(cli, project, NOW + timedelta(minutes=5))
    assert summary_line(again.stdout).startswith("sent 0 ")


# -- message bytes ---------------------------------------------------------------------------


def _built(project: Path, *, name: str = "Ann de Vries", subject: str = "Welcome",
           recipient: str = "ann@example.org", html: str = "<html><p>Hi</p></html>",
           calendar: bool = False) -> tuple[bytes, EmailMessage]:
    loaded = load_project(project)
    campaign = loaded.campaign("welcome")
    step = campaign.steps[0]
    if calendar:
        from ldmail.project.models import Calendar

        step = step.model_copy(update={"calendar": Calendar.model_validate(
            {"title": "Learning moment", "weekday": "fri", "time": "15:00"})})
    rendered = Rendered(subject=subject, preheader="", wiifm="", html=html, text="Hi Ann\n",
                        template_file="t", language="en")
    builder = MessageBuilder(loaded.settings, datetime(2026, 12, 1, 9, tzinfo=UTC))
    built = builder.build(rendered=rendered, campaign_id="welcome", campaign=campaign,
                          step=step, recipient=recipient, recipient_name=name,
                          token="0123456789abcdef0123456789abcdef",
                          message_id="<abc@example.org>", zone=None)
    parsed = email.message_from_bytes(built.data, policy=default_policy)
    assert isinstance(parsed, EmailMessage)
    assert not parsed.defects and not any(part.defects for part in parsed.walk())
    head = built.data.split(b"\r\n\r\n", 1)[0]
    assert all(len(line) <= 998 for line in built.data.split(b"\r\n"))
    assert b"\n" not in head.replace(b"\r\n", b"")  # CRLF only
    return head, parsed


@pytest.mark.parametrize("name", [
    "Ann de Vries", "J. R. Smith", 'Ann "Nan" de Vries', "Chloé Martin", "Zoë Ø'Brien-Łukasz",
    "=?utf-8?q?looks_encoded?=", "Anna-Maria Magdalena Theresia van der Heijden-Oppenheimer "
    "tot Wittenburg van Amstel", "Ærøskøbing Ğüşıöç Ñandú Ŵŷ " * 4, ""])
def test_display_names_arrive_as_written(project: Path, name: str) -> None:
    head, parsed = _built(project, name=name)
    to = parsed["To"].addresses[0]
    assert to.addr_spec == "ann@example.org"
    assert to.display_name == name
    assert max(len(line) for line in head.split(b"\r\n")) <= 998
    if name.isascii() and "=?" not in name:
        assert b"=?" not in head.split(b"To:", 1)[1].split(b"\r\n")[0]


@pytest.mark.parametrize("subject", [
    "Welcome", "Chloé, your learning platform is open", "=?utf-8?b?no?= decoding here",
    "A rather long subject line that goes on and on past the seventy-eight columns a header "
    "line should keep to", "Ünïcödé " * 20, "  spaced   out  "])
def test_subjects_arrive_as_written(project: Path, subject: str) -> None:
    head, parsed = _built(project, subject=subject)
    assert parsed["Subject"] == subject or " ".join(str(parsed["Subject"]).split()) == \
        " ".join(subject.split())
    lines = head.split(b"\r\n")
    if subject.isascii() and "=?" not in subject:
        assert all(len(line) <= 78 for line in lines if not line.startswith(b"List-"))


def test_headers_and_parts_are_complete(project: Path) -> None:
    long_line = "<p>" + "word " * 400 + "</p>"  # over 998 bytes on one line
    head, parsed = _built(project, html=f"<html>{long_line}\n.leading dot</html>",
                          calendar=True)
    assert parsed.get_content_type() == "multipart/alternative"
    parts = list(parsed.iter_parts())
    assert [p.get_content_type() for p in parts] == ["text/plain", "text/html", "text/calendar"]
    html = parts[1]
    assert isinstance(html, EmailMessage)
    assert html["Content-Transfer-Encoding"] == "quoted-printable"
    assert long_line in html.get_content() and ".leading dot" in html.get_content()
    assert parts[2].get_param("method") == "REQUEST"
    assert parsed["Message-ID"] == "<abc@example.org>"
    assert parsed["Date"] == "Tue, 01 Dec 2026 09:00:00 +0000"
    assert parsed["From"].addresses[0].addr_spec == "learning@example.org"
    raw = head.replace(b"\r\n ", b" ")
    assert b"List-Unsubscribe: <mailto:unsubscribe@example.org?subject=unsubscribe%20" \
           b"0123456789abcdef0123456789abcdef>" in raw
    for name in ("X-Ldmail-Campaign", "X-Ldmail-Step", "List-Id", "Auto-Submitted",
                 "Content-Language", "MIME-Version"):
        assert parsed[name], name


@pytest.mark.parametrize("field", ["name", "subject"])
def test_a_line_break_in_a_value_refuses_the_message(project: Path, field: str) -> None:
    value = "Eve\r\nBcc: evil@example.org"
    with pytest.raises(HeaderInjection, match="line break"):
        if field == "name":
            _built(project, name=value)
        else:
            _built(project, subject=value)


def test_an_internationalised_address_takes_the_standard_library_path(project: Path) -> None:
    data, _ = _built(project, recipient="anna@bücher.example", name="Anna Bücher")
    # The address in UTF-8 as RFC 6532 writes it (never an encoded word inside it, which RFC
    # 2047 forbids); the display name may be an encoded word, read back whole.
    to = re.search(rb"^To: (.*?)\r?$", data, re.M)
    assert to and to[1].endswith("<anna@bücher.example>".encode()), data[:400]
    name = to[1][: -len("<anna@bücher.example>".encode())].decode().strip()
    assert str(make_header(decode_header(name))) == "Anna Bücher"


# -- rendering memos -------------------------------------------------------------------------


def test_rendering_from_memos_equals_rendering_from_scratch(example: Path) -> None:
    from itertools import islice

    from ldmail.audience.export import PeopleStream, unique_people

    loaded = load_project(example)
    people = list(islice(unique_people(PeopleStream(loaded, date(2026, 12, 1))), 40))
    shared = Renderer(loaded)
    checked = 0
    for campaign_id, file in loaded.campaigns.items():
        for step in file.model.steps:
            for index, person in enumerate(people):
                token = f"{index:032x}"
                url = f"https://learning.example.org/u?token={token}"
                persona = loaded.audiences.personas.get(person.persona or "")
                args = (campaign_id, file.model, step, person.attributes, person.persona,
                        persona, person.language)
                # An A/B step is rendered in the variant the person gets.
                variant = assign_variant(campaign_id, step, person.email)
                memo = shared.render(*args, unsubscribe_url=url, token=token, variant=variant)
                fresh = Renderer(loaded).render(*args, unsubscribe_url=url, variant=variant)
                assert memo == fresh, (campaign_id, step.id, person.email)
                checked += 1
    assert checked > 100 and len(shared._pages) < checked


# -- quiet cron runs -------------------------------------------------------------------------


def _quiet_marker(project: Path) -> dict[str, Any] | None:
    import json

    rows = ledger_rows(project, "SELECT value FROM meta WHERE key = 'quiet'")
    return json.loads(rows[0]["value"]) if rows else None


@pytest.fixture
def sent_first_step(project: Path, cli: Cli) -> Path:
    assert send(cli, project, NOW).exit_code == 0
    quiet = send(cli, project, NOW + timedelta(hours=1))  # nothing due: records the marker
    assert quiet.exit_code == 0 and summary_line(quiet.stdout).startswith("sent 0 ")
    marker = _quiet_marker(project)
    assert marker is not None
    # The scaffold's second step is three days after the first.
    assert marker["until"] == (NOW + timedelta(days=3)).astimezone(UTC).strftime(
        "%Y-%m-%dT%H:%M:%SZ")
    return project


def _does_the_work(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the runs that sync the export with the ledger (the work a quiet run skips)."""
    import ldmail.delivery.send

    calls: list[int] = []
    real = vars(ldmail.delivery.send)["sync"]  # the name send looks up

    def counting(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(ldmail.delivery.send, "sync", counting)
    return calls


def test_a_quiet_run_skips_the_work_and_says_the_same(
        sent_first_step: Path, cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    project = sent_first_step
    calls = _does_the_work(monkeypatch)
    full = send(cli, project, NOW + timedelta(hours=2), "--dry-run")
    assert full.exit_code == 0 and calls == [1]
    quiet = send(cli, project, NOW + timedelta(hours=2))
    assert calls == [1]  # the work was not done again
    assert quiet.exit_code == 0 and summary_line(quiet.stdout) == \
        summary_line(full.stdout).replace("would send", "sent")
    runs = ledger_rows(project, "SELECT status FROM runs")
    assert runs[-1]["status"] == "ok"
    # When the second step falls due, the run does the work again and sends it.
    due = send(cli, project, NOW + timedelta(days=3))
    assert calls == [1, 1] and re.match(r"sent [1-9]", summary_line(due.stdout)), due.stdout


@pytest.mark.parametrize("change", ["export", "campaign", "suppress", "event", "new day",
                                    "earlier now"])
def test_any_change_ends_the_quiet_spell(sent_first_step: Path, cli: Cli,
                                         monkeypatch: pytest.MonkeyPatch, change: str) -> None:
    project = sent_first_step
    later = NOW + timedelta(hours=2)
    if change == "export":
        with (project / "people.csv").open("a", encoding="utf-8") as export:
            export.write("new.person@example.org;New;Person;EN;Sales;01-01-2020;\n")
    elif change == "campaign":
        def sooner(campaign: dict[str, Any]) -> None:
            campaign["min_gap"] = "1h"
            campaign["steps"][1]["after"] = "1h"

        edit_yaml(project / "campaigns" / "welcome.yaml", sooner)
    elif change == "suppress":
        email = ledger_rows(project, "SELECT email FROM enrolments LIMIT 1")[0]["email"]
        assert cli("suppress", email, "--project", project).exit_code == 0
    elif change == "event":
        events = project / "events.csv"
        email = ledger_rows(project, "SELECT email FROM enrolments LIMIT 1")[0]["email"]
        events.write_text(f"email,event,course,date\n{email},registered,course:x,2026-12-01\n",
                          encoding="utf-8")
        result = cli("events", "import", events, "--project", project)
        assert result.exit_code == 0 and "1 event(s) added" in result.stdout, result.output
    elif change == "new day":
        later = NOW + timedelta(days=1)
    else:
        later = NOW + timedelta(minutes=30)  # before the run that recorded the marker
    calls = _does_the_work(monkeypatch)
    result = send(cli, project, later, *(["--allow-past"] if change == "earlier now" else []))
    assert result.exit_code == 0, result.output
    assert calls == [1]  # the full work was done
    if change == "export":
        assert "enrolled 1" in result.stdout
    if change == "campaign":
        assert re.match(r"sent [1-9]", summary_line(result.stdout)), result.stdout
