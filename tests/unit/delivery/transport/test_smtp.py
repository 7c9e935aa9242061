"""ldmail.delivery.transport.smtp promises, for what needs no socket: a server's reply becomes
an outcome by its code (4xx temporary, 5xx permanent, an unknown mailbox marked so it is
suppressed) and the session is reset after a refusal; a reply lost after the whole message
went out is `unknown`, never sent again; a reused connection that the server dropped before
any content went out is reopened and the message sent once; a stop request hands nothing
over; an internationalised address or UTF-8 headers go out over SMTPUTF8, or not at all (a
reason naming the recipient); and the settings are checked before anything connects (no plain
text to a remote host, a password only from the environment).

The connection is a stand-in set where the transport keeps it, or an SMTP session given a
stand-in for its socket: no socket is opened.
"""

from __future__ import annotations

import smtplib
import threading
from dataclasses import dataclass, field
from typing import Any

import pytest

from ldmail.delivery.transport.base import Outcome
from ldmail.delivery.transport.smtp import _SMTP, Smtp
from ldmail.errors import TransportFatal
from ldmail.project.models import Transport

ANN = "ann@example.org"
SENDER = "learning@example.org"


@dataclass
class Connection:
    """Stands in for one SMTP session: each deliver() takes the next scripted step (None
    accepts), having got as far as `data_started` / `end_sent` say."""

    script: list[tuple[BaseException | None, bool, bool]] = field(default_factory=list)
    delivered: list[tuple[str, tuple[str, ...]]] = field(default_factory=list)
    resets: int = 0
    closed: bool = False
    quit_sent: bool = False
    data_started: bool = False
    end_sent: bool = False

    def start_message(self, seconds: float) -> None:
        self.data_started = self.end_sent = False

    def deliver(self, sender: str, recipient: str, data: bytes,
                copies: tuple[str, ...] = ()) -> None:
        error, self.data_started, self.end_sent = self.script.pop(0) if self.script else \
            (None, True, True)
        if error is not None:
            raise error
        self.delivered.append((recipient, copies))

    def rset(self) -> None:
        self.resets += 1

    def quit(self) -> None:
        self.quit_sent = True

    def close(self) -> None:
        self.closed = True


def smtp(**settings: Any) -> Smtp:
    return Smtp(Transport(kind="smtp", host="smtp.example.org", **settings))


def connected(transport: Smtp, monkeypatch: pytest.MonkeyPatch,
              *script: tuple[BaseException | None, bool, bool]) -> Connection:
    """A session already open (reused for the next message), that follows `script`."""
    connection = Connection(list(script))
    monkeypatch.setattr(transport, "connection", connection)
    return connection


def hand_over(transport: Smtp) -> Outcome:
    return transport.send(b"message\r\n", SENDER, ANN, "label")


@pytest.mark.parametrize(("error", "expected"), [
    (smtplib.SMTPRecipientsRefused({ANN: (550, b"5.1.1 <ann@example.org>: user unknown")}),
     Outcome("permanent", "550 5.1.1 <ann@example.org>: user unknown", user_unknown=True)),
    (smtplib.SMTPRecipientsRefused({ANN: (451, b"4.7.1 greylisted, try again later")}),
     Outcome("temporary", "451 4.7.1 greylisted, try again later")),
    (smtplib.SMTPDataError(554, b"5.7.1 rejected as spam"),
     Outcome("permanent", "554 5.7.1 rejected as spam")),
    (smtplib.SMTPSenderRefused(553, b"5.7.1 sender not allowed", SENDER),
     Outcome("permanent", "553 5.7.1 sender not allowed")),
])
def test_a_refusal_becomes_an_outcome_by_its_code_and_the_session_is_reset(
        monkeypatch: pytest.MonkeyPatch, error: BaseException, expected: Outcome) -> None:
    transport = smtp()
    connection = connected(transport, monkeypatch, (error, False, False))
    assert hand_over(transport) == expected
    assert connection.resets == 1 and not connection.closed  # kept for the next message


def test_a_reply_lost_after_the_whole_message_went_out_is_unknown(
        monkeypatch: pytest.MonkeyPatch) -> None:
    transport = smtp()
    connection = connected(transport, monkeypatch,
                           (smtplib.SMTPServerDisconnected("gone"), True, True))
    outcome = hand_over(transport)
    assert outcome.status == "unknown"
    assert "the whole message was sent but the server's reply was lost" in outcome.reason
    assert connection.closed and transport.connection is None


@pytest.mark.parametrize("error", [smtplib.SMTPServerDisconnected("idle timeout"),
                                   smtplib.SMTPSenderRefused(421, b"4.4.2 idle too long",
                                                             SENDER)])
def test_a_reused_session_dropped_before_any_content_is_reopened_and_sent_once(
        monkeypatch: pytest.MonkeyPatch, error: BaseException) -> None:
    transport = smtp()
    stale = connected(transport, monkeypatch, (error, False, False))
    fresh = Connection()
    opened: list[Connection] = []

    def connect() -> Connection:
        opened.append(fresh)
        return fresh

    monkeypatch.setattr(transport, "_connect", connect)
    assert hand_over(transport) == Outcome("sent")
    assert stale.closed and stale.delivered == []
    assert opened == [fresh] and fresh.delivered == [(ANN, ())]


def test_a_new_session_dropped_before_the_content_is_a_temporary_failure(
        monkeypatch: pytest.MonkeyPatch) -> None:
    transport = smtp()
    opened: list[Connection] = []

    def connect() -> Connection:
        opened.append(Connection([(smtplib.SMTPServerDisconnected("gone"), False, False)]))
        return opened[-1]

    monkeypatch.setattr(transport, "_connect", connect)
    outcome = hand_over(transport)
    assert outcome.status == "temporary" and outcome.reason.startswith("connection lost")
    assert len(opened) == 1  # not tried again on another connection in the same attempt


