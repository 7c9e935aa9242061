"""inbox.bounces promises to read a mail: whether it is a bounce and whom it names as failed,
each recipient with its own status and the server's words (a DSN, or the older formats and the
real ones in tests/e2e/bounces/); a delivery receipt or a mail a person wrote is no bounce; every
Message-ID it carries, also base64-encoded, at most MAX_CITED; the unsubscribe token of a mail
to the List-Unsubscribe address; and a name for the mail that never changes."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

import pytest

from ldmail.inbox.bounces import (
    MAX_CITED,
    Failure,
    bounce_failures,
    cited_ids,
    mail_identity,
    one_line,
    parse,
    unsubscribe_token,
)
from ldmail.inbox.reasons import Effect, Reason

CORPUS = Path(__file__).parents[2] / "e2e" / "bounces"
ORIGINAL_ID = "<9f8e7d6c5b4a39281706f5e4d3c2b1a0@example.org>"
TOKEN = "0123456789abcdef0123456789abcdef"
MAILTO = {"unsubscribe@example.org"}


def dsn(*recipients: tuple[str, str, str, str], sender: str = "MAILER-DAEMON@mx.example.net"
        ) -> bytes:
    """A multipart/report (RFC 3464): per recipient (address, action, status, diagnostic),
    with the original's headers attached."""
    blocks = "\n".join(
        f"Final-Recipient: rfc822; {address}\nAction: {action}\nStatus: {status}\n"
        f"Diagnostic-Code: smtp; {words}\n" for address, action, status, words in recipients)
    return f"""From: {sender}
To: learning@example.org
Subject: Undelivered Mail Returned to Sender
Message-ID: <bounce1@mx.example.net>
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="B"

--B
Content-Type: text/plain

Your message could not be delivered.

--B
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.example.net

{blocks}
--B
Content-Type: text/rfc822-headers

From: Learning Team <learning@example.org>
To: ann@example.org
Message-ID: {ORIGINAL_ID}

--B--
""".encode()


def failures_of(raw: bytes) -> list[Failure] | None:
    return bounce_failures(*parse(raw))


def test_a_dsn_names_each_failed_recipient_with_its_own_status_and_words() -> None:
    found = failures_of(dsn(
        ("Ann@Example.org", "failed", "5.1.1", "550 5.1.1 <ann@example.org>: User unknown"),
        ("bob@example.org", "failed", "5.2.2", "552 5.2.2 Mailbox full")))
    assert found is not None
    assert [(f.address, f.status, f.hard, f.kind, f.effect) for f in found] == [
        ("ann@example.org", "5.1.1", True, Reason.USER_UNKNOWN, Effect.SUPPRESS),
        ("bob@example.org", "5.2.2", True, Reason.MAILBOX_FULL, Effect.RECORD)]
    assert found[0].reason == "550 5.1.1 <ann@example.org>: User unknown"


def test_a_delayed_recipient_is_a_soft_failure() -> None:
    found = failures_of(dsn(("ann@example.org", "delayed", "4.4.7", "Delivery time expired")))
    assert found is not None
    assert (found[0].hard, found[0].effect) == (False, Effect.RECORD)


def test_a_delivery_receipt_is_no_bounce() -> None:
    assert failures_of(dsn(("ann@example.org", "delivered", "2.0.0", "250 OK"))) is None


def test_a_mail_a_person_wrote_is_no_bounce() -> None:
    raw = (b"From: Ann <ann@example.org>\nTo: learning@example.org\nSubject: Question\n\n"
           b"My message could not be delivered to bob@example.org, can you help?\n")
    assert failures_of(raw) is None


def test_a_plain_text_failure_from_a_mail_system_names_the_address_and_the_reply() -> None:
    raw = (b"From: Mail Delivery System <MAILER-DAEMON@mx.example.net>\n"
           b"To: learning@example.org\nSubject: Mail delivery failed\n\n"
           b"This message was created automatically by mail delivery software.\n\n"
           b"A message that you sent could not be delivered to one or more of its\n"
           b"recipients. This is a permanent error. The following address(es) failed:\n\n"
           b"  ann@example.org\n    550 5.1.1 User unknown\n")
    found = failures_of(raw)
    assert found is not None and len(found) == 1
    assert (found[0].address, found[0].status, found[0].kind) == \
        ("ann@example.org", "5.1.1", Reason.USER_UNKNOWN)


