"""ldmail.delivery.transport.oauth promises OAuth2 access tokens for SMTP and Graph: one token
for every connection of a run, renewed shortly before it expires (EARLY seconds, or after 90%
of a shorter lifetime); a refused token replaced once, even when lanes race; no secret in any
message (`redact`); a token_command read as a program and its arguments and its output
checked to be a token; Microsoft Entra ID's client-credentials flow with the secret from the
environment, its refusals explained in one line; and AUTH XOAUTH2's SASL string.

No process is run and nothing goes over the network: the token_command's output is checked as
the command would print it, and msal's client is a stand-in.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import msal
import pydantic
import pytest
import requests

from ldmail.delivery.transport import oauth
from ldmail.delivery.transport.oauth import (
    CERTIFICATE_SETTING,
    GRAPH_SCOPE,
    SMTP_SCOPE,
    Tokens,
    token_source,
    xoauth2,
)
from ldmail.errors import TokenRefused, TransportFatal, TransportUnavailable
from ldmail.project.models import OAuth2, Transport

SECRET_ENV = "LDMAIL_TEST_CLIENT_SECRET"
SECRET = "s3cret~value"


class Clock:
    """oauth's monotonic clock, moved by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    clock = Clock()
    monkeypatch.setattr(oauth, "time", SimpleNamespace(monotonic=clock.monotonic))
    return clock


class Source:
    """A fetch that hands out tok-1, tok-2, ... with one lifetime, and notes `forget`."""

    def __init__(self, lifetime: float = 3600.0) -> None:
        self.lifetime = lifetime
        self.forgets: list[bool] = []

    def __call__(self, forget: bool) -> tuple[str, float]:
        self.forgets.append(forget)
        return f"tok-{len(self.forgets)}", self.lifetime


def test_one_token_serves_every_connection_until_shortly_before_it_expires(
        clock: Clock) -> None:
    tokens = Tokens(Source(3600), "the token from token_command", None)
    assert tokens.get() == ("tok-1", True)
    clock.now += 3600 - oauth.EARLY - 1
    assert tokens.get() == ("tok-1", False)
    clock.now += 2
    assert tokens.get() == ("tok-2", True)
    assert tokens.fetches == 2


def test_a_short_lived_token_is_renewed_after_ninety_percent_of_its_life(clock: Clock) -> None:
    tokens = Tokens(Source(100), "the token from token_command", None)
    tokens.get()
    clock.now += 89
    assert tokens.get() == ("tok-1", False)
    clock.now += 2
    assert tokens.get() == ("tok-2", True)


def test_a_refused_token_is_replaced_once_even_when_lanes_race(clock: Clock) -> None:
    source = Source()
    tokens = Tokens(source, "the token from token_command", None)
    stale, _ = tokens.get()
    assert tokens.refresh(stale) == "tok-2"
    assert tokens.refresh(stale) == "tok-2"  # a second lane with the same refused token
    assert source.forgets == [False, True]
    assert tokens.refresh("tok-2") == "tok-3"


def test_no_secret_or_token_survives_in_a_refusal(clock: Clock) -> None:
    tokens = Tokens(Source(), "the token from token_command", None, secrets=[SECRET, ""])
    token, _ = tokens.get()
    assert tokens.redact(f"said {token} and {SECRET}") == "said [redacted] and [redacted]"
    refused = str(tokens.smtp_refused("smtp.example.org:587", "learning@example.org",
                                      f"535 5.7.3 bad token {token}"))
    assert token not in refused and "[redacted]" in refused
    assert "token_command" in refused and "https://mail.google.com/" in refused


def test_a_refusal_of_an_entra_token_says_what_to_check_in_entra() -> None:
    app = OAuth2(tenant_id="contoso.onmicrosoft.com", client_id="app-1",
                 client_secret_env=SECRET_ENV)
    tokens = Tokens(Source(), "client app-1 in tenant contoso.onmicrosoft.com", app)
    smtp = str(tokens.smtp_refused("smtp.office365.com:587", "learning@example.org", "535"))
    assert "client app-1 in tenant contoso.onmicrosoft.com" in smtp and \
        "SMTP.SendAsApp" in smtp and "nothing was sent" in smtp
    graph = str(tokens.graph_refused("https://graph.microsoft.com", "learning@example.org",
                                     "graph 401"))
    assert "Mail.Send" in graph and "learning@example.org" in graph


def test_token_source_needs_an_oauth2_block() -> None:
    with pytest.raises(TransportFatal, match="needs an oauth2 block"):
        token_source(Transport(kind="smtp", host="smtp.example.org"), SMTP_SCOPE)


def test_a_token_command_is_not_run_before_a_token_is_needed() -> None:
    settings = Transport(kind="graph", oauth2=OAuth2(token_command="/bin/false"))
    tokens = token_source(settings, GRAPH_SCOPE)
    assert tokens.fetches == 0 and tokens.entra is None
    assert tokens.who == "the token from token_command"


def test_a_token_command_with_broken_quotes_is_refused_when_the_settings_are_read() -> None:
    with pytest.raises(pydantic.ValidationError, match="token_command cannot be read as a "
                                                       "program and its arguments"):
        OAuth2(token_command='get-token --account "learning')


def test_a_token_command_is_split_into_a_program_and_its_arguments() -> None:
    command = oauth._Command('/opt/bin/get-token --account "Learning Team" -q', 5.0)
    assert command.argv == ["/opt/bin/get-token", "--account", "Learning Team", "-q"]
    assert command.name == "/opt/bin/get-token"


