"""Every exception ldmail raises, in one place; the CLI turns each into one clear line.

    LdmailError                  a user can act on it; exit code 1
    ├── ConfigError              the project's files have problems (all of them, located)
    ├── ProjectNotFound          no campaign repository in the folder
    ├── SecurityError            an expression tried what the sandbox forbids
    ├── InboxUnavailable         the sender's mailbox cannot be read (login, server, folder)
    ├── ExpressionError          an expression does not compile or evaluate
    ├── RenderError              a template is missing, broken, unsafe or over its budget
    │   └── MissingTranslation   a listed language has no template (the message is held)
    ├── BudgetExceeded           a render or evaluation took too long or built too much
    ├── OutsideProject           a path from the repository leaves the project
    ├── HeaderInjection          a header value holds a line break (the message is held)
    ├── LedgerError              the ledger file cannot be opened or used
    │   ├── IllegalTransition    a move the state table does not allow (a bug; nothing written)
    │   ├── LedgerLocked         another program kept the ledger locked past the busy timeout
    │   └── LedgerFull           the disk under the ledger is full (or failed) mid-write
    ├── LedgerReplaced           the ledger is missing, another one, or an older copy
    ├── LedgerBusy               another process holds a lock (send, inbox, forget's fence)
    ├── MassExit                 too many people vanished from the export at once
    ├── NoSendDay                holidays and blackout close every day of a send window
    ├── TransportFatal           the transport cannot send at all (login, TLS); run stops
    │   ├── TokenRefused         an OAuth2 token was refused (Entra ID, the server, Graph)
    │   └── BasicAuthDisabled    the tenant turned password SMTP AUTH off (5.7.30)
    ├── TransportUnavailable     the server cannot be reached now; messages wait
    ├── HttpFailed               an outside HTTP service gave no usable answer in time
    └── LrsError                 the LRS pull stopped (pages recorded stay recorded)
    JsonLimit (ValueError)       an event file beyond the JSON limits (a rejected row)
    FieldError (ValueError)      a settings check that names its key (becomes a Problem)
    UnreadableFile (ValueError)  an export that is not CSV text we can decode
    RowRejected (ValueError)     one export row cannot be read (becomes a rejected row)
    PersonaFailed (Exception)    a persona's match expression failed for a person
    StopRequested (Exception)    SIGTERM or Ctrl-C while nothing was on the wire; internal
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


class LdmailError(Exception):
    "Base class for errors a user can act on."


@dataclass(frozen=True)
class Problem:
    """One thing wrong with one input, located as precisely as we can."""

    file: str
    line: int | None
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.message}"


class ConfigError(LdmailError):
    "The project's YAML or templates have problems; all of them are listed."

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class ProjectNotFound(LdmailError):
    "The folder holds no ldmail project."

    def __init__(self, root: Path, *, searched_up: bool = False) -> None:
        where = "here or in any folder above it" if searched_up else "here"
        super().__init__(
            f"{root}: no ldmail project {where} (no audiences.yaml, ldmail.yaml or "
            "campaigns/); run inside a campaign repo, pass --project DIR, or create one with "
            "'ldmail init DIR'"
        )


class SecurityError(LdmailError):
    "A template or expression tried something the sandbox forbids."


class LedgerBusy(LdmailError):
    "Another ldmail process holds a lock this command needs (see lock.py)."


class TransportFatal(LdmailError):
    "The transport cannot send at all (login, TLS, configuration); the run stops."


class TokenRefused(TransportFatal):
    """An OAuth2 access token was refused: by Microsoft Entra ID (or the token_command), by
    the SMTP server's AUTH XOAUTH2, or by Microsoft Graph even after a fresh token.

    The message names the tenant and client id and what to check; never a secret.
    """


class BasicAuthDisabled(TransportFatal):
    "The server turned password SMTP AUTH off for the tenant (Exchange Online: 550 5.7.30)."


class TransportUnavailable(LdmailError):
    """The server cannot be reached now (refused, timed out, 421 on connect).

    Nothing was handed over: the due messages wait for the next run, which tries again.
    """


class HttpFailed(LdmailError):
    """An outside HTTP service (the LRS, Graph) gave no complete answer within the request's
    deadline and size bound, or the connection failed; `phase` says how far the request got
    (connect: nothing reached the server; send: the request did not go out whole; answer: it
    did, so the server may have acted on it); `late` that the deadline ended it; `lasting`
    that asking again cannot help (a host name that cannot be encoded, say)."""

    def __init__(self, message: str, phase: str, *, stopped: bool = False,
                 late: bool = False, lasting: bool = False) -> None:
        self.phase, self.stopped, self.late, self.lasting = phase, stopped, late, lasting
        super().__init__(message)


class InboxUnavailable(LdmailError):
    """The mailbox cannot be read: refused login, unreachable server, missing folder."""


class ExpressionError(LdmailError):
    "An expression could not be compiled or evaluated."


class RenderError(LdmailError):
    "A template is missing, broken or uses something it may not."

    def __init__(self, file: str, line: int | None, message: str, security: bool = False) -> None:
        self.file, self.line, self.reason, self.security = file, line, message, security
        super().__init__(f"{file}:{line}: {message}" if line else f"{file}: {message}")


class MissingTranslation(RenderError):
    "A listed language has no template for a step and the campaign names no fallback."


class BudgetExceeded(LdmailError):
    "A template or expression took too long or built something too large."


class OutsideProject(LdmailError):
    "A path named by the repository leaves the project once symbolic links are resolved."

    def __init__(self, display: str, target: Path, allowed: str) -> None:
        self.display, self.target = display, target
        super().__init__(
            f"{display}: points to {target}, outside {allowed}; a campaign repository may only "
            f"use files inside it (for data that lives elsewhere the operator lists the folder "
            f"in LDMAIL_DATA_DIRS)")

    def problem(self) -> Problem:
        return Problem(self.display, None, str(self).removeprefix(f"{self.display}: "))


class HeaderInjection(LdmailError):
    "A header value holds a line break; the message is refused rather than sent altered."


class LedgerError(LdmailError):
    "The ledger file cannot be opened or used."


class IllegalTransition(LedgerError):
    """An operation asked the ledger for a move its state table does not have.

    Always a bug in ldmail (or a ledger edited by hand): the operation writes nothing.
    """

    def __init__(self, kind: str, operation: str, state: str | None,
                 where: str = "") -> None:
        self.kind, self.operation, self.state = kind, operation, state
        article = "an" if str(state)[:1] in "aeiou" else "a"
        found = "no row" if state is None else f"{article} {state} {kind}"
        super().__init__(
            f"ledger: cannot {operation} {found}{' (' + where + ')' if where else ''}; nothing "
            "was written for it. This is a bug (or the ledger was edited by hand): please "
            "report it with the output of 'ldmail history' for the person")


class LedgerLocked(LedgerError):
    "Another program (an sqlite3 shell, a backup tool) held the ledger's lock too long."


class LedgerFull(LedgerError):
    "The ledger could not be written: its disk is full or failed; the change was rolled back."


class LedgerReplaced(LdmailError):
    "The ledger is missing or another file than the one earlier runs wrote."


class MassExit(LdmailError):
    "The export lacks so many people that it is more likely broken than true."


class NoSendDay(LdmailError):
    "The holidays and blackout days leave a send window no day to open on."


class JsonLimit(ValueError):
    "A JSON document beyond what an event file can need."

    def __init__(self, reason: str, line: int = 1) -> None:
        self.reason, self.line = reason, line
        super().__init__(reason)


class StopRequested(Exception):
    "A stop (SIGTERM, Ctrl-C) was asked for while no message content was on the wire."


class LrsError(LdmailError):
    """The pull stopped; pages already recorded stay recorded, with the cursor after them."""


class FieldError(ValueError):
    """A whole-model check that knows which key it is about, so errors can name its line."""

    def __init__(self, loc: tuple[str | int, ...], message: str) -> None:
        super().__init__(message)
        self.loc = loc


class UnreadableFile(ValueError):
    "The file is not CSV text we can decode; the message says what it is and what to do."


class RowRejected(ValueError):
    "One row of an export cannot be read; the message says which cell and why."


class PersonaFailed(Exception):
    """A persona's match expression failed (or was blocked) for a person: a project error."""

    def __init__(self, persona: str, message: str) -> None:
        super().__init__(message)
        self.persona = persona


def describe(error: BaseException) -> str:
    """An exception nobody foresaw, as one line for a user or a ledger row: its type and its
    first 200 characters of text, white space collapsed."""
    text = " ".join(str(error).split())
    return f"{type(error).__name__}: {text[:200]}" if text else type(error).__name__
