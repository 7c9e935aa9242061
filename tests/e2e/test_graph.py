"""`ldmail send` with `transport.kind: graph`: every message posted to Microsoft Graph's
sendMail as MIME (tests/e2e/ms_standin.py stands in for Graph and Entra ID on loopback), intact,
exactly once through throttling, and every answer mapped to the ledger as SMTP's are.
"""

from __future__ import annotations

import os
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ..projects import BACKOFF, LEDGER, NOW, PEOPLE, edit_yaml, iso, write_people
from .conftest import Cli, summary_line
from .ms_standin import (
    CLIENT,
    GRAPH_SCOPE,
    SECRET_ENV,
    TENANT,
    MsStandin,
    Reply,
    app_certificate,
    oauth2_block,
    trust,
)
from .ms_standin import serve as serve_standin
from .smtp_server import ledger_rows, send

SENDER = "learning@example.org"


@pytest.fixture
def standin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[MsStandin]:
    yield from serve_standin(tmp_path, monkeypatch)


def use_graph(project: Path, standin: MsStandin, **extra: Any) -> None:
    """The scaffold's five PEOPLE, no holdout, a calendar invite on the first step, an https
    unsubscribe page, sending through the stand-in's Graph."""
    write_people(project, PEOPLE)

    def campaign(c: dict[str, Any]) -> None:
        c.update(holdout="0%")
        c["steps"][0]["calendar"] = {"title": "Weekly learning moment", "weekday": "fri",
                                     "time": "15:00", "duration": "60m"}

    edit_yaml(project / "campaigns" / "welcome.yaml", campaign)
    oauth2 = extra.pop("oauth2", None) or oauth2_block(standin)
    edit_yaml(project / "ldmail.yaml", lambda s: s.update(
        unsubscribe={"mailto": "unsubscribe@example.org",
                     "url": "https://learning.example.org/unsubscribe"},
        transport={"kind": "graph", "graph_url": standin.base, "oauth2": oauth2, **extra}))


def rows(project: Path) -> dict[str, dict[str, Any]]:
    return {r["email"]: r for r in ledger_rows(
        project, "SELECT email, state, attempts, error, next_attempt_at, message_id "
        "FROM messages WHERE step = 'hello'")}


def test_graph_delivers_intact_mime_once_each_through_a_429(
        project: Path, cli: Cli, standin: MsStandin) -> None:
    use_graph(project, standin)
    standin.sendmail_replies("bob@example.org", Reply(
        429, {"Retry-After": "1"}, {"error": {"code": "ApplicationThrottled",
                                              "message": "Over its limit."}}))

    result = cli("--verbose", "send", "--project", project, "--now", NOW.isoformat())

    assert result.exit_code == 0, result.output
    assert "lane 0 (graph)" in result.stderr
    for secret in [os.environ[SECRET_ENV], *standin.tokens]:  # not in output, log or ledger
        assert secret not in result.output
        assert secret.encode() not in (project / LEDGER).read_bytes()
    assert summary_line(result.stdout).startswith("sent 5 ")
    assert "messages went to Microsoft Graph at" in result.stdout
    ledger = rows(project)
    assert {email: r["state"] for email, r in ledger.items()} == dict.fromkeys(PEOPLE, "sent")
    assert all(r["attempts"] == 1 for r in ledger.values())
    # Bob's message was posted twice (429, then 202) and accepted once; nobody's twice.
    assert [p.status for p in standin.posts if "bob@" in str(p.message["To"])] == [429, 202]
    accepted = standin.accepted()
    ids = Counter(str(p.message["Message-ID"]) for p in accepted)
    assert sorted(ids) == sorted(r["message_id"] for r in ledger.values())
    assert set(ids.values()) == {1}
    assert {p.user for p in accepted} == {SENDER}
    assert {p.content_type for p in accepted} == {"text/plain"}
    assert len(standin.token_requests) == 1
    assert standin.token_requests[0]["scope"] == GRAPH_SCOPE
    for post in accepted:  # the MIME arrived as ldmail built it
        message = post.message
        assert message["From"].addresses[0].addr_spec == SENDER
        assert "<mailto:unsubscribe@example.org" in str(message["List-Unsubscribe"])
        assert "https://learning.example.org/unsubscribe" in str(message["List-Unsubscribe"])
        assert str(message["List-Unsubscribe-Post"]) == "List-Unsubscribe=One-Click"
        assert message["X-Ldmail-Campaign"] == "welcome"
        types = [part.get_content_type() for part in message.walk()]
        assert {"text/plain", "text/html", "text/calendar"} <= set(types), types
        calendar = next(p for p in message.walk() if p.get_content_type() == "text/calendar")
        invite = calendar.get_content()
        assert "BEGIN:VEVENT" in invite and "Weekly learning moment" in invite
        text = message.get_body(("plain",))
        html = message.get_body(("html",))
        assert text is not None and html is not None
        assert "<html" in html.get_content().lower()


