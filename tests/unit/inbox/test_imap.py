"""inbox.imap promises, of what needs no socket: folder names as IMAP quoted strings in
modified UTF-7; a missing password said before any connection; the server's answers read
(UIDs, sizes, a partial body) and every refusal or failure one line naming the server, with its
words made printable; handled mails moved with UID MOVE, or COPY, STORE \\Deleted and UID
EXPUNGE, into the done folder in the server's own separator, created once; LOGOUT, never CLOSE.

The connection is a scripted stand-in for imaplib's client (ImapFolder._connect replaced)."""

from __future__ import annotations

import imaplib
from collections.abc import Iterator
from typing import Any

import pytest

from ldmail.errors import InboxUnavailable
from ldmail.inbox.imap import MOVE_BATCH, ImapFolder, imap_name
from ldmail.project.config import Project
from ldmail.project.models import Inbox

PASSWORD_ENV = "LDMAIL_UNIT_IMAP_PASSWORD"
SERVER = "imap 127.0.0.1:143"
Answer = tuple[str, list[Any]]  # (OK, NO or BAD; the data), as imaplib returns it


class Server:
    """imaplib.IMAP4's methods as ImapFolder calls them, answering from a script."""

    def __init__(self, capabilities: str = "IMAP4rev1 UIDPLUS MOVE") -> None:
        self.calls: list[tuple[str, ...]] = []
        self.capabilities = tuple(capabilities.split())
        self.answers: dict[str, Answer] = {}
        self.failures: dict[str, Exception] = {}
        self.folders: dict[str, bytes] = {'"INBOX"': b'(\\HasNoChildren) "." INBOX'}
        self.line_limit = self.literal_limit = 0

    def _answer(self, *call: str) -> Answer:
        self.calls.append(call)
        if call[0] in self.failures:
            raise self.failures[call[0]]
        return self.answers.get(call[0], ("OK", [b"done"]))

    def login(self, user: str, password: str) -> Answer:
        return self._answer("LOGIN", user, password)

    def capability(self) -> Answer:
        self.calls.append(("CAPABILITY",))
        return "OK", [" ".join(self.capabilities).encode()]

    def select(self, name: str) -> Answer:
        return self._answer("SELECT", name)

    def uid(self, command: str, *args: str) -> Answer:
        return self._answer(f"UID {command}", *args)

    def list(self, reference: str, name: str) -> Answer:
        self.calls.append(("LIST", reference, name))
        return "OK", [self.folders.get(name)]

    def create(self, name: str) -> Answer:
        return self._answer("CREATE", name)

    def subscribe(self, name: str) -> Answer:
        return self._answer("SUBSCRIBE", name)

    def expunge(self) -> Answer:
        return self._answer("EXPUNGE")

    def logout(self) -> Answer:
        return self._answer("LOGOUT")

    def shutdown(self) -> None:
        self.calls.append(("SHUTDOWN",))


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[Server]:
    fake = Server()
    monkeypatch.setenv(PASSWORD_ENV, "secret")
    monkeypatch.setattr(ImapFolder, "_connect", lambda self, host, port: fake)
    yield fake


def settings(folder: str = "INBOX", done: str = "ldmail/processed") -> Inbox:
    return Inbox(kind="imap", host="127.0.0.1", user="learning@example.org", security="none",
                 password_env=PASSWORD_ENV, folder=folder, done_folder=done)


def opened(project: Project, server: Server, **options: str) -> ImapFolder:
    folder = ImapFolder(settings(**options), project)
    server.calls.clear()
    return folder


@pytest.mark.parametrize(("name", "quoted"), [
    ("INBOX", '"INBOX"'),
    ("Bounces & Co", '"Bounces &- Co"'),
    ("~peter/mail/台北/日本語", '"~peter/mail/&U,BTFw-/&ZeVnLIqe-"'),  # RFC 3501's example
    ("Entwürfe", '"Entw&APw-rfe"'),
    ('say "hi" \\ bye', '"say \\"hi\\" \\\\ bye"'),
])
def test_folder_names_are_quoted_in_modified_utf7(name: str, quoted: str) -> None:
    assert imap_name(name) == quoted


