"""A lock file so that two `ldmail send` runs never work the same ledger at once."""

from __future__ import annotations

import errno
import fcntl
import os
import time
from pathlib import Path
from types import TracebackType

from .errors import LdmailError, LedgerBusy


def send_lock_path(ledger: Path) -> Path:
    """The send lock of a ledger file: beside it, with `.lock` added."""
    return ledger.with_name(ledger.name + ".lock")


class SendLock:
    """An exclusive advisory lock; the kernel drops it when the process dies, even by SIGKILL."""

    def __init__(self, path: Path, wait: float = 0.0) -> None:
        self.path = path
        self.wait = wait
        self.fd: int | None = None

    def __enter__(self) -> SendLock:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            # O_NOFOLLOW: a link committed in its place must not truncate a file elsewhere.
            fd = os.open(self.path, os.O_CREAT | os.O_RDWR | os.O_NOFOLLOW, 0o600)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise LdmailError(f"{self.path} is a symbolic link; remove it (the send lock "
                                  "must be a plain file)") from None
            raise LdmailError(
                f"{self.path.parent}: cannot write the send lock ({exc.strerror}); the ledger "
                "and its lock live there: make the folder writable, or point 'ledger' in "
                "ldmail.yaml (or --db) at a writable place") from None
        deadline = time.monotonic() + self.wait
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
                    os.close(fd)
                    raise LedgerBusy(
                        f"another ldmail send is running on this ledger (pid {holder}); this "
                        "run did nothing and the next one will pick up what is due") from None
                time.sleep(0.05)
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        self.fd = fd
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        if self.fd is not None:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None


def held_elsewhere(path: Path) -> bool:
    """Whether a running `ldmail send` holds the lock now; never creates the lock file.

    Probing takes a shared lock for an instant; a send starting in that instant reports the
    ledger busy and leaves the work to the next run, which is harmless.
    """
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing the descriptor drops our shared lock
    return False
