"""`ldmail inbox` against a real IMAP server (Dovecot), a Maildir and an mbox file: bounces and
unsubscribe mails that come back for messages `ldmail send` really sent are applied once, and
show in the ledger, `history` and `report`."""

from __future__ import annotations

import json
import mailbox
import re
import socket
import sys
from collections.abc import Iterator
from datetime import timedelta
from email import message_from_bytes
from email.policy import compat32
from pathlib import Path
from typing import Any

import pytest

from ..projects import NOW, PEOPLE, edit_yaml, write_people
from .bounce_mails import (
    exchange_ndr,
    exim_failure,
    message_id,
    out_of_office,
    postfix_bounce,
    postfix_delay,
    token_of,
    unrelated_mail,
    unsubscribe_mail,
)
from .conftest import Cli, CliResult
from .imap_server import Dovecot, serve
from .smtp_server import free_port, ldmail_running, ledger_rows, loopback_listener, wait_for

PASSWORD_ENV = "LDMAIL_TEST_IMAP_PASSWORD"
LATER = NOW + timedelta(days=1)
ANN, BOB, CHLOE, DIRK, EMMA = PEOPLE
NOT_OURS = "not a bounce or an unsubscribe"


@pytest.fixture
def dovecot(tmp_path: Path) -> Iterator[Dovecot]:
    """A real Dovecot IMAP server on loopback (see tests/e2e/imap_server.py)."""
    yield from serve(tmp_path)


@pytest.fixture
def sent(project: Path, cli: Cli) -> Path:
    """The scaffold with the five known people, no holdout; `send` has written each their
    first message (step hello) to the outbox."""
    write_people(project, PEOPLE)
    edit_yaml(project / "campaigns" / "welcome.yaml", lambda c: c.update(holdout="0%"))
    result = cli("send", "--project", project, "--now", NOW.isoformat())
    assert result.exit_code == 0, result.output
    return project


def original(project: Path, address: str, step: str = "hello") -> bytes:
    """The message `ldmail send` wrote to the outbox for `address`."""
    for path in sorted((project / ".ldmail" / "outbox").glob("*.eml")):
        data = path.read_bytes()
        parsed = message_from_bytes(data, policy=compat32)
        if address in str(parsed["To"]) and parsed["X-Ldmail-Step"] == step:
            return data
    raise AssertionError(f"no {step} message to {address} in the outbox")


def use_inbox(project: Path, **inbox: Any) -> None:
    edit_yaml(project / "ldmail.yaml", lambda settings: settings.update(inbox=inbox))


def use_dovecot(project: Path, dovecot: Dovecot, monkeypatch: pytest.MonkeyPatch,
                password: str | None = None) -> None:
    monkeypatch.setenv(PASSWORD_ENV, password or dovecot.password)
    use_inbox(project, kind="imap", host="127.0.0.1", port=dovecot.port, security="none",
              user=dovecot.user, password_env=PASSWORD_ENV)


def inbox(cli: Cli, project: Path, *extra: str) -> CliResult:
    return cli("inbox", "--project", project, "--now", LATER.isoformat(), *extra)


def summary(output: str) -> str:
    """The summary line, without the time it starts with when output is not a terminal."""
    found = re.search(r"^(?:\S+ )?(inbox(?: \(dry run[^)]*\))?: .*)$", output, re.M)
    assert found, output
    return found[1]


def one_line_error(result: CliResult) -> str:
    """An error as users must see it: exit 1, one line on stderr, no traceback."""
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    line = result.stderr.strip()
    assert line and "\n" not in line, result.stderr
    return line


def ledger_state(project: Path) -> dict[str, list[dict[str, Any]]]:
    """What inbox may change: messages, suppressions, enrolments and applied mails."""
    return {table: ledger_rows(project, f"SELECT * FROM {table} ORDER BY 1, 2")
            for table in ("messages", "suppressions", "enrolments", "inbox_mails")}


# -- a real IMAP server ---------------------------------------------------------------------

