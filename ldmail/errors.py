"""The exceptions ldmail raises; the CLI turns each into one clear message and exit code 1."""

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

    def __init__(self, root: Path) -> None:
        super().__init__(
            f"{root}: no audiences.yaml or campaigns/ here; run inside a campaign repo, "
            "pass --project DIR, or create one with 'ldmail init DIR'"
        )


class SecurityError(LdmailError):
    "A template or expression tried something the sandbox forbids."


class LedgerBusy(LdmailError):
    "Another ldmail process holds the send lock."


class TransportFatal(LdmailError):
    "The transport cannot send at all (login, TLS, configuration); the run stops."


class TransportUnavailable(LdmailError):
    """The server cannot be reached now (refused, timed out, 421 on connect).

    Nothing was handed over: the due messages wait for the next run, which tries again.
    """