def test_a_missing_password_is_said_before_any_connection(
        loaded: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(PASSWORD_ENV, raising=False)

    def connect(self: ImapFolder, host: str, port: int) -> None:
        raise AssertionError("no connection without a password")

    monkeypatch.setattr(ImapFolder, "_connect", connect)
    with pytest.raises(InboxUnavailable) as caught:
        ImapFolder(settings(), loaded)
    assert str(caught.value) == (
        f"{SERVER}: user learning@example.org needs a password in the environment variable "
        f"{PASSWORD_ENV}; set it (never in a file or on the command line)")


def test_opening_logs_in_and_selects_the_folder_by_its_encoded_name(
        loaded: Project, server: Server) -> None:
    folder = ImapFolder(settings(folder="Entwürfe"), loaded)
    assert server.calls == [("LOGIN", "learning@example.org", "secret"), ("CAPABILITY",),
                            ("SELECT", '"Entw&APw-rfe"')]
    assert folder.where == f"{SERVER} folder Entwürfe"


def test_a_refused_login_is_one_line_and_the_connection_is_closed(
        loaded: Project, server: Server) -> None:
    server.failures["LOGIN"] = imaplib.IMAP4.error("[AUTHENTICATIONFAILED] Invalid\x1b[31m")
    with pytest.raises(InboxUnavailable) as caught:
        ImapFolder(settings(), loaded)
    assert str(caught.value) == (
        f"{SERVER}: login as learning@example.org refused ([AUTHENTICATIONFAILED] Invalid "
        f"[31m); check inbox.user in ldmail.yaml and the password in {PASSWORD_ENV}")
    assert server.calls[-2:] == [("LOGOUT",), ("SHUTDOWN",)]


def test_a_folder_that_cannot_be_selected_is_named(loaded: Project, server: Server) -> None:
    server.answers["SELECT"] = ("NO", [b"Mailbox doesn't exist: Bounces"])
    with pytest.raises(InboxUnavailable, match=rf"^{SERVER}: cannot open the folder Bounces "
                       r"\(Mailbox doesn't exist: Bounces\); check inbox.folder in ldmail.yaml$"):
        ImapFolder(settings(folder="Bounces"), loaded)


def test_keys_are_the_uids_with_the_sizes_the_server_tells(
        loaded: Project, server: Server) -> None:
    folder = opened(loaded, server)
    server.answers["UID SEARCH"] = ("OK", [b"4 7 9"])
    server.answers["UID FETCH"] = ("OK", [b"1 (UID 4 RFC822.SIZE 1200)",
                                          b"2 (RFC822.SIZE 99 UID 7)", b"3 (UID 9)"])
    assert folder.keys() == ["4", "7", "9"]
    assert [folder.size(key) for key in ("4", "7", "9")] == [1200, 99, 0]
    assert server.calls == [("UID SEARCH", "ALL"), ("UID FETCH", "1:*", "(RFC822.SIZE)")]


def test_an_empty_folder_asks_for_no_sizes(loaded: Project, server: Server) -> None:
    folder = opened(loaded, server)
    server.answers["UID SEARCH"] = ("OK", [b""])
    assert folder.keys() == []
    assert server.calls == [("UID SEARCH", "ALL")]


def test_a_mail_is_fetched_partially_without_marking_it_read(
        loaded: Project, server: Server) -> None:
    folder = opened(loaded, server)
    server.answers["UID FETCH"] = ("OK", [(b"1 (UID 4 BODY[]<0> {5}", b"hello"), b")"])
    assert folder.fetch("4", 1024) == b"hello"
    assert server.calls == [("UID FETCH", "4", "(BODY.PEEK[]<0.1025>)")]
    server.answers["UID FETCH"] = ("OK", [None])  # expunged meanwhile by another client
    assert folder.fetch("5", 1024) == b""


def test_a_failed_command_is_one_line_that_keeps_what_was_applied(
        loaded: Project, server: Server) -> None:
    folder = opened(loaded, server)
    server.failures["UID SEARCH"] = imaplib.IMAP4.abort(
        "command: UID => socket error: EOF\r\nBYE")
    with pytest.raises(InboxUnavailable) as caught:
        folder.keys()
    assert str(caught.value) == (
        f"{SERVER}: UID SEARCH failed (socket error: EOF BYE); what was applied is recorded, "
        "the rest waits for the next run; if it repeats, check that inbox.host and inbox.port "
        "name an IMAP server")
    server.failures.clear()
    server.answers["UID SEARCH"] = ("NO", [b"Server busy"])
    with pytest.raises(InboxUnavailable, match=rf"^{SERVER}: UID SEARCH failed \(Server busy\)$"):
        folder.keys()


def test_handled_mails_move_in_batches_to_a_done_folder_created_with_the_servers_separator(
        loaded: Project, server: Server) -> None:
    folder = opened(loaded, server)
    keys = [str(uid) for uid in range(1, MOVE_BATCH + 51)]
    folder.move(keys)
    assert server.calls[:4] == [("LIST", '""', '"INBOX"'), ("LIST", '""', '"ldmail.processed"'),
                                ("CREATE", '"ldmail.processed"'),
                                ("SUBSCRIBE", '"ldmail.processed"')]
    moves = server.calls[4:]
    assert moves == [("UID MOVE", ",".join(keys[:MOVE_BATCH]), '"ldmail.processed"'),
                     ("UID MOVE", ",".join(keys[MOVE_BATCH:]), '"ldmail.processed"')]


def test_an_existing_done_folder_is_used_as_it_is(loaded: Project, server: Server) -> None:
    server.folders['"ldmail.processed"'] = b'(\\HasNoChildren) "." ldmail.processed'
    folder = opened(loaded, server)
    folder.move(["4"])
    assert [call[0] for call in server.calls] == ["LIST", "LIST", "UID MOVE"]


def test_without_move_mails_are_copied_flagged_and_only_they_expunged(
        loaded: Project, server: Server) -> None:
    server.capabilities = ("IMAP4rev1", "UIDPLUS")
    folder = opened(loaded, server)
    folder.move(["4", "7"])
    assert server.calls[-3:] == [("UID COPY", "4,7", '"ldmail.processed"'),
                                 ("UID STORE", "4,7", "+FLAGS.SILENT", r"(\Deleted)"),
                                 ("UID EXPUNGE", "4,7")]
    server.capabilities = ("IMAP4rev1",)
    folder = opened(loaded, server)
    folder.move(["9"])
    assert server.calls[-1] == ("EXPUNGE",)


def test_a_done_folder_that_cannot_be_created_is_named(loaded: Project, server: Server) -> None:
    server.answers["CREATE"] = ("NO", [b"[NOPERM] Permission denied"])
    folder = opened(loaded, server)
    with pytest.raises(InboxUnavailable, match=rf"^{SERVER}: cannot create the folder "
                       r"ldmail/processed \(\[NOPERM\] Permission denied\); create it, or set "
                       "inbox.done_folder in ldmail.yaml$"):
        folder.move(["4"])
    assert not any(call[0] == "UID MOVE" for call in server.calls)


def test_closing_logs_out_and_never_expunges(loaded: Project, server: Server) -> None:
    folder = opened(loaded, server)
    folder.move([])
    folder.close()
    assert server.calls == [("LOGOUT",), ("SHUTDOWN",)]
