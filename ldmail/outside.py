"""Bounded calls to outside HTTP services (the LRS, Microsoft Graph): a total deadline per
request, a bounded body, and one line for whatever goes wrong.

httpx's timeouts hold for one network operation each, so a server that trickles a byte a
second never trips them. Here a watchdog thread shuts the request's socket down when the
request's total time is up (or a stop is asked for), whichever phase it is in: connecting,
sending, waiting for the headers or reading the body. It finds the socket through httpx's
documented `trace` request extension, which is why a client of this module opens one
connection per request (a reused connection is never announced).

The body is read raw and inflated here, `max_bytes` at a time: httpx would inflate each
network chunk whole, and 64 kB of gzip can unpack to 64 MB.
"""

from __future__ import annotations

import email.utils
import math
import socket
import threading
import time
import zlib
from dataclasses import dataclass
from datetime import UTC
from typing import Any, Literal

import httpx

from .clock import wall_now
from .errors import HttpFailed, describe

Phase = Literal["connect", "send", "answer"]
ENCODINGS = {"gzip": 16 + zlib.MAX_WBITS, "x-gzip": 16 + zlib.MAX_WBITS,
             "deflate": zlib.MAX_WBITS}
CHUNK = 65_536
STOP_POLL = 0.1  # how soon a stop request is noticed, in seconds
# What building or sending a request raises for a URL it cannot use (a port out of range, a
# broken IPv6 literal, a control character, a host name IDNA refuses); UnicodeError is a
# ValueError.
BAD_URL = (httpx.InvalidURL, ValueError)


@dataclass(frozen=True)
class Answer:
    """A complete answer, its body inflated and within its bound."""

    status: int
    headers: httpx.Headers
    body: bytes
    reason: str


def new_client(**options: Any) -> httpx.Client:
    """An httpx client for `request`: one connection per request, so the deadline can cut it,
    and only the content codings `request` inflates itself."""
    headers = {"Accept-Encoding": "gzip, deflate", **options.pop("headers", {})}
    return httpx.Client(limits=httpx.Limits(max_keepalive_connections=0), headers=headers,
                        **options)


def request(client: httpx.Client, method: str, url: str, *, seconds: float, max_bytes: int,
            stop: threading.Event | None = None, **options: Any) -> Answer:
    """One request that ends within `seconds` whatever the server does, with a body of at
    most `max_bytes` once inflated; HttpFailed (one line, the phase it reached) otherwise."""
    try:
        built = client.build_request(method, url, timeout=httpx.Timeout(max(seconds, 0.001)),
                                     **options)
    except BAD_URL as exc:
        raise HttpFailed(f"{url[:200]!r} is not a usable URL ({describe(exc)})",
                         "connect", lasting=True) from None
    where = str(built.url.copy_with(query=None))
    with _Watchdog(time.monotonic() + seconds, stop) as dog:
        built.extensions["trace"] = dog.trace
        try:
            response = client.send(built, stream=True)
            try:
                body = _read_body(response, max_bytes, where)
            finally:
                response.close()
        except httpx.HTTPError as exc:
            raise dog.failure(where, seconds, exc) from None
        except HttpFailed:
            raise
        except BAD_URL as exc:  # e.g. a host name IDNA cannot encode, found while connecting
            raise dog.failure(where, seconds, exc) from None
        except OSError as exc:  # raised by the socket itself, outside httpx's mapping
            raise dog.failure(where, seconds, exc) from None
    return Answer(response.status_code, response.headers, body, response.reason_phrase)


def retry_after(headers: httpx.Headers | None, attempt: int, *, floor: float,
                cap: float) -> float:
    """Seconds to wait before attempt `attempt + 1`: what Retry-After says (seconds or an HTTP
    date), but never less than an exponential back-off from `floor` (so `0`, `-5` or `nan`
    cannot make a tight loop) and never more than `cap`."""
    backoff = floor * 2.0 ** attempt
    said = _retry_after_seconds(headers.get("Retry-After", "") if headers else "")
    return min(max(said, backoff), cap)


def _retry_after_seconds(value: str) -> float:
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return 0.0
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - wall_now()).total_seconds()
    return seconds if math.isfinite(seconds) and seconds > 0 else 0.0


