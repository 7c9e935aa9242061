"""Keep every file a campaign repository makes ldmail touch inside the project.

A campaign repository arrives as a pull request, and CI validates and previews it: it is
untrusted input. Git stores symbolic links and settings name paths, so without these checks a
pull request could make a template include `/proc/self/environ` (the SMTP password), make the
ledger overwrite a file elsewhere, or make a template read a FIFO and hang. The rule: after
symbolic links are resolved, every path a repository names stays inside the project (templates
inside `templates/`). Files that legitimately live elsewhere (the HR export on a share, a ledger
under /var/lib) are allowed only by the operator, outside the repository: the folders listed in
the LDMAIL_DATA_DIRS environment variable, or a command-line option such as `--db`.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from ..errors import OutsideProject, Problem

DATA_DIRS_ENV = "LDMAIL_DATA_DIRS"
# Templates are a few kilobytes; anything this large is a mistake or an attack on memory.
MAX_TEMPLATE_BYTES = 512 * 1024


def trusted_dirs() -> list[Path]:
    """The operator's folders outside the project (LDMAIL_DATA_DIRS, separated like PATH)."""
    value = os.environ.get(DATA_DIRS_ENV, "")
    return [Path(part).expanduser().resolve() for part in value.split(os.pathsep) if part]


def confined(path: Path, folder: Path, display: str, *, data: bool = False,
             label: str = "the project") -> Path:
    """`path` with symbolic links resolved, or OutsideProject when it leaves `folder`.

    `folder` is taken as it is (the project root is resolved when the project is loaded): a
    `templates` folder that is itself a link elsewhere does not count as inside. With `data`,
    the operator's LDMAIL_DATA_DIRS are allowed too.
    """
    real = path.resolve()
    if real.is_relative_to(folder):
        return real
    if data and any(real.is_relative_to(trusted) for trusted in trusted_dirs()):
        return real
    raise OutsideProject(display, real, label)


def read_regular_text(path: Path, display: str, limit: int) -> str | Problem:
    """A regular file's UTF-8 text, or a located Problem: devices, FIFOs, files over `limit`
    bytes and undecodable bytes are refused.

    Checked before reading: a link to /dev/zero or a FIFO would otherwise never end.
    """
    try:
        info = path.stat()
        if not stat.S_ISREG(info.st_mode):
            return Problem(display, None, "not a regular file; replace it with a text file")
        if info.st_size > limit:
            return Problem(display, None, f"{info.st_size:,} bytes, more than the {limit:,} a "
                           "file of this kind may have; check that this is the right file")
        with path.open("rb") as handle:
            raw = handle.read(limit + 1)
    except OSError as exc:
        return Problem(display, None, f"cannot read: {exc.strerror}")
    if len(raw) > limit:  # it grew after the check
        return Problem(display, None, f"more than the {limit:,} bytes a file of this kind may "
                       "have")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[:exc.start].count(b"\n") + 1
        return Problem(display, line, f"not UTF-8 text (byte 0x{raw[exc.start]:02x} cannot be "
                       "read); save the file as UTF-8")


def escaping_links(root: Path, name: str, *, own_folder: bool = False) -> list[Problem]:
    """Every symbolic link at or under `name` in the project that leaves it (or leads nowhere).

    With `own_folder`, a link must stay inside `name` itself (templates stay in templates/).
    """
    root = root.resolve()
    top = root / name
    allowed = top if own_folder else root
    where = f"{name}/" if own_folder else "the project"
    found = [top] if top.is_symlink() else sorted(top.rglob("*")) if top.is_dir() else []
    problems: list[Problem] = []
    for path in found:
        if not path.is_symlink():
            continue
        display = path.relative_to(root).as_posix()
        target = os.readlink(path)
        real = path.resolve()
        if not real.is_relative_to(allowed):
            problems.append(Problem(display, None, (
                f"is a symbolic link to {target}, outside {where}; a campaign repository may "
                "only use its own files: replace the link with the file itself")))
        elif not real.exists():
            problems.append(Problem(display, None, f"is a symbolic link to {target}, which "
                                    "does not exist; replace it with the file itself"))
    return problems
