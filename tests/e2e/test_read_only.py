"""A project on a read-only file system: every command that must write says so in one line."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import Cli, mounted_tmpfs

DAY1 = "2026-12-01T10:00+01:00"


@pytest.fixture
def read_only(project: Path, tmp_path: Path) -> Iterator[Path]:
    """The scaffold on a tmpfs mounted read-only (a checkout on a read-only volume, say)."""
    folder = tmp_path / "read-only"
    folder.mkdir()
    with mounted_tmpfs(folder, "size=4m,mode=0755") as mount:
        shutil.copytree(project, mount / "repo")
        subprocess.run(["mount", "-o", "remount,ro", str(mount)], check=True)
        yield mount / "repo"


def test_a_read_only_project_reads_but_never_writes(read_only: Path, cli: Cli,
                                                    tmp_path: Path) -> None:
    for reading in (("validate",), ("plan", "--now", DAY1), ("audience",)):
        result = cli(*reading, "--project", read_only)
        assert result.exit_code == 0, (reading, result.output)
    sent = cli("send", "--project", read_only, "--now", DAY1)
    assert sent.exit_code == 1
    assert "cannot write the send lock (Read-only file system)" in sent.stderr
    assert "point 'ledger' in ldmail.yaml (or --db) at a writable place" in sent.stderr
    elsewhere = cli("send", "--project", read_only, "--now", DAY1, "--db",
                    tmp_path / "ledger.db")
    assert elsewhere.exit_code == 1
    assert "cannot create the outbox (Read-only file system)" in elsewhere.stderr
    for writing in (("suppress", "ann.devries@example.org"), ("forget", "x@example.org")):
        result = cli(*writing, "--project", read_only)
        assert result.exit_code == 1 and "cannot create the ledger" in result.stderr, writing
    assert not (read_only / ".ldmail").exists()
