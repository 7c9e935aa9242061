"""ldmail.measurement.lrs promises to pull xAPI statements page by page through `more`, each
page's events and the cursor committed together; the cursor is the latest `stored` time read
whole (never past a time a later page may still carry, never moved by a time in the future);
429, 5xx and refused connections are retried (waiting as Retry-After says, within a bound);
refused credentials, loops, foreign `more` links and answers that are not JSON end the pull in
one line, keeping what was recorded. An LRS played by httpx.MockTransport: no socket."""

from __future__ import annotations

import base64
import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from json import dumps
from pathlib import Path
from typing import Any

import httpx
import pytest

from ldmail.errors import LrsError
from ldmail.ledger import Ledger
from ldmail.measurement.lrs import CURSOR, PullResult, pull, pull_failure
from ldmail.project.models import Lrs

NOW = datetime(2026, 12, 1, 10, tzinfo=UTC)
# Stored times are in 2020: the pull's horizon for `stored` is the real clock (wall_now, not
# `now`), so only a time before it moves the cursor.
UNTIL = "2100-01-01T00:00:00Z"
ENDPOINT = "https://lrs.example.org/xAPI"
Handler = Callable[[httpx.Request], httpx.Response]


@pytest.fixture
def ledger(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Ledger:
    monkeypatch.setenv("LDMAIL_LRS_PASSWORD", "s3cret")
    return Ledger(tmp_path / "ledger.db")


def lrs(**settings: Any) -> Lrs:
    return Lrs.model_validate({"endpoint": ENDPOINT, "user": "reader", **settings})


def statement(sid: str, stored: str, email: str = "ann@example.org",
              verb: str = "registered", target: str = "course:1") -> dict[str, Any]:
    return {"id": sid, "actor": {"mbox": f"mailto:{email}"},
            "verb": {"id": f"http://adlnet.gov/expapi/verbs/{verb}"},
            "object": {"id": target}, "timestamp": stored, "stored": stored}


class Streamed(httpx.SyncByteStream):
    """A body that arrives as a stream, as from a server. (httpx reads a body given as bytes
    or JSON at once, and ldmail.outside streams the raw body, which then raises
    StreamConsumed.)"""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def __iter__(self) -> Iterator[bytes]:
        yield self.data


def answer(status: int, headers: dict[str, str] | None = None, *, text: str = "",
           json: Any = None) -> Handler:
    """An answer made afresh for each request it answers (a stream is read only once)."""
    data = (dumps(json) if json is not None else text).encode()
    return lambda request: httpx.Response(status, headers=headers, stream=Streamed(data))


def page(statements: list[dict[str, Any]], more: str = "",
         headers: dict[str, str] | None = None) -> Handler:
    return answer(200, headers, json={"statements": statements, "more": more})


class ScriptedLrs:
    """Answers scripted per request, in order; records every request it was sent."""

    def __init__(self, *answers: Handler) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []
        self.waits: list[float] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.answers.pop(0)(request)

    def pull(self, ledger: Ledger, settings: Lrs | None = None, **options: Any) -> PullResult:
        client = httpx.Client(transport=httpx.MockTransport(self))
        return pull(ledger, settings or lrs(), NOW, client=client, sleep=self.waits.append,
                    **options)


def emails(ledger: Ledger, event: str = "registered") -> list[str]:
    return [e.email for e in ledger.goal_events(event, UNTIL)]


def refused(request: httpx.Request) -> httpx.Response:
    raise httpx.ConnectError("connection refused", request=request)


def test_pages_are_followed_and_the_next_pull_asks_only_for_what_is_newer(
        ledger: Ledger) -> None:
    server = ScriptedLrs(
        page([statement("s1", "2020-11-01T10:00:00Z")], more="/xAPI/statements?page=2"),
        page([statement("s2", "2020-11-02T10:00:00Z", email="bob@example.org")]))
    result = server.pull(ledger)
    assert (result.statements, result.added, result.requests) == (2, 2, 2)
    assert result.cursor == ledger.meta(CURSOR) == "2020-11-02T10:00:00Z"
    assert emails(ledger) == ["ann@example.org", "bob@example.org"]
    first, second = server.requests
    assert dict(first.url.params) == {"ascending": "true", "limit": "500"}
    assert str(second.url) == "https://lrs.example.org/xAPI/statements?page=2"
    assert first.headers["X-Experience-API-Version"] == "1.0.3"
    assert first.headers["Authorization"] == \
        "Basic " + base64.b64encode(b"reader:s3cret").decode()
    again = ScriptedLrs(page([]))
    assert again.pull(ledger).added == 0
    assert again.requests[0].url.params["since"] == "2020-11-02T10:00:00Z"


def test_a_stored_time_that_may_go_on_on_the_next_page_holds_the_cursor_back(
        ledger: Ledger) -> None:
    """Page 1 ends in the middle of the statements stored at 10:01; page 2 never comes."""
    server = ScriptedLrs(page([statement("s1", "2020-11-01T10:00:00Z"),
                        statement("s2", "2020-11-01T10:01:00Z", email="bob@example.org")],
                       more="/xAPI/statements?page=2"),
                  *[answer(503)] * 5)
    with pytest.raises(LrsError) as raised:
        server.pull(ledger)
    assert str(raised.value) == ("https://lrs.example.org/xAPI: HTTP 503 after 5 attempts; the "
                                 "cursor stays where it was, the next pull tries again")
    assert emails(ledger) == ["ann@example.org", "bob@example.org"]  # page 1 is kept
    assert ledger.meta(CURSOR) == "2020-11-01T10:00:00Z"  # not 10:01: it may hold more
    assert server.waits == [0.5, 1.0, 2.0, 4.0]  # four pauses between five attempts


def test_429_waits_as_retry_after_says_and_a_refused_connection_is_retried(
        ledger: Ledger) -> None:
    server = ScriptedLrs(answer(429, {"Retry-After": "7"}), refused,
                  page([statement("s1", "2020-11-01T10:00:00Z")]))
    result = server.pull(ledger)
    assert (result.added, result.requests) == (1, 3)
    assert server.waits == [7.0, 1.0]
    huge = ScriptedLrs(answer(429, {"Retry-After": "86400"}), page([]))
    huge.pull(ledger)
    assert huge.waits == [60.0]  # never longer than MAX_WAIT


def test_refused_credentials_end_the_pull_at_once_in_one_line(ledger: Ledger) -> None:
    server = ScriptedLrs(answer(401))
    with pytest.raises(LrsError) as raised:
        server.pull(ledger)
    assert str(raised.value) == (
        "https://lrs.example.org/xAPI: the LRS refused user 'reader' (HTTP 401); check the "
        "secret in $LDMAIL_LRS_PASSWORD and that this key may read statements (read-only scope)")
    assert len(server.requests) == 1 and server.waits == []


def test_without_the_secret_nothing_is_asked(ledger: Ledger,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LDMAIL_LRS_PASSWORD")
    server = ScriptedLrs()
    with pytest.raises(LrsError, match=r"set \$LDMAIL_LRS_PASSWORD to the secret of LRS user "
                                       "'reader'"):
        server.pull(ledger)
    assert server.requests == []


def test_a_voiding_statement_revokes_the_goal_event_it_names(ledger: Ledger) -> None:
    ScriptedLrs(page([statement("s1", "2020-11-01T10:00:00Z")])).pull(ledger)
    voiding = {"id": "v1", "actor": {"mbox": "mailto:admin@example.org"},
               "verb": {"id": "http://adlnet.gov/expapi/verbs/voided"},
               "object": {"objectType": "StatementRef", "id": "s1"},
               "stored": "2020-11-02T10:00:00Z"}
    result = ScriptedLrs(page([voiding])).pull(ledger)
    assert (result.voided, result.revoked, result.added) == (1, 1, 0)
    assert emails(ledger) == []
    assert "1 revoked by voiding statements" in result.summary()


def test_bad_statements_are_skipped_by_id_and_a_conflicting_repeat_is_said_once(
        ledger: Ledger) -> None:
    changed = statement("s1", "2020-11-01T10:00:00Z", target="course:2")
    no_actor = {**statement("s2", "2020-11-01T10:00:00Z"), "actor": None}
    result = ScriptedLrs(page([statement("s1", "2020-11-01T10:00:00Z"), changed, changed, no_actor,
                        statement("s3", "2020-11-01T10:00:00Z", email="bob@example.org")])
                  ).pull(ledger)
    assert result.added == 2
    assert [(s.position, s.reason) for s in result.skipped] == [
        ("page 1 statement 2 (id s1)", "conflict: this statement id was recorded before with "
                                       "other content; the first is kept"),
        ("page 1 statement 4 (id s2)", "no actor")]
    assert [e.object for e in ledger.goal_events("registered", UNTIL)] == ["course:1",
                                                                             "course:1"]


def test_a_statement_stored_in_the_future_is_recorded_but_does_not_move_the_cursor(
        ledger: Ledger) -> None:
    result = ScriptedLrs(page([statement("s1", "2020-11-01T10:00:00Z"),
                        {**statement("s2", "2020-11-01T11:00:00Z", email="bob@example.org"),
                         "stored": "2999-01-01T00:00:00Z"}])).pull(ledger)
    assert result.added == 2
    assert result.cursor == "2020-11-01T10:00:00Z"
    [note] = result.notes
    assert note.position == "page 1 statement 2 (id s2)"
    assert note.reason.startswith("stored '2999-01-01T00:00:00Z', in the future by this "
                                  "computer's clock")


def test_the_cursor_never_passes_consistent_through(ledger: Ledger) -> None:
    behind = page([statement("s1", "2020-11-01T10:00:00Z")],
                  headers={"X-Experience-API-Consistent-Through": "2020-11-01T09:00:00Z"})
    assert ScriptedLrs(behind).pull(ledger).cursor == "2020-11-01T09:00:00Z"


def test_only_the_configured_verbs_are_asked_for_and_recorded(ledger: Ledger) -> None:
    settings = lrs(verbs=["http://adlnet.gov/expapi/verbs/registered"], page_size=50)
    server = ScriptedLrs(page([statement("s1", "2020-11-01T10:00:00Z"),
                        statement("s2", "2020-11-01T10:00:00Z", verb="completed")]))
    result = server.pull(ledger, settings)
    assert (result.statements, result.added, result.skipped) == (2, 1, [])
    assert dict(server.requests[0].url.params) == {
        "ascending": "true", "limit": "50", "verb": "http://adlnet.gov/expapi/verbs/registered"}


@pytest.mark.parametrize(("more", "message"), [
    ("https://elsewhere.example.net/xAPI/statements?page=2",
     "https://lrs.example.org/xAPI: 'more' points to another server "
     "('https://elsewhere.example.net/xAPI/statements?page=2'); not followed"),
    ("/xAPI/statements?page=1", "the LRS sent the same 'more' link twice"),
])
def test_a_foreign_or_repeated_more_link_is_not_followed(ledger: Ledger, more: str,
                                                        message: str) -> None:
    server = ScriptedLrs(page([statement("s1", "2020-11-01T10:00:00Z")], more=more),
                  page([], more=more))
    with pytest.raises(LrsError, match=re.escape(message)):
        server.pull(ledger)
    assert emails(ledger) == ["ann@example.org"]  # what was read is recorded


def test_an_endless_chain_of_pages_stops_at_the_bound(ledger: Ledger) -> None:
    server = ScriptedLrs(*[page([], more=f"/xAPI/statements?page={n}") for n in range(2, 5)])
    with pytest.raises(LrsError, match="more than 3 pages in one pull; stopped"):
        server.pull(ledger, max_pages=3)
    assert len(server.requests) == 3


def test_an_answer_that_is_not_json_keeps_the_cursor(ledger: Ledger) -> None:
    ledger.set_meta(CURSOR, "2020-10-01T00:00:00Z")
    server = ScriptedLrs(answer(200, text="<html>login</html>"))
    with pytest.raises(LrsError, match=r"statements: the answer is not JSON \("):
        server.pull(ledger)
    assert ledger.meta(CURSOR) == "2020-10-01T00:00:00Z"
    wrong = ScriptedLrs(answer(200, json={"hello": "world"}))
    with pytest.raises(LrsError, match="the answer holds no statements list; is "
                                       "https://lrs.example.org/xAPI the xAPI endpoint?"):
        wrong.pull(ledger)


def test_a_failure_that_is_no_ldmail_error_is_still_one_line() -> None:
    assert pull_failure(LrsError("the LRS said no")) == "the LRS said no"
    assert pull_failure(RuntimeError("broken\n  in   two lines")) == \
        "RuntimeError: 'broken in two lines'"
