"""A real IMAP server for the inbox tests: Debian's Dovecot (package dovecot-imapd), started as
a throw-away process on a free loopback port, with its configuration, state, log and Maildir
in the test's tmp_path; no system service is involved.

Dovecot runs its login processes as a user other than root and never opens a mailbox as
root: run by root (as CI is), the mailbox belongs to Dovecot's own system user and is
chrooted to its folder (pytest's folders above it are private); run by anyone else, every
process is that user.
"""

from __future__ import annotations

import getpass
import grp
import imaplib
import json
import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs

import pytest

from .smtp_server import free_port

USER = "learning"
PASSWORD = "imap-test-password"
DOVECOT = shutil.which("dovecot") or next(
    (path for path in ("/usr/sbin/dovecot", "/usr/local/sbin/dovecot") if Path(path).exists()),
    None)


def _oauth2(home: Path, introspection: int) -> list[str]:
    """XOAUTH2 and OAUTHBEARER logins, each token checked at a local introspection endpoint
    (RFC 7662), as Dovecot does against a real identity provider."""
    (home / "oauth2.conf.ext").write_text(
        "introspection_mode = post\n"
        f"introspection_url = http://127.0.0.1:{introspection}/introspect\n"
        "username_attribute = username\nactive_attribute = active\nactive_value = true\n"
        "force_introspection = yes\n")
    return ["auth_mechanisms = plain login xoauth2 oauthbearer", "passdb {",
            "  driver = oauth2", "  mechanisms = xoauth2 oauthbearer",
            f"  args = {home / 'oauth2.conf.ext'}", "}"]


def _config(home: Path, run: Path, port: int, introspection: int | None = None) -> str:
    """The smallest configuration that serves IMAP for one password user on 127.0.0.1 (and,
    with an introspection port, for OAuth2 tokens too)."""
    lines = [
        "protocols = imap",
        "listen = 127.0.0.1",
        f"base_dir = {run}",
        f"state_dir = {home / 'state'}",
        f"log_path = {home / 'dovecot.log'}",
        f"info_log_path = {home / 'dovecot.log'}",
        "ssl = no",
        "disable_plaintext_auth = no",  # loopback only, and no TLS: plain login is fine here
        *(_oauth2(home, introspection) if introspection else
          ["auth_mechanisms = plain login"]),
        "auth_failure_delay = 0",  # a refused login answers at once
        "mail_location = maildir:~/Maildir",
        "passdb {",
        "  driver = passwd-file",
        f"  args = scheme=PLAIN username_format=%u {home / 'passwd'}",
        "}",
        "service imap-login {",
        "  inet_listener imap {",
        "    address = 127.0.0.1",
        f"    port = {port}",
        "  }",
        "  inet_listener imaps {",
        "    port = 0",
        "  }",
        "}",
    ]
    mail = home / "mail"
    if os.geteuid() == 0:
        # Internal processes (auth reading the passwd file under tmp_path) as root, logins
        # as Dovecot's unprivileged login user (its default), the mailbox as Dovecot's own
        # user, chrooted to its folder ("/./" marks the chroot).
        owner = pwd.getpwnam("dovecot")
        lines += ["default_internal_user = root", "default_internal_group = root",
                  f"first_valid_uid = {owner.pw_uid}", f"valid_chroot_dirs = {mail}",
                  "userdb {", "  driver = static",
                  f"  args = uid={owner.pw_uid} gid={owner.pw_gid} home={mail}/./", "}"]
    else:
        me = getpass.getuser()
        group = grp.getgrgid(os.getegid()).gr_name
        lines += [f"default_internal_user = {me}", f"default_internal_group = {group}",
                  f"default_login_user = {me}", f"first_valid_uid = {os.geteuid()}",
                  "userdb {", "  driver = static",
                  f"  args = uid={os.geteuid()} gid={os.getegid()} home={mail}", "}"]
    return "\n".join(lines) + "\n"


