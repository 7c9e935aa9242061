"""Managers in the loop: a step `to: manager` goes to the person's manager (the export's
manager_email), rendered with the person's data, at most once per person and never once the
person reached the goal; `cc_manager` copies the manager in, in the Cc header and the SMTP
envelope. Through the real CLI, against the loopback SMTP server and the outbox."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from datetime import date
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default
from pathlib import Path

import pytest

from ..projects import at, edit_yaml
from .conftest import Cli
from .smtp_server import Received, SmtpServer, ledger_rows, send, start_ldmail, use_smtp
from .test_fast_paths import PipeliningServer

HEADER = "Email;First name;Last name;Language;Department;Start date;Certification;Manager"
# Ann and Dirk must certify (compelled learners); Bea and Carl are their managers.
PEOPLE = {
    "ann@example.org": "Ann;de Vries;EN;Finance;03-02-2019;GDPR basics;Bea@Example.org",
    "dirk@example.org": "Dirk;Jansen;EN;IT;12-01-2012;GDPR basics;carl@example.org",
    "bea@example.org": "Bea;Baas;NL;Finance;15-06-2010;;",
    "carl@example.org": "Carl;Chef;EN;IT;15-06-2010;;",
}
TUE, WED, THU, FRI = (date(2026, 12, day) for day in (1, 2, 3, 4))
CAMPAIGN = """\
title: Your GDPR certification
phase: activate
audience: {personas: [compelled]}
starts: 2026-12-01
holdout: 0%
goal: {event: registered}
sender: "Learning Team <learning@example.org>"
send_window: {days: mon-fri, hours: "09:00-17:00", timezone: Europe/Amsterdam}
steps:
  - {id: reminder-1, after: 0d, template: welcome/hello}
  - {id: reminder-2, after: 1d, template: welcome/hello}
  - {id: reminder-3, after: 2d, template: welcome/hello{cc}}
  - {id: escalate, after: 3d, template: certification/manager-note, to: manager}
"""
NOTE = {
    "en": "{% block subject %}{{ person.first_name }} has not started the certification"
          "{% endblock %}\n{% block preheader %}Three reminders went unanswered.{% endblock %}\n"
          "{% block wiifm %}A word from you helps.{% endblock %}\n{% block body %}\n"
          "Hello {{ manager.first_name }},\n\n{{ person.first_name }} {{ person.last_name }} "
          "has not started the {{ person.certification }} path after three reminders.\n"
          "{% endblock %}\n",
    "nl": "{% block subject %}{{ person.first_name }} is nog niet begonnen{% endblock %}\n"
          "{% block preheader %}Drie herinneringen bleven onbeantwoord.{% endblock %}\n"
          "{% block wiifm %}Een woord van jou helpt.{% endblock %}\n{% block body %}\n"
          "Hallo {{ manager.first_name }},\n\n{{ person.first_name }} {{ person.last_name }} "
          "is na drie herinneringen nog niet begonnen aan {{ person.certification }}.\n"
          "{% endblock %}\n",
}


def with_managers(project: Path, port: int | None, *, people: dict[str, str] = PEOPLE,
                  cc: bool = False) -> Path:
    """The scaffold as a certification campaign: three reminders (the third copying the
    manager in with `cc`), then a note to the manager; people with a Manager column."""
    lines = [HEADER, *(f"{email};{rest}" for email, rest in people.items())]
    (project / "people.csv").write_text("\r\n".join(lines) + "\r\n", encoding="utf-8")
    edit_yaml(project / "audiences.yaml",
              lambda a: a["people"]["columns"].update(manager_email="Manager"))
    (project / "campaigns" / "welcome.yaml").write_text(
        CAMPAIGN.replace("{cc}", ", cc_manager: true" if cc else ""), encoding="utf-8")
    for language, text in NOTE.items():
        folder = project / "templates" / language / "certification"
        folder.mkdir()
        (folder / "manager-note.md").write_text(text, encoding="utf-8")
    if port is not None:
        use_smtp(project, port)
    return project


def run(cli: Cli, project: Path, day: date, *extra: str) -> str:
    result = send(cli, project, at(day, 10), *extra)
    assert result.exit_code == 0, result.output
    return result.output


def parsed(received: Received) -> EmailMessage:
    message = message_from_bytes(received.data, policy=default)
    assert isinstance(message, EmailMessage)
    return message


def text_of(message: EmailMessage) -> str:
    part = message.get_body(("plain",))
    assert part is not None
    return str(part.get_content())


def history_steps(cli: Cli, project: Path, email: str) -> str:
    """The step column of `ldmail history EMAIL`'s message table, its folded cells joined."""
    lines = cli("history", email, "--project", project).stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("Messages to "))
    header = next(i for i in range(start, len(lines)) if lines[i].startswith("┃"))
    names = [cell.strip() for cell in lines[header].strip("┃").split("┃")]
    at_step = names.index("step")
    cells = [line.strip("│").split("│")[at_step].strip() for line in lines[header + 2:]
             if line.startswith("│")]
    return " ".join(" ".join(cells).split())


