"""Mails as they arrive in a sender's mailbox, written byte for byte the way the servers that
make them do: Exchange Online's non-delivery report, Postfix's bounce and delay notice, Exim's
plain-text failure, an unsubscribe mail from a mail client, and a colleague's question.

Each bounce is built around a message `ldmail send` really wrote, so its Message-ID is the
one in the ledger."""

from __future__ import annotations

import email
import re
from email.message import Message
from email.policy import compat32

CRLF = "\r\n"


def _lines(text: str) -> bytes:
    return CRLF.join(text.split("\n")).encode()


def header_block(original: bytes) -> bytes:
    """The original message's header block (what text/rfc822-headers carries)."""
    return original.replace(b"\r\n", b"\n").split(b"\n\n", 1)[0].replace(b"\n", b"\r\n")


def message_id(original: bytes) -> str:
    parsed: Message = email.message_from_bytes(original, policy=compat32)
    return str(parsed["Message-ID"])


def token_of(original: bytes) -> str:
    """The person's unsubscribe token, from the List-Unsubscribe mailto of a sent message."""
    parsed: Message = email.message_from_bytes(original, policy=compat32)
    found = re.search(r"subject=unsubscribe%20([0-9a-f]{32})", str(parsed["List-Unsubscribe"]))
    assert found, parsed["List-Unsubscribe"]
    return found[1]


def exchange_ndr(original: bytes, recipient: str) -> bytes:
    """Exchange Online's NDR: a multipart/report with Microsoft's text, the DSN fields and the
    original attached as message/rfc822."""
    subject = email.message_from_bytes(original, policy=compat32)["Subject"]
    head = _lines(f"""Received: from AM0PR01MB1234.eurprd01.prod.exchangelabs.com by
 AM0PR01MB5678.eurprd01.prod.exchangelabs.com; Tue, 1 Dec 2026 09:00:04 +0000
From: Microsoft Outlook
\t<postmaster@example.onmicrosoft.com>
To: <learning@example.org>
Date: Tue, 1 Dec 2026 09:00:04 +0000
Content-Type: multipart/report; report-type=delivery-status;
\tboundary="eb3a6e07-2e8c-4fd0-8c8e-43ab5a0f8a9a"
X-MS-Exchange-Message-Is-Ndr:
Content-Language: en-US
Message-ID:
\t<b0e5f1a2-7d64-4c3a-9a21-1d0f8e2c9b44@AM0PR01MB5678.eurprd01.prod.exchangelabs.com>
Subject: Undeliverable: {subject}
Auto-Submitted: auto-replied
MIME-Version: 1.0

--eb3a6e07-2e8c-4fd0-8c8e-43ab5a0f8a9a
Content-Type: text/plain; charset="us-ascii"
Content-Transfer-Encoding: quoted-printable

Your message to {recipient} couldn't be delivered.
{recipient.split("@")[0]} wasn't found at {recipient.split("@")[1]}.

Delivery has failed to these recipients or groups:

{recipient}
The email address you entered couldn't be found. Please check the recipient's e=
mail address and try to resend the message. If the problem continues, please =
contact your helpdesk.

Diagnostic information for administrators:

Generating server: AM0PR01MB5678.eurprd01.prod.exchangelabs.com

{recipient}
Remote Server returned '550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient n=
ot found by SMTP address lookup'

--eb3a6e07-2e8c-4fd0-8c8e-43ab5a0f8a9a
Content-Type: message/delivery-status

Reporting-MTA: dns;AM0PR01MB5678.eurprd01.prod.exchangelabs.com
Received-From-MTA: dns;mail.example.org
Arrival-Date: Tue, 1 Dec 2026 09:00:03 +0000

Original-Recipient: rfc822;{recipient}
Final-Recipient: rfc822;{recipient}
Action: failed
Status: 5.1.10
Diagnostic-Code: smtp;550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not
 found by SMTP address lookup

--eb3a6e07-2e8c-4fd0-8c8e-43ab5a0f8a9a
Content-Type: message/rfc822

""")
    return head + original + _lines("\n--eb3a6e07-2e8c-4fd0-8c8e-43ab5a0f8a9a--\n")