def test_inbox_over_imap_applies_bounces_and_unsubscribes_once(
        sent: Path, cli: Cli, dovecot: Dovecot, monkeypatch: pytest.MonkeyPatch) -> None:
    use_dovecot(sent, dovecot, monkeypatch)
    for mail in (exchange_ndr(original(sent, ANN), ANN),
                 postfix_bounce(original(sent, BOB), BOB),
                 postfix_delay(original(sent, CHLOE), CHLOE),
                 unsubscribe_mail(token_of(original(sent, DIRK)), DIRK),
                 unsubscribe_mail(token_of(original(sent, EMMA)), EMMA, in_body=True),
                 unrelated_mail()):
        dovecot.append(mail)

    first = inbox(cli, sent)
    print(first.output)
    assert first.exit_code == 0, first.output
    assert summary(first.stdout) == ("inbox: 3 bounces (2 hard, 1 soft), 2 unsubscribes, "
                                     f"1 left alone ({NOT_OURS})")
    lines = first.stdout.splitlines()
    assert any(line.split() == [
        "hard", "bounce", ANN, "welcome/hello:", "550", "5.1.10",
        "RESOLVER.ADR.RecipientNotFound;", "Recipient", "not", "found", "by", "SMTP",
        "address", "lookup", "(userunknown:", "suppressed)"] for line in lines), first.stdout
    assert re.search(rf"hard bounce +{BOB} welcome/hello: 550 5\.1\.1 <{BOB}>: Recipient "
                     r"address rejected: User unknown in local recipient table \(userunknown: "
                     r"suppressed\)",
                     first.stdout)
    assert re.search(rf"soft bounce +{CHLOE} welcome/hello: 452 4\.2\.2 <{CHLOE}>: Mailbox "
                     r"full \(mailboxfull: recorded\)", first.stdout)
    assert re.search(rf"unsubscribe +{DIRK} \(suppressed\)", first.stdout)
    assert re.search(rf"unsubscribe +{EMMA} \(suppressed\)", first.stdout)
    assert "moved 5 mails to ldmail/processed" in first.stdout

    # The ledger: three messages bounced, four people suppressed, their enrolments ended.
    messages = {row["email"]: row for row in ledger_rows(
        sent, "SELECT * FROM messages WHERE step = 'hello'")}
    assert {email for email, row in messages.items() if row["state"] == "bounced"} == \
        {ANN, BOB, CHLOE}
    assert messages[ANN]["error"].startswith("hard bounce (userunknown): 550 5.1.10 RESOLVER")
    assert messages[CHLOE]["error"] == \
        f"soft bounce (mailboxfull): 452 4.2.2 <{CHLOE}>: Mailbox full"
    assert messages[ANN]["bounced_at"] == "2026-12-02T09:00:00Z"
    suppressed = {row["email"]: row for row in ledger_rows(sent, "SELECT * FROM suppressions")}
    assert set(suppressed) == {ANN, BOB, DIRK, EMMA}
    assert suppressed[ANN]["reason"] == ("bounced: 550 5.1.10 RESOLVER.ADR.RecipientNotFound; "
                                         "Recipient not found by SMTP address lookup")
    assert suppressed[DIRK]["reason"] == "unsubscribed by mail"
    assert {row["source"] for row in suppressed.values()} == {"inbox"}
    exits = {row["email"]: (row["state"], row["exit_reason"])
             for row in ledger_rows(sent, "SELECT * FROM enrolments")}
    assert exits == {ANN: ("left", "bounced"), BOB: ("left", "bounced"),
                     CHLOE: ("active", None), DIRK: ("left", "unsubscribed"),
                     EMMA: ("left", "unsubscribed")}

    # The mailbox: the colleague's question stays in INBOX; the rest is in the done folder.
    done = dovecot.separator().join(("ldmail", "processed"))
    assert done in dovecot.folders()
    assert [message_id(m) for m in dovecot.messages()] == [message_id(unrelated_mail())]
    assert len(dovecot.messages(done)) == 5

    # history and report say it.
    ann = cli("history", ANN, "--project", sent)
    assert re.search(r"Bounced .+: welcome/hello: hard bounce \(userunknown\): 550 5\.1\.10 "
                     r"RESOLVER", ann.stdout), ann.stdout
    assert re.search(r"Suppressed since .+: bounced: 550 5\.1\.10 .+ \(a mail in the sender's "
                     r"mailbox\)", ann.stdout), ann.stdout
    dirk = cli("history", DIRK, "--project", sent)
    assert re.search(r"Suppressed since .+: unsubscribed by mail", dirk.stdout), dirk.stdout
    assert "unsubscribed" in dirk.stdout.split("Messages to")[0]  # the enrolment's reason
    report = cli("report", "--project", sent, "--now", LATER.isoformat(), "--format", "json")
    campaign = json.loads(report.stdout)["campaigns"][0]
    hello = next(step for step in campaign["steps"] if step["step"] == "hello")
    assert (hello["sent"], hello["bounced"]) == (2, 3)
    assert campaign["exits"] == {"bounced": 2, "unsubscribed": 2}
    table = cli("report", "--project", sent, "--now", LATER.isoformat())
    assert re.search(r"step\s+┃\s+sent\s+┃\s+bounced\s+┃\s+failed", table.stdout), table.stdout
    assert "Left the sequence: bounced 2, unsubscribed 2" in table.stdout
    # Before the bounces came back, the report shows those messages as sent.
    before = json.loads(cli("report", "--project", sent, "--now", NOW.isoformat(),
                            "--format", "json").stdout)["campaigns"][0]["steps"][0]
    assert (before["sent"], before["bounced"]) == (5, 0)

    # A second run changes nothing: the question is still left alone.
    recorded = ledger_state(sent)
    second = inbox(cli, sent)
    print(second.output)
    assert second.exit_code == 0, second.output
    assert summary(second.stdout) == ("inbox: 0 bounces (0 hard, 0 soft), 0 unsubscribes, "
                                      f"1 left alone ({NOT_OURS})")
    assert ledger_state(sent) == recorded
    assert len(dovecot.messages(done)) == 5

    # A handled mail that comes back into INBOX (a move that failed) is moved, not applied.
    dovecot.append(exchange_ndr(original(sent, ANN), ANN))
    third = inbox(cli, sent)
    assert summary(third.stdout).endswith("1 applied by an earlier run (moved now)")
    assert ledger_state(sent) == recorded
    assert len(dovecot.messages(done)) == 6

    # The next step goes to the soft bounce only: the others are suppressed.
    result = cli("send", "--project", sent, "--now", (NOW + timedelta(days=3)).isoformat())
    assert result.exit_code == 0, result.output
    assert {row["email"] for row in ledger_rows(
        sent, "SELECT email FROM messages WHERE step = 'first-course'")} == {CHLOE}