def token_of(message: EmailMessage) -> str:
    match = re.search(r"unsubscribe%20([0-9a-f]{32})", str(message["List-Unsubscribe"]))
    assert match, message["List-Unsubscribe"]
    return match[1]


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    from .smtp_server import serve

    yield from serve()


def test_three_unanswered_reminders_bring_the_manager_one_note(
        project: Path, cli: Cli, smtp_server: SmtpServer) -> None:
    """After three reminders the manager gets exactly one note, addressed to them, about the
    person, in the manager's language, with an unsubscribe link that unsubscribes the manager;
    two runs started together and runs repeated later send it no second time."""
    with_managers(project, smtp_server.port)
    for day in (TUE, WED, THU):
        run(cli, project, day)
    assert len(smtp_server.to("ann@example.org")) == 3
    assert not smtp_server.to("bea@example.org")  # no note before the step is due

    # The note to Ann's manager is held on the wire while a second send waits for the lock.
    hold = smtp_server.pause_data("bea@example.org", 20)
    args = ("send", "--project", project, "--now", at(FRI, 10).isoformat(), "--wait", "30")
    runs = [start_ldmail(*args)]
    try:
        assert hold.started.wait(30), "the note was never sent"
        runs.append(start_ldmail(*args))
        time.sleep(0.5)
        hold.release()
        outputs = [process.communicate(timeout=60) for process in runs]
    finally:
        for process in runs:
            if process.poll() is None:
                process.kill()
                process.communicate()
    assert [process.returncode for process in runs] == [0, 0], outputs
    for day in (FRI, date(2026, 12, 7), date(2026, 12, 8)):
        run(cli, project, day)

    notes = smtp_server.to("bea@example.org")
    assert len(notes) == 1 and notes[0].rcpt_tos == ("bea@example.org",)
    note = parsed(notes[0])
    assert str(note["To"]) == "Bea Baas <bea@example.org>"
    assert str(note["X-Ldmail-Step"]) == "escalate"
    assert str(note["Content-Language"]) == "nl"  # Bea's own language; Ann reads English
    assert "Hallo Bea," in text_of(note) and "Ann de Vries" in text_of(note)
    assert "GDPR basics" in text_of(note)
    assert len(smtp_server.to("carl@example.org")) == 1  # Dirk's manager: one note too
    assert len(smtp_server.to("ann@example.org")) == 3  # and nothing more to Ann

    [row] = ledger_rows(project, "SELECT email, state, recipient, cc FROM messages"
                                 " WHERE step = 'escalate' AND email = 'ann@example.org'")
    assert row == {"email": "ann@example.org", "state": "sent",
                   "recipient": "bea@example.org", "cc": None}
    assert "escalate (to the manager bea@example.org)" in \
        history_steps(cli, project, "ann@example.org")
    assert "escalate (to you as the manager of ann@example.org)" in \
        history_steps(cli, project, "bea@example.org")

    # The note's unsubscribe token is the manager's: it unsubscribes Bea, not Ann.
    reminder = parsed(smtp_server.to("ann@example.org")[0])
    assert token_of(note) != token_of(reminder)
    result = cli("suppress", token_of(note), "--project", project)
    assert result.exit_code == 0, result.output
    assert "bea@example.org is now suppressed" in result.output
    assert ledger_rows(project, "SELECT email FROM suppressions") == [
        {"email": "bea@example.org"}]


