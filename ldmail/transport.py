"""Where messages go: `.eml` files in an outbox folder, or an SMTP server."""

from __future__ import annotations

import errno
import ipaddress
import os
import smtplib
import ssl
import time
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol

from .errors import TransportFatal
from .models import Transport as TransportSettings

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer

Status = Literal["sent", "temporary", "permanent"]
_USER_UNKNOWN = ("5.1.1", "5.1.10", "user unknown", "no such user", "does not exist",
                 "unknown user", "recipient not found", "mailbox not found", "invalid recipient")


@dataclass(frozen=True)
class Outcome:
    status: Status
    reason: str = ""
    user_unknown: bool = False


class Transport(Protocol):
    name: str

    def open(self) -> None: ...

    def send(self, message: EmailMessage, sender: str, recipient: str, label: str) -> Outcome: ...

    def close(self) -> None: ...


class Outbox:
    """One `.eml` file per message; works with no set-up, and every file is a complete message."""

    name = "outbox"

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        try:
            folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as exc:
            raise TransportFatal(f"{folder}: cannot create the outbox ({exc.strerror})") from None

    def open(self) -> None:
        return None

    def send(self, message: EmailMessage, sender: str, recipient: str, label: str) -> Outcome:
        final = self.folder / f"{label}.eml"
        partial = self.folder / f".{label}.eml.part"
        try:
            fd = os.open(partial, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as handle:
                handle.write(message.as_bytes())
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(partial, final)
        except OSError as exc:
            partial.unlink(missing_ok=True)
            if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES):
                raise TransportFatal(f"{self.folder}: cannot write messages ({exc.strerror}); "
                                     "free space or fix permissions, then run again") from None
            return Outcome("temporary", f"outbox write failed: {exc.strerror}")
        return Outcome("sent")

    def close(self) -> None:
        return None


class _SMTP(smtplib.SMTP):
    """smtplib.SMTP that notes when a message's content starts to go out.

    Before DATA nothing has been handed over, so a connection the server dropped in the
    meantime (idle timeout, messages-per-connection limit) can be reopened and the message sent
    at once without any risk of a duplicate.
    """

    data_started = False

    def data(self, msg: ReadableBuffer | str) -> tuple[int, bytes]:
        self.data_started = True
        return super().data(msg)


class _SMTPSSL(_SMTP, smtplib.SMTP_SSL):
    pass


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _classify(code: int, text: bytes | str) -> Outcome:
    reason = text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text)
    reason = f"{code} {reason}".strip()
    if 400 <= code < 500:
        return Outcome("temporary", reason)
    unknown = code in (550, 551, 553) and any(k in reason.lower() for k in _USER_UNKNOWN)
    return Outcome("permanent", reason, user_unknown=unknown)


class Smtp:
    """One connection per run, reused for every message and reopened when the server drops it."""

    name = "smtp"

    def __init__(self, settings: TransportSettings, password: str | None = None) -> None:
        self.settings = settings
        self.host = settings.host or "localhost"
        self.port = settings.port or {"tls": 465, "starttls": 587, "none": 25}[settings.security]
        if settings.security == "none" and not _is_loopback(self.host):
            raise TransportFatal(
                f"smtp security 'none' is only allowed to a loopback host, not {self.host}; "
                "use starttls or tls")
        self.password = password
        if settings.user and password is None:
            self.password = os.environ.get(settings.password_env)
            if not self.password:
                raise TransportFatal(
                    f"smtp user {settings.user} needs a password in the environment variable "
                    f"{settings.password_env}; set it (never in a file or on the command line)")
        self.connection: _SMTP | None = None
        self.interval = 1 / settings.rate if settings.rate else 0.0
        self.last_send = 0.0

    def _connect(self) -> _SMTP:
        timeout = self.settings.timeout.total_seconds()
        context = ssl.create_default_context()
        where = f"{self.host}:{self.port}"
        try:
            if self.settings.security == "tls":
                connection: _SMTP = _SMTPSSL(self.host, self.port, timeout=timeout,
                                             context=context)
            else:
                connection = _SMTP(self.host, self.port, timeout=timeout)
            connection.ehlo()
            if self.settings.security == "starttls":
                if not connection.has_extn("starttls"):
                    connection.close()
                    raise TransportFatal(f"smtp {where} does not offer STARTTLS, and security is "
                                         "starttls; nothing was sent")
                connection.starttls(context=context)
                connection.ehlo()
            if self.settings.user:
                connection.login(self.settings.user, self.password or "")
        except smtplib.SMTPAuthenticationError as exc:
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
            raise ConnectionError(f"{where} refused the connection: "
                                  f"{_classify(exc.smtp_code, exc.smtp_error).reason}") from None
        except smtplib.SMTPResponseException as exc:
            raise ConnectionError(f"{where}: {_classify(exc.smtp_code, exc.smtp_error).reason}") \
                from None
        except (OSError, smtplib.SMTPException) as exc:
            raise ConnectionError(f"cannot connect to {where}: {exc}") from None
        return connection

    def open(self) -> None:
        """Connect (and log in) before anything is claimed, so a bad login costs nothing."""
        if self.connection is None:
            self.connection = self._connect()

    def _pace(self) -> None:
        if self.interval:
            wait = self.last_send + self.interval - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            self.last_send = time.monotonic()

    def send(self, message: EmailMessage, sender: str, recipient: str, label: str) -> Outcome:
        self._pace()
        reused = self.connection is not None
        while True:
            if self.connection is None:
                self.connection = self._connect()
            connection = self.connection
            connection.data_started = False
            try:
                connection.send_message(message, from_addr=sender, to_addrs=[recipient])
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
            self.connection.quit()
        except (smtplib.SMTPException, OSError):
            pass
        finally:
            self._drop()


def open_transport(settings: TransportSettings, outbox: Path) -> Transport:
    if settings.kind == "smtp":
        return Smtp(settings)
    return Outbox(outbox)
