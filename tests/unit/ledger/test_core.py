"""ledger/core.py promises: the ledger file is private to its owner and made once; a ledger that
sends wrote is never silently replaced by an empty one; a damaged file or a held lock is one
line the user can act on; the keys and the ledger's id are made once and kept; a transaction
writes all or nothing; runs and meta values read back as written."""

from __future__ import annotations

import os
import sqlite3
import stat
from pathlib import Path

import pytest

from ldmail.errors import LedgerError, LedgerLocked, LedgerReplaced
from ldmail.ledger import (
    Ledger,
    core,
    identity_path,
    ledger_path,
    read_identity,
    record_identity,
)
from ldmail.project.config import Project
from tests.unit.ledger.conftest import LATER, NOW


def test_a_new_ledger_is_readable_by_its_owner_only(path: Path) -> None:
    with Ledger(path):
        pass
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700


def test_the_project_setting_places_the_ledger_and_db_overrides_it(loaded: Project,
                                                                    tmp_path: Path) -> None:
    assert ledger_path(loaded, None) == loaded.root / ".ldmail" / "ledger.db"
    assert ledger_path(loaded, tmp_path / "other.db") == tmp_path / "other.db"


def test_a_missing_ledger_that_sends_wrote_is_not_replaced_by_an_empty_one(path: Path) -> None:
    with Ledger(path) as ledger:
        record_identity(ledger, 7)
        made = ledger.identity()
    assert read_identity(path) == (made, 7)
    path.unlink()
    with pytest.raises(LedgerReplaced) as refused:
        Ledger(path)
    assert "'ldmail send --new-ledger'" in str(refused.value)
    assert str(identity_path(path)) in str(refused.value)
    assert not path.exists()
    with Ledger(path, new=True) as fresh:  # --new-ledger really starts over
        assert fresh.identity() != made


def test_reading_a_ledger_that_does_not_exist_creates_no_file(path: Path) -> None:
    with Ledger(path, readonly=True) as ledger:
        assert ledger.last_run() == 0
        assert ledger.recorded_identity() is None
    assert not path.exists()


def test_a_damaged_file_is_one_line_that_says_what_to_do(path: Path) -> None:
    path.parent.mkdir()
    path.write_bytes(b"this is not a database, just some text " * 200)
    with pytest.raises(LedgerError) as damaged:
        Ledger(path)
    message = str(damaged.value)
    assert message.startswith(f"{path}: cannot use the ledger (")
    assert "restore it from a backup" in message and "\n" not in message


def test_a_ledger_that_cannot_be_created_says_why(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("x")
    with pytest.raises(LedgerError, match=r"afile/ledger.db: cannot create the ledger \("):
        Ledger(tmp_path / "afile" / "ledger.db")


def test_a_lock_held_by_another_program_leaves_the_block_as_ledger_locked(
        path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The wait, as the package exports it: 50 ms instead of 30 s.
    monkeypatch.setattr(core, "BUSY_TIMEOUT", 0.05)
    with Ledger(path):
        pass
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # an sqlite3 shell in the middle of a write, say
    try:
        with pytest.raises(LedgerLocked, match="stayed locked by another program for 0.05 s"):
            with Ledger(path) as ledger:
                ledger.set_meta("cursor", "1")
    finally:
        other.execute("ROLLBACK")
        other.close()
    with Ledger(path) as ledger:
        assert ledger.meta("cursor") is None  # the statement that failed changed nothing


def test_the_secret_and_the_address_hash_are_kept_across_opens(path: Path,
                                                               tmp_path: Path) -> None:
    with Ledger(path) as ledger:
        hashed = ledger.address_hash("Ann@Example.org")
        secret = ledger.secret()
    assert len(hashed) == 32 and int(hashed, 16) >= 0
    with Ledger(path) as ledger:
        assert ledger.secret() == secret
        assert ledger.address_hash("ann@example.org") == hashed  # any case: the same person
        assert ledger.address_hash("bob@example.org") != hashed
    with Ledger(tmp_path / "another.db") as other:  # another ledger's key: another hash
        assert other.address_hash("ann@example.org") != hashed


def test_the_ledger_id_is_made_once_and_reading_never_makes_one(path: Path) -> None:
    with Ledger(path) as ledger:
        assert ledger.recorded_identity() is None
        made = ledger.identity()
        assert ledger.identity() == made
    with Ledger(path) as ledger:
        assert ledger.recorded_identity() == made


def test_a_failed_transaction_writes_nothing_and_an_inner_one_rolls_back_alone(
        ledger: Ledger) -> None:
    with pytest.raises(RuntimeError):
        with ledger.transaction(immediate=True):
            ledger.set_meta("a", "1")
            raise RuntimeError("stop")
    assert ledger.meta("a") is None
    with ledger.transaction():
        ledger.set_meta("b", "1")
        with pytest.raises(RuntimeError):
            with ledger.transaction():
                ledger.set_meta("c", "1")
                raise RuntimeError("stop")
    assert (ledger.meta("b"), ledger.meta("c")) == ("1", None)


def test_meta_values_are_set_replaced_and_dropped(ledger: Ledger) -> None:
    ledger.set_meta("cursor", "1")
    ledger.set_meta("cursor", "2")
    assert ledger.meta("cursor") == "2"
    ledger.drop_meta("cursor")
    assert ledger.meta("cursor") is None


def test_runs_are_numbered_and_the_latest_moment_is_by_now_not_by_id(ledger: Ledger) -> None:
    assert ledger.latest_run_moment() is None and ledger.last_run() == 0
    first = ledger.start_run("send", NOW, LATER)
    second = ledger.start_run("send --now", NOW, NOW)  # a run told an earlier moment
    ledger.finish_run(second, NOW, "ok", "{}")
    assert second > first and ledger.last_run() == second
    assert ledger.latest_run_moment() == (first, LATER)


def test_interventions_count_up_from_none(ledger: Ledger) -> None:
    assert ledger.interventions() is None
    ledger.note_intervention()
    ledger.note_intervention()
    assert ledger.interventions() == "2"


def test_a_ledger_replaced_on_disk_is_noticed(path: Path, tmp_path: Path) -> None:
    with Ledger(tmp_path / "copy.db"):
        pass
    with Ledger(path) as ledger:
        assert ledger.still_on_disk()
        os.replace(tmp_path / "copy.db", path)
        assert not ledger.still_on_disk()
