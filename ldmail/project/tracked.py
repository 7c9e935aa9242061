"""Which of the files ldmail writes with names and addresses in them git tracks.

The ledger, the outbox and previews live under `.ldmail/`; a Maildir or mbox inbox and its
done folder, a preview gallery and written reports live where the user chose. `ldmail init`
lists them all in `.gitignore`; a pull request that adds one anyway would publish personal
data to everyone who can read the repository, so `validate` warns.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import PurePosixPath
from typing import Any

# git answers in milliseconds; a hung one (a network file system) must not hold up validate.
GIT_TIMEOUT = 10.0


def tracked_files(root: str, *, run: Callable[..., Any] = subprocess.run) -> list[str] | None:
    """Paths git tracks under `root`, relative to it; None when it is no git work tree or git
    is not installed. `run` starts git (subprocess.run, or a stand-in that answers as git
    would)."""
    try:
        answer = run(["git", "-C", root, "ls-files", "-z", "--", "."],
                     capture_output=True, timeout=GIT_TIMEOUT, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if answer.returncode != 0:
        return None
    return [name for name in answer.stdout.decode("utf-8", "replace").split("\0") if name]


def private_tracked(tracked: list[str], folders: list[str]) -> dict[str, list[str]]:
    """The tracked files in (or at) each of `folders` (project-relative paths), and in every
    folder that holds a preview gallery (an index.html beside a mail/ folder of pages)."""
    files = [PurePosixPath(name) for name in tracked]
    found: dict[str, list[str]] = {}
    for folder in folders:
        place = PurePosixPath(folder)
        inside = [str(path) for path in files if path == place or place in path.parents]
        if inside:
            found[folder] = inside
    for path in files:
        if path.name == "index.html" and any(path.parent / "mail" in other.parents
                                             for other in files):
            gallery = str(path.parent)
            found.setdefault(gallery, [str(other) for other in files
                                       if path.parent in other.parents])
    return found
