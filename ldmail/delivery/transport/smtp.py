"""An SMTP server: one connection per lane, pipelined, under a deadline per reply."""

from __future__ import annotations

import ipaddress
import math
import os
import re
import smtplib
import ssl
import threading
import time
from typing import TYPE_CHECKING, Any

from ...errors import BasicAuthDisabled, StopRequested, TransportFatal, TransportUnavailable
from ...project.models import Transport as TransportSettings
from .base import Outcome, Pacer

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer

    from .oauth import Tokens


_USER_UNKNOWN = ("5.1.1", "5.1.10", "user unknown", "no such user", "does not exist",
                 "unknown user", "recipient not found", "mailbox not found", "invalid recipient")


class _LineReader:
    """Reads a server's reply lines under an overall deadline, and notices a stop request.

    smtplib reads through `sock.makefile()`, where each line resets the socket time-out: a
    server that trickles a "220-" continuation line every second keeps a client waiting
    forever, deaf to SIGTERM. This reader waits in short slices, so a passed deadline or a
    requested stop ends the wait within half a second.
    """

    SLICE = 0.5

    def __init__(self, owner: _SMTP) -> None:
        self.owner = owner
        self.buffer = b""

    def readline(self, limit: int = -1) -> bytes:
        sock = self.owner.sock
        quiet_until = time.monotonic() + (self.owner.timeout or 30.0)
        while b"\n" not in self.buffer and (limit < 0 or len(self.buffer) < limit):
            if sock is None:
                break
            self.owner.check_deadline()
            # A raw recv may time out and be tried again (a makefile() reader may not).
            sock.settimeout(self.SLICE)
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                if time.monotonic() > quiet_until:
                    raise TimeoutError("timed out") from None  # silent for all of `timeout`
                continue
            if not chunk:
                break
            self.buffer += chunk
        cut = self.buffer.find(b"\n") + 1 or len(self.buffer)
        if limit >= 0:
            cut = min(cut, limit)
        line, self.buffer = self.buffer[:cut], self.buffer[cut:]
        return line

    def close(self) -> None:
        self.buffer = b""


