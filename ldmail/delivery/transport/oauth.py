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

import contextlib
import logging
import os
import selectors
import shlex
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ...errors import TokenRefused, TransportFatal, TransportUnavailable

if TYPE_CHECKING:
    from ...project.models import OAuth2
    from ...project.models import Transport as TransportSettings

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
        return Tokens(_Command(oauth.token_command, timeout), "the token from token_command",
                      None)
    certificate = None
    if oauth.certificate is not None:
        certificate = resolve(oauth.certificate, CERTIFICATE_SETTING) if resolve else \
            Path(oauth.certificate)
    entra = _Entra(oauth, scope, certificate, timeout)
    return Tokens(entra, f"client {oauth.client_id} in tenant {oauth.tenant_id}", oauth,
                  [entra.secret])


# What a token_command may print: a token is far smaller (Google's and Entra's are 2-4 kB);
# more is not read at all, so a runaway program cannot fill memory.
COMMAND_OUTPUT_LIMIT = 64 * 1024
# The longest line taken as a token: a longer one would fail every message (HTTP 431).
TOKEN_LIMIT = 16 * 1024
# How often a token_command that has not printed its line yet is asked whether it exited.
EXIT_POLL = 0.05
# A fixed hint, never the command's own words: its stderr may hold the token.
COMMAND_HINT = "run it by hand to see why (a sign-in that expired, say); nothing was sent"


class _Command:
    """token_command: argv from shlex.split, no shell, in a process group of its own.

    It is a secret's pipe: its stdout is read up to COMMAND_OUTPUT_LIMIT and checked for a
    plausible token, its stderr is never read (it may echo the token), and on a time-out or
    too much output the whole group (grandchildren too) is killed.
    """

    def __init__(self, command: str, timeout: float) -> None:
        self.argv = shlex.split(command)
        self.timeout = timeout
        self.name = self.argv[0] if self.argv else "token_command"

    def __call__(self, forget: bool) -> tuple[str, float]:
        deadline = time.monotonic() + self.timeout
        process = self._start()
        try:
            output = self._read_stdout(process, deadline)
            status = process.wait(max(deadline - time.monotonic(), 0.0))
        except subprocess.TimeoutExpired:
            raise TransportUnavailable(f"token_command {self.name} gave no token within "
                                       f"{self.timeout:g} s (transport.timeout)") from None
        finally:
            if process.returncode is None:
                _end_group(process)
        if status != 0:
            how = f"was ended by signal {-status}" if status < 0 else \
                f"exited with status {status}"
            raise TokenRefused(f"token_command {self.name} {how}; {COMMAND_HINT}")
        return self._token(output), COMMAND_TOKEN_SECONDS

    def _start(self) -> subprocess.Popen[bytes]:
        try:
            return subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                    stderr=subprocess.DEVNULL, start_new_session=True)
        except FileNotFoundError:
            raise TransportFatal(f"token_command: {self.name} not found; give the full path "
                                 "of the program in transport.oauth2.token_command") from None
        except (OSError, ValueError) as exc:
            why = exc.strerror if isinstance(exc, OSError) else str(exc)
            raise TransportFatal(f"token_command: cannot run {self.name} ({why})") from None

    def _read_stdout(self, process: subprocess.Popen[bytes], deadline: float) -> bytes:
        """Its output up to the first complete non-empty line, or all of it once the command
        has exited or closed its output; TimeoutExpired at the deadline, TokenRefused (the
        group ended) past COMMAND_OUTPUT_LIMIT bytes.

        Not up to end of output: a command that starts a helper in the background (an agent
        that keeps the token cached) leaves it holding stdout open long after the token came.
        """
        assert process.stdout is not None
        output = b""
        with process.stdout, selectors.DefaultSelector() as waiting:
            waiting.register(process.stdout, selectors.EVENT_READ)
            while not _has_line(output):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise subprocess.TimeoutExpired(self.argv, self.timeout)
                exited = process.poll() is not None  # asked first: what it wrote is then read
                if not waiting.select(0 if exited else min(left, EXIT_POLL)):
                    if exited:
                        return output
                    continue
                chunk = os.read(process.stdout.fileno(), COMMAND_OUTPUT_LIMIT + 1 - len(output))
                if not chunk:
                    return output
                output += chunk
                if len(output) > COMMAND_OUTPUT_LIMIT:
                    _end_group(process)
                    raise TokenRefused(
                        f"token_command {self.name} printed more than "
                        f"{COMMAND_OUTPUT_LIMIT // 1024} kB, far more than an access token; it "
                        "must print the token alone on its first line; nothing was sent")
        return output

    def _token(self, output: bytes) -> str:
        """The first non-empty line, if it can be an access token (printable ASCII without
        spaces, at most TOKEN_LIMIT characters); never quoted in an error."""
        token = next((line.strip() for line in output.splitlines() if line.strip()), b"")
        if not token:
            raise TokenRefused(f"token_command {self.name} printed no token; it must print "
                               "the access token on its first line; nothing was sent")
        if len(token) > TOKEN_LIMIT:
            raise TokenRefused(f"token_command {self.name} printed a first line of "
                               f"{len(token):,} characters, longer than an access token "
                               f"({TOKEN_LIMIT // 1024} kB at most); it must print the token "
                               "alone on its first line; nothing was sent")
        if any(byte < 0x21 or byte > 0x7E for byte in token):
            raise TokenRefused(f"token_command {self.name} printed something that is not an "
                               "access token (printable ASCII without spaces, alone on the "
                               "first line); nothing was sent")
        return token.decode("ascii")


def _has_line(output: bytes) -> bool:
    """Whether `output` holds a complete line that is not blank (the token's)."""
    return any(line.strip() for line in output.split(b"\n")[:-1])


def _end_group(process: subprocess.Popen[bytes]) -> None:
    """Kill the command and everything it started (its session's process group), then reap."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


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
