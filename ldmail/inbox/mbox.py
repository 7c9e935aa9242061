"""An mbox file as `ldmail inbox` reads it: locked as mail servers lock it, a lock that a
killed run left behind recovered, and each handled mail moved to the done mbox once.

**Locks.** A delivering mail server (Postfix's local, procmail, Dovecot's LDA) takes an fcntl
lock on the file and a dotlock, FILE.lock, beside it; ldmail takes both too, and writes
"ldmail PID@HOST" into its dotlock. A run killed with SIGKILL loses its fcntl lock (the
kernel drops it) but leaves the dotlock. A dotlock is therefore **stale**, and removed, when
nobody holds the file's fcntl lock and either ldmail wrote it and that process no longer runs
on this host, or it is older than STALE_DOTLOCK (5 minutes: a delivery holds one for well
under a second, and procmail and mutt also break a lock nobody refreshed for minutes). Any
other lock is held for real: it is waited for LOCK_WAIT seconds, then reported in one line.

**Moving once.** Handled mails are appended to the done mbox, then removed from the inbox
(Python's mailbox rewrites the inbox into a new file and renames it over the old one). A
journal beside the done mbox, written before the append, holds the done mbox's size and the
inbox file's identity (device and inode). A run killed in between leaves the journal; the
next run reads it under both locks: if the inbox is still the same file, the removal never
happened and the done mbox is cut back to its recorded size (the mails are still in the
inbox, applied, and are moved again); if the inbox was replaced, the move is complete. So a
mail lands in the done mbox exactly once, whatever the moment of the kill.
"""

from __future__ import annotations

import errno
import fcntl
import json
import mailbox
import os
import socket
import threading
import time
from pathlib import Path
from types import TracebackType

from ..clock import wall_now
from ..errors import InboxUnavailable, StopRequested

STALE_DOTLOCK = 300  # seconds; see the module's docstring
LOCK_WAIT = 3.0  # seconds a lock held for real is waited for
LOCK_POLL = 0.05
_MARK = "ldmail "


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    return True


class MboxLock:
    """The fcntl lock and the dotlock of one mbox file, held together (see the module)."""

    def __init__(self, path: Path, shown: str, stop: threading.Event | None = None) -> None:
        self.path, self.shown = path, shown
        self.dotlock = path.with_name(path.name + ".lock")
        self.stop = stop
        self.fd: int | None = None

    def __enter__(self) -> MboxLock:
        deadline = time.monotonic() + LOCK_WAIT
        while True:
            held_by = self._try()
            if held_by is None:
                return self
            if self.stop is not None and self.stop.is_set():
                raise StopRequested
            if time.monotonic() >= deadline:
                raise InboxUnavailable(
                    f"{self.shown}: locked by {held_by} for more than {LOCK_WAIT:g} s; a mail "
                    "server delivering to it holds the lock briefly, so run again later (a "
                    f"dotlock nobody holds is removed once it is {STALE_DOTLOCK // 60} minutes "
                    f"old; one that stays is {self.dotlock.name}, for you to check)")
            time.sleep(LOCK_POLL)

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.release()

    def _try(self) -> str | None:
        """Take both locks; else say who holds one."""
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        except OSError as exc:
            raise InboxUnavailable(f"{self.shown}: cannot open it ({exc.strerror}); check "
                                   "that it is a file ldmail may write") from None
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EAGAIN, errno.EACCES):
                return "another program (its fcntl lock)"
            raise
        try:
            if self._dotlock() or (self._stale() and self._dotlock()):
                self.fd = fd
                return None
        except OSError as exc:
            os.close(fd)
            raise InboxUnavailable(f"{self.shown}: cannot write its lock {self.dotlock.name} "
                                   f"({exc.strerror}); ldmail needs to write in that folder"
                                   ) from None
        os.close(fd)  # releases the fcntl lock
        return f"another program (its dotlock {self.dotlock.name})"

    def _dotlock(self) -> bool:
        """Create the dotlock atomically with its text (linked from a file of our own)."""
        own = self.dotlock.with_name(f"{self.dotlock.name}.{os.getpid()}")
        own.write_text(f"{_MARK}{os.getpid()}@{socket.gethostname()}\n")
        try:
            os.link(own, self.dotlock)
            return True
        except FileExistsError:
            return False
        finally:
            own.unlink(missing_ok=True)

    def _stale(self) -> bool:
        """Called with the fcntl lock held: see the module's rule. A stale one is removed."""
        try:
            # Not followed, never waited on: a link or a FIFO in its place is held, not read.
            fd = os.open(self.dotlock, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except FileNotFoundError:
            return True  # gone meanwhile
        except OSError:
            return False
        try:
            made = os.fstat(fd).st_mtime
            text = os.read(fd, 200).decode("utf-8", "replace").strip()
        except OSError:
            return False
        finally:
            os.close(fd)
        pid, _, host = text.removeprefix(_MARK).partition("@")
        ours_and_dead = (text.startswith(_MARK) and pid.isdigit()
                         and host == socket.gethostname() and not _alive(int(pid)))
        if not ours_and_dead and wall_now().timestamp() - made < STALE_DOTLOCK:
            return False
        try:
            self.dotlock.unlink(missing_ok=True)
        except OSError:
            return False  # a folder in its place, say: held, for a person to look at
        return True

    def release(self) -> None:
        if self.fd is None:
            return
        self.dotlock.unlink(missing_ok=True)
        os.close(self.fd)
        self.fd = None


class MboxMove:
    """Moves handled mails from an mbox to the done mbox exactly once (see the module).

    The done mbox is written through its lock's own descriptor: closing any other descriptor
    of that file would drop this process's fcntl lock on it."""

    def __init__(self, box: mailbox.mbox, inbox: Path, done: MboxLock) -> None:
        assert done.fd is not None
        self.box, self.inbox, self.done = box, inbox, done.fd
        self.journal = done.path.with_name(done.path.name + ".moving")

    def _inbox_identity(self) -> list[int]:
        status = os.stat(self.inbox)
        return [status.st_dev, status.st_ino]

    def finish_interrupted(self) -> None:
        """Complete or undo the move a killed run left (called with both locks held)."""
        try:
            recorded = json.loads(self.journal.read_text())
        except FileNotFoundError:
            return
        except ValueError:
            recorded = None  # never written whole: nothing was appended after it
        if isinstance(recorded, dict) and recorded.get("inbox") == self._inbox_identity():
            os.ftruncate(self.done, int(recorded["done_size"]))
            os.fsync(self.done)
        self.journal.unlink()

    def move(self, keys: list[str]) -> None:
        size = os.lseek(self.done, 0, os.SEEK_END)
        self._write_journal({"inbox": self._inbox_identity(), "done_size": size})
        for key in keys:
            data = self.box.get_bytes(key, from_=True)
            # A blank line ends each mail, as mbox readers expect before a "From " line.
            _write_all(self.done, data + (b"\n" if data.endswith(b"\n") else b"\n\n"))
        os.fsync(self.done)
        for key in keys:
            self.box.remove(key)
        self.box.flush()  # a new inbox file, renamed over the old one
        self.journal.unlink()

    def _write_journal(self, content: dict[str, object]) -> None:
        part = self.journal.with_name(self.journal.name + ".part")
        with open(part, "w") as file:
            json.dump(content, file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(part, self.journal)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]