def test_a_server_without_smtputf8_refuses_an_international_address_for_good(
        monkeypatch: pytest.MonkeyPatch) -> None:
    transport = smtp()
    connected(transport, monkeypatch, (smtplib.SMTPNotSupportedError("no SMTPUTF8"), False,
                                       False))
    assert hand_over(transport) == Outcome("permanent", "no SMTPUTF8")


@dataclass
class Wire:
    """Stands in for a session's socket: records what is written, answers from `replies`."""

    replies: bytes = b"250 OK\r\n250 OK\r\n354 go ahead\r\n250 OK\r\n"
    written: bytes = b""

    def settimeout(self, seconds: float) -> None:
        pass

    def sendall(self, data: bytes) -> None:
        self.written += data

    def recv(self, size: int) -> bytes:
        chunk, self.replies = self.replies, b""
        return chunk

    def close(self) -> None:
        pass


def session(*extensions: str) -> tuple[_SMTP, Wire]:
    """An SMTP session past EHLO whose server offers `extensions`."""
    connection = _SMTP("", 0, timeout=5, deadline=5, stop=None)
    wire = Wire()
    connection.sock = wire  # type: ignore[assignment]
    connection.ehlo_resp, connection.does_esmtp = b"smtp.example.org", True
    connection.esmtp_features = dict.fromkeys(extensions, "")
    return connection, wire


MESSAGE = b"Subject: Hello\r\n\r\nHello\r\n"


def test_an_internationalised_address_goes_out_over_smtputf8_as_utf8() -> None:
    connection, wire = session("pipelining", "smtputf8", "8bitmime")
    connection.deliver(SENDER, "zo\u00eb@example.org", MESSAGE)
    assert wire.written.startswith(
        f"MAIL FROM:<{SENDER}> SMTPUTF8 BODY=8BITMIME\r\n"
        "RCPT TO:<zo\u00eb@example.org>\r\nDATA\r\n".encode())


def test_utf8_headers_go_out_over_smtputf8_even_to_an_ascii_address() -> None:
    connection, wire = session("pipelining", "smtputf8")
    connection.deliver(SENDER, ANN, "Reply-To: <zo\u00eb@example.org>\r\n".encode() + MESSAGE)
    assert wire.written.startswith(f"MAIL FROM:<{SENDER}> SMTPUTF8 BODY=8BITMIME\r\n".encode())


@pytest.mark.parametrize(("recipient", "data", "needs"), [
    ("zo\u00eb@example.org", MESSAGE, "the internationalised address zo\u00eb@example.org"),
    (ANN, "To: <zo\u00eb@example.org>\r\n".encode() + MESSAGE, "a message with UTF-8 headers"),
])
def test_without_smtputf8_nothing_is_handed_over_and_the_reason_names_the_recipient(
        recipient: str, data: bytes, needs: str) -> None:
    connection, wire = session("pipelining", "8bitmime")
    with pytest.raises(smtplib.SMTPNotSupportedError) as refused:
        connection.deliver(SENDER, recipient, data)
    assert str(refused.value).startswith(
        f"the server does not offer SMTPUTF8, which {needs} needs; the message to {recipient} "
        "was not sent")
    assert wire.written == b""


def test_an_8bit_body_with_ascii_headers_needs_only_8bitmime() -> None:
    connection, wire = session("pipelining", "8bitmime")
    connection.deliver(SENDER, ANN, "Subject: Hello\r\n\r\nZo\u00eb\r\n".encode())
    assert wire.written.startswith(f"MAIL FROM:<{SENDER}> BODY=8BITMIME\r\n".encode())


def test_a_stop_request_hands_nothing_over(monkeypatch: pytest.MonkeyPatch) -> None:
    stop = threading.Event()
    stop.set()
    transport = Smtp(Transport(kind="smtp", host="smtp.example.org"), stop=stop)
    connection = connected(transport, monkeypatch)
    assert hand_over(transport).status == "stopped"
    assert connection.delivered == []


def test_close_says_quit_and_forgets_the_session(monkeypatch: pytest.MonkeyPatch) -> None:
    transport = smtp()
    connection = connected(transport, monkeypatch)
    assert hand_over(transport) == Outcome("sent")
    transport.close()
    assert connection.quit_sent and connection.closed and transport.connection is None
    transport.close()  # nothing open: nothing to do


def test_plain_text_is_refused_to_a_remote_host_and_allowed_on_loopback() -> None:
    with pytest.raises(TransportFatal, match="only allowed to a loopback host, not "
                                             "smtp.example.org"):
        smtp(security="none")
    assert Smtp(Transport(kind="smtp", host="127.0.0.1", security="none")).port == 25
    assert smtp(security="tls").port == 465 and smtp().port == 587
    assert smtp(port=2525).port == 2525


def test_a_login_takes_its_password_from_the_environment_only(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LDMAIL_TEST_PASSWORD", raising=False)
    with pytest.raises(TransportFatal, match="needs a password in the environment variable "
                                             "LDMAIL_TEST_PASSWORD"):
        smtp(user="learning", password_env="LDMAIL_TEST_PASSWORD")
    monkeypatch.setenv("LDMAIL_TEST_PASSWORD", "s3cret")
    assert smtp(user="learning", password_env="LDMAIL_TEST_PASSWORD").password == "s3cret"