class _SMTP(smtplib.SMTP):
    """smtplib.SMTP that knows how far a message got, keeps to deadlines, and pipelines.

    Before DATA nothing has been handed over, so a connection the server dropped in the
    meantime (idle timeout, messages-per-connection limit) can be reopened and the message sent
    at once without any risk of a duplicate. Once the final "." of DATA is sent the server may
    have the message whatever happens next: `end_sent` tells the caller that a lost reply means
    "unknown", never "try again".
    """

    data_started = False
    end_sent = False
    deadline = math.inf
    stop: threading.Event | None = None
    # After a stop request, how long a reply to a message already sent is still waited for.
    STOP_GRACE = 3.0

    def __init__(self, host: str, port: int, *, timeout: float, deadline: float,
                 stop: threading.Event | None, **options: Any) -> None:
        self.deadline = time.monotonic() + deadline
        self.stop = stop
        super().__init__(host, port, timeout=timeout, **options)

    def start_message(self, seconds: float) -> None:
        self.data_started = self.end_sent = False
        self.deadline = time.monotonic() + seconds

    def check_deadline(self) -> None:
        now = time.monotonic()
        if self.stop is not None and self.stop.is_set():
            if not self.data_started:
                raise StopRequested("stopped on request before the message was sent")
            self.deadline = min(self.deadline, now + self.STOP_GRACE)
        if now > self.deadline:
            raise TimeoutError("timed out: the server kept the exchange going past the overall "
                               "deadline (transport.deadline)")

    def getreply(self) -> tuple[int, bytes]:
        if self.file is None:
            self.file = _LineReader(self)
        return super().getreply()

    def send(self, s: ReadableBuffer | str) -> None:
        if self.sock is not None:
            self.check_deadline()
            self.sock.settimeout(max(min(self.timeout, self.deadline - time.monotonic()), 0.01))
        super().send(s)

    def data(self, msg: ReadableBuffer | str) -> tuple[int, bytes]:
        """smtplib's DATA, noting the moment the end of the content has been sent."""
        self.data_started = True
        self.putcmd("data")
        code, reply = self.getreply()
        if code != 354:
            raise smtplib.SMTPDataError(code, reply)
        body = msg.encode("ascii") if isinstance(msg, str) else bytes(msg)
        self.send_content(body)
        return self.getreply()

    def send_content(self, data: bytes) -> None:
        """The message, dot-stuffed, and the final "."; from then on the outcome may be unknown."""
        body = _LEADING_DOT.sub(b"..", data) if b"\n." in data else data
        if not body.endswith(b"\r\n"):
            body += b"\r\n"
        self.send(body + b".\r\n")
        self.end_sent = True

    def deliver(self, sender: str, recipient: str, data: bytes,
                copies: tuple[str, ...] = ()) -> None:
        """Send one message's bytes to one recipient (and `copies`, its Cc); raises smtplib's
        exceptions as sendmail does, for the recipient: a copy the server refuses is left out.

        With PIPELINING (RFC 2920; Postfix, Exchange and most relays offer it) MAIL, RCPT and
        DATA go out in one write and their replies are read together: two round trips a message
        instead of four. The content itself still waits for the 354 reply to DATA.
        """
        self.ehlo_or_helo_if_needed()
        options = self._mail_options(sender, recipient, copies, data)
        if not self.has_extn("pipelining"):
            if copies:
                self._deliver_stepwise(sender, recipient, copies, data, options)
            else:
                self.sendmail(sender, [recipient], data, options)
            return
        self._deliver_pipelined(sender, recipient, copies, data, options)

    def _mail_options(self, sender: str, recipient: str, copies: tuple[str, ...],
                      data: bytes) -> list[str]:
        """MAIL FROM's parameters: SMTPUTF8 for non-ASCII addresses or UTF-8 headers (RFC
        6531/6532; refused when the server lacks it, as downgrading would mangle them),
        8BITMIME for an 8-bit body, SIZE; none for a plain SMTP server."""
        options: list[str] = []
        international = [a for a in (sender, recipient, *copies) if not a.isascii()]
        if international or not _headers_ascii(data):
            if not self.has_extn("smtputf8"):
                needs = f"the internationalised address {international[0]}" if international \
                    else "a message with UTF-8 headers"
                raise smtplib.SMTPNotSupportedError(
                    f"the server does not offer SMTPUTF8, which {needs} needs; the message to "
                    f"{recipient} was not sent (give this person an ASCII address, or send "
                    "through a server that supports SMTPUTF8)")
            options += ["SMTPUTF8", "BODY=8BITMIME"]
        elif self.has_extn("8bitmime") and not data.isascii():
            options.append("BODY=8BITMIME")
        if self.has_extn("size"):
            options.append(f"SIZE={len(data)}")
        return options if self.does_esmtp else []

    def _deliver_pipelined(self, sender: str, recipient: str, copies: tuple[str, ...],
                           data: bytes, options: list[str]) -> None:
        extra = "".join(" " + option for option in options)
        rcpts = "".join(f"RCPT TO:<{address}>\r\n" for address in (recipient, *copies))
        commands = f"MAIL FROM:<{sender}>{extra}\r\n{rcpts}DATA\r\n"
        # Non-ASCII addresses go out as UTF-8 once SMTPUTF8 is declared (RFC 6531).
        self.send(commands.encode("utf-8" if "SMTPUTF8" in options else "ascii"))
        mail = self.getreply()
        if mail[0] == 421:
            self.close()
            raise smtplib.SMTPSenderRefused(mail[0], mail[1], sender)
        rcpt = self.getreply()
        if rcpt[0] == 421:
            self.close()
            raise smtplib.SMTPRecipientsRefused({recipient: rcpt})
        for copy in copies:
            said = self.getreply()
            if said[0] == 421:
                self.close()
                raise smtplib.SMTPRecipientsRefused({copy: said})
        answer = self.getreply()
        if answer[0] == 354:
            if mail[0] != 250 or rcpt[0] not in (250, 251):
                if copies:
                    # A copy was accepted: even an empty message would reach it. Dropping
                    # the connection in DATA makes the server discard the transaction.
                    self.close()
                    answer = (421, b"closed: the recipient was refused")
                else:
                    # DATA accepted although the envelope was not: end it empty, at once.
                    self.send(".\r\n")
                    self.getreply()
            else:
                self.data_started = True
                self.send_content(data)
                answer = self.getreply()
                if answer[0] == 250:
                    return
        self._end_transaction(answer[0])
        if mail[0] != 250:
            raise smtplib.SMTPSenderRefused(mail[0], mail[1], sender)
        if rcpt[0] not in (250, 251):
            raise smtplib.SMTPRecipientsRefused({recipient: rcpt})
        raise smtplib.SMTPDataError(answer[0], answer[1])

    def _end_transaction(self, code: int) -> None:
        """After a refusal: a 421 closes the connection; otherwise RSET, so the next message
        starts a fresh transaction (a server that hung up meanwhile is fine too)."""
        if code == 421:
            self.close()
        else:
            try:
                self.rset()
            except smtplib.SMTPServerDisconnected:
                pass

    def _deliver_stepwise(self, sender: str, recipient: str, copies: tuple[str, ...],
                          data: bytes, options: list[str]) -> None:
        """deliver() one command at a time, for a server without PIPELINING: the copies get
        the message only once the recipient was accepted (smtplib's sendmail sends it to
        whoever was accepted)."""
        code, said = self.mail(sender, options)
        if code != 250:
            self._end_transaction(code)
            raise smtplib.SMTPSenderRefused(code, said, sender)
        code, said = self.rcpt(recipient)
        if code not in (250, 251):
            self._end_transaction(code)
            raise smtplib.SMTPRecipientsRefused({recipient: (code, said)})
        for copy in copies:
            code, said = self.rcpt(copy)
            if code == 421:
                self._end_transaction(code)
                raise smtplib.SMTPRecipientsRefused({copy: (code, said)})
        code, said = self.data(data)
        if code != 250:
            self._end_transaction(code)
            raise smtplib.SMTPDataError(code, said)


