"""ldmail.delivery.transport.graph promises to post each message to Graph's sendMail as the
whole MIME message, base64-encoded, with the run's token; `202` is sent; a 401 gets one fresh
token and then stops the run with one line that holds no secret; another 4xx fails that
message in Graph's own words; a 5xx (or a reply lost after the request went out) is
`unknown`, and FAILURES_IN_A_ROW of those stop the run; throttling past the deadline stops
the run for every lane; a post that never went out whole is temporary, a connection never
made stops the run; a stop request posts nothing.

Graph is an httpx.MockTransport handler: no socket. A handler marks how far a failed request
got through httpx's trace extension, as the network layer would.
"""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from ldmail.delivery.transport.base import Outcome, Pacer
from ldmail.delivery.transport.graph import Graph, GraphSession, open_graph
from ldmail.delivery.transport.oauth import Tokens
from ldmail.errors import TokenRefused, TransportUnavailable
from ldmail.project.models import OAuth2, Transport

SENDER = "learning@example.org"
MESSAGE = b"From: learning@example.org\r\nTo: ann@example.org\r\n\r\nHello\r\n"
Handler = Callable[[httpx.Request], httpx.Response]


def settings(**extra: Any) -> Transport:
    return Transport(kind="graph", oauth2=OAuth2(token_command="get-token"), **extra)


def numbered_tokens() -> Tokens:
    """A token source whose tokens are tok-1, tok-2, ... (no command is run)."""
    count = iter(range(1, 100))
    return Tokens(lambda forget: (f"tok-{next(count)}", 3600.0), "the token from "
                  "token_command", None)


class Graphs:
    """Lanes of one run posting to `handler`; every request it got is kept."""

    def __init__(self, handler: Handler, monkeypatch: pytest.MonkeyPatch,
                 stop: threading.Event | None = None) -> None:
        self.handler = handler
        self.requests: list[httpx.Request] = []
        self.tokens = numbered_tokens()
        self.session = GraphSession(settings(), self.tokens, Pacer(None),
                                    transport=httpx.MockTransport(self.keep))
        self.lane = Graph(settings(), self.session, stop)

    def keep(self, request: httpx.Request) -> httpx.Response:
        """The handler's answer; every request is kept."""
        request.read()
        self.requests.append(request)
        return self.handler(request)

    def send(self, lane: Graph | None = None) -> Outcome:
        return (lane or self.lane).send(MESSAGE, SENDER, "ann@example.org", "label")


Make = Callable[..., Graphs]


@pytest.fixture
def graph(monkeypatch: pytest.MonkeyPatch) -> Iterator[Make]:
    """Graphs over a handler: `graph(handler, stop=None)`; their lanes closed at the end."""
    made: list[Graphs] = []

    def make(handler: Handler, stop: threading.Event | None = None) -> Graphs:
        made.append(Graphs(handler, monkeypatch, stop))
        return made[-1]

    yield make
    for graphs in made:
        graphs.lane.close()


def answers(*responses: httpx.Response) -> Handler:
    """Each request gets the next response, its body still to be read as from the network;
    the last one repeats."""
    queue = list(responses)

    def answer(request: httpx.Request) -> httpx.Response:
        given = queue.pop(0) if len(queue) > 1 else queue[0]
        return httpx.Response(given.status_code, headers=given.headers,
                              stream=httpx.ByteStream(given.read()))

    return answer


def graph_error(status: int, code: str, message: str, **headers: str) -> httpx.Response:
    """Graph's JSON error document, its body still to be read as from the network."""
    body = json.dumps({"error": {"code": code, "message": message}}).encode()
    return httpx.Response(status, headers={"Content-Type": "application/json", **headers},
                          stream=httpx.ByteStream(body))


def test_a_message_is_posted_whole_in_base64_with_the_token_and_202_is_sent(
        graph: Make) -> None:
    graphs = graph(answers(httpx.Response(202)))
    assert graphs.send() == Outcome("sent")
    (request,) = graphs.requests
    assert request.method == "POST"
    assert str(request.url) == \
        "https://graph.microsoft.com/v1.0/users/learning@example.org/sendMail"
    assert request.headers["Authorization"] == "Bearer tok-1"
    assert request.headers["Content-Type"] == "text/plain"
    assert request.headers["User-Agent"].startswith("ldmail/")
    assert base64.b64decode(request.content) == MESSAGE


def test_open_gets_the_token_before_anything_is_claimed(graph: Make) -> None:
    graphs = graph(answers(httpx.Response(202)))
    graphs.lane.open()
    assert graphs.tokens.fetches == 1 and graphs.requests == []
    graphs.send()
    assert graphs.tokens.fetches == 1


