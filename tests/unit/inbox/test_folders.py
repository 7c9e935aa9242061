"""inbox.folders promises the local mailboxes `ldmail inbox` reads: a Maildir's mails are the
plain files of new/ and cur/ in order of delivery (never a symbolic link), read no further than
the limit, and moved by a rename into the done Maildir beside it; an mbox's mails move to the
done mbox beside it (same extension); a folder that is not there is one line saying what to
check; open_folder picks the kind."""

from __future__ import annotations

import mailbox
import os

import pytest

from ldmail.errors import InboxUnavailable, OutsideProject
from ldmail.inbox.folders import MaildirFolder, MboxFolder, open_folder
from ldmail.project.config import Project
from ldmail.project.models import Inbox


def mail(n: int, size: int = 0) -> bytes:
    return (f"From: a{n}@example.org\nSubject: mail {n}\n\n".encode() + b"x" * size + b"\n")


def maildir(project: Project, mails: dict[str, bytes]) -> Inbox:
    """A Maildir at mail/inbox holding `mails` under their keys (new/NAME or cur/NAME)."""
    root = project.root / "mail" / "inbox"
    for sub in ("new", "cur", "tmp"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    for key, data in mails.items():
        (root / key).write_bytes(data)
    return Inbox(kind="maildir", path="mail/inbox")


def mbox(project: Project, count: int, name: str = "inbox.mbox") -> Inbox:
    path = project.root / "mail" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    box = mailbox.mbox(path)
    for n in range(count):
        box.add(mail(n))
    box.close()
    return Inbox(kind="mbox", path=f"mail/{name}")


def test_maildir_mails_come_in_order_of_delivery_without_hidden_files_or_links(
        loaded: Project) -> None:
    settings = maildir(loaded, {"cur/1700000002.b:2,S": mail(2), "new/1700000001.a": mail(1),
                                "new/.hidden": mail(3)})
    os.symlink("/etc/passwd", loaded.root / "mail" / "inbox" / "new" / "1700000000.link")
    folder = MaildirFolder(loaded, settings)
    assert folder.keys() == ["new/1700000001.a", "cur/1700000002.b:2,S"]
    assert folder.where == "maildir mail/inbox" and folder.done == "mail/ldmail/processed"


def test_a_maildir_mail_is_read_no_further_than_one_byte_past_the_limit(
        loaded: Project) -> None:
    folder = MaildirFolder(loaded, maildir(loaded, {"new/1.big": mail(1, 5000)}))
    assert folder.size("new/1.big") == len(mail(1, 5000))
    assert len(folder.fetch("new/1.big", 1024)) == 1025
    assert folder.fetch("new/gone", 1024) == b"" and folder.size("new/gone") == 0


def test_maildir_mails_move_into_the_done_folders_cur_under_their_own_names(
        loaded: Project) -> None:
    folder = MaildirFolder(loaded, maildir(loaded, {"new/1.a": mail(1), "new/2.b": mail(2)}))
    folder.move(["new/1.a", "new/gone"])  # one taken meanwhile by a mail client
    done = loaded.root / "mail" / "ldmail" / "processed"
    assert (done / "cur" / "1.a").read_bytes() == mail(1)
    assert sorted(path.name for path in done.iterdir()) == ["cur", "new", "tmp"]
    assert folder.keys() == ["new/2.b"]


def test_a_folder_that_is_no_maildir_says_what_to_check(loaded: Project) -> None:
    (loaded.root / "mail" / "inbox").mkdir(parents=True)
    with pytest.raises(InboxUnavailable, match=r"^mail/inbox: no Maildir folder there \(it has "
                       r"no cur/ or new/\); check inbox.path in ldmail.yaml$"):
        MaildirFolder(loaded, Inbox(kind="maildir", path="mail/inbox"))


def test_mbox_mails_move_to_the_done_mbox_with_the_same_extension(loaded: Project) -> None:
    folder = MboxFolder(loaded, mbox(loaded, 3))
    try:
        keys = folder.keys()
        assert len(keys) == 3 and folder.where == "mbox mail/inbox.mbox"
        assert folder.fetch(keys[1], 10_000).endswith(mail(1))
        assert folder.size(keys[1]) >= len(mail(1))
        folder.move(keys[:2])
    finally:
        folder.close()
    assert folder.done == "mail/ldmail/processed.mbox"
    done = mailbox.mbox(loaded.root / folder.done)
    assert [message["Subject"] for message in done] == ["mail 0", "mail 1"]
    assert [message["Subject"] for message in mailbox.mbox(loaded.root / "mail/inbox.mbox")] \
        == ["mail 2"]
    assert not (loaded.root / "mail" / "inbox.mbox.lock").exists()  # locks let go


def test_a_dry_run_on_an_mbox_creates_no_done_mbox(loaded: Project) -> None:
    folder = open_folder(loaded, mbox(loaded, 1), dry_run=True)
    try:
        assert len(folder.keys()) == 1
    finally:
        folder.close()
    assert not (loaded.root / "mail" / "ldmail").exists()


def test_a_missing_mbox_says_what_to_check(loaded: Project) -> None:
    with pytest.raises(InboxUnavailable, match=r"^mail/none.mbox: no mbox file there; check "
                       "inbox.path in ldmail.yaml$"):
        MboxFolder(loaded, Inbox(kind="mbox", path="mail/none.mbox"))


def test_open_folder_picks_the_kind(loaded: Project) -> None:
    settings = maildir(loaded, {})
    assert isinstance(open_folder(loaded, settings), MaildirFolder)
    folder = open_folder(loaded, mbox(loaded, 0))
    folder.close()
    assert isinstance(folder, MboxFolder)


def test_a_path_outside_the_project_is_refused(loaded: Project) -> None:
    (loaded.root.parent / "outside" / "new").mkdir(parents=True)
    with pytest.raises(OutsideProject, match="^inbox.path in ldmail.yaml: points to "):
        MaildirFolder(loaded, Inbox(kind="maildir", path="../outside"))
