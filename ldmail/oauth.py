"""OAuth2 access tokens for sending mail, now that Microsoft 365 turns password SMTP AUTH off.

Two sources, both set in ldmail.yaml's `transport.oauth2` block:

- Microsoft Entra ID's client-credentials flow through msal: the app registration's tenant and
  client id, and its client secret (read from an environment variable) or a certificate.
- `token_command`: a command, run without a shell, whose output is the token (like msmtp's
  passwordeval), for Google Workspace or any other provider.

One `Tokens` hands the same token to every connection of a run until shortly before it
expires; a token a server refuses is replaced once (`refresh`). No secret (client secret,
token) is ever logged, put in an exception's text or on a command line: `redact` removes
any that a server's reply might echo.
"""

from __future__ import annotations

import logging
import os
import shlex
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import TokenRefused, TransportFatal, TransportUnavailable

if TYPE_CHECKING:
    from .models import OAuth2
    from .models import Transport as TransportSettings

log = logging.getLogger("ldmail.oauth")

SMTP_SCOPE = "https://outlook.office365.com/.default"
GRAPH_SCOPE = "https://graph.microsoft.com/.default"
CERTIFICATE_SETTING = "transport.oauth2.certificate in ldmail.yaml"
# A token_command's token says nothing of its lifetime: it is asked again this often.
COMMAND_TOKEN_SECONDS = 300.0
# A token is replaced this long before it expires (or after 90% of a shorter lifetime).
EARLY = 300.0

Resolve = Callable[[str, str], Path]
Fetch = Callable[[bool], tuple[str, float]]  # (forget any cached token) -> (token, seconds)


class Tokens:
    """One access token for every connection of a run, renewed shortly before it expires.

    Thread-safe: the lanes of a run share it. `who` names the credential in messages
    ("client … in tenant …"), never its secret.
    """

    def __init__(self, fetch: Fetch, who: str, entra: OAuth2 | None,
                 secrets: list[str] | None = None) -> None:
        self._fetch = fetch
        self.who = who
        self.entra = entra  # the app registration's settings; None for a token_command
        self._secrets = [s for s in secrets or [] if s]
        self._token: str | None = None
        self._good_until = 0.0
        self._lock = threading.Lock()
        self.fetches = 0

    def get(self) -> tuple[str, bool]:
        """The current token, and whether it was fetched just now."""
        with self._lock:
            if self._token is not None and time.monotonic() < self._good_until:
                return self._token, False
            return self._renew(forget=False), True

    def refresh(self, refused: str) -> str:
        """A new token in place of one a server refused (another lane may have one already)."""
        with self._lock:
            if self._token is not None and self._token != refused and \
                    time.monotonic() < self._good_until:
                return self._token
            return self._renew(forget=True)

    def _renew(self, forget: bool) -> str:
        started = time.monotonic()
        token, lifetime = self._fetch(forget)
        self.fetches += 1
        self._secrets.append(token)
        self._token = token
        self._good_until = started + lifetime - min(EARLY, lifetime / 10)
        log.debug("new access token for %s, valid %d s", self.who, int(lifetime))
        return token

    def redact(self, text: str) -> str:
        """`text` without any secret this source knows (a server might echo one)."""
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, "[redacted]")
        return text

    # -- what a refusal tells the user ---------------------------------------------------

    def smtp_refused(self, where: str, user: str, reply: str) -> TokenRefused:
        reply = self.redact(reply)
        if self.entra is None:
            return TokenRefused(
                f"smtp {where}: the server refused the token from token_command for {user} "
                f"({reply}); check that the command prints a current access token for {user} "
                "with the mail scope (Google Workspace: https://mail.google.com/); nothing "
                "was sent")
        return TokenRefused(
            f"smtp {where}: the server refused the OAuth2 token of {self.who} for {user} "
            f"({reply}); in Entra ID check the app registration, that it has the permission "
            "SMTP.SendAsApp (Office 365 Exchange Online) granted with admin consent, that its "
            "service principal is registered in Exchange Online (New-ServicePrincipal) and "
            f"given Add-MailboxPermission on {user}, and that SMTP AUTH is enabled on that "
            "mailbox; nothing was sent")

    def graph_refused(self, where: str, sender: str, reply: str) -> TokenRefused:
        reply = self.redact(reply)
        if self.entra is None:
            return TokenRefused(
                f"graph {where}: Microsoft Graph refused the token from token_command "
                f"({reply}), a fresh one too; check that the command prints a Graph token "
                "with Mail.Send; the run stopped and the messages not sent wait")
        return TokenRefused(
            f"graph {where}: Microsoft Graph refused the token of {self.who} ({reply}), a "
            "fresh one too; in Entra ID check the app registration, that it has the "
            "application permission Mail.Send (Microsoft Graph) granted with admin consent, "
            f"and that an application access policy, if any, includes {sender}; the run "
            "stopped and the messages not sent wait")


