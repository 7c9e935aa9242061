"""ldmail.outside promises bounded HTTP: an answer whose body, once inflated, stays within
`max_bytes` (a gzip bomb is cut off, not unpacked), and one line naming the URL (without its
query) and how far the request got for whatever goes wrong; and a Retry-After that can never
make a tight loop nor an endless wait.

Requests go to an httpx.MockTransport; the handler plays the server, and calls the request's
`trace` extension where a real connection would announce its phases.
"""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Callable
from datetime import timedelta
from email.utils import format_datetime

import httpx
import pytest

from ldmail.clock import wall_now
from ldmail.errors import HttpFailed
from ldmail.outside import new_client, request, retry_after

Handler = Callable[[httpx.Request], httpx.Response]
URL = "https://lrs.example/xapi/statements?since=2026-01-01&token=secret"


def _client(handler: Handler) -> httpx.Client:
    return new_client(transport=httpx.MockTransport(handler))


def _answer(body: bytes, **headers: str) -> Handler:
    # An iterator, not bytes: bytes would be read by httpx before `request` streams them.
    return lambda _: httpx.Response(200, content=iter([body]), headers=headers)


def _failing(exc: type[httpx.TransportError], *phases: str) -> Handler:
    def handler(sent: httpx.Request) -> httpx.Response:
        for event in phases:
            sent.extensions["trace"](event, {})
        raise exc("the network said no", request=sent)
    return handler


def test_an_answer_comes_back_whole_with_its_status_and_headers() -> None:
    def handler(sent: httpx.Request) -> httpx.Response:
        assert sent.headers["Accept-Encoding"] == "gzip, deflate"
        assert sent.headers["X-Experience-API-Version"] == "1.0.3"
        return httpx.Response(404, content=iter([b'{"error": "none"}']),
                              headers={"X-Id": "7"})

    client = new_client(transport=httpx.MockTransport(handler),
                        headers={"X-Experience-API-Version": "1.0.3"})
    answer = request(client, "GET", URL, seconds=5, max_bytes=100)
    assert (answer.status, answer.reason, answer.body) == (404, "Not Found", b'{"error": "none"}')
    assert answer.headers["X-Id"] == "7"


@pytest.mark.parametrize(("coding", "packed"), [
    ("gzip", gzip.compress(b"[1, 2, 3]", mtime=0)), ("deflate", zlib.compress(b"[1, 2, 3]")),
    ("identity", b"[1, 2, 3]")])
def test_a_compressed_answer_is_inflated(coding: str, packed: bytes) -> None:
    answer = request(_client(_answer(packed, **{"Content-Encoding": coding})), "GET", URL,
                     seconds=5, max_bytes=9)
    assert answer.body == b"[1, 2, 3]"


def test_a_gzip_bomb_is_cut_off_at_the_bound_not_unpacked() -> None:
    bomb = gzip.compress(b"\0" * 5_000_000)  # a few kilobytes on the wire
    with pytest.raises(HttpFailed) as info:
        request(_client(_answer(bomb, **{"Content-Encoding": "gzip"})), "GET", URL,
                seconds=5, max_bytes=10_000)
    assert str(info.value) == ("https://lrs.example/xapi/statements: an answer larger than "
                               "10,000 bytes (once inflated); not read further")
    assert info.value.phase == "answer"


def test_a_plain_answer_over_the_bound_is_refused_and_one_at_it_is_not() -> None:
    client = _client(_answer(b"x" * 101))
    with pytest.raises(HttpFailed, match="an answer larger than 100 bytes"):
        request(client, "GET", URL, seconds=5, max_bytes=100)
    assert request(_client(_answer(b"x" * 100)), "GET", URL, seconds=5,
                   max_bytes=100).body == b"x" * 100


@pytest.mark.parametrize("answer", [
    {"content": b'{"id": 1}'}, {"json": {"id": 1}},
    {"content": gzip.compress(b'{"id": 1}', mtime=0), "headers": {"Content-Encoding": "gzip"}}])
def test_an_answer_its_transport_has_read_already_comes_back_whole(
        answer: dict[str, object]) -> None:
    client = _client(lambda _: httpx.Response(200, **answer))  # type: ignore[arg-type]
    body = request(client, "GET", URL, seconds=5, max_bytes=100).body
    assert body.replace(b" ", b"") == b'{"id":1}'


def test_an_answer_its_transport_has_read_already_is_still_bounded() -> None:
    client = _client(lambda _: httpx.Response(200, content=b"x" * 101))
    with pytest.raises(HttpFailed) as info:
        request(client, "GET", URL, seconds=5, max_bytes=100)
    assert str(info.value) == ("https://lrs.example/xapi/statements: an answer larger than "
                               "100 bytes (once inflated); not read further")
    assert info.value.phase == "answer"


