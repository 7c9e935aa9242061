"""inbox.apply promises each mail applied once: a bounce only to the message whose Message-ID
it carries (a permanent recipient-side failure suppresses the address, a temporary one is
recorded, a sender-side one is counted for the receiving domain and can be resumed), a forged
one counted as unverified and changing nothing, an unsubscribe mail to the person whose token
it carries; handled mails moved to the done folder, others left alone and counted; a dry run
changes and moves nothing; a mail over the size limit is not read; a stop request ends the run
between two mails.

The mailbox is a Maildir in the project; the ledger is the one a real send wrote (through a
MemoryTransport), once per module, copied for each test."""

from __future__ import annotations

import json
import re
import shutil
import threading
from datetime import datetime, timedelta
from email import message_from_bytes
from email.policy import compat32
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from ldmail.delivery.send import send
from ldmail.delivery.transport import MemoryTransport
from ldmail.errors import LdmailError
from ldmail.inbox.apply import NO_TOKEN, NOT_OURS, STOPPED, UNVERIFIED, read_inbox, resume_domain
from ldmail.ledger import Ledger
from ldmail.project.config import Project, load_project
from ldmail.project.scaffold import init_project

NOW = datetime(2026, 12, 1, 10, tzinfo=ZoneInfo("Europe/Amsterdam"))
LATER = NOW + timedelta(days=1)
HEADER = "Email;First name;Last name;Language;Department;Start date;Certification"
PEOPLE = ["ann@example.org;Ann;de Vries;EN;Sales;03-02-2019;",
          "bob@example.org;Bob;Smith;EN;Finance;15-06-2015;GDPR basics",
          "chloe@example.org;Chloé;Martin;NL;HR;01-10-2026;"]
INBOX = "inbox:\n  kind: maildir\n  path: mail/inbox\n"
SPF = "550 5.7.26 This mail is unauthenticated. SPF hard fail"


@pytest.fixture(scope="module")
def sent(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, bytes]]:
    """A project whose send handed each person their first message; the messages by
    recipient."""
    root = tmp_path_factory.mktemp("sent") / "repo"
    init_project(root)
    (root / "people.csv").write_text("\r\n".join([HEADER, *PEOPLE]) + "\r\n", encoding="utf-8")
    campaign = root / "campaigns" / "welcome.yaml"
    campaign.write_text(campaign.read_text(encoding="utf-8").replace("holdout: 10%",
                                                                     "holdout: 0%"),
                        encoding="utf-8")
    with (root / "ldmail.yaml").open("a", encoding="utf-8") as settings:
        settings.write(INBOX)
    transport = MemoryTransport()
    assert send(load_project(root), NOW, transports=[transport]).sent == 3
    return root, dict(transport.accepted)


