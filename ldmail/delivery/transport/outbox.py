"""The outbox: one `.eml` file per message in a folder, no server needed."""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from functools import cache
from pathlib import Path

from ...errors import TransportFatal
from .base import Outcome


class Outbox:
    """One `.eml` file per message; works with no set-up, and every file is a complete message.

    Each file is written under a temporary name and renamed, so a reader (or a run killed
    half-way) never sees a partial message. Files are not fsynced one by one (that cost more
    than everything else a message needs): the outbox's file system is synced every SYNC_EVERY
    messages and at the end of the run. In between, a message is as durable as the ledger's
    record of it (WAL with synchronous=NORMAL): safe when the process is killed, not
    necessarily across a power cut.
    """

    name = "outbox"
    SYNC_EVERY = 1000

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.unsynced = 0
        try:
            folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as exc:
            raise TransportFatal(f"{folder}: cannot create the outbox ({exc.strerror})") from None

    def open(self) -> None:
        return None

    def send(self, data: bytes, sender: str, recipient: str, label: str,
             cc: tuple[str, ...] = ()) -> Outcome:
        final = os.path.join(self.folder, f"{label}.eml")
        partial = os.path.join(self.folder, f".{label}.eml.part")
        try:
            fd = os.open(partial, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600)
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view):]
            finally:
                os.close(fd)
            os.replace(partial, final)
        except OSError as exc:
            Path(partial).unlink(missing_ok=True)
            if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES):
                raise TransportFatal(f"{self.folder}: cannot write messages ({exc.strerror}); "
                                     "free space or fix permissions, then run again") from None
            return Outcome("temporary", f"outbox write failed: {exc.strerror}")
        self.unsynced += 1
        if self.unsynced >= self.SYNC_EVERY:
            self.sync()
        return Outcome("sent")

    def sync(self) -> None:
        """Flush what was written since the last sync: the outbox's file system, at once."""
        self.unsynced = 0
        _flush_filesystem(self.folder)

    def close(self) -> None:
        if self.unsynced:
            self.sync()


def _flush_filesystem(folder: Path) -> None:
    """syncfs(2) on the folder's file system (one call for every file); fsync elsewhere."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        syncfs = _syncfs()
        if syncfs is None or syncfs(fd) != 0:
            os.fsync(fd)  # at least the folder's entries
    finally:
        os.close(fd)


@cache
def _syncfs() -> Callable[[int], int] | None:
    try:
        import ctypes

        function: Callable[[int], int] = ctypes.CDLL(None, use_errno=True).syncfs
        return function
    except (OSError, AttributeError):  # not Linux
        return None