BROKEN_GZIP = gzip.compress(b"[1, 2, 3]", mtime=0)[:-6]  # mtime 0: the same id in every worker


@pytest.mark.parametrize(("body", "coding", "reason"), [
    (BROKEN_GZIP, "gzip", "a broken gzip answer (it ends before its data"),
    (b"not gzip at all", "gzip", "a broken gzip answer (Error -3"),
    (b"[]", "br", "the answer is encoded as 'br', which was not asked for")])
def test_a_broken_or_unasked_for_encoding_is_a_failed_answer(body: bytes, coding: str,
                                                             reason: str) -> None:
    with pytest.raises(HttpFailed) as info:
        request(_client(_answer(body, **{"Content-Encoding": coding})), "GET", URL,
                seconds=5, max_bytes=100)
    assert str(info.value).startswith(f"https://lrs.example/xapi/statements: {reason}")
    assert info.value.phase == "answer"


def test_a_url_that_cannot_be_used_fails_before_connecting() -> None:
    with pytest.raises(HttpFailed) as info:
        request(_client(_answer(b"")), "GET", "http://[::1", seconds=5, max_bytes=10)
    assert str(info.value).startswith("'http://[::1' is not a usable URL (InvalidURL: ")
    assert info.value.phase == "connect"


def test_a_refused_connection_says_nothing_reached_the_server() -> None:
    with pytest.raises(HttpFailed) as info:
        request(_client(_failing(httpx.ConnectError)), "GET", URL, seconds=5, max_bytes=10)
    assert str(info.value) == ("https://lrs.example/xapi/statements: cannot connect "
                               "(ConnectError: the network said no)")
    assert (info.value.phase, info.value.late, info.value.stopped) == ("connect", False, False)


def test_a_connection_broken_while_sending_says_so() -> None:
    handler = _failing(httpx.WriteError, "http11.send_request_headers.started")
    with pytest.raises(HttpFailed, match="the connection broke while sending") as info:
        request(_client(handler), "POST", URL, seconds=5, max_bytes=10, json={"a": 1})
    assert info.value.phase == "send"


def test_an_answer_broken_off_after_the_request_went_out_says_the_server_may_have_acted() -> None:
    handler = _failing(httpx.ReadError, "http11.send_request_headers.started",
                       "http11.send_request_body.complete")
    with pytest.raises(HttpFailed, match=r"the answer broke off \(ReadError: ") as info:
        request(_client(handler), "POST", URL, seconds=5, max_bytes=10, json={"a": 1})
    assert info.value.phase == "answer"


def test_a_timeout_is_reported_as_late_with_the_requests_deadline() -> None:
    handler = _failing(httpx.ReadTimeout, "http11.send_request_headers.started")
    with pytest.raises(HttpFailed) as info:
        request(_client(handler), "GET", URL, seconds=2.5, max_bytes=10)
    assert str(info.value) == "https://lrs.example/xapi/statements: no complete answer within 2.5 s"
    assert (info.value.phase, info.value.late) == ("send", True)


def test_retry_after_in_seconds_is_obeyed_between_back_off_and_cap() -> None:
    headers = httpx.Headers({"Retry-After": "30"})
    assert retry_after(headers, 0, floor=1, cap=600) == 30
    assert retry_after(headers, 6, floor=1, cap=600) == 64  # the back-off is longer
    assert retry_after(httpx.Headers({"Retry-After": "86400"}), 0, floor=1, cap=600) == 600


@pytest.mark.parametrize("said", ["0", "-5", "nan", "inf", "soon", ""])
def test_a_retry_after_that_would_loop_tightly_falls_back_to_back_off(said: str) -> None:
    headers = httpx.Headers({"Retry-After": said})
    assert retry_after(headers, 2, floor=0.5, cap=600) == 2.0
    assert retry_after(None, 0, floor=0.5, cap=600) == 0.5


def test_retry_after_as_an_http_date_counts_from_now() -> None:
    later = format_datetime(wall_now().replace(microsecond=0) + timedelta(minutes=10), usegmt=True)
    waited = retry_after(httpx.Headers({"Retry-After": later}), 0, floor=1, cap=3600)
    assert 590 <= waited <= 600
    past = format_datetime(wall_now() - timedelta(minutes=10), usegmt=True)
    assert retry_after(httpx.Headers({"Retry-After": past}), 0, floor=1, cap=3600) == 1