@pytest.mark.parametrize(("name", "expected"), [
    ("exim-two-recipients", [("kijitora@example.jp", Reason.USER_UNKNOWN),
                             ("sabatora@example.jp", Reason.USER_UNKNOWN)]),
    ("qmail-mailboxfull", [("kijitora@example.jp", Reason.MAILBOX_FULL)]),
    ("aol-cr-only", [("kijitora@example.jp", Reason.HOST_UNKNOWN)]),  # CR alone ends lines
])
def test_real_bounces_are_read(name: str, expected: list[tuple[str, Reason]]) -> None:
    found = failures_of((CORPUS / f"{name}.eml").read_bytes())
    assert found is not None
    assert [(failure.address, failure.kind) for failure in found] == expected


def test_cited_ids_finds_message_ids_also_in_base64_parts() -> None:
    hidden = base64.b64encode(f"Message-ID: {ORIGINAL_ID}\n".encode()).decode()
    raw = (b"From: postmaster@example.net\nMessage-ID: <own@example.net>\nMIME-Version: 1.0\n"
           b'Content-Type: multipart/mixed; boundary="B"\n\n--B\n'
           b"Content-Type: text/plain\nContent-Transfer-Encoding: base64\n\n"
           + hidden.encode() + b"\n--B--\n")
    message, _ = parse(raw)
    assert cited_ids(message, raw) == ["<own@example.net>", ORIGINAL_ID]


def test_cited_ids_stop_at_the_bound() -> None:
    raw = ("From: x@example.net\n\n" + " ".join(f"<id{n}@example.org>" for n in range(500))
           ).encode()
    message, _ = parse(raw)
    found = cited_ids(message, raw)
    assert len(found) == MAX_CITED and found[0] == "<id0@example.org>"


@pytest.mark.parametrize(("subject", "body", "expected"), [
    (f"unsubscribe {TOKEN.upper()}", "", TOKEN),
    ("Re: please", f"unsubscribe%20{TOKEN}\n", TOKEN),
    ("unsubscribe me", "just stop\n", None),
])
def test_the_unsubscribe_token_is_read_from_subject_or_text(
        subject: str, body: str, expected: str | None) -> None:
    raw = (f"From: ann@example.org\nTo: Unsubscribe@Example.org\nSubject: {subject}\n\n{body}"
           ).encode()
    message, _ = parse(raw)
    assert unsubscribe_token(message, MAILTO) == expected


def test_a_token_in_a_mail_to_another_address_is_not_an_unsubscribe() -> None:
    message, _ = parse(f"From: ann@example.org\nTo: learning@example.org\n"
                       f"Subject: unsubscribe {TOKEN}\n\n".encode())
    assert unsubscribe_token(message, MAILTO) is None


def test_a_mail_is_named_by_its_message_id_or_else_by_its_bytes() -> None:
    with_id = b"From: a@example.org\nMessage-ID: <m1@example.org>\n\nhi\n"
    assert mail_identity(parse(with_id)[0], with_id) == "mail <m1@example.org>"
    without = b"From: a@example.org\n\nhi\n"
    assert mail_identity(parse(without)[0], without) == \
        f"bytes {hashlib.sha256(without).hexdigest()}"


def test_a_reason_is_one_bounded_line() -> None:
    assert one_line("550\n  user\tunknown") == "550 user unknown"
    long = one_line("x" * 1000)
    assert len(long) == 300 and long.endswith("…")
    failure = Failure("ann@example.org", "5.1.1", True, "User unknown")
    assert failure.reason == "5.1.1 User unknown"
    assert Failure(None, "", True, "").reason == "no reason given"