_LEADING_DOT = re.compile(rb"^\.", re.M)  # dot-stuffing (RFC 5321 4.5.2)


class _SMTPSSL(_SMTP, smtplib.SMTP_SSL):
    pass


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _basic_auth_off(code: int, text: bytes | str) -> bool:
    """Exchange Online's answer to a password login once basic auth is off for the tenant:
    550 5.7.30 (or 535 5.7.139 "basic authentication is disabled")."""
    said = (text.decode("utf-8", "replace") if isinstance(text, bytes) else text).lower()
    return "5.7.30" in said or "basic authentication is disabled" in said or \
        ("basic authentication" in said and "not supported" in said)


def _classify(code: int, text: bytes | str) -> Outcome:
    reason = text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text)
    reason = f"{code} {reason}".strip()
    if 400 <= code < 500:
        return Outcome("temporary", reason)
    unknown = code in (550, 551, 553) and any(k in reason.lower() for k in _USER_UNKNOWN)
    return Outcome("permanent", reason, user_unknown=unknown)


def _headers_ascii(data: bytes) -> bool:
    """Whether a message's header block is ASCII; checked without copying the message when
    all of it is (the common case: this runs for every message)."""
    if data.isascii():
        return True
    end = data.find(b"\r\n\r\n")
    return data[:end if end >= 0 else len(data)].isascii()


