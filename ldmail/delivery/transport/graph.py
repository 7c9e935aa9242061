"""Microsoft Graph transport: each message posted to `/users/{sender}/sendMail` as MIME.

Graph's documented MIME send: the request body is the whole message, base64-encoded, with
`Content-Type: text/plain`; so every header (List-Unsubscribe, Message-ID) and every part
(text, HTML, the .ics invite) arrives as ldmail built it. `202 Accepted` means sent.

What an answer means for the ledger, as with SMTP:

- 429 or 503: throttled, nothing taken. Wait for Retry-After (interruptible by a stop, shared
  by the run's lanes; read defensively: a missing, zero, negative or unreadable value still
  waits an exponential back-off from one second) and post the same message again, within the
  message's `transport.deadline`; past it the message is deferred like an SMTP 4xx and the
  run stops (TransportUnavailable): the messages not yet claimed wait for the next run.
- 401: the token is refreshed once and the message posted again; refused again, the run stops
  with one line (TokenRefused), as a refused SMTP login does.
- other 3xx and 4xx (400, 403, 404, 413): that message fails, like an SMTP 5xx.
- 500, 502, 504, or a reply lost (or late) after the request went out: Graph may have taken
  the message, so it is `unknown`, never posted again blindly. After FAILURES_IN_A_ROW of
  these in a row the run stops: the messages not yet posted stay due for the next run.
- a connection that cannot be made: nothing was handed over; the run stops, messages wait.

Each post ends within `transport.timeout` and the message's deadline, however slowly Graph
answers (ldmail/outside.py).
"""

from __future__ import annotations

import base64
import json
import threading
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from ... import outside
from ...errors import HttpFailed, TransportUnavailable
from .base import Outcome, Pacer, Transport

if TYPE_CHECKING:
    import httpx

    from ...project.models import Transport as TransportSettings
    from .oauth import Resolve, Tokens

THROTTLE_FLOOR = 1.0  # seconds: the first wait after a 429 or 503, doubled on each repeat
THROTTLE_CAP = 3600.0  # a longer Retry-After is read as this (and is past any deadline)
FAILURES_IN_A_ROW = 3  # 5xx answers or lost replies in a row that stop the run
MAX_ANSWER = 64 * 1024  # bytes of Graph's answer read (an error document at most)


class GraphSession:
    """What the Graph lanes of a run share: one HTTP client, the tokens, the pace, the
    moment a throttling answer said to wait until, and the failures in a row.

    `transport` replaces the network under the HTTP client (httpx.MockTransport in tests, or
    a proxy's transport when embedding ldmail); every bound of outside.request still holds.
    """

    def __init__(self, settings: TransportSettings, tokens: Tokens, pacer: Pacer, *,
                 transport: httpx.BaseTransport | None = None) -> None:
        from ... import __version__

        self.url = settings.graph_url
        self.tokens = tokens
        self.pacer = pacer
        network = {"transport": transport} if transport is not None else {}
        self.client = outside.new_client(base_url=settings.graph_url, follow_redirects=False,
                                         headers={"User-Agent": f"ldmail/{__version__}"},
                                         **network)
        self.lock = threading.Lock()
        self.throttled_until = 0.0  # monotonic
        self.failures: list[str] = []  # the reasons of the failures in a row, latest last
        self.closed = False

    def throttle(self, seconds: float) -> None:
        with self.lock:
            self.throttled_until = max(self.throttled_until, time.monotonic() + seconds)

    def count(self, outcome: Outcome) -> Outcome:
        """Keep count of the answers that said nothing (5xx, lost); a clear one resets it."""
        with self.lock:
            if outcome.status in ("unknown", "temporary"):
                self.failures.append(outcome.reason)
            else:
                self.failures.clear()
        return outcome

    def check_failing(self) -> None:
        """TransportUnavailable once FAILURES_IN_A_ROW posts in a row got no clear answer:
        the run stops instead of making every due message `unknown`."""
        with self.lock:
            if len(self.failures) < FAILURES_IN_A_ROW:
                return
            last = self.failures[-1]
        raise TransportUnavailable(
            f"Microsoft Graph gave no clear answer {FAILURES_IN_A_ROW} times in a row (last: "
            f"{last}); the run stopped, the messages not yet posted wait for the next run")

    def close(self) -> None:
        with self.lock:
            if self.closed:
                return
            self.closed = True
        self.client.close()


