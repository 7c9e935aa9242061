"""`ldmail init`: a small campaign repository that validates and previews out of the box."""

from __future__ import annotations

import shutil
from pathlib import Path

from ..errors import LdmailError
from .schema import SCHEMA_DIR, write_schemas

SCAFFOLD = Path(__file__).with_name("scaffold")


def init_project(target: Path) -> list[Path]:
    """Copy the scaffold into `target`; refuses to overwrite any existing file."""
    if target.exists() and not target.is_dir():
        raise LdmailError(f"{target} is a file; give a new or empty folder for the campaign "
                          "repository")
    files = sorted(p for p in SCAFFOLD.rglob("*") if p.is_file() and "__pycache__" not in p.parts)
    clashes = [target / p.relative_to(SCAFFOLD) for p in files
               if (target / p.relative_to(SCAFFOLD)).exists()]
    if clashes:
        raise LdmailError(
            f"{clashes[0]} already exists; 'ldmail init' never overwrites files: choose an "
            "empty or new folder")
    written: list[Path] = []
    try:
        for source in files:
            destination = target / source.relative_to(SCAFFOLD)
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, destination)
            written.append(destination)
        # Generated, not copied, so the schemas always match this version of ldmail.
        written.extend(write_schemas(target / SCHEMA_DIR))
    except OSError as exc:
        raise LdmailError(f"{exc.filename or target}: cannot create it ({exc.strerror}); "
                          "choose a folder you can write to") from None
    return written
