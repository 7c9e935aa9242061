"""What every transport is: the outcome of handing one message over, the protocol a
transport follows, and the rate limit the connections of a run share."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Literal, Protocol

from ...clock import wall_now

# "unknown": the whole message went out (the final "." of DATA was sent) but no reply came
# back; the server may hold it, so it is never resent without --resend-unknown.
# "stopped": a stop was requested before anything of the message was handed over.
Status = Literal["sent", "temporary", "permanent", "unknown", "stopped"]


@dataclass(frozen=True)
class Outcome:
    status: Status
    reason: str = ""
    user_unknown: bool = False


class Transport(Protocol):
    name: str

    def open(self) -> None: ...

    def send(self, data: bytes, sender: str, recipient: str, label: str,
             cc: tuple[str, ...] = ()) -> Outcome:
        """Hand one message over to `recipient` and the addresses `cc` (its Cc header's); the
        outcome is the recipient's: a refused copy does not stop the message."""
        ...

    def close(self) -> None: ...


class Pacer:
    """A rate limit (messages a second) shared by the connections of a run.

    `not_before` (wall-clock seconds) carries the limit across runs: the first message waits
    until then, one interval after the previous run's last hand-over.
    """

    def __init__(self, rate: float | None, not_before: float | None = None) -> None:
        self.interval = 1 / rate if rate else 0.0
        delay = 0.0 if not_before is None else not_before - wall_now().timestamp()
        self.next_slot = time.monotonic() + max(delay, 0.0) if self.interval else 0.0
        self.lock = threading.Lock()

    def wait(self, stop: threading.Event | None = None) -> None:
        """Until this message's slot; a stop request ends the wait at once."""
        if not self.interval:
            return
        with self.lock:
            now = time.monotonic()
            slot = max(self.next_slot, now)
            self.next_slot = slot + self.interval
        if slot > now:
            if stop is None:
                time.sleep(slot - now)
            else:
                stop.wait(slot - now)
