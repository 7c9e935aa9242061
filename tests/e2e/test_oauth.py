"""`ldmail send` to Microsoft 365 after basic auth ends: SMTP AUTH XOAUTH2 with a token from
Entra ID's client-credentials flow (msal, against tests/e2e/ms_standin.py) or a token_command, and
the one-line errors a user sees. Everything through the real CLI against servers on loopback.
"""

from __future__ import annotations

import base64
import json
import os
import re
import secrets
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.smtp import MISSING, AuthResult

from ..projects import NOW, PEOPLE, edit_yaml
from .conftest import Cli, summary_line
from .ms_standin import CLIENT, SECRET_ENV, SMTP_SCOPE, TENANT, MsStandin, oauth2_block
from .ms_standin import serve as serve_standin
from .smtp_server import (
    SmtpServer,
    _Controller,
    known_people,
    ldmail_command,
    ldmail_running,
    send,
    states,
    wait_for,
)

MAILBOX = "learning@example.org"
BASIC_OFF = "550 5.7.30 Basic authentication is not supported for Client Submission"


class Exchange(SmtpServer):
    """The SMTP test server, with Exchange Online's logins: AUTH XOAUTH2 with a bearer token
    `accepts` takes, and 550 5.7.30 to any password login (PLAIN, LOGIN)."""

    def __init__(self) -> None:
        super().__init__()
        self.controller = _Controller(self, hostname=self.host, port=0,
                                      server_hostname="mx.test.invalid",
                                      authenticator=self._password, auth_require_tls=False)
        self.accepts: Callable[[str], bool] = lambda token: False
        self.refuse = 0  # refuse this many more XOAUTH2 logins, whatever the token
        self.logins: list[tuple[str, str]] = []  # (mechanism, token or user) of every AUTH

    def _password(self, server: Any, session: Any, envelope: Any, mechanism: str,
                  auth_data: Any) -> AuthResult:
        self.logins.append((mechanism, auth_data.login.decode()))
        return AuthResult(success=False, handled=False, message=BASIC_OFF)

    async def auth_XOAUTH2(self, server: Any, args: list[str]) -> AuthResult:  # noqa: N802
        if len(args) == 1:
            answer = await server.challenge_auth("", encode_to_b64=False)
            if answer is MISSING:
                return AuthResult(success=False, handled=True)
        else:
            answer = base64.b64decode(args[1])
        found = re.fullmatch(r"user=([^\x01]+)\x01auth=Bearer ([^\x01]+)\x01\x01",
                             answer.decode())
        token = found[2] if found else ""
        self.logins.append(("XOAUTH2", token))
        if found and found[1] == MAILBOX and self.accepts(token) and not self.refuse:
            return AuthResult(success=True, auth_data=found[1])
        self.refuse = max(self.refuse - 1, 0)
        # As Exchange and Gmail do: a 334 with a JSON error, the client's empty line, then 535.
        error = json.dumps({"status": "401", "schemes": "bearer", "scope": SMTP_SCOPE})
        await server.challenge_auth(error)
        return AuthResult(success=False, handled=False,
                          message="535 5.7.3 Authentication unsuccessful")


@pytest.fixture
def exchange() -> Iterator[Exchange]:
    server = Exchange()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def standin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[MsStandin]:
    yield from serve_standin(tmp_path, monkeypatch)


def use_xoauth2(project: Path, exchange: Exchange, standin: MsStandin | None,
                **extra: Any) -> None:
    """ldmail.yaml: SMTP to the loopback server, auth: oauth2 as MAILBOX."""
    oauth2 = oauth2_block(standin) if standin is not None else extra.pop("oauth2")
    edit_yaml(project / "ldmail.yaml", lambda s: s.update(transport={
        "kind": "smtp", "host": "127.0.0.1", "port": exchange.port, "security": "none",
        "user": MAILBOX, "auth": "oauth2", "oauth2": oauth2, **extra}))
    if standin is not None:
        exchange.accepts = lambda token: standin.valid(token, SMTP_SCOPE)


