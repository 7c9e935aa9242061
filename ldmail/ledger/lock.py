"""Kernel (flock) locks beside the ledger: one `send` at a time, one reader per inbox, and the
fence that lets `forget` wait for running pulls and inbox runs.

The kernel drops a flock lock when its process dies, even by SIGKILL, so no lock is ever left
stale: the file stays, the lock does not.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import os
import threading
import time
from pathlib import Path
from types import TracebackType

from ..errors import LdmailError, LedgerBusy, StopRequested

# How long a pull or an inbox run waits for a `forget` that is erasing (seconds); longer than
# forget's own default wait, so a forget that keeps to its defaults never makes them fail.
FENCE_WAIT = 120.0


def send_lock_path(ledger: Path) -> Path:
    """The send lock of a ledger file: beside it, with `.lock` added."""
    return ledger.with_name(ledger.name + ".lock")


def inbox_lock_path(ledger: Path, inbox: str) -> Path:
    """The lock of one inbox (`inbox` names the mailbox and folder) beside the ledger."""
    key = hashlib.sha256(inbox.encode()).hexdigest()[:12]
    return ledger.with_name(f"{ledger.name}.inbox-{key}.lock")


def fence_path(ledger: Path) -> Path:
    """Pulls and inbox runs hold this shared while they work; `forget` holds it alone."""
    return ledger.with_name(ledger.name + ".forget.lock")


class FileLock:
    """An advisory kernel lock on `path`, exclusive or `shared`, waiting up to `wait` seconds.

    `busy` is the line raised (as LedgerBusy) when it cannot be had; `{pid}` in it is replaced
    by the process that holds it exclusively (shared holders do not note their pid). A set
    `stop` ends the wait with StopRequested.
    """

    def __init__(self, path: Path, busy: str, *, wait: float = 0.0, shared: bool = False,
                 what: str = "lock", stop: threading.Event | None = None) -> None:
        self.path, self.busy, self.wait, self.shared, self.what = path, busy, wait, shared, what
        self.stop = stop
        self.fd: int | None = None

    def __enter__(self) -> FileLock:
        fd = self._open()
        mode = (fcntl.LOCK_SH if self.shared else fcntl.LOCK_EX) | fcntl.LOCK_NB
        deadline = time.monotonic() + self.wait
        while True:
            try:
                fcntl.flock(fd, mode)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
                    os.close(fd)
                    raise LedgerBusy(self.busy.format(pid=holder)) from None
                if self._stop_asked_after(0.05):
                    os.close(fd)
                    raise StopRequested(f"stopped on request waiting for {self.path}") from None
        if not self.shared:
            os.ftruncate(fd, 0)
            os.pwrite(fd, str(os.getpid()).encode(), 0)
        self.fd = fd
        return self

    def _stop_asked_after(self, seconds: float) -> bool:
        """A pause between two tries, cut short by a stop request (then True)."""
        if self.stop is None:
            time.sleep(seconds)
            return False
        return self.stop.wait(seconds)

    def _open(self) -> int:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            # O_NOFOLLOW: a link committed in its place must not truncate a file elsewhere.
            return os.open(self.path, os.O_CREAT | os.O_RDWR | os.O_NOFOLLOW, 0o600)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise LdmailError(f"{self.path} is a symbolic link; remove it (the {self.what} "
                                  "must be a plain file)") from None
            raise LdmailError(
                f"{self.path.parent}: cannot write the {self.what} ({exc.strerror}); the "
                "ledger and its locks live there: make the folder writable, or point "
                "'ledger' in ldmail.yaml (or --db) at a writable place") from None

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        if self.fd is not None:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None


class SendLock(FileLock):
    """One `ldmail send` at a time on a ledger."""

    def __init__(self, path: Path, wait: float = 0.0) -> None:
        super().__init__(path, "another ldmail send is running on this ledger (pid {pid}); "
                         "this run did nothing and the next one will pick up what is due",
                         wait=wait, what="send lock")


def inbox_lock(ledger: Path, inbox: str) -> FileLock:
    """One reader per inbox: a second `ldmail inbox` says so and does nothing."""
    return FileLock(inbox_lock_path(ledger, inbox),
                    f"another inbox run is reading {inbox} (pid {{pid}}); this run did nothing "
                    "and the next one will read what is left")


def working_fence(ledger: Path, command: str,
                  stop: threading.Event | None = None) -> FileLock:
    """Held (shared) by a pull or an inbox run while it works, so `forget` can wait for it;
    a set `stop` ends the wait for a running forget (StopRequested)."""
    return FileLock(fence_path(ledger),
                    f"ldmail forget (pid {{pid}}) is still erasing a person from this ledger "
                    f"after {FENCE_WAIT:g} s; this {command} did nothing: run it again once "
                    "forget has ended", wait=FENCE_WAIT, shared=True, stop=stop)


def forget_fence(ledger: Path, wait: float) -> FileLock:
    """Held alone by `forget` while it erases: running pulls and inbox runs have ended, and
    none starts until it is done."""
    return FileLock(fence_path(ledger),
                    f"a running events pull or inbox run still works on this ledger after "
                    f"{wait:g} s; the person is suppressed and no command stores their address "
                    "again, but nothing was erased yet: run forget again once it has ended "
                    "(or give --wait SECONDS)", wait=wait)


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