def token_source(settings: TransportSettings, scope: str, resolve: Resolve | None = None
                 ) -> Tokens:
    """The tokens of one run for `scope` (SMTP_SCOPE or GRAPH_SCOPE), from the settings'
    oauth2 block; a missing secret or certificate stops the run before anything is claimed."""
    oauth = settings.oauth2
    if oauth is None:
        raise TransportFatal("transport needs an oauth2 block for tokens; see the README's "
                             "'Sending from Microsoft 365'")
    timeout = settings.timeout.total_seconds()
    if oauth.token_command is not None:
        command = _Command(oauth.token_command, timeout)
        return Tokens(command, "the token from token_command", None)
    certificate = None
    if oauth.certificate is not None:
        certificate = resolve(oauth.certificate, CERTIFICATE_SETTING) if resolve else \
            Path(oauth.certificate)
    entra = _Entra(oauth, scope, certificate, timeout)
    return Tokens(entra, f"client {oauth.client_id} in tenant {oauth.tenant_id}", oauth,
                  [entra.secret])


class _Command:
    """token_command: argv from shlex.split, no shell; its output is never logged."""

    def __init__(self, command: str, timeout: float) -> None:
        self.argv = shlex.split(command)
        self.timeout = timeout

    def __call__(self, forget: bool) -> tuple[str, float]:
        name = self.argv[0] if self.argv else "token_command"
        try:
            done = subprocess.run(self.argv, capture_output=True, stdin=subprocess.DEVNULL,
                                  timeout=self.timeout, check=False)
        except FileNotFoundError:
            raise TransportFatal(f"token_command: {name} not found; give the full path of "
                                 "the program in transport.oauth2.token_command") from None
        except subprocess.TimeoutExpired:
            raise TransportUnavailable(f"token_command {name} gave no token within "
                                       f"{self.timeout:g} s (transport.timeout)") from None
        except OSError as exc:
            raise TransportFatal(f"token_command: cannot run {name} ({exc.strerror})") \
                from None
        lines = [line.strip() for line in done.stdout.decode("utf-8", "replace").splitlines()]
        token = next((line for line in lines if line), "")
        if done.returncode != 0:
            errors = [line.strip() for line in
                      done.stderr.decode("utf-8", "replace").splitlines() if line.strip()]
            said = errors[-1][:200] if errors else ""
            if token:
                said = said.replace(token, "[redacted]")
            raise TokenRefused(f"token_command {name} exited with status {done.returncode}"
                               f"{': ' + said if said else ''}; run it by hand to see why (a "
                               "sign-in that expired, say); nothing was sent")
        if not token:
            raise TokenRefused(f"token_command {name} printed no token; it must print the "
                               "access token on its first line; nothing was sent")
        if not token.isascii() or not token.isprintable() or " " in token:
            raise TokenRefused(f"token_command {name} printed something that is not an "
                               "access token (it must be the token alone on the first line); "
                               "nothing was sent")
        return token, COMMAND_TOKEN_SECONDS