@pytest.mark.parametrize(("output", "problem"), [
    (b"", "printed no token"),
    (b"\n  \n", "printed no token"),
    (b"two words\n", "is not an access token"),
    (b"caf\xc3\xa9\n", "is not an access token"),
    (b"x" * (oauth.TOKEN_LIMIT + 1) + b"\n", "longer than an access token"),
])
def test_what_a_token_command_prints_must_be_a_token_and_is_never_quoted(
        output: bytes, problem: str) -> None:
    command = oauth._Command("get-token", 5.0)
    with pytest.raises(TokenRefused, match=problem) as refused:
        command._token(output)
    assert "word" not in str(refused.value) and "caf" not in str(refused.value)


def test_the_first_non_blank_line_a_token_command_prints_is_the_token() -> None:
    command = oauth._Command("get-token", 5.0)
    assert command._token(b"\n  ya29.a0Af-token_value  \r\nwarning: cached\n") == \
        "ya29.a0Af-token_value"


def entra(**extra: Any) -> Transport:
    app: dict[str, Any] = {"tenant_id": "contoso.onmicrosoft.com", "client_id": "app-1",
                           "client_secret_env": SECRET_ENV, **extra}
    return Transport(kind="graph", oauth2=OAuth2(**app))


def test_an_entra_client_secret_comes_from_the_environment_only(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(SECRET_ENV, raising=False)
    with pytest.raises(TransportFatal, match=f"needs its client secret in the environment "
                                             f"variable {SECRET_ENV}"):
        token_source(entra(), GRAPH_SCOPE)


def test_an_unreadable_certificate_stops_the_run_before_anything_is_claimed(
        tmp_path: Path) -> None:
    asked: list[tuple[str, str]] = []

    def resolve(path: str, setting: str) -> Path:
        asked.append((path, setting))
        return tmp_path / path

    settings = entra(client_secret_env=None, certificate="app.pem", thumbprint="A" * 40)
    with pytest.raises(TransportFatal, match="app.pem: cannot read the app's certificate"):
        token_source(settings, GRAPH_SCOPE, resolve)
    assert asked == [("app.pem", CERTIFICATE_SETTING)]


class FakeApp:
    """msal.ConfidentialClientApplication's stand-in: scripted results, a cache to clear."""

    made: list[dict[str, Any]] = []
    results: list[dict[str, Any] | Exception] = []

    def __init__(self, client_id: str, **options: Any) -> None:
        FakeApp.made.append({"client_id": client_id, **options})
        self.cached = ["an access token"]
        self.token_cache = self
        self.scopes: list[list[str]] = []

    def search(self, kind: object) -> list[str]:
        return list(self.cached)

    def remove_at(self, entry: str) -> None:
        self.cached.remove(entry)

    def acquire_token_for_client(self, scopes: list[str]) -> dict[str, Any]:
        self.scopes.append(scopes)
        result = FakeApp.results.pop(0)
        if isinstance(result, Exception):
            raise result
        return result


@pytest.fixture
def fake_msal(monkeypatch: pytest.MonkeyPatch) -> type[FakeApp]:
    monkeypatch.setenv(SECRET_ENV, SECRET)
    monkeypatch.setattr(FakeApp, "made", [])
    monkeypatch.setattr(FakeApp, "results", [])
    monkeypatch.setattr(msal, "ConfidentialClientApplication", FakeApp)
    return FakeApp


def test_entra_hands_out_its_token_for_the_scope_asked(fake_msal: type[FakeApp]) -> None:
    fake_msal.results = [{"access_token": "eyJ.entra.1", "expires_in": 3599},
                         {"access_token": "eyJ.entra.2", "expires_in": 3599}]
    tokens = token_source(entra(), SMTP_SCOPE)
    assert tokens.get() == ("eyJ.entra.1", True)
    (made,) = fake_msal.made
    assert made["client_id"] == "app-1" and made["client_credential"] == SECRET
    assert made["authority"] == "https://login.microsoftonline.com/contoso.onmicrosoft.com"
    assert made["instance_discovery"] is False
    assert tokens.refresh("eyJ.entra.1") == "eyJ.entra.2"
    assert len(fake_msal.made) == 1  # one app for the run; its cached token was dropped
    assert tokens.redact(f"x {SECRET} eyJ.entra.2") == "x [redacted] [redacted]"


def test_an_entra_refusal_is_one_line_naming_the_client_and_never_the_secret(
        fake_msal: type[FakeApp]) -> None:
    fake_msal.results = [{"error": "invalid_client", "error_description":
                          f"AADSTS7000215: Invalid client secret provided {SECRET}. Ensure "
                          "the secret being sent is correct.\r\nTrace ID: 1234"}]
    with pytest.raises(TokenRefused) as refused:
        token_source(entra(), GRAPH_SCOPE).get()
    text = str(refused.value)
    assert text.startswith("Microsoft Entra ID refused a token to client app-1 in tenant "
                           "contoso.onmicrosoft.com: invalid_client (AADSTS7000215: Invalid "
                           "client secret provided [redacted]); ")
    assert SECRET not in text and "\n" not in text and "Trace ID" not in text
    assert "Mail.Send (Microsoft Graph, application)" in text


def test_entra_out_of_reach_stops_the_run_as_unavailable(fake_msal: type[FakeApp]) -> None:
    fake_msal.results = [requests.ConnectionError("no route to host")]
    with pytest.raises(TransportUnavailable, match="cannot reach https://login"
                       r".microsoftonline.com/contoso.onmicrosoft.com for a token "
                       r"\(ConnectionError\)"):
        token_source(entra(), GRAPH_SCOPE).get()


def test_xoauth2_answers_the_first_challenge_with_the_sasl_string_then_nothing() -> None:
    answer = xoauth2("learning@example.org", "tok-1")
    assert answer() == "user=learning@example.org\x01auth=Bearer tok-1\x01\x01"
    assert answer(b'{"status":"400"}') == ""