def test_throttling_longer_than_the_deadline_defers_the_message_like_an_smtp_4xx(
        project: Path, cli: Cli, standin: MsStandin) -> None:
    use_graph(project, standin, deadline="5s")
    standin.sendmail_replies("bob@example.org", Reply(
        503, {"Retry-After": "600"}, {"error": {"code": "ServiceUnavailable",
                                                "message": "Service Unavailable"}}))

    result = send(cli, project, NOW)

    # Bob's message is deferred as after a 4xx; the others wait, unclaimed, for the next run
    # (Graph would only throttle them too). The run stopped early, so it exits 1.
    assert result.exit_code == 1, result.output
    assert summary_line(result.stdout).startswith("sent 1 · waiting for send window 0 · "
                                                  "retry later 1 · failed 0")
    assert "stopped early: transport unavailable: graph 503 ServiceUnavailable: Service " \
        "Unavailable; Retry-After 600 s is past transport.deadline" in result.stderr
    ledger = rows(project)
    bob = ledger["bob@example.org"]
    assert bob["state"] == "deferred" and bob["attempts"] == 1
    assert bob["next_attempt_at"] == iso(NOW + BACKOFF)
    assert "graph 503 ServiceUnavailable" in bob["error"] and "Retry-After 600 s" in bob["error"]
    assert [r["state"] for r in ledger.values()].count("sent") == 1
    assert [p.status for p in standin.posts] == [202, 503]

    later = send(cli, project, NOW + BACKOFF)  # the next run after the back-off sends it all
    assert later.exit_code == 0, later.output
    assert {r["state"] for r in rows(project).values()} == {"sent"}
    accepted = Counter(str(p.message["To"]) for p in standin.accepted())
    assert len(accepted) == 5 and set(accepted.values()) == {1}


@pytest.mark.parametrize(("status", "code"), [(400, "ErrorInvalidRecipients"),
                                              (403, "ErrorAccessDenied"),
                                              (404, "ErrorInvalidUser")])
def test_a_refusal_fails_that_message_only_like_an_smtp_5xx(
        project: Path, cli: Cli, standin: MsStandin, status: int, code: str) -> None:
    use_graph(project, standin)
    standin.sendmail_replies("bob@example.org", Reply(
        status, body={"error": {"code": code, "message": "Refused by the stand-in."}}))

    result = send(cli, project, NOW)

    assert result.exit_code == 1  # a failure in this run
    assert "failed 1" in summary_line(result.stdout)
    ledger = rows(project)
    assert ledger["bob@example.org"]["state"] == "failed"
    assert ledger["bob@example.org"]["error"] == f"graph {status} {code}: Refused by the stand-in."
    assert sorted(e for e, r in ledger.items() if r["state"] == "sent") == \
        sorted(set(PEOPLE) - {"bob@example.org"})


def test_an_expired_token_is_refreshed_once_and_a_refused_one_stops_the_run_in_one_line(
        project: Path, cli: Cli, standin: MsStandin) -> None:
    use_graph(project, standin)
    original = standin.valid
    calls = 0

    def revoke_once(token: str, scope: str) -> bool:
        nonlocal calls
        calls += 1
        if calls == 3:  # Graph no longer takes the run's token from the third message on
            standin.revoke_all()
        return original(token, scope)

    standin.valid = revoke_once  # type: ignore[method-assign]
    first = send(cli, project, NOW)
    assert first.exit_code == 0, first.output
    assert summary_line(first.stdout).startswith("sent 5 ")
    assert len(standin.token_requests) == 2  # once for the run, once after the 401
    assert [p.status for p in standin.posts].count(401) == 1
    standin.valid = original  # type: ignore[method-assign]

    # Now every token is refused (Mail.Send consent revoked, say): one line, the run stops.
    standin.valid = lambda token, scope: False  # type: ignore[method-assign]
    second = send(cli, project, NOW.replace(day=4, hour=10))  # the second step is due

    assert second.exit_code == 1
    assert "Traceback" not in second.output
    errors = [line for line in second.output.splitlines() if line.startswith("error ")]
    assert errors == [
        f"error graph {standin.base}: Microsoft Graph refused the token of client {CLIENT} in "
        f"tenant {TENANT} (graph 401 InvalidAuthenticationToken: Access token has expired or "
        "is not yet valid.), a fresh one too; in Entra ID check the app registration, that it "
        "has the application permission Mail.Send (Microsoft Graph) granted with admin "
        f"consent, and that an application access policy, if any, includes {SENDER}; the run "
        "stopped and the messages not sent wait"]
    pending = ledger_rows(project, "SELECT state FROM messages WHERE step = 'first-course'")
    assert pending and {r["state"] for r in pending} <= {"deferred"}
    assert not any(token in second.output for token in standin.tokens)


