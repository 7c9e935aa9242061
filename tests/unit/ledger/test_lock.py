"""ledger/lock.py promises: the kernel locks beside the ledger let one holder at a time (one
send, one reader per inbox, forget alone against shared pulls), a second holder is refused
with a line that names the first one's pid, a released lock can be taken again, a probe for a
running send never creates the lock file, and a link planted in the lock's place is refused.

flock locks belong to an open file, so a second open in this same process is a second holder.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from ldmail.errors import LdmailError, LedgerBusy, StopRequested
from ldmail.ledger.lock import (
    FileLock,
    SendLock,
    fence_path,
    forget_fence,
    held_elsewhere,
    inbox_lock,
    inbox_lock_path,
    send_lock_path,
    working_fence,
)


@pytest.fixture
def ledger_file(tmp_path: Path) -> Path:
    return tmp_path / "data" / "ledger.db"


def test_the_locks_live_beside_the_ledger_one_per_inbox(ledger_file: Path) -> None:
    assert send_lock_path(ledger_file) == ledger_file.parent / "ledger.db.lock"
    assert fence_path(ledger_file) == ledger_file.parent / "ledger.db.forget.lock"
    one, other = (inbox_lock_path(ledger_file, inbox) for inbox in ("imap:a/INBOX", "imap:b"))
    assert one != other and one.parent == ledger_file.parent
    assert one == inbox_lock_path(ledger_file, "imap:a/INBOX")


def test_a_second_send_is_refused_with_the_first_ones_pid(ledger_file: Path) -> None:
    lock = send_lock_path(ledger_file)
    with SendLock(lock):
        assert lock.read_text() == str(os.getpid())
        with pytest.raises(LedgerBusy) as busy:
            with SendLock(lock):
                pytest.fail("two sends held the lock")
    assert str(busy.value) == (
        f"another ldmail send is running on this ledger (pid {os.getpid()}); this run did "
        "nothing and the next one will pick up what is due")
    with SendLock(lock):  # released: the next run takes it
        pass


def test_a_second_reader_of_the_same_inbox_is_refused_but_another_inbox_is_free(
        ledger_file: Path) -> None:
    with inbox_lock(ledger_file, "imap:a/INBOX"):
        with pytest.raises(LedgerBusy, match=r"another inbox run is reading imap:a/INBOX"):
            with inbox_lock(ledger_file, "imap:a/INBOX"):
                pass
        with inbox_lock(ledger_file, "imap:b/INBOX"):
            pass


def test_pulls_share_the_fence_and_forget_waits_for_them_then_holds_it_alone(
        ledger_file: Path) -> None:
    with working_fence(ledger_file, "events pull"), working_fence(ledger_file, "inbox"):
        with pytest.raises(LedgerBusy, match=r"still works on this ledger after 0 s; the person"):
            with forget_fence(ledger_file, 0.0):
                pass
    with forget_fence(ledger_file, 0.0):
        with pytest.raises(LedgerBusy, match=r"still erasing a person"):
            with FileLock(fence_path(ledger_file), "ldmail forget (pid {pid}) is still erasing"
                          " a person", shared=True):
                pass


def test_a_stop_request_ends_the_wait_for_a_lock(ledger_file: Path) -> None:
    stop = threading.Event()
    stop.set()
    with forget_fence(ledger_file, 0.0):
        with pytest.raises(StopRequested, match="stopped on request waiting for"):
            with working_fence(ledger_file, "events pull", stop=stop):
                pass


def test_the_probe_for_a_running_send_sees_it_and_never_creates_the_file(
        ledger_file: Path) -> None:
    lock = send_lock_path(ledger_file)
    assert not held_elsewhere(lock)
    assert not lock.exists()
    with SendLock(lock):
        assert held_elsewhere(lock)
    assert not held_elsewhere(lock)
    with SendLock(lock):  # the probe's own shared lock was let go
        pass


def test_a_link_in_the_locks_place_is_refused(ledger_file: Path, tmp_path: Path) -> None:
    target = tmp_path / "precious.txt"
    target.write_text("keep me")
    ledger_file.parent.mkdir()
    send_lock_path(ledger_file).symlink_to(target)
    with pytest.raises(LdmailError, match=r"ledger.db.lock is a symbolic link; remove it"):
        with SendLock(send_lock_path(ledger_file)):
            pass
    assert target.read_text() == "keep me"


def test_a_lock_that_cannot_be_written_says_where_the_ledger_should_go(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("x")
    with pytest.raises(LdmailError, match=r"cannot write the send lock .*point 'ledger' in"):
        with SendLock(send_lock_path(tmp_path / "afile" / "ledger.db")):
            pass