@dataclass
class Dovecot:
    """A running Dovecot with one user, USER / PASSWORD, and helpers to look at its folders."""

    port: int
    home: Path
    process: subprocess.Popen[bytes]
    user: str = USER
    password: str = PASSWORD

    @property
    def log(self) -> str:
        path = self.home / "dovecot.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def client(self) -> imaplib.IMAP4:
        conn = imaplib.IMAP4("127.0.0.1", self.port, timeout=10)
        conn.login(self.user, self.password)
        return conn

    def separator(self) -> str:
        conn = self.client()
        try:
            kind, data = conn.list('""', '""')
            match = re.search(rb'\) "(.)"', data[0] if isinstance(data[0], bytes) else b"")
            return match[1].decode() if match else "/"
        finally:
            conn.logout()

    def append(self, raw: bytes, folder: str = "INBOX") -> None:
        conn = self.client()
        try:
            kind, data = conn.append(f'"{folder}"', None, None, raw)
            assert kind == "OK", data
        finally:
            conn.logout()

    def folders(self) -> list[str]:
        conn = self.client()
        try:
            kind, data = conn.list()
            return [line.decode().rsplit(" ", 1)[-1].strip('"') for line in data
                    if isinstance(line, bytes)]
        finally:
            conn.logout()

    def messages(self, folder: str = "INBOX") -> list[bytes]:
        """Every mail in `folder`, read without marking it seen."""
        conn = self.client()
        try:
            kind, data = conn.select(f'"{folder}"', readonly=True)
            if kind != "OK":
                return []
            kind, found = conn.uid("SEARCH", "ALL")
            mails = []
            for uid in found[0].split():
                kind, parts = conn.uid("FETCH", uid, "(BODY.PEEK[])")
                mails += [part[1] for part in parts if isinstance(part, tuple)]
            return mails
        finally:
            conn.logout()


def _wait_for_greeting(port: int, process: subprocess.Popen[bytes], home: Path) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process.poll() is not None:
            log = (home / "dovecot.log")
            raise RuntimeError("dovecot exited at start: " + (
                log.read_text(errors="replace") if log.exists() else "no log"))
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as probe:
                probe.settimeout(2)
                if probe.recv(200).startswith(b"* OK"):
                    return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"dovecot did not answer on 127.0.0.1:{port} within 20 s")


class _Introspection(BaseHTTPRequestHandler):
    """Says a token is active for USER when it is one of the server's `tokens`."""

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
        token = parse_qs(body).get("token", [""])[0]
        tokens: frozenset[str] = getattr(self.server, "tokens", frozenset())
        answer = {"active": True, "username": USER} if token in tokens else {"active": False}
        data = json.dumps(answer).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        pass


def serve(tmp_path: Path, tokens: frozenset[str] = frozenset()) -> Iterator[Dovecot]:
    """Body of the `dovecot` fixture: a fresh server and mailbox, stopped afterwards. With
    `tokens`, it also takes XOAUTH2 logins with those OAuth2 access tokens for USER."""
    if DOVECOT is None:
        pytest.skip("dovecot is not installed (Debian: apt-get install dovecot-imapd; "
                    ".ci/run installs it)")
    home = tmp_path / "dovecot"
    # Its sockets' paths must fit in 108 bytes, which a parallel worker's tmp_path may not.
    run = Path(tempfile.mkdtemp(prefix="dovecot-"))
    for name in ("state", "mail"):
        (home / name).mkdir(parents=True)
    if os.geteuid() == 0:
        owner = pwd.getpwnam("dovecot")
        os.chown(home / "mail", owner.pw_uid, owner.pw_gid)
    (home / "passwd").write_text(f"{USER}:{{PLAIN}}{PASSWORD}\n")
    port = free_port()
    introspection = None
    if tokens:
        introspection = ThreadingHTTPServer(("127.0.0.1", 0), _Introspection)
        introspection.tokens = tokens  # type: ignore[attr-defined]
        threading.Thread(target=introspection.serve_forever, daemon=True).start()
    (home / "dovecot.conf").write_text(_config(
        home, run, port, introspection.server_address[1] if introspection else None))
    process = subprocess.Popen([DOVECOT, "-F", "-c", str(home / "dovecot.conf")],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_for_greeting(port, process, home)
        yield Dovecot(port, home, process)
    finally:
        if introspection is not None:
            introspection.shutdown()
            introspection.server_close()
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        shutil.rmtree(run, ignore_errors=True)