def test_an_app_certificate_instead_of_a_secret(
        project: Path, cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    key_file, thumbprint, der = app_certificate(tmp_path)
    (project / "secrets").mkdir()
    pem = project / "secrets" / "ldmail-app.pem"
    pem.write_bytes(key_file.read_bytes())
    monkeypatch.delenv(SECRET_ENV, raising=False)
    with MsStandin(tmp_path / "standin", certificate_der=der) as standin:
        trust(standin, monkeypatch)
        use_graph(project, standin, oauth2={
            "tenant_id": TENANT, "client_id": CLIENT, "authority": standin.base,
            "certificate": "secrets/ldmail-app.pem", "thumbprint": thumbprint})

        result = send(cli, project, NOW)

        assert result.exit_code == 0, result.output
        assert len(standin.accepted()) == 5
        request = standin.token_requests[0]
        assert "client_secret" not in request and request["client_assertion"].count(".") == 2
    assert b"PRIVATE KEY" not in (project / LEDGER).read_bytes()


def test_a_stop_ends_a_retry_after_wait_at_once(standin: MsStandin) -> None:
    from ldmail.delivery.transport.base import Pacer
    from ldmail.delivery.transport.graph import open_graph
    from ldmail.project.models import Transport

    settings = Transport(kind="graph", graph_url=standin.base, oauth2=oauth2_block(standin))
    stop = threading.Event()
    [lane] = open_graph(settings, Pacer(None), stop, None)
    standin.sendmail_replies("ann@example.org", Reply(429, {"Retry-After": "60"}))
    message = b"To: ann@example.org\r\nFrom: learning@example.org\r\nSubject: hi\r\n\r\nhi\r\n"
    lane.open()
    threading.Timer(0.3, stop.set).start()
    started = time.monotonic()
    outcome = lane.send(message, SENDER, "ann@example.org", "label")
    lane.close()
    assert outcome.status == "stopped"  # nothing was taken: the ledger puts it back
    assert time.monotonic() - started < 5
    assert [p.status for p in standin.posts] == [429]


@pytest.mark.parametrize("after", ["0", "-5", "nan", "", "soon", "1e12"])
def test_any_retry_after_posts_a_bounded_number_of_times(
        project: Path, cli: Cli, standin: MsStandin, after: str) -> None:
    """A 429 that never ends, whatever its Retry-After says (zero, negative, not a number,
    missing, unreadable, absurd): a back-off from one second and transport.deadline bound
    the posts, and the message is deferred, never unknown."""
    use_graph(project, standin, deadline="6s")
    headers = {"Retry-After": after} if after else {}
    standin.sendmail_replies("ann@example.org", *[Reply(429, headers)] * 1000)

    started = time.monotonic()
    result = send(cli, project, NOW)

    assert time.monotonic() - started < 30
    assert "Traceback" not in result.output
    posts = [p.status for p in standin.posts if "ann@" in str(p.message["To"])]
    assert 1 <= len(posts) <= 5 and set(posts) == {429}, posts  # back-off 1, 2, 4 s < 6 s
    ann = rows(project)["ann@example.org"]
    assert ann["state"] == "deferred" and "past transport.deadline" in ann["error"]
    assert "stopped early: transport unavailable" in result.stderr


def test_a_trickling_graph_answer_ends_at_the_timeout_and_leaves_the_message_unknown(
        project: Path, cli: Cli, standin: MsStandin) -> None:
    use_graph(project, standin, timeout="3s", deadline="20s")
    standin.sendmail_replies("ann@example.org", Reply(202, trickle=True))

    started = time.monotonic()
    result = send(cli, project, NOW)

    assert time.monotonic() - started < 25  # 3 s for Ann's post, and the others' time
    assert "Traceback" not in result.output
    ledger = rows(project)
    assert ledger["ann@example.org"]["state"] == "unknown"
    assert "no complete answer within 3 s" in ledger["ann@example.org"]["error"]
    assert sorted(e for e, r in ledger.items() if r["state"] == "sent") == \
        sorted(set(PEOPLE) - {"ann@example.org"})


def test_a_storm_of_5xx_stops_the_run_after_three_and_leaves_the_rest_due(
        project: Path, cli: Cli, standin: MsStandin) -> None:
    """Graph answers 500 to everything: three messages are `unknown` (Graph may have taken
    them), and the run stops there instead of posting every due message into the storm."""
    use_graph(project, standin)
    for email in PEOPLE:
        standin.sendmail_replies(email, Reply(500, body={"error": {
            "code": "InternalServerError", "message": "Try later."}}))

    result = send(cli, project, NOW)

    assert result.exit_code == 1
    assert "Traceback" not in result.output
    assert "no clear answer 3 times in a row" in result.stderr
    assert [p.status for p in standin.posts] == [500, 500, 500]
    states = Counter(r["state"] for r in rows(project).values())
    # The fourth was claimed when the run stopped: deferred, never posted; the fifth waits.
    assert states == {"unknown": 3, "deferred": 1}, states

    standin.forget_replies()  # Graph mends: the next run posts the rest, the unknown stay
    later = send(cli, project, NOW + BACKOFF)
    after = Counter(r["state"] for r in rows(project).values())
    assert after == {"unknown": 3, "sent": 2}, (after, later.output)