def test_no_note_once_the_person_reached_the_goal_first(
        project: Path, cli: Cli, smtp_server: SmtpServer, tmp_path: Path) -> None:
    """Ann registers before her escalation is due: her manager gets nothing, Dirk's does."""
    with_managers(project, smtp_server.port)
    for day in (TUE, WED, THU):
        run(cli, project, day)
    events = tmp_path / "lms.csv"
    events.write_text("Email;Event;Course;Timestamp\r\n"
                      "ann@example.org;registered;course:gdpr-basics;03-12-2026 14:00:00\r\n",
                      encoding="utf-8")
    assert cli("events", "import", events, "--project", project).exit_code == 0
    for day in (FRI, date(2026, 12, 7)):
        run(cli, project, day)
    assert not smtp_server.to("bea@example.org")
    assert len(smtp_server.to("carl@example.org")) == 1
    assert ledger_rows(project, "SELECT state, exit_reason FROM enrolments"
                                " WHERE email = 'ann@example.org'") == [
        {"state": "converted", "exit_reason": "goal reached"}]
    assert not ledger_rows(project, "SELECT 1 FROM messages WHERE step = 'escalate' AND"
                                    " email = 'ann@example.org'")


def test_a_goal_reached_during_the_send_stops_the_note(
        project: Path, cli: Cli, smtp_server: SmtpServer, tmp_path: Path) -> None:
    """Dirk registers while the send that would escalate him holds an earlier message on the
    wire: the claim re-checks the goal in its own transaction, and his manager gets nothing."""
    people = {"aaron@example.org": "Aaron;Eerst;EN;Finance;03-02-2019;GDPR basics;"
                                   "bea@example.org", **PEOPLE}
    del people["ann@example.org"]
    with_managers(project, smtp_server.port, people=people)
    for day in (TUE, WED, THU):
        run(cli, project, day)
    # Aaron's note goes first (his row is first); Dirk's waits for the one connection.
    hold = smtp_server.pause_data("bea@example.org", 30)
    events = tmp_path / "lms.csv"
    events.write_text("Email;Event;Course;Timestamp\r\n"
                      "dirk@example.org;registered;course:gdpr-basics;04-12-2026 08:30:00\r\n",
                      encoding="utf-8")
    process = start_ldmail("send", "--project", project, "--now", at(FRI, 10).isoformat())
    try:
        assert hold.started.wait(30), "Aaron's note was never sent"
        imported = cli("events", "import", events, "--project", project)
        assert imported.exit_code == 0, imported.output
        hold.release()
        output = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, output
    assert len(smtp_server.to("bea@example.org")) == 1
    assert not smtp_server.to("carl@example.org")
    assert not ledger_rows(project, "SELECT 1 FROM messages WHERE step = 'escalate' AND"
                                    " email = 'dirk@example.org'")
    run(cli, project, date(2026, 12, 7))  # the next run ends Dirk's enrolment: goal reached
    assert not smtp_server.to("carl@example.org")


