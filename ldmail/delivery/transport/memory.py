"""A transport in memory with scripted answers, for tests and for embedding ldmail."""

from __future__ import annotations

from .base import Outcome


class MemoryTransport:
    """Keeps messages in memory and answers with scripted outcomes: delivery tested (or ldmail
    embedded) without a server or a subprocess.

    `script` maps a recipient to the outcomes of its successive attempts (the last one
    repeats); an exception in it (KeyboardInterrupt too) is raised as a transport would
    raise it. Anyone not in it is accepted.
    """

    name = "memory"

    def __init__(self, script: dict[str, list[Outcome | BaseException]] | None = None) -> None:
        self.script = {recipient: list(answers) for recipient, answers in (script or {}).items()}
        self.accepted: list[tuple[str, bytes]] = []  # (recipient, message) in order
        self.attempts: list[str] = []  # every recipient handed over, accepted or not
        self.copies: list[tuple[str, ...]] = []  # the cc of each attempt, in the same order

    def open(self) -> None:
        return None

    def send(self, data: bytes, sender: str, recipient: str, label: str,
             cc: tuple[str, ...] = ()) -> Outcome:
        self.attempts.append(recipient)
        self.copies.append(cc)
        answers = self.script.get(recipient, [])
        answer = (answers.pop(0) if len(answers) > 1 else answers[0]) if answers \
            else Outcome("sent")
        if isinstance(answer, BaseException):
            raise answer
        if answer.status in ("sent", "unknown"):  # an unknown outcome may have arrived
            self.accepted.append((recipient, data))
        return answer

    def close(self) -> None:
        return None