class Smtp:
    """One connection per run, reused for every message and reopened when the server drops it."""

    name = "smtp"

    def __init__(self, settings: TransportSettings, password: str | None = None,
                 pacer: Pacer | None = None, stop: threading.Event | None = None,
                 tokens: Tokens | None = None) -> None:
        self.settings = settings
        self.tokens = tokens  # auth: oauth2 (AUTH XOAUTH2), shared by the run's connections
        self.stop = stop
        self.deadline = settings.deadline.total_seconds()
        self.host = settings.host or "localhost"
        self.port = settings.port or {"tls": 465, "starttls": 587, "none": 25}[settings.security]
        if settings.security == "none" and not _is_loopback(self.host):
            raise TransportFatal(
                f"smtp security 'none' is only allowed to a loopback host, not {self.host}; "
                "use starttls or tls")
        self.password = password
        if settings.user and password is None and tokens is None:
            self.password = os.environ.get(settings.password_env)
            if not self.password:
                raise TransportFatal(
                    f"smtp user {settings.user} needs a password in the environment variable "
                    f"{settings.password_env}; set it (never in a file or on the command line)")
        self.connection: _SMTP | None = None
        self.pacer = pacer or Pacer(settings.rate)

    def _connect(self) -> _SMTP:
        timeout = self.settings.timeout.total_seconds()
        context = ssl.create_default_context()
        where = f"{self.host}:{self.port}"
        try:
            if self.settings.security == "tls":
                connection: _SMTP = _SMTPSSL(self.host, self.port, timeout=timeout,
                                             deadline=self.deadline, stop=self.stop,
                                             context=context)
            else:
                connection = _SMTP(self.host, self.port, timeout=timeout,
                                   deadline=self.deadline, stop=self.stop)
            connection.ehlo()
            if self.settings.security == "starttls":
                if not connection.has_extn("starttls"):
                    connection.close()
                    raise TransportFatal(f"smtp {where} does not offer STARTTLS, and security is "
                                         "starttls; nothing was sent")
                connection.starttls(context=context)
                connection.ehlo()
            if self.tokens is not None:
                self._login_oauth2(connection, where)
            elif self.settings.user:
                connection.login(self.settings.user, self.password or "")
        except smtplib.SMTPAuthenticationError as exc:
            if _basic_auth_off(exc.smtp_code, exc.smtp_error):
                said = _classify(exc.smtp_code, exc.smtp_error).reason
                raise BasicAuthDisabled(
                    f"smtp {where}: the server has turned password login (basic "
                    f"authentication) off for this tenant ({said}); switch to OAuth2: 'auth: "
                    "oauth2' and an 'oauth2:' block under transport in ldmail.yaml, or kind: "
                    "graph (README: Sending from Microsoft 365); nothing was sent") from None
            raise TransportFatal(f"smtp {where}: login as {self.settings.user} refused "
                                 f"({exc.smtp_code}); check the user and "
                                 f"{self.settings.password_env}; nothing was sent") from None
        except smtplib.SMTPNotSupportedError:
            raise TransportFatal(f"smtp {where}: the server does not support login; remove "
                                 "'user' or use another port; nothing was sent") from None
        except ssl.SSLError as exc:
            raise TransportFatal(f"smtp {where}: TLS failed ({exc.reason}); nothing was sent") \
                from None
        except smtplib.SMTPConnectError as exc:
            raise TransportUnavailable(f"{where} refused the connection: "
                                  f"{_classify(exc.smtp_code, exc.smtp_error).reason}") from None
        except smtplib.SMTPResponseException as exc:
            reason = _classify(exc.smtp_code, exc.smtp_error).reason
            raise TransportUnavailable(f"{where}: {reason}") from None
        except (OSError, smtplib.SMTPException) as exc:
            raise TransportUnavailable(f"cannot connect to {where}: {exc}") from None
        return connection

    def _login_oauth2(self, connection: _SMTP, where: str) -> None:
        """AUTH XOAUTH2 as `user` with the run's token; a refused token that was not fetched
        just now (it may have been revoked) is replaced once and tried again."""
        from .oauth import xoauth2

        assert self.tokens is not None and self.settings.user
        user = self.settings.user
        try:
            if "XOAUTH2" not in connection.esmtp_features.get("auth", "").upper().split():
                raise TransportFatal(f"smtp {where} does not offer AUTH XOAUTH2, which auth: "
                                     "oauth2 needs; check host and port (Microsoft 365: "
                                     "smtp.office365.com, port 587, starttls); nothing was "
                                     "sent")
            token, fresh = self.tokens.get()
            while True:
                try:
                    # As Microsoft documents it: "AUTH XOAUTH2", then the SASL string on its
                    # own line after the server's 334.
                    connection.auth("XOAUTH2", xoauth2(user, token), initial_response_ok=False)
                    return
                except smtplib.SMTPAuthenticationError as exc:
                    if fresh:
                        raise self.tokens.smtp_refused(
                            where, user, _classify(exc.smtp_code, exc.smtp_error).reason
                        ) from None
                    token, fresh = self.tokens.refresh(token), True
        except (TransportFatal, TransportUnavailable):
            connection.close()
            raise

    def open(self) -> None:
        """Connect (and log in) before anything is claimed, so a bad login costs nothing."""
        if self.connection is None:
            self.connection = self._connect()

    def send(self, data: bytes, sender: str, recipient: str, label: str,
             cc: tuple[str, ...] = ()) -> Outcome:
        self.pacer.wait(self.stop)
        reused = self.connection is not None
        while True:
            if self.stop is not None and self.stop.is_set():
                return Outcome("stopped", "stopped on request before the message was sent")
            try:
                if self.connection is None:
                    self.connection = self._connect()
            except StopRequested as exc:
                self._drop()
                return Outcome("stopped", str(exc))
            connection = self.connection
            connection.start_message(self.deadline)
            try:
                connection.deliver(sender, recipient, data, cc)
            except StopRequested as exc:
                self._drop()
                return Outcome("stopped", str(exc))
            except smtplib.SMTPNotSupportedError as exc:
                return Outcome("permanent", str(exc))
            except smtplib.SMTPRecipientsRefused as exc:
                code, text = next(iter(exc.recipients.values()))
                self._reset()
                return _classify(code, text)
            except smtplib.SMTPResponseException as exc:
                if exc.smtp_code == 421 and reused and not connection.data_started:
                    # The server closed a reused session before this message: reconnect once.
                    self._drop()
                    reused = False
                    continue
                self._reset()
                return _classify(exc.smtp_code, exc.smtp_error)
            except (TimeoutError, smtplib.SMTPServerDisconnected, OSError) as exc:
                self._drop()
                if connection.end_sent:
                    # The server has the whole message; only its answer is missing. Sending it
                    # again could deliver it twice: the ledger marks it unknown, as a killed run.
                    return Outcome("unknown", "the whole message was sent but the server's "
                                   f"reply was lost ({exc or type(exc).__name__}); it may or "
                                   "may not have arrived")
                if reused and not connection.data_started:
                    # Dropped while idle, noticed before any content went out: nothing was
                    # handed over, so sending it over a new connection cannot duplicate it.
                    reused = False
                    continue
                return Outcome("temporary", f"connection lost: {exc or type(exc).__name__}")
            return Outcome("sent")

    def _reset(self) -> None:
        """After a refusal the SMTP session must be reset before the next message."""
        if self.connection is None:
            return
        try:
            self.connection.rset()
        except (smtplib.SMTPException, OSError):
            self._drop()

    def _drop(self) -> None:
        if self.connection is not None:
            try:
                self.connection.close()
            finally:
                self.connection = None

    def close(self) -> None:
        if self.connection is None:
            return
        try:
            self.connection.start_message(min(self.deadline, 5.0))  # QUIT waits briefly
            self.connection.quit()
        except (smtplib.SMTPException, OSError, StopRequested):
            pass
        finally:
            self._drop()