def test_a_suppressed_manager_gets_nothing_and_history_says_why(
        project: Path, cli: Cli, smtp_server: SmtpServer) -> None:
    """Ann's manager unsubscribed: the note is skipped with the reason, which history shows,
    while Ann's own reminders go on; with no manager in the export the note is skipped too."""
    people = {**PEOPLE, "dirk@example.org": PEOPLE["dirk@example.org"].rsplit(";", 1)[0] + ";"}
    with_managers(project, smtp_server.port, people=people)
    assert cli("suppress", "bea@example.org", "--project", project).exit_code == 0
    for day in (TUE, WED, THU, FRI, date(2026, 12, 7)):
        run(cli, project, day)
    assert not smtp_server.to("bea@example.org") and not smtp_server.to("carl@example.org")
    assert len(smtp_server.to("ann@example.org")) == 3
    rows = {r["email"]: r for r in ledger_rows(
        project, "SELECT email, state, error, recipient FROM messages WHERE step = 'escalate'")}
    assert rows["ann@example.org"] == {
        "email": "ann@example.org", "state": "skipped", "recipient": None,
        "error": "not sent to the manager: the manager's address is suppressed "
                 "(unsubscribed, bounced or forgotten)"}
    assert rows["dirk@example.org"]["state"] == "skipped"
    assert rows["dirk@example.org"]["error"] == \
        "not sent to the manager: the export gives no manager_email for this person"
    history = cli("history", "ann@example.org", "--project", project)
    flat = " ".join(" ".join(line.strip("│ ").split()) for line in history.output.splitlines())
    assert "skipped" in flat and "manager's address is suppressed" in flat
    assert ledger_rows(project, "SELECT state, exit_reason FROM enrolments WHERE email ="
                                " 'ann@example.org'") == [
        {"state": "completed", "exit_reason": "all steps done"}]


@pytest.fixture(params=["plain", "pipelining"])
def any_server(request: pytest.FixtureRequest) -> Iterator[SmtpServer]:
    server = (PipeliningServer() if request.param == "pipelining" else SmtpServer()).start()
    try:
        yield server
    finally:
        server.stop()


def test_cc_manager_copies_the_manager_in_header_and_envelope(
        project: Path, cli: Cli, any_server: SmtpServer) -> None:
    """The third reminder copies the manager in: one message, To the person and Cc the
    manager, given to the server for both; a suppressed manager is left out of both."""
    with_managers(project, any_server.port, cc=True)
    for day in (TUE, WED):
        run(cli, project, day)
    assert cli("suppress", "carl@example.org", "--project", project).exit_code == 0
    run(cli, project, THU)
    [third] = [r for r in any_server.to("ann@example.org")
               if str(parsed(r)["X-Ldmail-Step"]) == "reminder-3"]
    assert third.rcpt_tos == ("ann@example.org", "bea@example.org")
    message = parsed(third)
    assert str(message["To"]) == "Ann de Vries <ann@example.org>"
    assert str(message["Cc"]) == "Bea Baas <bea@example.org>"
    assert len(any_server.to("bea@example.org")) == 1  # the copy is the only one so far
    [dirk] = [r for r in any_server.to("dirk@example.org")
              if str(parsed(r)["X-Ldmail-Step"]) == "reminder-3"]
    assert dirk.rcpt_tos == ("dirk@example.org",) and parsed(dirk)["Cc"] is None
    assert ledger_rows(project, "SELECT email, state, cc FROM messages WHERE step ="
                                " 'reminder-3' ORDER BY email") == [
        {"email": "ann@example.org", "state": "sent", "cc": "bea@example.org"},
        {"email": "dirk@example.org", "state": "sent", "cc": None}]


def test_a_copy_the_server_refuses_does_not_stop_the_message(
        project: Path, cli: Cli, any_server: SmtpServer) -> None:
    """The server refuses the manager's address: the person still gets their reminder, once."""
    with_managers(project, any_server.port, cc=True)
    for day in (TUE, WED):
        run(cli, project, day)
    any_server.rcpt_replies("bea@example.org", "550 5.1.1 <bea@example.org>: user unknown")
    run(cli, project, THU)
    [third] = [r for r in any_server.to("ann@example.org")
               if str(parsed(r)["X-Ldmail-Step"]) == "reminder-3"]
    assert third.rcpt_tos == ("ann@example.org",)
    assert str(parsed(third)["Cc"]) == "Bea Baas <bea@example.org>"
    assert ledger_rows(project, "SELECT state FROM messages WHERE step = 'reminder-3' AND"
                                " email = 'ann@example.org'") == [{"state": "sent"}]


