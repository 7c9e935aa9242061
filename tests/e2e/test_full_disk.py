"""A full disk under the outbox: the run stops with one clear line and loses nothing."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import Cli, mounted_tmpfs
from .smtp_server import ledger_rows

DAY1 = "2026-12-01T10:00+01:00"


@pytest.fixture
def tiny_outbox(project: Path) -> Iterator[Path]:
    """The project's outbox on a 24 KiB tmpfs: room for a few messages, not for all."""
    outbox = project / ".ldmail" / "outbox"
    outbox.mkdir(parents=True)
    with mounted_tmpfs(outbox, "size=24k,mode=0700"):
        yield outbox


def test_full_outbox_stops_the_run_and_the_rest_follows_later(project: Path, cli: Cli,
                                                              tiny_outbox: Path) -> None:
    result = cli("send", "--project", project, "--now", DAY1)
    assert result.exit_code == 1
    assert "No space left on device" in result.stderr and "Traceback" not in result.output
    written = sorted(p.name for p in tiny_outbox.iterdir())
    assert written and not [name for name in written if name.endswith(".part")]
    rows = ledger_rows(project, "SELECT state FROM messages")
    sent = [r for r in rows if r["state"] == "sent"]
    assert len(sent) == len(written)  # every file the ledger calls sent is complete, and no more
    assert {r["state"] for r in rows} <= {"sent", "deferred"}

    subprocess.run(["umount", str(tiny_outbox)], check=True)  # space again: the plain folder
    later = cli("send", "--project", project, "--now", "2026-12-01T11:00+01:00")
    assert later.exit_code == 0, later.output
    total = len(written) + len(list(tiny_outbox.glob("*.eml")))
    assert total == 7  # the scaffold's seven treatment people, each exactly once
    assert {r["state"] for r in ledger_rows(project, "SELECT state FROM messages")} == {"sent"}


def test_a_full_disk_under_the_ledger_is_one_line_and_the_ledger_stays_whole(example: Path,
                                                                             cli: Cli) -> None:
    """The shipped example's first run does not fit in 300 KiB: one line, exit 1, the ledger
    passes SQLite's integrity check, and once there is room the next run does the work."""
    import sqlite3
    from contextlib import closing

    ledger = example / ".ldmail"
    ledger.mkdir()
    with mounted_tmpfs(ledger, "size=300k,mode=0700"):
        full = cli("send", "--project", example, "--now", DAY1)
        assert full.exit_code == 1
        lines = full.stderr.strip().splitlines()
        assert lines == ["error the ledger could not be written (database or disk is full); "
                         "free space on the disk that holds it and run the command again: what "
                         "was recorded before is intact, and this run's last change was not "
                         "made"], lines
        with closing(sqlite3.connect(ledger / "ledger.db")) as conn:  # closed: unmountable
            assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        subprocess.run(["mount", "-o", "remount,size=64m", str(ledger)], check=True)
        again = cli("send", "--project", example, "--now", DAY1)
        assert again.exit_code == 0, again.output
        sent = len(list((ledger / "outbox").glob("*.eml")))
        assert sent > 0
        assert ledger_rows(example, "SELECT count(*) AS n FROM messages WHERE state = 'sent'"
                           )[0]["n"] == sent