def _postfix(original: bytes, recipient: str, *, queue: str, date: str, subject: str,
             notice: str, action: str, reply: str, extra: str = "") -> bytes:
    """A Postfix delivery status notification: its notice, the DSN fields (RFC 3464) and the
    original's headers (text/rfc822-headers). `reply` is the remote server's, e.g. "550 5.1.1
    <…>: User unknown"."""
    code, status, said = reply.split(" ", 2)
    boundary = f"{queue}.1764579606/mx.example.net"
    head = _lines(f"""Return-Path: <>
Received: by mx.example.net (Postfix) id {queue}; {date}
Date: {date}
From: MAILER-DAEMON@mx.example.net (Mail Delivery System)
Subject: {subject}
To: learning@example.org
Auto-Submitted: auto-replied
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status;
\tboundary="{boundary}"
Content-Transfer-Encoding: 7bit
Message-Id: <20261201090006.{queue}@mx.example.net>

This is a MIME-encapsulated message.

--{boundary}
Content-Description: Notification
Content-Type: text/plain; charset=us-ascii

This is the mail system at host mx.example.net.

{notice}

<{recipient}>: host mx1.example.org[192.0.2.25] said: {code} {status}
    <{recipient}>: {said} (in reply to RCPT TO command)

--{boundary}
Content-Description: Delivery report
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.example.net
X-Postfix-Queue-ID: {queue}
X-Postfix-Sender: rfc822; learning@example.org
Arrival-Date: Tue,  1 Dec 2026 10:00:05 +0100 (CET)

Final-Recipient: rfc822; {recipient}
Original-Recipient: rfc822;{recipient}
Action: {action}
Status: {status}
Remote-MTA: dns; mx1.example.org
Diagnostic-Code: smtp; {code} {status} <{recipient}>:
    {said}
{extra}
--{boundary}
Content-Description: Undelivered Message Headers
Content-Type: text/rfc822-headers

""")
    return head + header_block(original) + _lines(f"\n\n--{boundary}--\n")


def postfix_bounce(original: bytes, recipient: str, queue: str = "4Q1xYz2Kq9z9s") -> bytes:
    """Postfix's "Undelivered Mail Returned to Sender" for an address that does not exist."""
    return _postfix(
        original, recipient, queue=queue, date="Tue,  1 Dec 2026 10:00:06 +0100 (CET)",
        subject="Undelivered Mail Returned to Sender", action="failed",
        notice="I'm sorry to have to inform you that your message could not\nbe delivered to "
               "one or more recipients. It's attached below.\n\nFor further assistance, "
               "please send mail to postmaster.\n\n                   The mail system",
        reply="550 5.1.1 Recipient address rejected: User unknown in local recipient table")


def postfix_delay(original: bytes, recipient: str) -> bytes:
    """Postfix's delay notice for a full mailbox: a soft 4.2.2 (Action: delayed)."""
    return _postfix(
        original, recipient, queue="8Hk2Lm3Np4", date="Wed,  2 Dec 2026 10:00:06 +0100 (CET)",
        subject="Delayed Mail (still being retried)", action="delayed",
        notice="#" * 68 + "\n# THIS IS A WARNING ONLY.  YOU DO NOT NEED TO RESEND YOUR "
               "MESSAGE. #\n" + "#" * 68 + "\n\nYour message could not be delivered for "
               "more than 24 hour(s).\nIt will be retried until it is 5 day(s) old.",
        reply="452 4.2.2 Mailbox full",
        extra="Will-Retry-Until: Sun,  6 Dec 2026 10:00:05 +0100 (CET)\n")


def postfix_report(original: bytes, recipient: str, reply: str, *, queue: str = "5Rr1Ss2Tt3",
                   action: str = "failed") -> bytes:
    """Postfix's report with any remote reply, e.g. "550 5.7.26 … SPF hard fail" or Exchange's
    "550 5.2.2 STOREDRV.Deliver: mailbox full"."""
    return _postfix(
        original, recipient, queue=queue, date="Thu,  3 Dec 2026 10:00:06 +0100 (CET)",
        subject="Undelivered Mail Returned to Sender", action=action,
        notice="I'm sorry to have to inform you that your message could not\nbe delivered to "
               "one or more recipients.", reply=reply)


def forged_report(recipients: list[str]) -> bytes:
    """A delivery status report anyone can write: from an outsider, naming many recipients as
    unknown, with no original and no Message-ID of the ledger (one it guessed instead)."""
    blocks = "\n".join(f"Final-Recipient: rfc822; {address}\nAction: failed\nStatus: 5.1.1\n"
                       f"Diagnostic-Code: smtp; 550 5.1.1 <{address}>: User unknown\n"
                       for address in recipients)
    return _lines(f"""From: Mail Delivery System <attacker@evil.example>
To: learning@example.org
Subject: Undelivered Mail Returned to Sender
Date: Thu, 03 Dec 2026 10:00:00 +0100
Message-ID: <forged.1@evil.example>
In-Reply-To: <00000000000000000000000000000000@example.org>
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="b"

--b
Content-Type: text/plain

Your message could not be delivered to these recipients.

--b
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.evil.example

{blocks}
--b--
""")