def test_a_refused_token_is_replaced_once_and_the_message_posted_again(
        graph: Make) -> None:
    graphs = graph(answers(graph_error(401, "InvalidAuthenticationToken", "expired"),
                            httpx.Response(202)))
    assert graphs.send() == Outcome("sent")
    assert [r.headers["Authorization"] for r in graphs.requests] == ["Bearer tok-1",
                                                                     "Bearer tok-2"]


def test_a_token_refused_twice_stops_the_run_with_one_line_and_no_secret(
        graph: Make) -> None:
    def echo(request: httpx.Request) -> httpx.Response:
        token = request.headers["Authorization"].split()[1]
        return graph_error(401, "InvalidAuthenticationToken", f"bad token {token}")

    graphs = graph(echo)
    with pytest.raises(TokenRefused) as refused:
        graphs.send()
    text = str(refused.value)
    assert text.startswith("graph https://graph.microsoft.com: Microsoft Graph refused the "
                           "token from token_command")
    assert "[redacted]" in text and "tok-" not in text and "\n" not in text
    assert len(graphs.requests) == 2


def test_another_client_error_fails_the_message_in_graphs_own_words(
        graph: Make) -> None:
    graphs = graph(answers(graph_error(403, "ErrorAccessDenied", "Access is denied.")))
    assert graphs.send() == Outcome("permanent", "graph 403 ErrorAccessDenied: Access is denied.")
    assert len(graphs.requests) == 1


def test_server_errors_are_unknown_and_three_in_a_row_stop_the_run(
        graph: Make) -> None:
    graphs = graph(answers(httpx.Response(500)))
    for _ in range(3):
        outcome = graphs.send()
        assert outcome.status == "unknown"
        assert outcome.reason == "graph 500 Internal Server Error: Graph may or may not have " \
                                 "taken the message"
    with pytest.raises(TransportUnavailable, match="no clear answer 3 times in a row"):
        graphs.send()
    assert len(graphs.requests) == 3  # the fourth was never posted


def test_a_clear_answer_resets_the_count_of_failures(graph: Make) -> None:
    graphs = graph(answers(httpx.Response(502), httpx.Response(502), httpx.Response(202),
                            httpx.Response(502), httpx.Response(502), httpx.Response(202)))
    statuses = [graphs.send().status for _ in range(6)]
    assert statuses == ["unknown", "unknown", "sent", "unknown", "unknown", "sent"]


def test_throttling_past_the_deadline_stops_the_run_for_every_lane(
        graph: Make) -> None:
    graphs = graph(answers(graph_error(429, "ApplicationThrottled", "slow down",
                                        **{"Retry-After": "3600"})))
    with pytest.raises(TransportUnavailable, match="Retry-After 3600 s is past "
                                                   "transport.deadline"):
        graphs.send()
    other = Graph(settings(), graphs.session)
    with pytest.raises(TransportUnavailable, match="Microsoft Graph throttled this run"):
        graphs.send(other)
    assert len(graphs.requests) == 1


@pytest.mark.parametrize(("reached", "expected"), [
    ("http11.send_request_headers.started", "temporary"),
    ("http11.send_request_body.complete", "unknown"),
])
def test_how_far_a_broken_post_got_decides_its_outcome(
        graph: Make, reached: str, expected: str) -> None:
    def broken(request: httpx.Request) -> httpx.Response:
        request.extensions["trace"](reached, {})
        raise httpx.ReadError("connection reset by peer")

    graphs = graph(broken)
    assert graphs.send().status == expected


def test_a_connection_never_made_stops_the_run(graph: Make) -> None:
    def refused(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused")

    graphs = graph(refused)
    with pytest.raises(TransportUnavailable, match="cannot connect to Microsoft Graph"):
        graphs.send()


def test_a_stop_request_posts_nothing(graph: Make) -> None:
    stop = threading.Event()
    stop.set()
    graphs = graph(answers(httpx.Response(202)), stop)
    assert graphs.send().status == "stopped" and graphs.requests == []


def test_the_lanes_of_a_run_share_one_session_and_no_token_is_fetched_yet() -> None:
    lanes = open_graph(settings(connections=3), Pacer(None), None, None)
    assert len(lanes) == 3 and all(isinstance(lane, Graph) for lane in lanes)
    sessions = {id(lane.session) for lane in lanes if isinstance(lane, Graph)}
    assert len(sessions) == 1
    first = lanes[0]
    assert isinstance(first, Graph) and first.session.tokens.fetches == 0
    for lane in lanes:
        lane.close()
    assert first.session.closed


def test_graphs_error_text_is_kept_to_one_short_line(graph: Make) -> None:
    long = "Access\nis denied " + "x" * 500
    graphs = graph(answers(graph_error(404, "ErrorItemNotFound", long)))
    reason = graphs.send().reason
    assert reason.startswith("graph 404 ErrorItemNotFound: Access is denied xxx")
    assert "\n" not in reason and reason.endswith("…") and len(reason) < 320