def test_without_move_handled_mails_are_copied_and_only_they_expunged(
        sent: Path, cli: Cli, dovecot: Dovecot, monkeypatch: pytest.MonkeyPatch) -> None:
    """A server without MOVE: COPY, STORE \\Deleted and UID EXPUNGE of those mails alone, so
    a mail someone else marked deleted (and did not expunge yet) stays."""
    from ldmail.inbox import ImapFolder

    def without_move(folder: ImapFolder) -> set[str]:
        return original_capabilities(folder) - {"MOVE"}

    original_capabilities = ImapFolder._capabilities
    monkeypatch.setattr(ImapFolder, "_capabilities", without_move)
    use_dovecot(sent, dovecot, monkeypatch)
    dovecot.append(unrelated_mail())
    conn = dovecot.client()
    conn.select("INBOX")
    conn.store("1", "+FLAGS", r"(\Deleted)")  # a colleague deleted it in their mail client
    conn.logout()
    dovecot.append(exchange_ndr(original(sent, ANN), ANN))
    result = inbox(cli, sent)
    assert result.exit_code == 0, result.output
    assert summary(result.stdout).startswith("inbox: 1 bounce (1 hard, 0 soft)")
    assert [message_id(m) for m in dovecot.messages()] == [message_id(unrelated_mail())]
    done = dovecot.separator().join(("ldmail", "processed"))
    assert len(dovecot.messages(done)) == 1


@pytest.mark.slow  # Dovecot delays the next login after a refused one by a few seconds
def test_a_refused_imap_login_is_one_clear_line(
        sent: Path, cli: Cli, dovecot: Dovecot, monkeypatch: pytest.MonkeyPatch) -> None:
    use_dovecot(sent, dovecot, monkeypatch, password="not-the-password")
    dovecot.append(exchange_ndr(original(sent, ANN), ANN))
    line = one_line_error(inbox(cli, sent))
    assert f"imap 127.0.0.1:{dovecot.port}: login as {dovecot.user} refused" in line
    assert f"check inbox.user in ldmail.yaml and the password in {PASSWORD_ENV}" in line
    assert not ledger_rows(sent, "SELECT * FROM suppressions")
    assert len(dovecot.messages()) == 1