class _Watchdog:
    """Shuts the request's sockets down at `ends` or on `stop`; tracks the phase reached."""

    def __init__(self, ends: float, stop: threading.Event | None) -> None:
        self.ends, self.stop = ends, stop
        self.phase: Phase = "connect"
        self.fired: str | None = None  # "deadline" or "stop"
        self.sockets: list[socket.socket] = []
        self.lock = threading.Lock()
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._watch, name="http-deadline", daemon=True)

    def __enter__(self) -> _Watchdog:
        self.thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.done.set()
        self.thread.join()
        for sock in self.sockets:
            sock.close()

    def trace(self, event: str, info: dict[str, Any]) -> None:
        """httpx's trace extension: called by the thread doing the request."""
        if event == "connection.connect_tcp.complete":
            sock = info["return_value"].get_extra_info("socket")
            if isinstance(sock, socket.socket):
                # A duplicate of the descriptor: shutting it down ends the connection even
                # after TLS has wrapped (and detached) the original socket object.
                with self.lock:
                    self.sockets.append(sock.dup())
                    if self.fired:
                        self._shut()
        elif event == "http11.send_request_headers.started":
            self.phase = "send"
        elif event == "http11.send_request_body.complete":
            self.phase = "answer"

    def _watch(self) -> None:
        while not self.done.is_set():
            left = self.ends - time.monotonic()
            if left <= 0:
                self._fire("deadline")
                return
            if self.stop is not None and self.stop.is_set():
                self._fire("stop")
                return
            self.done.wait(min(left, STOP_POLL) if self.stop is not None else left)

    def _fire(self, why: str) -> None:
        with self.lock:
            self.fired = why
            self._shut()

    def _shut(self) -> None:
        for sock in self.sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # already closed by the other side

    def failure(self, where: str, seconds: float, exc: BaseException) -> HttpFailed:
        if self.fired == "stop":
            return HttpFailed(f"{where}: stopped on request", self.phase, stopped=True)
        if self.fired == "deadline" or isinstance(exc, httpx.TimeoutException):
            return HttpFailed(f"{where}: no complete answer within {seconds:g} s", self.phase,
                              late=True)
        what = {"connect": "cannot connect", "send": "the connection broke while sending",
                "answer": "the answer broke off"}[self.phase]
        return HttpFailed(f"{where}: {what} ({describe(exc)})", self.phase,
                          lasting=isinstance(exc, BAD_URL))


def _read_body(response: httpx.Response, max_bytes: int, where: str) -> bytes:
    """The body, inflated at most `max_bytes` (and one byte) at a time."""
    coding = response.headers.get("Content-Encoding", "identity").strip().lower()
    if coding not in ENCODINGS and coding not in ("", "identity"):
        raise HttpFailed(f"{where}: the answer is encoded as {coding[:40]!r}, which was not "
                         "asked for", "answer")
    if response.is_stream_consumed:
        return _loaded_body(response, max_bytes, where)
    inflate = zlib.decompressobj(ENCODINGS[coding]) if coding in ENCODINGS else None
    body = bytearray()
    raw = 0
    for chunk in response.iter_raw(CHUNK):
        raw += len(chunk)
        room = max_bytes - len(body) + 1
        try:
            body += inflate.decompress(chunk, room) if inflate else chunk[:room]
        except zlib.error as exc:
            raise HttpFailed(f"{where}: a broken {coding} answer ({exc})", "answer") from None
        if len(body) > max_bytes:
            raise _too_large(where, max_bytes)
    if inflate is not None and raw and not inflate.eof:
        raise HttpFailed(f"{where}: a broken {coding} answer (it ends before its data does)",
                         "answer")
    return bytes(body)


def _too_large(where: str, max_bytes: int) -> HttpFailed:
    return HttpFailed(f"{where}: an answer larger than {max_bytes:,} bytes (once inflated); not "
                      "read further", "answer")


def _loaded_body(response: httpx.Response, max_bytes: int, where: str) -> bytes:
    """The body of an answer its transport has read already (httpx.MockTransport given bytes
    or json), which httpx has inflated: it cannot be streamed again, and is still bounded."""
    try:
        body = response.content
    except httpx.ResponseNotRead:
        raise HttpFailed(f"{where}: the answer's body was consumed before it could be read",
                         "answer") from None
    if len(body) > max_bytes:
        raise _too_large(where, max_bytes)
    return body