def only_error_line(output: str) -> str:
    """The one line a refused login prints (and no traceback)."""
    assert "Traceback" not in output
    lines = [line for line in output.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error ")]
    assert len(errors) == 1, output
    return errors[0]


@pytest.mark.slow
def test_xoauth2_delivers_everything_and_a_token_that_expires_mid_run_is_renewed(
        project: Path, cli: Cli, exchange: Exchange, standin: MsStandin) -> None:
    known_people(project, exchange.port)
    # Two messages a connection, one a half second: connections at about 0 s, 1 s and 2 s.
    use_xoauth2(project, exchange, standin, rate="120/min")
    exchange.messages_per_connection = 2
    # The first token lives 1 s (ldmail stops using it after 0.9 s), the next an hour: the
    # third connection, 2 s after the first message's slot, needs the second token even when
    # the run took a second to get from its first slot to the first login.
    standin.lifetimes.append(1)

    result = send(cli, project, NOW)

    assert result.exit_code == 0, result.output
    assert summary_line(result.stdout).startswith("sent 5 ")
    assert sorted(key[2] for key in exchange.keys()) == sorted(PEOPLE)  # each exactly once
    assert set(states(project).values()) == {"sent"}
    # Fetched once for the first connection, once more when it had expired.
    assert len(standin.token_requests) == 2
    assert {(r["scope"], r["client_id"], r["grant_type"]) for r in standin.token_requests} == \
        {(SMTP_SCOPE, CLIENT, "client_credentials")}
    tokens = [token for mechanism, token in exchange.logins]
    assert [mechanism for mechanism, _ in exchange.logins] == ["XOAUTH2"] * 3
    assert len(set(tokens)) == 2 and tokens[0] != tokens[-1]
    assert tokens == sorted(tokens, key=standin.tokens.index)  # the older token first


def test_a_refused_login_with_a_cached_token_takes_a_new_token_once(
        project: Path, cli: Cli, exchange: Exchange, standin: MsStandin) -> None:
    known_people(project, exchange.port)
    use_xoauth2(project, exchange, standin)
    exchange.messages_per_connection = 2

    # The second connection's login is refused (the token was revoked, say).
    def refuse_second_login(token: str) -> bool:
        if len(exchange.logins) == 2:
            exchange.refuse = 1
        return standin.valid(token, SMTP_SCOPE)

    exchange.accepts = refuse_second_login
    result = send(cli, project, NOW)

    assert result.exit_code == 0, result.output
    assert sorted(key[2] for key in exchange.keys()) == sorted(PEOPLE)
    assert len(standin.token_requests) == 2  # the run's token, and one new one
    tokens = [token for _, token in exchange.logins]
    # connection 1: A; connection 2: A refused, B; connection 3: B
    assert len(tokens) == 4 and tokens[0] == tokens[1] != tokens[2] == tokens[3]


def test_a_client_secret_entra_id_refuses_is_one_line_naming_tenant_and_client(
        project: Path, cli: Cli, exchange: Exchange, standin: MsStandin,
        monkeypatch: pytest.MonkeyPatch) -> None:
    known_people(project, exchange.port)
    use_xoauth2(project, exchange, standin)
    monkeypatch.setenv(SECRET_ENV, "an-expired-secret-value")

    result = send(cli, project, NOW)

    assert result.exit_code == 1
    line = only_error_line(result.output)
    assert line.startswith(f"error Microsoft Entra ID refused a token to client {CLIENT} in "
                           f"tenant {TENANT}: invalid_client (AADSTS7000215: Invalid client "
                           "secret provided)")
    for check in (SECRET_ENV, "SMTP.SendAsApp", "admin consent", "nothing was sent"):
        assert check in line
    assert "an-expired-secret-value" not in result.output
    assert exchange.received == [] and exchange.logins == []
    assert "sent" not in states(project).values()


def test_a_token_the_server_refuses_is_one_line_saying_what_to_check_in_entra_id(
        project: Path, cli: Cli, exchange: Exchange, standin: MsStandin) -> None:
    known_people(project, exchange.port)
    use_xoauth2(project, exchange, standin)
    exchange.accepts = lambda token: False  # no SMTP.SendAsApp, say

    result = send(cli, project, NOW)

    assert result.exit_code == 1
    line = only_error_line(result.output)
    assert line == (
        f"error smtp 127.0.0.1:{exchange.port}: the server refused the OAuth2 token of client "
        f"{CLIENT} in tenant {TENANT} for {MAILBOX} (535 5.7.3 Authentication unsuccessful); "
        "in Entra ID check the app registration, that it has the permission SMTP.SendAsApp "
        "(Office 365 Exchange Online) granted with admin consent, that its service principal "
        "is registered in Exchange Online (New-ServicePrincipal) and given "
        f"Add-MailboxPermission on {MAILBOX}, and that SMTP AUTH is enabled on that mailbox; "
        "nothing was sent")
    assert len(standin.token_requests) == 1  # a token fetched just now is not fetched again
    assert exchange.received == []
    assert not any(token in result.output for token in standin.tokens)


def test_password_login_after_basic_auth_ends_says_how_to_switch_to_oauth2(
        project: Path, cli: Cli, exchange: Exchange, monkeypatch: pytest.MonkeyPatch) -> None:
    known_people(project, exchange.port)
    edit_yaml(project / "ldmail.yaml", lambda s: s["transport"].update(user=MAILBOX))
    monkeypatch.setenv("LDMAIL_SMTP_PASSWORD", "Winter2026!")

    result = send(cli, project, NOW)

    assert result.exit_code == 1
    line = only_error_line(result.output)
    assert line == (
        f"error smtp 127.0.0.1:{exchange.port}: the server has turned password login (basic "
        f"authentication) off for this tenant ({BASIC_OFF}); switch to OAuth2: 'auth: oauth2' "
        "and an 'oauth2:' block under transport in ldmail.yaml, or kind: graph (README: "
        "Sending from Microsoft 365); nothing was sent")
    assert "Winter2026!" not in result.output
    assert exchange.logins and {m for m, _ in exchange.logins} <= {"PLAIN", "LOGIN"}
    assert exchange.received == []


def token_script(folder: Path, token: str) -> tuple[str, Path]:
    """A token_command: a tiny program that prints `token` and notes its own arguments (what
    `ps` shows of it) in a file. Returns the command line for ldmail.yaml and that file."""
    argv_file = folder / "token-command-argv.jsonl"
    script = folder / "print-token.py"
    script.write_text(
        "import json, sys\n"
        f"with open({str(argv_file)!r}, 'a') as seen:\n"
        "    seen.write(json.dumps(sys.argv) + '\\n')\n"
        f"print({token!r})\n", encoding="utf-8")
    return f"{sys.executable} {script} --account {MAILBOX}", argv_file


def test_token_command_gives_the_token_and_never_sees_it_on_a_command_line(
        project: Path, cli: Cli, exchange: Exchange, tmp_path: Path) -> None:
    known_people(project, exchange.port)
    token = "ya29." + secrets.token_urlsafe(32)
    command, argv_file = token_script(tmp_path, token)
    use_xoauth2(project, exchange, None, oauth2={"token_command": command})
    exchange.accepts = lambda given: given == token

    result = cli("--verbose", "send", "--project", project, "--now", NOW.isoformat())

    assert result.exit_code == 0, result.output
    assert sorted(key[2] for key in exchange.keys()) == sorted(PEOPLE)
    runs = [json.loads(line) for line in argv_file.read_text().splitlines()]
    assert runs == [[str(tmp_path / "print-token.py"), "--account", MAILBOX]]  # once, no shell
    assert token not in result.output


def test_a_failing_token_command_shows_neither_its_output_nor_its_stderr(
        project: Path, cli: Cli, exchange: Exchange, tmp_path: Path) -> None:
    """A command that prints the token on stderr and exits 1 (a long token, whose first
    characters once reached the error line): the line gives the status and a fixed hint."""
    known_people(project, exchange.port)
    token = "ya29." + secrets.token_urlsafe(1500)
    script = tmp_path / "expired.py"
    script.write_text(f"import sys\nprint({token[:40]!r})\n"
                      f"sys.exit('ERROR: Reauthentication required for ' + {token!r})\n",
                      encoding="utf-8")
    use_xoauth2(project, exchange, None,
                oauth2={"token_command": f"{sys.executable} {script}"})

    result = cli("--verbose", "send", "--project", project, "--now", NOW.isoformat())

    assert result.exit_code == 1
    assert only_error_line(result.output) == (
        f"error token_command {sys.executable} exited with status 1; run it by hand to see "
        "why (a sign-in that expired, say); nothing was sent")
    written = b"".join(path.read_bytes() for path in project.rglob("*") if path.is_file())
    for part in (token, token[:40], token[-40:]):
        assert part not in result.output
        assert part.encode() not in written  # ledger, run summaries, anything under .ldmail/
    assert exchange.logins == [] and exchange.received == []
    assert set(states(project).values()) <= {"queued"}


def pid_ended(pid: int) -> bool:
    """No such process any more (or only its zombie, waiting to be reaped)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rpartition(")")[2].split()[0] == "Z"


def test_a_hung_token_command_is_ended_with_its_grandchild_at_the_time_out(
        project: Path, cli: Cli, exchange: Exchange, tmp_path: Path) -> None:
    known_people(project, exchange.port)
    pid_file = tmp_path / "grandchild.pid"
    script = tmp_path / "hangs.py"
    script.write_text(
        "import subprocess, sys, time\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'])\n"
        f"open({str(pid_file)!r}, 'w').write(str(child.pid))\n"
        "time.sleep(600)\n", encoding="utf-8")
    use_xoauth2(project, exchange, None, timeout="2s",
                oauth2={"token_command": f"{sys.executable} {script}"})
    started = time.monotonic()

    result = send(cli, project, NOW)

    assert time.monotonic() - started < 60
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    assert f"stopped early: transport unavailable: token_command {sys.executable} gave no " \
        "token within 2 s (transport.timeout); all 5 due message(s) wait" in result.output
    grandchild = int(pid_file.read_text())
    wait_for(lambda: pid_ended(grandchild), 10, f"the grandchild {grandchild} to end")
    assert exchange.logins == [] and exchange.received == []


@pytest.mark.parametrize("line_end", ["\n", ""], ids=["a line", "no line end"])
def test_a_token_command_that_leaves_a_helper_holding_its_output_gives_its_token(
        project: Path, cli: Cli, exchange: Exchange, tmp_path: Path, line_end: str) -> None:
    """A command that starts a helper in the background (an agent keeping the token cached)
    which inherits stdout: the token is used once its line is complete, or once the command
    exited, not after the helper ends (it once timed out with "gave no token")."""
    known_people(project, exchange.port)
    token = "ya29." + secrets.token_urlsafe(32)
    pid_file = tmp_path / "helper.pid"
    script = tmp_path / "with-helper.py"
    script.write_text(
        "import subprocess, sys\n"
        "helper = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'])\n"
        f"open({str(pid_file)!r}, 'w').write(str(helper.pid))\n"
        f"sys.stdout.write({token + line_end!r})\n", encoding="utf-8")
    use_xoauth2(project, exchange, None, timeout="60s",
                oauth2={"token_command": f"{sys.executable} {script}"})
    exchange.accepts = lambda given: given == token
    try:
        result = send(cli, project, NOW)

        assert result.exit_code == 0, result.output
        assert sorted(key[2] for key in exchange.keys()) == sorted(PEOPLE)
        assert not pid_ended(int(pid_file.read_text()))  # the helper is the operator's
    finally:
        os.kill(int(pid_file.read_text()), 9)


def test_a_token_command_with_an_unclosed_quote_is_an_error_of_ldmail_yaml(
        project: Path, cli: Cli, exchange: Exchange) -> None:
    """validate names the line (it once passed, and send ended in a traceback)."""
    use_xoauth2(project, exchange, None, oauth2={"token_command": "/bin/echo 'abc"})
    line = next(number for number, text in enumerate(
        (project / "ldmail.yaml").read_text().splitlines(), start=1) if "token_command" in text)
    error = (f"ldmail.yaml:{line}: transport.oauth2.token_command: token_command cannot be "
             "read as a program and its arguments (no closing quotation); check its quotes "
             "(it runs without a shell)")

    checked = cli("validate", "--project", project)
    sent = send(cli, project, NOW)

    assert checked.exit_code == 1 and error in checked.output.splitlines()
    assert sent.exit_code == 1 and only_error_line(sent.output) == f"error {error}"


PEAK_MEMORY = (
    "import resource, subprocess, sys\n"
    "done = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
    "print(done.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
    "print(done.stdout + done.stderr)\n")


@pytest.mark.parametrize(("printed", "error"), [
    ("for _ in range(100):\n    sys.stdout.buffer.write(b'A' * 1_000_000)\n",
     "printed more than 64 kB, far more than an access token"),
    ("sys.stdout.write('ya29.' + 'x' * 1_000_000 + '\\n')\n",
     "printed more than 64 kB, far more than an access token"),
    ("sys.stdout.write('ya29.' + 'x' * 40_000 + '\\n')\n",
     "printed a first line of 40,005 characters, longer than an access token (16 kB at most)"),
    ("sys.stdout.write('ya29.abc def\\n')\n", "printed something that is not an access token"),
    ("sys.stdout.write('ya29.\\x1b[2Jabc\\n')\n",
     "printed something that is not an access token"),
], ids=["100 MB", "1 MB line", "40 kB line", "a space", "an escape"])
def test_what_a_token_command_prints_is_bounded_and_must_look_like_a_token(
        project: Path, exchange: Exchange, tmp_path: Path, printed: str, error: str) -> None:
    """100 MB of output is not read (once: 823 MB of memory); 1 MB of garbage is not sent as a
    token to fail every message with HTTP 431; nothing is sent and every message waits."""
    known_people(project, exchange.port)
    script = tmp_path / "prints.py"
    script.write_text("import sys\n" + printed, encoding="utf-8")
    use_xoauth2(project, exchange, None,
                oauth2={"token_command": f"{sys.executable} {script}"})
    measure = tmp_path / "peak.py"
    measure.write_text(PEAK_MEMORY, encoding="utf-8")

    done = subprocess.run([sys.executable, measure, *ldmail_command(
        "send", "--project", project, "--now", NOW.isoformat())],
        capture_output=True, text=True, timeout=120, check=True)

    status, peak_kb = (int(word) for word in done.stdout.split("\n", 1)[0].split())
    output = done.stdout.split("\n", 1)[1]
    assert status == 1, output
    assert f"error token_command {sys.executable} {error}" in only_error_line(output)
    assert "xxxxxxxxxx" not in output and "AAAAAAAAAA" not in output
    assert peak_kb < 250_000  # the whole CLI; the output alone once took 823 MB
    assert exchange.logins == [] and exchange.received == []
    assert set(states(project).values()) <= {"queued"}


def process_tree(root: int) -> dict[int, list[str]]:
    """pid -> argv (as `ps` shows it) of `root` and every process below it, from /proc."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rpartition(")")[2].split()
                parents[int(entry.name)] = int(fields[1])
            except (OSError, IndexError, ValueError):
                continue
    tree, grew = {root}, True
    while grew:
        below = {pid for pid, parent in parents.items() if parent in tree} - tree
        grew = bool(below)
        tree |= below
    found = {}
    for pid in tree:
        try:
            raw = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        found[pid] = [part.decode("utf-8", "replace") for part in raw.split(b"\0") if part]
    return found