def test_an_unreachable_imap_server_is_one_clear_line(
        sent: Path, cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PASSWORD_ENV, "secret")
    port = free_port()
    use_inbox(sent, kind="imap", host="127.0.0.1", port=port, security="none", user="learning",
              password_env=PASSWORD_ENV)
    line = one_line_error(inbox(cli, sent))
    assert f"cannot reach the IMAP server 127.0.0.1:{port} (Connection refused)" in line
    assert "check inbox.host and inbox.port in ldmail.yaml" in line


def test_a_missing_imap_password_says_which_variable(sent: Path, cli: Cli,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(PASSWORD_ENV, raising=False)
    use_inbox(sent, kind="imap", host="imap.example.org", user="learning@example.org",
              password_env=PASSWORD_ENV)
    line = one_line_error(inbox(cli, sent))
    assert f"needs a password in the environment variable {PASSWORD_ENV}" in line


def test_no_tls_is_only_allowed_to_a_loopback_host(sent: Path, cli: Cli) -> None:
    use_inbox(sent, kind="imap", host="imap.example.org", security="none",
              user="learning@example.org")
    result = cli("validate", "--project", sent)
    assert result.exit_code == 1
    assert re.search(r"ldmail\.yaml:\d+: inbox.security: none \(no TLS\) is only allowed to a "
                     r"loopback host, not imap\.example\.org", result.stdout), result.stdout


def test_inbox_needs_an_inbox_block_and_a_path_inside_the_project(sent: Path, cli: Cli) -> None:
    assert "ldmail.yaml has no inbox: block" in one_line_error(inbox(cli, sent))
    use_inbox(sent, kind="mbox", path="../elsewhere.mbox")
    refused = one_line_error(inbox(cli, sent))
    assert re.search(r"ldmail\.yaml:\d+: inbox\.path: points to .+elsewhere\.mbox", refused)
    result = cli("validate", "--project", sent)
    assert result.exit_code == 1
    assert re.search(r"ldmail\.yaml:\d+: inbox\.path: ", result.stdout), result.stdout


# -- a Maildir and an mbox file ---------------------------------------------------------------

def maildir(project: Path, mails: list[bytes]) -> Path:
    folder = project / "exports" / "inbox"
    folder.parent.mkdir(exist_ok=True)
    box = mailbox.Maildir(folder, create=True)
    for mail in mails:
        box.add(mail)
    box.close()
    return folder


def test_inbox_from_a_maildir_dry_run_then_json(sent: Path, cli: Cli) -> None:
    """Exim's plain failure has no attachment: the Message-ID in the copy of the original it
    quotes says which message bounced."""
    folder = maildir(sent, [exim_failure(original(sent, DIRK), DIRK),
                            exchange_ndr(original(sent, ANN), ANN),
                            unsubscribe_mail(token_of(original(sent, EMMA)), EMMA),
                            unsubscribe_mail("0" * 32, BOB), unrelated_mail(),
                            out_of_office(original(sent, CHLOE), CHLOE)])
    use_inbox(sent, kind="maildir", path="exports/inbox")
    before = ledger_state(sent)

    dry = inbox(cli, sent, "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert summary(dry.stdout) == (
        "inbox (dry run: nothing changed or moved): 2 bounces (2 hard, 0 soft), "
        f"1 unsubscribe, 3 left alone (1 an unsubscribe token no person in the ledger has, "
        f"2 {NOT_OURS})")
    assert re.search(rf"hard bounce +{DIRK} welcome/hello: 550 5\.1\.1 <{DIRK}>: Recipient "
                     r"address rejected: User unknown \(userunknown: suppressed\)", dry.stdout), \
        dry.stdout
    assert ledger_state(sent) == before
    assert len(mailbox.Maildir(folder)) == 6

    result = inbox(cli, sent, "--format", "json")
    assert result.exit_code == 0, result.output
    found = json.loads(result.stdout)
    assert (found["bounces"], found["hard"], found["unsubscribes"], found["left_alone"],
            found["moved"]) == (2, 2, 1, 3, 3)
    assert {(item["kind"], item["email"], item["suppressed"]) for item in found["handled"]} == {
        ("bounce", DIRK, True), ("bounce", ANN, True), ("unsubscribe", EMMA, True)}
    assert {row["email"] for row in ledger_rows(sent, "SELECT email FROM messages"
                                                " WHERE state = 'bounced'")} == {ANN, DIRK}
    assert len(mailbox.Maildir(folder)) == 3  # the question, the auto-reply, the unknown token
    done = mailbox.Maildir(sent / "exports" / "ldmail" / "processed", create=False)
    assert len(done) == 3

    again = inbox(cli, sent, "--format", "json")
    assert (json.loads(again.stdout)["bounces"], json.loads(again.stdout)["moved"]) == (0, 0)


def test_inbox_from_an_mbox_file(sent: Path, cli: Cli) -> None:
    """A bounce found by In-Reply-To alone, and one for a message ldmail never sent."""
    path = sent / "exports" / "inbox.mbox"
    path.parent.mkdir()
    box = mailbox.mbox(path)
    delay = postfix_delay(original(sent, CHLOE), CHLOE)
    cut = delay.index(b"Content-Description: Undelivered Message Headers")
    by_reply = delay[:cut].replace(
        b"Subject: Delayed", b"In-Reply-To: " + message_id(original(sent, CHLOE)).encode()
        + b"\r\nSubject: Delayed") + b"--8Hk2Lm3Np4.1764666006/mx.example.net--\r\n"
    # A message someone sent by hand from the same mailbox, to a person ldmail never mailed.
    by_hand = original(sent, BOB).replace(BOB.encode(), b"zoe@example.org").replace(
        message_id(original(sent, BOB)).encode(), b"<by-hand.1@example.org>")
    stranger = postfix_bounce(by_hand, "zoe@example.org", queue="9Zz9Zz9Zz9")
    for mail in (by_reply, stranger, postfix_bounce(original(sent, BOB), BOB)):
        box.add(mail)
    box.close()
    use_inbox(sent, kind="mbox", path="exports/inbox.mbox")

    result = inbox(cli, sent)
    assert result.exit_code == 0, result.output
    assert summary(result.stdout) == ("inbox: 2 bounces (1 hard, 1 soft), 0 unsubscribes, "
                                      "1 left alone (unverified: no message of this ledger named)")
    assert len(mailbox.mbox(path)) == 0  # the unverified one too, recorded once
    assert len(mailbox.mbox(sent / "exports" / "ldmail" / "processed.mbox")) == 3
    assert {row["email"]: row["state"] for row in ledger_rows(
        sent, "SELECT email, state FROM messages WHERE state = 'bounced'")} == \
        {CHLOE: "bounced", BOB: "bounced"}


def test_run_reads_the_inbox_on_its_interval(sent: Path, cli: Cli) -> None:
    maildir(sent, [exchange_ndr(original(sent, ANN), ANN)])
    use_inbox(sent, kind="maildir", path="exports/inbox")
    result = cli("run", "--interval", "1s", "--runs", "1", "--project", sent,
                 "--now", LATER.isoformat())
    assert result.exit_code == 0, result.output
    assert "inbox: 1 bounce (1 hard, 0 soft), 0 unsubscribes, 0 left alone" in result.stderr
    assert ledger_rows(sent, "SELECT reason FROM suppressions") == [
        {"reason": "bounced: 550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found "
                   "by SMTP address lookup"}]


def test_run_logs_an_inbox_failure_and_goes_on_sending(sent: Path, cli: Cli) -> None:
    use_inbox(sent, kind="maildir", path="exports/missing")
    result = cli("run", "--interval", "1s", "--runs", "1", "--project", sent,
                 "--now", LATER.isoformat())
    assert result.exit_code == 0, result.output
    assert "inbox failed: exports/missing: no Maildir folder there" in result.stderr



def test_a_bounced_message_still_counts_against_the_daily_cap(sent: Path, cli: Cli) -> None:
    """The relay took it: a bounce that comes back within the day does not free a place."""
    from ldmail.ledger import Ledger

    maildir(sent, [exchange_ndr(original(sent, ANN), ANN)])
    use_inbox(sent, kind="maildir", path="exports/inbox")
    assert inbox(cli, sent).exit_code == 0
    with Ledger(sent / ".ldmail" / "ledger.db") as ledger:
        assert ledger.sent_since("2026-11-30T00:00:00Z") == len(PEOPLE)
        assert ledger.cap_frees_at("2026-11-30T00:00:00Z") == "2026-12-02T09:00:00Z"


GOOD_TOKEN = "eyJ0eXAiOiJKV1QiLCJ0ZXN0IjoiaW1hcCJ9.good"


def token_command(token: str) -> str:
    return f"{sys.executable} -c \"print('{token}')\""


@pytest.fixture
def dovecot_oauth(tmp_path: Path) -> Iterator[Dovecot]:
    """Dovecot that also takes XOAUTH2 logins with GOOD_TOKEN (checked at a local RFC 7662
    introspection endpoint, as against a real identity provider)."""
    yield from serve(tmp_path, tokens=frozenset({GOOD_TOKEN}))


@pytest.mark.slow
def test_inbox_signs_in_with_xoauth2_and_the_transports_token(
        sent: Path, cli: Cli, dovecot_oauth: Dovecot) -> None:
    """auth: oauth2 takes its token from transport.oauth2 (here a token_command) and signs in
    with AUTHENTICATE XOAUTH2; a token the server refuses, fresh too, is one clear line."""
    dovecot = dovecot_oauth
    edit_yaml(sent / "ldmail.yaml", lambda settings: settings["transport"].update(
        oauth2={"token_command": token_command(GOOD_TOKEN)}))
    use_inbox(sent, kind="imap", host="127.0.0.1", port=dovecot.port, security="none",
              user=dovecot.user, auth="oauth2")
    dovecot.append(exchange_ndr(original(sent, ANN), ANN))
    result = inbox(cli, sent)
    assert result.exit_code == 0, result.output
    assert summary(result.stdout).startswith("inbox: 1 bounce (1 hard, 0 soft)")
    assert f"user=<{dovecot.user}>, method=XOAUTH2" in dovecot.log

    refused = "eyJ0eXAiOiJKV1QiLCJ0ZXN0IjoiaW1hcCJ9.expired"
    edit_yaml(sent / "ldmail.yaml", lambda settings: settings["transport"].update(
        oauth2={"token_command": token_command(refused)}))
    result = inbox(cli, sent)
    line = one_line_error(result)
    assert f"imap 127.0.0.1:{dovecot.port}: XOAUTH2 login as {dovecot.user} refused" in line
    assert "IMAP.AccessAsApp" in line
    assert refused not in result.output


# -- one reader per inbox ---------------------------------------------------------------------

def test_a_second_inbox_run_says_so_in_one_line_and_a_killed_one_leaves_no_lock(
        sent: Path, cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    """The first run hangs on an IMAP server that never greets; a second one at the same time
    says another run is reading that inbox and exits 1; once the first is SIGKILLed, the
    kernel has dropped its lock and the next run reads (here: fails to, in one line)."""
    silent = loopback_listener()
    monkeypatch.setenv(PASSWORD_ENV, "secret")
    use_inbox(sent, kind="imap", host="127.0.0.1", port=silent.getsockname()[1],
              security="none", user="learning@example.org", password_env=PASSWORD_ENV,
              timeout="60s")
    accepted: list[socket.socket] = []

    def connected() -> bool:
        try:
            accepted.append(silent.accept()[0])
        except TimeoutError:
            return False
        return True

    with ldmail_running("inbox", "--project", sent) as first:
        wait_for(connected, 30, "the first inbox run to connect")
        second = inbox(cli, sent)
        line = one_line_error(second)
        assert "another inbox run is reading imap learning@example.org@127.0.0.1 folder " \
            f"INBOX (pid {first.pid}); this run did nothing" in line, line
        first.kill()
        first.communicate(timeout=30)
    for connection in accepted:
        connection.close()
    silent.close()
    third = inbox(cli, sent)
    assert "another inbox run" not in one_line_error(third)