def test_the_outbox_writes_the_note_and_the_copy(project: Path, cli: Cli) -> None:
    """With the outbox transport, the note is a file addressed to the manager and the copy
    a file with the Cc header; a bad manager address in the export is noted, not fatal."""
    people = {**PEOPLE, "dirk@example.org": PEOPLE["dirk@example.org"].replace(
        "carl@example.org", "carl at example")}
    with_managers(project, None, people=people, cc=True)
    for day in (TUE, WED, THU, FRI):
        run(cli, project, day)
    files = [message_from_bytes(path.read_bytes(), policy=default)
             for path in sorted((project / ".ldmail" / "outbox").glob("*.eml"))]
    notes = [m for m in files if str(m["X-Ldmail-Step"]) == "escalate"]
    assert [str(m["To"]) for m in notes] == ["Bea Baas <bea@example.org>"]
    copies = [str(m["Cc"]) for m in files if m["Cc"] is not None]
    assert copies == ["Bea Baas <bea@example.org>"]
    audience = cli("audience", "--project", project, "--now", at(TUE, 10).isoformat())
    assert "manager_email: invalid e-mail address 'carl at example'" in \
        " ".join(audience.output.split())


def test_preview_shows_who_gets_a_manager_step(project: Path, cli: Cli) -> None:
    """preview --person addresses a step to the manager to the person's manager, rendered
    for them, and shows the Cc of a step copying them in."""
    with_managers(project, None, cc=True)
    note = cli("preview", "-c", "welcome", "--step", "escalate", "--person", "ann@example.org",
               "--project", project, "--now", at(TUE, 10).isoformat())
    assert note.exit_code == 0, note.output
    flat = " ".join(note.output.split())
    assert "To: bea@example.org (the manager of ann@example.org)" in flat
    assert "Hallo Bea," in flat and "Ann de Vries" in flat
    copy = cli("preview", "-c", "welcome", "--step", "reminder-3", "--person",
               "ann@example.org", "--project", project, "--now", at(TUE, 10).isoformat())
    assert "Cc: bea@example.org" in " ".join(copy.output.split())
    persona = cli("preview", "-c", "welcome", "--step", "escalate", "--persona", "compelled",
                  "--project", project, "--now", at(TUE, 10).isoformat())
    assert persona.exit_code == 0, persona.output
    assert "To: manager@example.org (the manager of ann@example.org)" in \
        " ".join(persona.output.split())  # a stand-in manager for the persona's first person


def test_validate_renders_the_note_for_a_stand_in_manager(project: Path, cli: Cli) -> None:
    """validate renders a step to the manager with a stand-in manager, and names a template
    that uses `manager` where none is given (a step to the person)."""
    with_managers(project, None)
    assert cli("validate", "--project", project).exit_code == 0
    hello = project / "templates" / "en" / "welcome" / "hello.md"
    hello.write_text(hello.read_text(encoding="utf-8").replace(
        "{% block body %}", "{% block body %}{{ manager.first_name }}", 1), encoding="utf-8")
    result = cli("validate", "--project", project)
    assert result.exit_code == 1
    assert "undefined variable" in result.output and "manager" in result.output


def sent_with_managers_copied(project: Path, cli: Cli) -> dict[tuple[str, str], bytes]:
    """A week of sends with the managers copied in: each mail of the outbox by its step and
    its recipient."""
    with_managers(project, None, cc=True)
    for day in (TUE, WED, THU, FRI):
        run(cli, project, day)
    return {(str(m["X-Ldmail-Step"]), str(m["To"].addresses[0].addr_spec)): path.read_bytes()
            for path in (project / ".ldmail" / "outbox").glob("*.eml")
            for m in [message_from_bytes(path.read_bytes(), policy=default)]}


