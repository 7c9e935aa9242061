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
