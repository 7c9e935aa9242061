"""Microsoft Graph transport: each message posted to `/users/{sender}/sendMail` as MIME.

Graph's documented MIME send: the request body is the whole message, base64-encoded, with
`Content-Type: text/plain`; so every header (List-Unsubscribe, Message-ID) and every part
(text, HTML, the .ics invite) arrives as ldmail built it. `202 Accepted` means sent.

What an answer means for the ledger, as with SMTP:

- 429 or 503: throttled, nothing taken. Wait for Retry-After (interruptible by a stop, shared
  by the run's lanes) and post the same message again, within the message's
  `transport.deadline`; past it the message is deferred like an SMTP 4xx and the run stops
  (TransportUnavailable): the messages not yet claimed wait for the next run.
- 401: the token is refreshed once and the message posted again; refused again, the run stops
  with one line (TokenRefused), as a refused SMTP login does.
- other 3xx and 4xx (400, 403, 404, 413): that message fails, like an SMTP 5xx.
- 500, 502, 504, or a reply lost after the request went out: Graph may have taken the
  message, so it is `unknown`, never posted again blindly.
- a connection that cannot be made: nothing was handed over; the run stops, messages wait.
"""

from __future__ import annotations

import base64
import email.utils
import json
import threading
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from .errors import TransportUnavailable
from .transport import Outcome, Pacer, Transport

if TYPE_CHECKING:
    import httpx

    from .models import Transport as TransportSettings
    from .oauth import Resolve, Tokens

# Waited after a 429 or 503 that names no Retry-After.
DEFAULT_RETRY_AFTER = 5.0


class GraphSession:
    """What the Graph lanes of a run share: one HTTP client, the tokens, the pace, and the
    moment a throttling answer said to wait until."""

    def __init__(self, settings: TransportSettings, tokens: Tokens, pacer: Pacer) -> None:
        import httpx

        from . import __version__

        self.url = settings.graph_url
        self.tokens = tokens
        self.pacer = pacer
        self.client = httpx.Client(
            base_url=settings.graph_url, timeout=httpx.Timeout(settings.timeout.total_seconds()),
            follow_redirects=False, headers={"User-Agent": f"ldmail/{__version__}"})
        self.lock = threading.Lock()
        self.throttled_until = 0.0  # monotonic
        self.closed = False

    def throttle(self, seconds: float) -> None:
        with self.lock:
            self.throttled_until = max(self.throttled_until, time.monotonic() + seconds)

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

    def open(self) -> None:
        """Get the token before anything is claimed, so a refused credential costs nothing."""
        self.session.tokens.get()

    def send(self, data: bytes, sender: str, recipient: str, label: str,
             cc: tuple[str, ...] = ()) -> Outcome:
        """Post the MIME message: Graph takes its recipients from its To and Cc headers."""
        import httpx

        session = self.session
        session.pacer.wait(self.stop)
        ends = time.monotonic() + self.deadline
        path = f"/v1.0/users/{quote(sender, safe='@')}/sendMail"
        body = base64.b64encode(data)
        token, _ = session.tokens.get()
        refreshed = False
        while True:
            if self._stopped():
                return Outcome("stopped", "stopped on request before the message was sent")
            pause = session.throttled_until - time.monotonic()
            if pause > 0:
                if time.monotonic() + pause > ends:
                    raise TransportUnavailable(_throttled("Microsoft Graph throttled this run",
                                                          pause))
                if self.stop is not None and self.stop.wait(pause):
                    return Outcome("stopped", "stopped on request while Graph throttled")
                if self.stop is None:
                    time.sleep(pause)
            try:
                response = session.client.post(path, content=body, headers={
                    "Authorization": f"Bearer {token}", "Content-Type": "text/plain"})
            except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
                raise TransportUnavailable(f"cannot connect to {session.url}: "
                                           f"{type(exc).__name__}") from None
            except (httpx.WriteError, httpx.WriteTimeout) as exc:
                # The request never went out whole: Graph cannot have taken the message.
                return Outcome("temporary", f"connection lost while posting to Graph "
                               f"({type(exc).__name__})")
            except httpx.TransportError as exc:
                return Outcome("unknown", "the whole message was posted but Graph's reply was "
                               f"lost ({type(exc).__name__}); it may or may not have arrived")
            status = response.status_code
            if status == 202:
                return Outcome("sent")
            said = _error(response)
            if status == 401:
                if refreshed:
                    raise session.tokens.graph_refused(session.url, sender, said)
                token, refreshed = session.tokens.refresh(token), True
                continue
            if status in (429, 503):
                wait = _retry_after(response)
                session.throttle(wait)  # the run's other lanes wait too
                if time.monotonic() + wait > ends:
                    # Deferred like an SMTP 4xx; the rest of the run would only wait as well.
                    raise TransportUnavailable(_throttled(said, wait))
                continue
            if status >= 500 or 200 <= status < 300:
                return Outcome("unknown", f"{said}: Graph may or may not have taken the "
                               "message")
            return Outcome("permanent", said)

    def _stopped(self) -> bool:
        return self.stop is not None and self.stop.is_set()

    def close(self) -> None:
        self.session.close()


def _throttled(said: str, wait: float) -> str:
    return (f"{said}; Retry-After {wait:.0f} s is past transport.deadline, so this message is "
            "tried again later and the rest wait for the next run")


def _error(response: httpx.Response) -> str:
    """`graph 403 ErrorAccessDenied: Access is denied…` from Graph's JSON error body."""
    detail = ""
    try:
        error: Any = json.loads(response.content or b"{}").get("error")
        if isinstance(error, dict):
            detail = f"{error.get('code', '')}: {error.get('message', '')}".strip(": ")
    except (ValueError, AttributeError):
        pass
    if not detail:
        detail = response.reason_phrase
    detail = " ".join(detail.split())
    if len(detail) > 300:
        detail = detail[:299] + "…"
    return f"graph {response.status_code} {detail}".strip()


def _retry_after(response: httpx.Response) -> float:
    """Retry-After in seconds (a number, or an HTTP date)."""
    value = response.headers.get("Retry-After", "").strip()
    if not value:
        return DEFAULT_RETRY_AFTER
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return DEFAULT_RETRY_AFTER
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max((when - datetime.now(UTC)).total_seconds(), 0.0)


def open_graph(settings: TransportSettings, pacer: Pacer, stop: threading.Event | None,
               resolve: Resolve | None) -> list[Transport]:
    """`connections` Graph lanes sharing one HTTP client, one token source and the pace."""
    from .oauth import GRAPH_SCOPE, token_source

    session = GraphSession(settings, token_source(settings, GRAPH_SCOPE, resolve), pacer)
    return [Graph(settings, session, stop) for _ in range(settings.connections)]
