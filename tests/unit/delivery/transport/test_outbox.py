"""ldmail.delivery.transport.outbox promises one complete `<label>.eml` file per message in a
folder it creates (private to the user), never a partial file under the final name; a full
disk or a read-only folder stops the run (TransportFatal, one line saying what to do), any
other write failure is a temporary outcome; and what was written is synced every SYNC_EVERY
messages and at close.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

import pytest

from ldmail.delivery.transport.base import Outcome
from ldmail.delivery.transport.outbox import Outbox
from ldmail.errors import TransportFatal

MESSAGE = b"From: a@example.org\r\nTo: b@example.org\r\n\r\n" + b"x" * 200_000 + b"\r\n"


def test_each_message_is_one_private_file_named_by_its_label(tmp_path: Path) -> None:
    folder = tmp_path / "deep" / "outbox"
    outbox = Outbox(folder)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert outbox.send(MESSAGE, "a@example.org", "b@example.org", "20261201-welcome-1") == \
        Outcome("sent")
    written = folder / "20261201-welcome-1.eml"
    assert written.read_bytes() == MESSAGE
    assert stat.S_IMODE(written.stat().st_mode) == 0o600
    assert [p.name for p in folder.iterdir()] == [written.name]  # no partial file left


def test_the_same_label_again_replaces_the_file_whole(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path)
    outbox.send(MESSAGE, "a@example.org", "b@example.org", "one")
    outbox.send(b"short\r\n", "a@example.org", "b@example.org", "one")
    assert (tmp_path / "one.eml").read_bytes() == b"short\r\n"


def test_a_folder_that_cannot_be_made_stops_the_run(tmp_path: Path) -> None:
    blocker = tmp_path / "outbox"
    blocker.write_text("a file where the folder should be", encoding="utf-8")
    with pytest.raises(TransportFatal, match="cannot create the outbox"):
        Outbox(blocker)


def test_a_full_disk_stops_the_run_and_leaves_no_partial_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    outbox = Outbox(tmp_path)

    def full(fd: int, data: object) -> int:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "write", full)
    with pytest.raises(TransportFatal, match="free space or fix permissions") as raised:
        outbox.send(MESSAGE, "a@example.org", "b@example.org", "one")
    assert str(tmp_path) in str(raised.value)
    assert list(tmp_path.iterdir()) == []


def test_another_write_failure_is_temporary(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path)
    # The label names a folder that is not there: the write fails, the run goes on.
    outcome = outbox.send(MESSAGE, "a@example.org", "b@example.org", "missing/one")
    assert outcome.status == "temporary"
    assert outcome.reason.startswith("outbox write failed: ")


def test_writes_are_synced_every_sync_every_messages_and_at_close(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    synced: list[int] = []
    outbox = Outbox(tmp_path)
    monkeypatch.setattr(outbox, "SYNC_EVERY", 2)
    real_sync = outbox.sync

    def counting() -> None:
        synced.append(outbox.unsynced)
        real_sync()

    monkeypatch.setattr(outbox, "sync", counting)
    for label in ("a", "b", "c"):
        outbox.send(MESSAGE, "a@example.org", "b@example.org", label)
    assert synced == [2]
    outbox.close()
    assert synced == [2, 1]
    outbox.close()  # nothing new: no second sync
    assert synced == [2, 1]