class _Entra:
    """Microsoft Entra ID's client-credentials flow through msal."""

    def __init__(self, oauth: OAuth2, scope: str, certificate: Path | None,
                 timeout: float) -> None:
        self.oauth, self.scope, self.timeout = oauth, scope, timeout
        self.secret = ""
        self.credential: str | dict[str, str]
        if oauth.client_secret_env is not None:
            self.secret = os.environ.get(oauth.client_secret_env, "")
            if not self.secret:
                raise TransportFatal(
                    f"oauth2 client {oauth.client_id} needs its client secret in the "
                    f"environment variable {oauth.client_secret_env}; set it (never in a file "
                    "or on the command line)")
            self.credential = self.secret
        else:
            assert certificate is not None and oauth.thumbprint is not None
            try:
                pem = certificate.read_text(encoding="ascii")
            except (OSError, UnicodeDecodeError) as exc:
                why = exc.strerror if isinstance(exc, OSError) else "not a PEM text file"
                raise TransportFatal(f"{oauth.certificate}: cannot read the app's certificate "
                                     f"({why})") from None
            self.credential = {"private_key": pem, "thumbprint": oauth.thumbprint}
        self.app: Any = None
        self.authority = f"{oauth.authority}/{oauth.tenant_id}"

    def __call__(self, forget: bool) -> tuple[str, float]:
        import msal
        import requests

        oauth = self.oauth
        try:
            if self.app is None:
                self.app = msal.ConfidentialClientApplication(
                    oauth.client_id, authority=self.authority, client_credential=self.credential,
                    # No look-up of the authority at login.microsoftonline.com: it is the
                    # configured one (a national cloud's, say) and is asked directly.
                    instance_discovery=False, timeout=self.timeout,
                    token_cache=msal.TokenCache())
            elif forget:
                # msal has no "force refresh" for this flow: drop its cached token instead.
                cache = self.app.token_cache
                for entry in list(cache.search(msal.TokenCache.CredentialType.ACCESS_TOKEN)):
                    cache.remove_at(entry)
        except requests.RequestException as exc:
            raise TransportUnavailable(f"cannot reach {self.authority} for a token "
                                       f"({type(exc).__name__})") from None
        except ValueError:
            raise TokenRefused(
                f"{oauth.authority} does not know tenant {oauth.tenant_id} (asked for client "
                f"{oauth.client_id}); check tenant_id: the Directory (tenant) ID on the app "
                "registration's Overview page in Entra ID; nothing was sent") from None
        try:
            result = self.app.acquire_token_for_client(scopes=[self.scope])
        except requests.RequestException as exc:
            raise TransportUnavailable(f"cannot reach {self.authority} for a token "
                                       f"({type(exc).__name__})") from None
        except ValueError as exc:
            what = "certificate" if oauth.certificate else "client secret"
            raise TokenRefused(f"oauth2 client {oauth.client_id} in tenant {oauth.tenant_id}: "
                               f"msal cannot use the {what} ({_first_line(str(exc))}); "
                               "nothing was sent") from None
        if isinstance(result, dict) and result.get("access_token"):
            return str(result["access_token"]), float(result.get("expires_in") or 3599)
        raise TokenRefused(self._refusal(result if isinstance(result, dict) else {}))

    def _refusal(self, result: dict[str, Any]) -> str:
        oauth = self.oauth
        error = str(result.get("error") or "no token")
        # Entra's description is sentences and then trace lines: the first sentence says it.
        said = _first_line(str(result.get("error_description") or "")).split(". ")[0]
        if self.secret:
            said = said.replace(self.secret, "[redacted]")
        credential = (f"the client secret in {oauth.client_secret_env} is current (its Value, "
                      "not its Secret ID)" if oauth.client_secret_env else
                      f"the certificate with thumbprint {oauth.thumbprint} is uploaded to it")
        permission = "SMTP.SendAsApp (Office 365 Exchange Online)" if self.scope == SMTP_SCOPE \
            else "Mail.Send (Microsoft Graph, application)"
        return (f"Microsoft Entra ID refused a token to client {oauth.client_id} in tenant "
                f"{oauth.tenant_id}: {error}{' (' + said + ')' if said else ''}; in Entra ID "
                "check the app registration (this client id in this tenant), that "
                f"{credential}, and that {permission} is granted with admin consent; nothing "
                "was sent")


def _first_line(text: str, limit: int = 200) -> str:
    line = next((part.strip() for part in text.splitlines() if part.strip()), "")
    return line if len(line) <= limit else line[:limit - 1] + "…"


def xoauth2(user: str, token: str) -> Callable[..., str]:
    """smtplib's authobject for AUTH XOAUTH2: the SASL string on the server's first (empty)
    challenge, then an empty line in answer to an error challenge (so the server replies 535).
    """
    calls = 0

    def answer(challenge: bytes | None = None) -> str:
        nonlocal calls
        calls += 1
        return f"user={user}\x01auth=Bearer {token}\x01\x01" if calls == 1 else ""

    return answer