@pytest.mark.slow
@pytest.mark.parametrize("source", ["entra", "token_command"])
def test_no_secret_in_output_log_lines_ledger_or_process_arguments(
        project: Path, exchange: Exchange, standin: MsStandin, tmp_path: Path,
        source: str) -> None:
    known_people(project, exchange.port)
    secret = os.environ[SECRET_ENV]
    command_token = "ya29." + secrets.token_urlsafe(32)
    if source == "entra":
        use_xoauth2(project, exchange, standin, rate="240/min")
    else:
        command, argv_file = token_script(tmp_path, command_token)
        use_xoauth2(project, exchange, None, rate="240/min", oauth2={"token_command": command})
        exchange.accepts = lambda given: given == command_token
    exchange.messages_per_connection = 2
    exchange.data_replies("bob@example.org", "554 5.7.1 Message rejected as spam")  # an error
    seen: dict[int, list[str]] = {}

    with ldmail_running("--verbose", "send", "--project", project, "--now",
                        NOW.isoformat()) as process:
        while process.poll() is None:
            seen.update(process_tree(process.pid))
            time.sleep(0.02)
        out, err = process.communicate()

    assert process.returncode == 1, out + err  # bob's message failed
    assert len(exchange.received) == 4
    issued = standin.tokens if source == "entra" else [command_token]
    assert issued
    forbidden = [secret, *issued]
    # The SASL string is base64 on the wire; neither form may show anywhere.
    forbidden += [base64.b64encode(f"user={MAILBOX}\x01auth=Bearer {t}\x01\x01".encode())
                  .decode() for t in issued]
    ledger = b"".join(path.read_bytes() for path in (project / ".ldmail").rglob("*")
                      if path.is_file())
    assert "lane 0 (smtp)" in err  # --verbose logged
    for value in forbidden:
        assert value not in out and value not in err
        assert value.encode() not in ledger
        for argv in seen.values():
            assert not any(value in arg for arg in argv)
    assert process.pid in seen
    if source == "token_command":
        assert any(str(tmp_path / "print-token.py") in argv for argv in seen.values()) or \
            argv_file.exists()
        for line in argv_file.read_text().splitlines():
            assert command_token not in line and secret not in line
