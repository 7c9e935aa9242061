"""The mailboxes `ldmail inbox` reads: an IMAP folder (imap.py), or a Maildir or mbox file in
the project. Each handled mail ends up in the done folder exactly once, also when a run is
killed at any moment: a Maildir mail is renamed into the done Maildir's cur/ under its own
file name (one atomic step), an mbox mail is moved as mbox.py explains."""

from __future__ import annotations

import mailbox
import os
import threading
from contextlib import ExitStack
from pathlib import Path
from typing import Protocol

from ..errors import InboxUnavailable
from ..project.config import SETTINGS_FILE, Project
from ..project.models import Inbox
from .imap import ImapFolder
from .mbox import MboxLock, MboxMove


class Folder(Protocol):
    where: str  # for messages: what is read
    done: str  # for messages: where handled mails go

    def keys(self) -> list[str]: ...

    def size(self, key: str) -> int:
        """The mail's size in bytes, known before it is read."""
        ...

    def fetch(self, key: str, limit: int) -> bytes:
        """The mail; one larger than `limit` bytes is never read whole."""
        ...

    def move(self, keys: list[str]) -> None: ...

    def close(self) -> None: ...


def _local_paths(project: Project, settings: Inbox) -> tuple[Path, Path, Path, Path]:
    """The folder and done folder, each as the user wrote it and as a checked path."""
    relative = Path(settings.path or "")
    path = project.path(str(relative), f"inbox.path in {SETTINGS_FILE}")
    done = relative.parent / settings.done_folder
    if settings.kind == "mbox" and relative.suffix:
        done = done.with_name(done.name + relative.suffix)
    return relative, path, done, project.path(str(done), f"inbox.done_folder in {SETTINGS_FILE}")


class MaildirFolder:
    """A Maildir folder in the project (an export, or tests); handled mails go to the Maildir
    `done_folder` beside it. Mails are the plain files in new/ and cur/ (never a symbolic
    link, which could point anywhere); one moves by a rename into done's cur/."""

    def __init__(self, project: Project, settings: Inbox) -> None:
        relative, self.path, done, self.done_path = _local_paths(project, settings)
        self.where, self.done = f"maildir {relative}", str(done)
        if not (self.path / "cur").is_dir() and not (self.path / "new").is_dir():
            raise InboxUnavailable(f"{relative}: no Maildir folder there (it has no cur/ or "
                                   f"new/); check inbox.path in {SETTINGS_FILE}")

    def keys(self) -> list[str]:
        found = []
        for sub in ("new", "cur"):
            try:
                entries = list(os.scandir(self.path / sub))
            except FileNotFoundError:
                continue
            found += [f"{sub}/{entry.name}" for entry in entries
                      if not entry.name.startswith(".") and entry.is_file(follow_symlinks=False)]
        return sorted(found, key=lambda key: key.partition("/")[2])  # by time of delivery

    def size(self, key: str) -> int:
        try:
            return os.stat(self.path / key, follow_symlinks=False).st_size
        except FileNotFoundError:
            return 0

    def fetch(self, key: str, limit: int) -> bytes:
        try:
            with open(self.path / key, "rb") as file:
                return file.read(limit + 1)
        except FileNotFoundError:
            return b""  # taken meanwhile by a mail client: an empty mail is left alone

    def move(self, keys: list[str]) -> None:
        if not keys:
            return
        for sub in ("cur", "new", "tmp"):
            (self.done_path / sub).mkdir(parents=True, exist_ok=True, mode=0o700)
        for key in keys:
            try:
                os.rename(self.path / key, self.done_path / "cur" / key.partition("/")[2])
            except FileNotFoundError:
                pass  # moved already (by a run killed after this rename), or taken
            except OSError as exc:
                raise InboxUnavailable(f"{self.done}: cannot move a mail there "
                                       f"({exc.strerror}); it must be a writable folder on "
                                       f"the same file system as inbox.path") from None

    def close(self) -> None:
        pass


class MboxFolder:
    """An mbox file in the project; handled mails go to the mbox `done_folder` beside it (with
    the same extension). Both files are locked while the run reads (see mbox.py)."""

    def __init__(self, project: Project, settings: Inbox, stop: threading.Event | None = None,
                 *, moves: bool = True) -> None:
        relative, path, done, done_path = _local_paths(project, settings)
        self.where, self.done = f"mbox {relative}", str(done)
        if not path.is_file():
            raise InboxUnavailable(f"{relative}: no mbox file there; check inbox.path in "
                                   f"{SETTINGS_FILE}")
        self._locks = ExitStack()
        try:
            self._locks.enter_context(MboxLock(path, str(relative), stop))
            self.box = mailbox.mbox(path, create=False)
            self._locks.callback(self._close_box)  # closed before the locks are let go
            self._move: MboxMove | None = None
            if moves:  # not in a dry run, which changes nothing
                done_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
                done_lock = self._locks.enter_context(MboxLock(done_path, str(done), stop))
                self._move = MboxMove(self.box, path, done_lock)
                self._move.finish_interrupted()
        except BaseException:
            self._locks.close()
            raise

    def keys(self) -> list[str]:
        return sorted(self.box.keys())

    def size(self, key: str) -> int:
        with self.box.get_file(key) as file:
            file.seek(0, os.SEEK_END)
            return file.tell()

    def fetch(self, key: str, limit: int) -> bytes:
        return self.box.get_bytes(key)

    def move(self, keys: list[str]) -> None:
        if not keys:
            return
        assert self._move is not None, "a dry run moves nothing"
        try:
            self._move.move(keys)
        except mailbox.ExternalClashError:
            raise InboxUnavailable(
                f"{self.where.removeprefix('mbox ')}: changed by another program that ignored "
                "its locks while this run read it; what was applied is recorded, and the "
                "next run moves the handled mails") from None

    def _close_box(self) -> None:
        try:
            self.box.close()  # writes pending removals first; the file is closed either way
        except mailbox.ExternalClashError:
            pass  # after a move that met the same clash: the journal has the next run redo it

    def close(self) -> None:
        self._locks.close()


def open_folder(project: Project, settings: Inbox, stop: threading.Event | None = None, *,
                dry_run: bool = False) -> Folder:
    if settings.kind == "imap":
        return ImapFolder(settings, project, stop)
    if settings.kind == "maildir":
        return MaildirFolder(project, settings)
    return MboxFolder(project, settings, stop, moves=not dry_run)