def postmaster_text(recipients: list[str]) -> bytes:
    """A plain "postmaster" mail with X-Failed-Recipients: names, and nothing to prove them."""
    listed = "\n".join(f"  {address}" for address in recipients)
    return _lines(f"""From: postmaster@evil.example
To: learning@example.org
Subject: Mail delivery failed: returning message to sender
Date: Thu, 03 Dec 2026 10:00:01 +0100
Message-ID: <postmaster.2@evil.example>
X-Failed-Recipients: {", ".join(recipients)}
Auto-Submitted: auto-replied

A message that you sent could not be delivered to one or more of its
recipients. This is a permanent error. The following address(es) failed:

{listed}
    550 5.1.1 User unknown
""")


def exim_failure(original: bytes, recipient: str) -> bytes:
    """Exim's plain-text failure: X-Failed-Recipients and the original quoted in the body,
    no attachment: the quoted Message-ID says which message it was."""
    quoted = original.replace(b"\r\n", b"\n").decode()
    return _lines(f"""Return-path: <>
From: Mail Delivery System <Mailer-Daemon@mx.example.net>
To: learning@example.org
Subject: Mail delivery failed: returning message to sender
Message-Id: <E1t0Xyz-000123-AB@mx.example.net>
Date: Tue, 01 Dec 2026 10:00:07 +0100
X-Failed-Recipients: {recipient}
Auto-Submitted: auto-replied

This message was created automatically by mail delivery software.

A message that you sent could not be delivered to one or more of its
recipients. This is a permanent error. The following address(es) failed:

  {recipient}
    host mx1.example.org [192.0.2.25]
    SMTP error from remote mail server after RCPT TO:<{recipient}>:
    550 5.1.1 <{recipient}>: Recipient address rejected: User unknown

------ This is a copy of the message, including all the headers. ------

{quoted}
""")


def unsubscribe_mail(token: str, sender: str, *, in_body: bool = False,
                     to: str = "unsubscribe@example.org") -> bytes:
    """What a mail client sends for the List-Unsubscribe mailto (the token in the subject),
    or a person who typed it into the body."""
    subject = "Unsubscribe" if in_body else f"unsubscribe {token}"
    body = f"Please take me off this list.\n\nunsubscribe {token}\n" if in_body else ""
    local = sender.split("@")[0]
    return _lines(f"""From: {local.title()} <{sender}>
To: {to}
Subject: {subject}
Date: Wed, 02 Dec 2026 08:12:00 +0100
Message-ID: <{token[:12]}.{local}@mail.example.org>
MIME-Version: 1.0
Content-Type: text/plain; charset=utf-8

{body}""")


def unrelated_mail() -> bytes:
    """A colleague's question to the sender's address: not ldmail's to act on."""
    return _lines("""From: Femke Visser <femke.visser@example.org>
To: Learning Team <learning@example.org>
Subject: Question about the Sales Advisor course
Date: Wed, 02 Dec 2026 09:30:00 +0100
Message-ID: <CAF3x9pQ@mail.example.org>
MIME-Version: 1.0
Content-Type: text/plain; charset=utf-8

Hi, where do I find the Sales Advisor course? It is not in my list yet.
Femke
""")


def out_of_office(original: bytes, person: str) -> bytes:
    """Exchange's automatic reply: made by a machine and about a sent message, but no bounce."""
    parsed = email.message_from_bytes(original, policy=compat32)
    return _lines(f"""From: {person.split("@")[0].title()} <{person}>
To: Learning Team <learning@example.org>
Subject: Automatic reply: {parsed["Subject"]}
Date: Tue, 01 Dec 2026 10:00:09 +0100
Message-ID: <ooo.{person.split("@")[0]}@mail.example.org>
In-Reply-To: {parsed["Message-ID"]}
References: {parsed["Message-ID"]}
Auto-Submitted: auto-replied
X-Auto-Response-Suppress: All
MIME-Version: 1.0
Content-Type: text/plain; charset=utf-8

I am out of the office until 14 December with limited access to e-mail. For urgent
questions please contact the service desk.
""")