class Graph:
    """One lane posting messages to Microsoft Graph's sendMail."""

    name = "graph"

    def __init__(self, settings: TransportSettings, session: GraphSession,
                 stop: threading.Event | None = None) -> None:
        self.session = session
        self.stop = stop
        self.deadline = settings.deadline.total_seconds()
        self.timeout = settings.timeout.total_seconds()

    def open(self) -> None:
        """Get the token before anything is claimed, so a refused credential costs nothing."""
        self.session.tokens.get()

    def send(self, data: bytes, sender: str, recipient: str, label: str,
             cc: tuple[str, ...] = ()) -> Outcome:
        """Post the MIME message: Graph takes its recipients from its To and Cc headers."""
        session = self.session
        session.check_failing()
        session.pacer.wait(self.stop)
        ends = time.monotonic() + self.deadline
        path = f"/v1.0/users/{quote(sender, safe='@')}/sendMail"
        body = base64.b64encode(data)
        token, _ = session.tokens.get()
        refreshed = False
        throttled = 0
        while True:
            if self._stopped():
                return Outcome("stopped", "stopped on request before the message was sent")
            if not self._wait_throttle(ends):
                return Outcome("stopped", "stopped on request while Graph throttled")
            answer = self._post(path, body, token, ends)
            if isinstance(answer, Outcome):
                return session.count(answer)
            status = answer.status
            if status == 202:
                return session.count(Outcome("sent"))
            said = _error(answer)
            if status == 401:
                if refreshed:
                    raise session.tokens.graph_refused(session.url, sender, said)
                token, refreshed = session.tokens.refresh(token), True
                continue
            if status in (429, 503):
                wait = outside.retry_after(answer.headers, throttled, floor=THROTTLE_FLOOR,
                                           cap=THROTTLE_CAP)
                throttled += 1
                session.throttle(wait)  # the run's other lanes wait too
                if time.monotonic() + wait > ends:
                    # Deferred like an SMTP 4xx; the rest of the run would only wait as well.
                    raise TransportUnavailable(_throttled(said, wait))
                continue
            if status >= 500 or 200 <= status < 300:
                return session.count(Outcome("unknown", f"{said}: Graph may or may not have "
                                             "taken the message"))
            return session.count(Outcome("permanent", said))

    def _wait_throttle(self, ends: float) -> bool:
        """Wait out a throttling answer (this lane's or another's); False on a stop."""
        pause = self.session.throttled_until - time.monotonic()
        if pause <= 0:
            return True
        if time.monotonic() + pause > ends:
            raise TransportUnavailable(_throttled("Microsoft Graph throttled this run", pause))
        if self.stop is None:
            time.sleep(pause)
            return True
        return not self.stop.wait(pause)

    def _post(self, path: str, body: bytes, token: str,
              ends: float) -> outside.Answer | Outcome:
        """One post, within transport.timeout and the message's deadline. A stop request
        lets it finish: the message in hand is recorded as what it became."""
        seconds = min(self.timeout, ends - time.monotonic())
        if seconds <= 0:
            raise TransportUnavailable(f"{self.session.url}: transport.deadline passed before "
                                       "this message could be posted")
        try:
            return outside.request(self.session.client, "POST", path, seconds=seconds,
                                   max_bytes=MAX_ANSWER, content=body, headers={
                                       "Authorization": f"Bearer {token}",
                                       "Content-Type": "text/plain"})
        except HttpFailed as exc:
            if exc.phase == "connect":
                raise TransportUnavailable(f"cannot connect to Microsoft Graph: {exc}") from None
            if exc.phase == "send":
                # The request never went out whole: Graph cannot have taken the message.
                return Outcome("temporary", f"connection lost while posting to Graph ({exc})")
            return Outcome("unknown", f"the whole message was posted but Graph's reply was "
                           f"lost ({exc}); it may or may not have arrived")

    def _stopped(self) -> bool:
        return self.stop is not None and self.stop.is_set()

    def close(self) -> None:
        self.session.close()


def _throttled(said: str, wait: float) -> str:
    return (f"{said}; Retry-After {wait:.0f} s is past transport.deadline, so this message is "
            "tried again later and the rest wait for the next run")


def _error(answer: outside.Answer) -> str:
    """`graph 403 ErrorAccessDenied: Access is denied…` from Graph's JSON error body."""
    detail = ""
    try:
        error: Any = json.loads(answer.body or b"{}").get("error")
        if isinstance(error, dict):
            detail = f"{error.get('code', '')}: {error.get('message', '')}".strip(": ")
    except (ValueError, AttributeError, RecursionError):
        pass
    if not detail:
        detail = answer.reason
    detail = " ".join(detail.split())
    if len(detail) > 300:
        detail = detail[:299] + "…"
    return f"graph {answer.status} {detail}".strip()


def open_graph(settings: TransportSettings, pacer: Pacer, stop: threading.Event | None,
               resolve: Resolve | None) -> list[Transport]:
    """`connections` Graph lanes sharing one HTTP client, one token source and the pace."""
    from .oauth import GRAPH_SCOPE, token_source

    session = GraphSession(settings, token_source(settings, GRAPH_SCOPE, resolve), pacer)
    return [Graph(settings, session, stop) for _ in range(settings.connections)]