@pytest.fixture
def project(sent: tuple[Path, dict[str, bytes]], tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    shutil.copytree(sent[0], root)
    for sub in ("new", "cur", "tmp"):
        (root / "mail" / "inbox" / sub).mkdir(parents=True)
    return root


@pytest.fixture
def originals(sent: tuple[Path, dict[str, bytes]]) -> dict[str, bytes]:
    return sent[1]


def header(original: bytes, name: str) -> str:
    return str(message_from_bytes(original, policy=compat32)[name])


def token_of(original: bytes) -> str:
    found = re.search(r"subject=unsubscribe%20([0-9a-f]{32})", header(original, "List-Unsubscribe"))
    assert found is not None
    return found[1]


def bounce(original: bytes | None, address: str, status: str, words: str,
           action: str = "failed", bounce_id: str = "<b1@mx.example.net>") -> bytes:
    """A DSN (RFC 3464) for one recipient, carrying the original's Message-ID (or, for None,
    a Message-ID nobody sent)."""
    cited = header(original, "Message-ID") if original else "<guessed@example.org>"
    return f"""From: MAILER-DAEMON@mx.example.net
To: learning@example.org
Subject: Undelivered Mail Returned to Sender
Message-ID: {bounce_id}
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="B"

--B
Content-Type: text/plain

Your message could not be delivered.

--B
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.example.net

Final-Recipient: rfc822; {address}
Action: {action}
Status: {status}
Diagnostic-Code: smtp; {words}

--B
Content-Type: text/rfc822-headers

From: Learning Team <learning@example.org>
To: {address}
Message-ID: {cited}

--B--
""".encode()


def unsubscribe(token: str, mail_id: str = "<u1@mail.example.org>") -> bytes:
    return (f"From: someone@example.org\nTo: unsubscribe@example.org\nMessage-ID: {mail_id}\n"
            f"Subject: unsubscribe {token}\n\n").encode()


def deliver(project: Path, name: str, data: bytes) -> None:
    (project / "mail" / "inbox" / "new" / name).write_bytes(data)


def waiting(project: Path) -> list[str]:
    return sorted(path.name for path in (project / "mail" / "inbox" / "new").iterdir())


def done(project: Path) -> list[str]:
    folder = project / "mail" / "ldmail" / "processed" / "cur"
    return sorted(path.name for path in folder.iterdir()) if folder.is_dir() else []


def ledger_of(project: Path) -> Ledger:
    return Ledger.of(load_project(project), None, readonly=True)


def test_a_hard_bounce_suppresses_the_address_and_moves_the_mail(
        project: Path, originals: dict[str, bytes]) -> None:
    deliver(project, "1.bounce", bounce(originals["ann@example.org"], "ann@example.org",
                                        "5.1.1", "550 5.1.1 <ann@example.org>: User unknown"))
    result = read_inbox(load_project(project), LATER)
    assert result.summary() == "inbox: 1 bounce (1 hard, 0 soft), 0 unsubscribes, 0 left alone"
    assert result.lines() == ["hard bounce  ann@example.org welcome/hello: 550 5.1.1 "
                              "<ann@example.org>: User unknown (userunknown: suppressed)"]
    assert (waiting(project), done(project), result.moved) == ([], ["1.bounce"], 1)
    with ledger_of(project) as ledger:
        assert ledger.is_suppressed("ann@example.org")
        assert not ledger.is_suppressed("bob@example.org")
        assert [m.state for m in ledger.history("ann@example.org").messages] == ["bounced"]


def test_a_mail_is_applied_once_also_when_it_is_left_in_the_folder(
        project: Path, originals: dict[str, bytes]) -> None:
    mail = bounce(originals["ann@example.org"], "ann@example.org", "5.1.1", "User unknown")
    deliver(project, "1.bounce", mail)
    read_inbox(load_project(project), LATER)
    deliver(project, "2.again", mail)  # a move that failed, or a copy of it
    again = read_inbox(load_project(project), LATER + timedelta(hours=1))
    assert again.handled == [] and again.applied_before == 1
    assert again.summary().endswith(", 1 applied by an earlier run (moved now)")
    assert done(project) == ["1.bounce", "2.again"]


def test_a_temporary_failure_is_recorded_and_suppresses_nobody(
        project: Path, originals: dict[str, bytes]) -> None:
    deliver(project, "1.delay", bounce(originals["bob@example.org"], "bob@example.org",
                                       "4.2.2", "452 4.2.2 Mailbox full", action="delayed"))
    result = read_inbox(load_project(project), LATER)
    assert [(item.label, item.effect) for item in result.handled] == \
        [("soft bounce", "mailboxfull: recorded")]
    with ledger_of(project) as ledger:
        assert not ledger.is_suppressed("bob@example.org")


def test_a_sender_side_failure_counts_for_the_domain_until_it_is_resumed(
        project: Path, originals: dict[str, bytes]) -> None:
    deliver(project, "1.spf", bounce(originals["bob@example.org"], "bob@example.org",
                                     "5.7.26", SPF))
    result = read_inbox(load_project(project), LATER)
    (item,) = result.handled
    assert (item.label, item.sender_side, item.counted_for, item.suppressed) == \
        ("sender-side", True, "example.org", False)
    assert item.effect == "authfailure: counted for example.org, nobody suppressed"
    assert result.summary() == ("inbox: 1 bounce (0 hard, 0 soft, 1 sender-side), "
                                "0 unsubscribes, 0 left alone")
    loaded = load_project(project)
    preview = resume_domain(loaded, "Example.ORG", LATER, dry_run=True)
    assert (preview.domain, preview.failures, preview.dry_run) == ("example.org", 1, True)
    assert resume_domain(loaded, "example.org", LATER).line() == \
        "example.org: 1 sender-side bounce cleared; the next send goes there again"
    assert resume_domain(loaded, "example.org", LATER, dry_run=True).failures == 0


def test_a_bounce_without_a_message_id_of_the_ledger_changes_nothing(project: Path) -> None:
    deliver(project, "1.forged", bounce(None, "ann@example.org", "5.1.1", "User unknown"))
    result = read_inbox(load_project(project), LATER)
    assert (result.handled, result.unverified) == ([], 1)
    assert result.summary() == "inbox: 0 bounces (0 hard, 0 soft), 0 unsubscribes, " \
        f"1 left alone ({UNVERIFIED})"
    assert done(project) == ["1.forged"]  # kept in the done folder, not read again
    with ledger_of(project) as ledger:
        assert not ledger.is_suppressed("ann@example.org")


def test_a_bounce_from_a_forward_applies_to_the_one_message_it_proves(
        project: Path, originals: dict[str, bytes]) -> None:
    deliver(project, "1.forward", bounce(originals["chloe@example.org"],
                                         "chloe.martin@elsewhere.example", "5.1.1",
                                         "User unknown"))
    result = read_inbox(load_project(project), LATER)
    assert [item.email for item in result.handled] == ["chloe@example.org"]
    with ledger_of(project) as ledger:
        assert ledger.is_suppressed("chloe@example.org")


def test_an_unsubscribe_mail_suppresses_the_person_whose_token_it_carries(
        project: Path, originals: dict[str, bytes]) -> None:
    deliver(project, "1.unsub", unsubscribe(token_of(originals["bob@example.org"])))
    deliver(project, "2.unknown", unsubscribe("f" * 32, "<u2@mail.example.org>"))
    result = read_inbox(load_project(project), LATER)
    assert result.lines() == ["unsubscribe  bob@example.org (suppressed)"]
    assert result.left_alone == {NO_TOKEN: 1}
    assert (done(project), waiting(project)) == (["1.unsub"], ["2.unknown"])
    with ledger_of(project) as ledger:
        assert ledger.is_suppressed("bob@example.org")


def test_other_mails_are_left_where_they_are(project: Path) -> None:
    deliver(project, "1.question", b"From: ann@example.org\nTo: learning@example.org\n"
                                   b"Subject: Which course first?\n\nHi!\n")
    result = read_inbox(load_project(project), LATER)
    assert result.left_alone == {NOT_OURS: 1} and result.moved == 0
    assert waiting(project) == ["1.question"]


def test_a_dry_run_changes_and_moves_nothing(
        project: Path, originals: dict[str, bytes]) -> None:
    deliver(project, "1.bounce", bounce(originals["ann@example.org"], "ann@example.org",
                                        "5.1.1", "User unknown"))
    result = read_inbox(load_project(project), LATER, dry_run=True)
    assert result.summary().startswith("inbox (dry run: nothing changed or moved): 1 bounce")
    assert [item.suppressed for item in result.handled] == [True]  # what it would do
    assert waiting(project) == ["1.bounce"]
    with ledger_of(project) as ledger:
        assert not ledger.is_suppressed("ann@example.org")


def test_a_mail_over_the_size_limit_is_counted_not_read(project: Path) -> None:
    settings = project / "ldmail.yaml"
    settings.write_text(settings.read_text(encoding="utf-8") + "  max_mail_size: 1024\n",
                        encoding="utf-8")
    deliver(project, "1.big", b"From: a@example.org\n\n" + b"x" * 2000)
    result = read_inbox(load_project(project), LATER)
    assert result.left_alone == {"larger than inbox.max_mail_size (1,024 bytes; not read)": 1}
    assert waiting(project) == ["1.big"]


def test_a_stop_request_ends_the_run_before_the_next_mail(
        project: Path, originals: dict[str, bytes]) -> None:
    deliver(project, "1.bounce", bounce(originals["ann@example.org"], "ann@example.org",
                                        "5.1.1", "User unknown"))
    stop = threading.Event()
    stop.set()
    result = read_inbox(load_project(project), LATER, stop=stop)
    assert (result.stopped, result.moved, result.handled) == (STOPPED, 0, [])
    assert waiting(project) == ["1.bounce"]


def test_the_json_result_counts_each_kind(project: Path, originals: dict[str, bytes]) -> None:
    deliver(project, "1.bounce", bounce(originals["ann@example.org"], "ann@example.org",
                                        "5.1.1", "User unknown"))
    deliver(project, "2.unsub", unsubscribe(token_of(originals["bob@example.org"])))
    answer = json.loads(read_inbox(load_project(project), LATER).to_json())
    assert {key: answer[key] for key in ("bounces", "hard", "soft", "sender_side",
                                         "unsubscribes", "left_alone", "moved")} == \
        {"bounces": 1, "hard": 1, "soft": 0, "sender_side": 0, "unsubscribes": 1,
         "left_alone": 0, "moved": 2}
    assert answer["source"] == "maildir mail/inbox"


def test_a_project_without_an_inbox_block_is_told_how_to_add_one(loaded: Project) -> None:
    with pytest.raises(LdmailError, match="^ldmail.yaml has no inbox: block; add one"):
        read_inbox(loaded, LATER)
