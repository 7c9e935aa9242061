"""The ledger file: its connection, schema upgrades, keys, identity, runs and meta values.

The operations on delivery state live beside it (delivery.py, people.py, reads.py); the
`Ledger` in this package's __init__ puts them together.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

from ..errors import LdmailError, LedgerError, LedgerFull, LedgerLocked, LedgerReplaced
from .schema import MIGRATION_SET, MIGRATIONS, migrations

if TYPE_CHECKING:
    from ..project.config import Project

# How long a command waits for another program's write lock on the ledger (seconds).
BUSY_TIMEOUT = 30.0
# The meta key under which the staged export's fingerprint is kept (see enrolments.py).
STAGED = "staged"
# The meta key of the quiet marker (see quiet.py).
QUIET = "quiet"
# A counter that suppress, forget and events import raise: a running send claims each
# message with the full re-check (enrolment, suppression, goal) only once it changed,
# which keeps the common claim to one lookup.
INTERVENTIONS = "interventions"


class _Db:
    """The connection, and transactions on it (the part of sqlite-utils' Database we use)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    @contextmanager
    def atomic(self, *, immediate: bool = False) -> Iterator[_Db]:
        """A transaction; `immediate` takes the write lock at once, before anything is read,
        so a write after reads never finds its snapshot outdated by another writer."""
        nested = self.conn.in_transaction
        begin = "BEGIN IMMEDIATE" if immediate else "BEGIN"
        self.conn.execute("SAVEPOINT ldmail_atomic" if nested else begin)
        try:
            yield self
        except BaseException:
            if nested:
                self.conn.execute("ROLLBACK TO ldmail_atomic")
                self.conn.execute("RELEASE ldmail_atomic")
            else:
                self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("RELEASE ldmail_atomic" if nested else "COMMIT")


def _create_private(path: Path) -> None:
    """Create the ledger's folder and file readable by the owner only: it holds personal data."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    if not path.exists():
        fd = os.open(path, os.O_CREAT | os.O_WRONLY, 0o600)
        os.close(fd)


def ledger_path(project: Project, override: Path | None) -> Path:
    """`--db` when given, else the project's `ledger` setting (.ldmail/ledger.db)."""
    from ..project.config import LEDGER_SETTING

    return override if override is not None else project.path(project.settings.ledger,
                                                               LEDGER_SETTING)


def identity_path(ledger: Path) -> Path:
    """Beside the ledger and its lock: the id of the ledger earlier sends wrote, and their
    last run."""
    return ledger.with_name(ledger.name + ".id")


def read_identity(ledger: Path) -> tuple[str, int] | None:
    try:
        ledger_id, _, last_run = identity_path(ledger).read_text("ascii").strip().partition(" ")
        return ledger_id, int(last_run or 0)
    except (OSError, ValueError):
        return None


def record_identity(ledger: LedgerFile, run_id: int) -> None:
    """Note the ledger's id and this run beside it (best effort: a read-only folder is
    reported by the ledger itself)."""
    from ..sandbox.hygiene import write_private

    try:
        write_private(identity_path(ledger.path), f"{ledger.identity()} {run_id}\n")
    except (OSError, LdmailError):
        pass


# SQLite's primary result codes (the low byte of an extended code such as SQLITE_IOERR_WRITE).
_NO_ROOM = {sqlite3.SQLITE_FULL, sqlite3.SQLITE_IOERR}
_HELD = {sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED}


def unusable(error: sqlite3.OperationalError, busy_timeout: float) -> LedgerError | None:
    """What an error of an open ledger's statement means to the user; None for any other
    (a bug, which should show its traceback).

    Every write is a transaction that SQLite rolls back when it fails: what was recorded
    before is intact, and the command can simply run again.
    """
    code = (error.sqlite_errorcode or 0) & 0xFF
    if code in _NO_ROOM:
        return LedgerFull(
            f"the ledger could not be written ({error}); free space on the disk that holds it "
            "and run the command again: what was recorded before is intact, and this run's "
            "last change was not made")
    if code in _HELD:
        return LedgerLocked(
            f"the ledger stayed locked by another program for {busy_timeout:g} s (an open "
            "sqlite3 shell or a backup tool, say), so this run stopped there; run it again once "
            "that program is done: it picks up where this one stopped")
    return None


class LedgerFile:
    """An open ledger: the connection and what every operation shares."""

    @classmethod
    def of(cls, project: Project, override: Path | None = None, *,
           readonly: bool = False) -> Self:
        return cls(ledger_path(project, override), readonly=readonly)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close()

    def __init__(self, path: Path, *, readonly: bool = False, new: bool = False) -> None:
        self.path = path
        if not readonly and not new and not path.exists() and read_identity(path) is not None:
            # Any command that writes (an import, suppress, retry) would create an empty
            # ledger here, and the next send would mail everyone again.
            raise LedgerReplaced(
                f"{path} is missing, but {identity_path(path)} shows that sends wrote a ledger "
                "here: a new one would mail everyone again. Restore the ledger from a backup, "
                "or run 'ldmail send --new-ledger' to really start over")
        try:
            if readonly and not path.exists():
                conn = sqlite3.connect(":memory:", isolation_level=None)
            else:
                _create_private(path)
                conn = sqlite3.connect(str(path), timeout=BUSY_TIMEOUT, isolation_level=None,
                                       check_same_thread=False)
            conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT * 1000)}")
            if not readonly:
                conn.execute("PRAGMA journal_mode = WAL")
                conn.execute("PRAGMA synchronous = NORMAL")
            self.db = _Db(conn)
            self._inode = os.stat(path).st_ino if path.exists() else -1
            self._secret: bytes | None = None
            self._keyed: hmac.HMAC | None = None
            self._migrate()
        except sqlite3.DatabaseError as exc:
            raise LedgerError(
                f"{path}: cannot use the ledger ({exc}); if the file is damaged, restore it "
                "from a backup or move it aside (a new ledger forgets who received what)"
            ) from None
        except OSError as exc:
            raise LedgerError(f"{path}: cannot create the ledger ({exc.strerror})") from None

    def _pending(self) -> bool:
        conn = self.db.conn
        if conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name ="
                        " '_sqlite_migrations'").fetchone() is None:
            return True
        applied = {row[0] for row in conn.execute(
            "SELECT name FROM _sqlite_migrations WHERE migration_set = ?", (MIGRATION_SET,))}
        return any(function.__name__ not in applied for function in MIGRATIONS)

    def _migrate(self) -> None:
        if not self._pending():
            return
        from sqlite_utils import Database

        conn = self.db.conn
        database = Database(conn)
        found = migrations()
        if not found.pending(database):
            return
        # IMMEDIATE takes the write lock first, so two processes never apply a migration twice.
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            if "readonly" not in str(exc):
                raise
            # Every command upgrades an older ledger's schema first; this one cannot write it.
            raise LedgerError(
                f"{self.path}: the ledger was made by an older ldmail and its schema must be "
                "upgraded, but the file is read-only; run any ldmail command once with write "
                "access to it") from None
        try:
            found.apply(database)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def close(self) -> None:
        self.db.conn.close()

    @contextmanager
    def transaction(self, *, immediate: bool = False) -> Iterator[_Db]:
        with self.db.atomic(immediate=immediate):
            yield self.db

    def _rows(self, sql: str, params: tuple[Any, ...] | dict[str, Any] = ()
              ) -> list[dict[str, Any]]:
        cursor = self.db.conn.execute(sql, params)
        names = [c[0] for c in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    def _value(self, sql: str, params: tuple[Any, ...] = ()) -> Any:
        """The first column of the first row, or None."""
        row = self.db.conn.execute(sql, params).fetchone()
        return None if row is None else row[0]

    def _write(self, sql: str, params: tuple[Any, ...] | dict[str, Any] = ()) -> int:
        """Run one write statement (committed at once); returns the number of rows changed."""
        return self.db.conn.execute(sql, params).rowcount

    # -- meta values ------------------------------------------------------------------------

    def meta(self, key: str) -> str | None:
        value = self._value("SELECT value FROM meta WHERE key = ?", (key,))
        return None if value is None else str(value)

    def set_meta(self, key: str, value: str) -> None:
        self._write("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE"
                    " SET value = excluded.value", (key, value))

    def drop_meta(self, key: str) -> None:
        self._write("DELETE FROM meta WHERE key = ?", (key,))

    def _made_once(self, key: str, make: str) -> str:
        """A meta value written once (by whichever program comes first) and never changed."""
        self._write("INSERT OR IGNORE INTO meta (key, value) VALUES (?, ?)", (key, make))
        return str(self.meta(key))

    # -- keys -------------------------------------------------------------------------------

    def secret(self) -> bytes:
        """A random key kept in the ledger, for unsubscribe tokens and erased addresses."""
        if self._secret is None:
            found = self.meta("secret") or self._made_once("secret", secrets.token_hex(32))
            self._secret = bytes.fromhex(found)
        return self._secret

    def address_hash(self, email: str) -> str:
        """HMAC-SHA256 of the lower-cased address under secret(), as 32 hex digits."""
        if self._keyed is None:
            # Keyed once; each address then costs a copy and one update.
            self._keyed = hmac.new(self.secret(), digestmod=hashlib.sha256)
        mac = self._keyed.copy()
        mac.update(email.lower().encode())
        return mac.hexdigest()[:32]

    # -- identity ---------------------------------------------------------------------------

    def identity(self) -> str:
        """A random id kept in the ledger, made once: the ledger's name for itself."""
        return self.meta("ledger_id") or self._made_once("ledger_id", secrets.token_hex(8))

    def recorded_identity(self) -> str | None:
        """The ledger's id if one was made (reading never makes one)."""
        return self.meta("ledger_id")

    def still_on_disk(self) -> bool:
        """Whether the file this connection writes is still the one at `path`."""
        try:
            return os.stat(self.path).st_ino == self._inode
        except OSError:
            return False

    # -- runs -------------------------------------------------------------------------------

    def start_run(self, command: str, started_at: str, now: str) -> int:
        cursor = self.db.conn.execute(
            "INSERT INTO runs (command, started_at, now, pid, status) VALUES (?, ?, ?, ?, ?)",
            (command, started_at, now, os.getpid(), "running"))
        return int(cursor.lastrowid or 0)

    def finish_run(self, run_id: int, finished_at: str, status: str, summary: str) -> None:
        self._write("UPDATE runs SET finished_at = ?, status = ?, summary = ? WHERE id = ?",
                    (finished_at, status, summary, run_id))

    def latest_run_moment(self) -> tuple[int, str] | None:
        """The run with the latest `now` (its id and that moment), None in a new ledger."""
        row = self.db.conn.execute("SELECT id, now FROM runs ORDER BY now DESC, id DESC LIMIT 1"
                                   ).fetchone()
        return (int(row[0]), str(row[1])) if row else None

    def last_run(self) -> int:
        """The id of the newest run recorded (0 in a new ledger)."""
        return int(self._value("SELECT max(id) FROM runs") or 0)

    # -- interventions ----------------------------------------------------------------------

    def note_intervention(self) -> None:
        self._write("INSERT INTO meta (key, value) VALUES (?, '1') ON CONFLICT (key) DO UPDATE"
                    " SET value = CAST(value AS INTEGER) + 1", (INTERVENTIONS,))

    def interventions(self) -> str | None:
        return self.meta(INTERVENTIONS)