def test_a_bounce_suppresses_the_manager_it_came_back_from(project: Path, cli: Cli) -> None:
    """A hard bounce of the note to Dirk's manager suppresses the manager, not Dirk; one that
    names only the manager copied in on Ann's reminder suppresses the manager and leaves
    Ann's message as sent."""
    from .bounce_mails import exchange_ndr, postfix_bounce
    from .test_inbox import maildir, use_inbox

    sent = sent_with_managers_copied(project, cli)
    maildir(project, [postfix_bounce(sent[("escalate", "carl@example.org")], "carl@example.org"),
                      exchange_ndr(sent[("reminder-3", "ann@example.org")], "bea@example.org")])
    use_inbox(project, kind="maildir", path="exports/inbox")
    result = cli("inbox", "--project", project, "--now", at(FRI, 12).isoformat())
    assert result.exit_code == 0, result.output
    assert {r["email"] for r in ledger_rows(project, "SELECT email FROM suppressions")} == {
        "carl@example.org", "bea@example.org"}
    assert ledger_rows(project, "SELECT email, step, state FROM messages WHERE state ="
                                " 'bounced'") == [
        {"email": "dirk@example.org", "step": "escalate", "state": "bounced"}]
    assert ledger_rows(project, "SELECT state FROM messages WHERE email = 'ann@example.org'"
                                " AND step = 'reminder-3'") == [{"state": "sent"}]


def test_a_bounce_of_a_forgotten_managers_copy_leaves_the_learner_alone(project: Path,
                                                                       cli: Cli) -> None:
    """Bea, copied in on Ann's reminder, is forgotten; the bounce of her copy later names her
    real address: it is still her copy, so Ann's message stays sent and Ann is not suppressed,
    and neither Bea's address nor the server's words about her are written anywhere."""
    from .bounce_mails import exchange_ndr
    from .test_inbox import maildir, use_inbox

    sent = sent_with_managers_copied(project, cli)
    assert cli("forget", "bea@example.org", "--project", project).exit_code == 0
    maildir(project, [exchange_ndr(sent[("reminder-3", "ann@example.org")], "bea@example.org")])
    use_inbox(project, kind="maildir", path="exports/inbox")
    result = cli("inbox", "--project", project, "--now", at(FRI, 12).isoformat())
    assert result.exit_code == 0, result.output
    assert "bea@example.org" not in result.output
    assert ledger_rows(project, "SELECT state FROM messages WHERE email = 'ann@example.org'"
                                " AND step = 'reminder-3'") == [{"state": "sent"}]
    assert "ann@example.org" not in {r["email"] for r in ledger_rows(
        project, "SELECT email FROM suppressions")}
    assert b"bea@example.org" not in (project / ".ldmail" / "ledger.db").read_bytes()


def test_a_bounce_naming_neither_of_a_copied_message_proves_nothing(project: Path,
                                                                    cli: Cli) -> None:
    """Ann and Bea (copied in) hold the same Message-ID: a bounce of it that names neither
    (as a forward's would) could be either's, or forged by either, so it changes nothing."""
    from .bounce_mails import exchange_ndr
    from .test_inbox import maildir, use_inbox

    sent = sent_with_managers_copied(project, cli)
    maildir(project, [exchange_ndr(sent[("reminder-3", "ann@example.org")],
                                   "someone@elsewhere.example")])
    use_inbox(project, kind="maildir", path="exports/inbox")
    result = cli("inbox", "--project", project, "--now", at(FRI, 12).isoformat())
    assert result.exit_code == 0, result.output
    assert "unverified" in result.stdout, result.stdout
    assert ledger_rows(project, "SELECT email FROM suppressions") == []
    assert ledger_rows(project, "SELECT state FROM messages WHERE email = 'ann@example.org'"
                                " AND step = 'reminder-3'") == [{"state": "sent"}]
