"""inbox.mbox promises an mbox read as mail servers lock it: both locks taken, the dotlock
naming "ldmail PID@HOST" and gone on release; a dotlock left by a dead ldmail on this host, or
one older than STALE_DOTLOCK, removed; any other one waited for LOCK_WAIT and then reported in
one line; and handled mails moved to the done mbox exactly once, a move a killed run left
behind completed or undone from its journal."""

from __future__ import annotations

import json
import mailbox
import os
import socket
import threading
import time
from pathlib import Path

import pytest

import ldmail.inbox.mbox
from ldmail.errors import InboxUnavailable, StopRequested
from ldmail.inbox.mbox import STALE_DOTLOCK, MboxLock, MboxMove

DEAD_PID = 999_999_999  # above any kernel's pid_max: no such process


def mail(n: int) -> bytes:
    return f"From: a{n}@example.org\nSubject: mail {n}\n\nbody {n}\n".encode()


def an_mbox(path: Path, count: int) -> Path:
    box = mailbox.mbox(path)
    for n in range(count):
        box.add(mail(n))
    box.close()
    return path


@pytest.fixture
def no_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    """A lock held for real is reported at once instead of after LOCK_WAIT seconds."""
    monkeypatch.setattr(ldmail.inbox.mbox, "LOCK_WAIT", 0.0)


def test_the_dotlock_names_this_run_and_goes_on_release(tmp_path: Path) -> None:
    path = an_mbox(tmp_path / "inbox.mbox", 1)
    with MboxLock(path, "inbox.mbox") as lock:
        text = lock.dotlock.read_text()
        assert lock.dotlock == tmp_path / "inbox.mbox.lock"
        assert text == f"ldmail {os.getpid()}@{socket.gethostname()}\n"
    assert not lock.dotlock.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["inbox.mbox"]


def test_a_dotlock_a_dead_ldmail_left_is_taken_over(tmp_path: Path) -> None:
    path = an_mbox(tmp_path / "inbox.mbox", 1)
    (tmp_path / "inbox.mbox.lock").write_text(f"ldmail {DEAD_PID}@{socket.gethostname()}\n")
    with MboxLock(path, "inbox.mbox") as lock:
        assert lock.dotlock.read_text().startswith(f"ldmail {os.getpid()}@")


def test_an_old_dotlock_of_another_program_is_taken_over(tmp_path: Path) -> None:
    path = an_mbox(tmp_path / "inbox.mbox", 1)
    dotlock = tmp_path / "inbox.mbox.lock"
    dotlock.write_text("procmail\n")
    old = time.time() - STALE_DOTLOCK - 60
    os.utime(dotlock, (old, old))
    with MboxLock(path, "inbox.mbox") as lock:
        assert lock.dotlock.read_text().startswith("ldmail ")


def test_a_fresh_dotlock_of_another_program_is_reported_in_one_line(
        tmp_path: Path, no_wait: None) -> None:
    path = an_mbox(tmp_path / "inbox.mbox", 1)
    (tmp_path / "inbox.mbox.lock").write_text("procmail\n")
    with pytest.raises(InboxUnavailable) as caught:
        MboxLock(path, "mail/inbox.mbox").__enter__()
    assert str(caught.value) == (
        "mail/inbox.mbox: locked by another program (its dotlock inbox.mbox.lock) for more "
        "than 0 s; a mail server delivering to it holds the lock briefly, so run again later "
        "(a dotlock nobody holds is removed once it is 5 minutes old; one that stays is "
        "inbox.mbox.lock, for you to check)")
    assert (tmp_path / "inbox.mbox.lock").read_text() == "procmail\n"  # left alone


def test_a_dotlock_of_a_live_ldmail_is_held(tmp_path: Path, no_wait: None) -> None:
    path = an_mbox(tmp_path / "inbox.mbox", 1)
    (tmp_path / "inbox.mbox.lock").write_text(f"ldmail {os.getpid()}@{socket.gethostname()}\n")
    with pytest.raises(InboxUnavailable, match="its dotlock inbox.mbox.lock"):
        MboxLock(path, "inbox.mbox").__enter__()


def test_a_stop_request_ends_the_wait_for_a_lock(tmp_path: Path) -> None:
    path = an_mbox(tmp_path / "inbox.mbox", 1)
    (tmp_path / "inbox.mbox.lock").write_text("procmail\n")
    stop = threading.Event()
    stop.set()
    with pytest.raises(StopRequested):
        MboxLock(path, "inbox.mbox", stop).__enter__()


def locked_move(tmp_path: Path, count: int) -> tuple[mailbox.mbox, MboxLock, MboxLock, MboxMove]:
    inbox = an_mbox(tmp_path / "inbox.mbox", count)
    lock = MboxLock(inbox, "inbox.mbox").__enter__()
    done = MboxLock(tmp_path / "done.mbox", "done.mbox").__enter__()
    box = mailbox.mbox(inbox, create=False)
    return box, lock, done, MboxMove(box, inbox, done)


def test_handled_mails_move_to_the_done_mbox_and_leave_the_inbox(tmp_path: Path) -> None:
    box, lock, done, move = locked_move(tmp_path, 3)
    keys = sorted(box.keys())
    move.move([keys[0], keys[2]])
    box.close()
    lock.release()
    done.release()
    assert [m["Subject"] for m in mailbox.mbox(tmp_path / "done.mbox")] == ["mail 0", "mail 2"]
    assert [m["Subject"] for m in mailbox.mbox(tmp_path / "inbox.mbox")] == ["mail 1"]
    assert not move.journal.exists()


def test_a_move_killed_before_the_inbox_was_rewritten_is_undone(tmp_path: Path) -> None:
    box, lock, done, move = locked_move(tmp_path, 2)
    assert done.fd is not None
    os.write(done.fd, b"From x\nSubject: half-written by a killed run\n\n")
    identity = os.stat(tmp_path / "inbox.mbox")
    move.journal.write_text(json.dumps({"inbox": [identity.st_dev, identity.st_ino],
                                        "done_size": 0}))
    move.finish_interrupted()
    box.close()
    lock.release()
    done.release()
    assert (tmp_path / "done.mbox").read_bytes() == b""  # cut back: the mails are moved again
    assert len(mailbox.mbox(tmp_path / "inbox.mbox")) == 2
    assert not move.journal.exists()


def test_a_move_killed_after_the_inbox_was_rewritten_is_kept(tmp_path: Path) -> None:
    box, lock, done, move = locked_move(tmp_path, 1)
    assert done.fd is not None
    os.write(done.fd, b"From x\nSubject: moved\n\n")
    move.journal.write_text(json.dumps({"inbox": [0, 0], "done_size": 0}))  # another file
    move.finish_interrupted()
    box.close()
    lock.release()
    done.release()
    assert (tmp_path / "done.mbox").read_bytes() == b"From x\nSubject: moved\n\n"
    assert not move.journal.exists()


def test_a_journal_never_written_whole_changes_nothing(tmp_path: Path) -> None:
    box, lock, done, move = locked_move(tmp_path, 1)
    assert done.fd is not None
    os.write(done.fd, b"From x\n\n")
    move.journal.write_text('{"inbox": [1, ')
    move.finish_interrupted()
    box.close()
    lock.release()
    done.release()
    assert (tmp_path / "done.mbox").read_bytes() == b"From x\n\n"
    assert not move.journal.exists()
