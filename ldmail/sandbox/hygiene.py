"""Text from untrusted input made safe for where it goes: terminals, CSV cells, messages.

Values from an HR export, an event file or a file name in a pull request can hold terminal
escape sequences (an OSC title, a screen clear), Unicode direction overrides that make a
line read differently from what it is, or a leading `=` that Excel runs as a formula.
"""

from __future__ import annotations

import errno
import os
import re
from pathlib import Path

from ..errors import LdmailError

# C0 controls except tab and newline, DEL, C1 controls, and the bidirectional overrides and
# isolates (the "Trojan Source" characters).
_INVISIBLE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
# What no id or name from outside (an event, a course) holds: every control character, tab and
# line breaks included, the bidirectional marks, embeddings, overrides and isolates, and the
# Unicode line and paragraph separators.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e"
                      "\u2066-\u2069]")


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group(0))
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def first_control(text: str) -> str | None:
    """The first control or direction character in `text`, shown as an escape (`\\u202e`),
    or None when it has none."""
    found = _CONTROL.search(text)
    return None if found is None else _escape(found)


def visible(text: str) -> str:
    """`text` with every control character shown as an escape (`\\x1b`), not obeyed."""
    return _INVISIBLE.sub(_escape, text)


def one_line(text: str) -> str:
    """`visible` that also shows line breaks, for values that must stay on one line."""
    return visible(text.replace("\r", "\\r").replace("\n", "\\n"))


def excerpt(text: str, limit: int = 60) -> str:
    """A short, one-line, visible quotation of untrusted text for an error message."""
    shown = one_line(text)
    return "'" + (shown if len(shown) <= limit else shown[:limit - 1] + "…") + "'"


def csv_cell(value: object) -> object:
    """A value that spreadsheet programs show as text, never run as a formula.

    Cells starting with = + - @ (or a tab or carriage return) get a leading apostrophe,
    OWASP's advice; numbers stay numbers.
    """
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


_FILE_NAME_PART = re.compile(r"[^a-z0-9_-]+")


def file_name_part(value: str) -> str:
    """A value as a safe piece of a file name: no '/', no '..', nothing but a slug."""
    return _FILE_NAME_PART.sub("_", value.lower()).strip("_") or "none"


def private_folder(path: Path) -> Path:
    """`path` as a folder readable by its owner only, as the ledger's folder is.

    Every folder this creates (parents too: `.ldmail` on the way to `.ldmail/preview`) is 0700,
    and `path` itself is made 0700 if it existed.
    """
    missing = [folder for folder in (path, *path.parents) if not folder.exists()]
    try:
        for folder in reversed(missing):
            folder.mkdir(mode=0o700, exist_ok=True)
    except OSError as exc:
        raise LdmailError(f"{exc.filename or path}: cannot create the folder ({exc.strerror}); "
                          "choose a place you can write to") from None
    if path.is_symlink():
        raise LdmailError(f"{path} is a symbolic link; remove it (ldmail writes only into real "
                          "folders)")
    path.chmod(0o700)
    return path


def write_private(path: Path, text: str) -> None:
    """Write a file that may hold personal data (a preview, a gallery page, a report) 0600.

    os.open with the mode, not write_text and chmod: there is no moment when the file is
    readable by others, and an existing file's permissions are tightened too.
    """
    # O_NOFOLLOW: a symbolic link planted where the file goes (a pull request can commit
    # one under .ldmail/preview/) must not redirect the write to a file elsewhere.
    try:
        fd = os.open(path, os.O_CREAT | os.O_WRONLY | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise LdmailError(f"{path} is a symbolic link; remove it (ldmail never writes "
                              "through a link)") from None
        raise LdmailError(f"{path}: cannot write ({exc.strerror}); check the folder exists "
                          "and is writable") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            os.fchmod(handle.fileno(), 0o600)
            handle.write(text)
    except OSError as exc:  # a full disk, or a device such as /dev/full
        raise LdmailError(f"{path}: cannot write ({exc.strerror or exc}); free some space or "
                          "choose another --out") from None
