"""The SQLite ledger: the one record of who was enrolled in what and who received which step."""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import LdmailError, LedgerError, LedgerReplaced

if TYPE_CHECKING:
    from sqlite_utils import Database, Migrations

    from .config import Project

# Message states. A message is `claimed` before it is handed to the transport; a claim found
# by a later run was interrupted mid-send and becomes `unknown` (never resent silently).
CLAIMED, SENT, UNKNOWN, DEFERRED, FAILED = "claimed", "sent", "unknown", "deferred", "failed"
# A message that could not be rendered or built (a template error, a missing file, a line
# break in a header value): nothing was claimed or sent; it goes out once the project renders.
HELD = "held"
# Enrolment states.
ACTIVE, COMPLETED, CONVERTED, LEFT = "active", "completed", "converted", "left"
TREATMENT, HOLDOUT = "treatment", "holdout"
# How long a command waits for another program's write lock on the ledger (seconds).
BUSY_TIMEOUT = 30.0
# Page cache per schema, in KiB (SQLite takes it only as it needs it).
CACHE_KIB = 64 * 1024
# The meta key under which the staged export's fingerprint is kept (see enrolment.py).
STAGED = "staged"

def m001_initial(db: Database) -> None:
    db.execute("""
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)""")
    db.execute("""
        CREATE TABLE people (
            email TEXT PRIMARY KEY, name TEXT, language TEXT, persona TEXT,
            timezone TEXT, first_seen TEXT NOT NULL, last_seen TEXT NOT NULL)""")
    db.execute("""
        CREATE TABLE enrolments (
            campaign TEXT NOT NULL, email TEXT NOT NULL, enrolled_at TEXT NOT NULL,
            anchor_at TEXT NOT NULL, grp TEXT NOT NULL, persona TEXT, language TEXT,
            state TEXT NOT NULL, exit_reason TEXT, exited_at TEXT,
            PRIMARY KEY (campaign, email))""")
    db.execute("CREATE INDEX enrolments_state ON enrolments (state)")
    db.execute("""
        CREATE TABLE messages (
            id INTEGER PRIMARY KEY, campaign TEXT NOT NULL, step TEXT NOT NULL,
            email TEXT NOT NULL, due_at TEXT NOT NULL, state TEXT NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 0, message_id TEXT, error TEXT,
            claimed_at TEXT, sent_at TEXT, next_attempt_at TEXT, run_id INTEGER,
            UNIQUE (campaign, step, email))""")
    db.execute("CREATE INDEX messages_state ON messages (state)")
    db.execute("CREATE INDEX messages_email ON messages (email)")
    db.execute("""
        CREATE TABLE suppressions (
            email TEXT PRIMARY KEY, reason TEXT NOT NULL, source TEXT, created_at TEXT NOT NULL)""")
    db.execute("""
        CREATE TABLE events (
            id INTEGER PRIMARY KEY, email TEXT NOT NULL, event TEXT NOT NULL,
            object TEXT NOT NULL DEFAULT '', occurred_at TEXT NOT NULL, source TEXT,
            UNIQUE (email, event, object, occurred_at))""")
    db.execute("CREATE INDEX events_email ON events (email)")
    db.execute("""
        CREATE TABLE runs (
            id INTEGER PRIMARY KEY, command TEXT NOT NULL, started_at TEXT NOT NULL,
            finished_at TEXT, now TEXT NOT NULL, pid INTEGER, status TEXT, summary TEXT)""")


def m002_streamed_sync(db: Database) -> None:
    # Each enrolment's history is looked up by (campaign, email) for every active enrolment
    # of every run; the unique key (campaign, step, email) cannot serve that.
    db.execute("CREATE INDEX messages_enrolment ON messages (campaign, email)")
    # The people export as the last written sync read it, and which campaigns target whom:
    # a run that finds the same export (and the same audiences, campaigns and day) reads
    # these instead of a million rows again. Indexes are made after each bulk load.
    db.execute("""
        CREATE TABLE staged_people (
            row INTEGER PRIMARY KEY, email TEXT NOT NULL, name TEXT, language TEXT,
            persona TEXT, timezone TEXT)""")
    db.execute("""
        CREATE TABLE staged_targets (
            campaign TEXT NOT NULL, email TEXT NOT NULL, row INTEGER NOT NULL, anchor_at TEXT,
            persona TEXT, language TEXT)""")
    # staged_people replaces it: a second copy of every row, rewritten by each sync, cost a
    # million-row write per changed export and kept names nobody read.
    db.execute("DROP TABLE people")


def m003_missing_since(db: Database) -> None:
    # When a person with an active enrolment was first missing from the export: they leave
    # only once missing for the grace period, so a truncated export ends nothing at once.
    db.execute("ALTER TABLE enrolments ADD COLUMN missing_since TEXT")


def m004_staged_rejected(db: Database) -> None:
    # The addresses of export rows that were rejected (a date typo, say): such a person is
    # still in the export, so neither missing from it nor leaving any campaign.
    db.execute("CREATE TABLE staged_rejected (email TEXT PRIMARY KEY) WITHOUT ROWID")


# The schema's versions, in order. sqlite-utils applies them (and records each in its
# _sqlite_migrations table); it is only imported when one is pending, because importing it
# costs more than a whole cron run that finds nothing to do.
MIGRATIONS = [m001_initial, m002_streamed_sync, m003_missing_since, m004_staged_rejected]
MIGRATION_SET = "ldmail"


def migrations() -> Migrations:
    from sqlite_utils import Migrations

    found = Migrations(MIGRATION_SET)
    for function in MIGRATIONS:
        found()(function)
    return found


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
    from .config import LEDGER_SETTING

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


def record_identity(ledger: Ledger, run_id: int) -> None:
    """Note the ledger's id and this run beside it (best effort: a read-only folder is
    reported by the ledger itself)."""
    from .hygiene import write_private

    try:
        write_private(identity_path(ledger.path), f"{ledger.identity()} {run_id}\n")
    except (OSError, LdmailError):
        pass


class Ledger:
    """A connection to the ledger with the queries the rest of ldmail needs."""

    @classmethod
    def of(cls, project: Project, override: Path | None = None, *,
           readonly: bool = False) -> Ledger:
        return cls(ledger_path(project, override), readonly=readonly)

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc_info: object) -> None:
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
            # A sync of a large export writes and indexes a row per person: with SQLite's
            # default 2 MB page cache those writes go to disk and back many times over.
            for schema in ("main", "temp"):
                conn.execute(f"PRAGMA {schema}.cache_size = -{CACHE_KIB}")
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

    def rows(self, sql: str, params: tuple[Any, ...] | dict[str, Any] = ()) -> list[dict[str, Any]]:
        cursor = self.db.conn.execute(sql, params)
        names = [c[0] for c in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    def execute(self, sql: str, params: tuple[Any, ...] | dict[str, Any] = ()) -> int:
        """Run one write statement (committed at once); returns the number of rows changed."""
        return self.db.conn.execute(sql, params).rowcount

    # -- keys -------------------------------------------------------------------------------

    def secret(self) -> bytes:
        """A random key kept in the ledger, for unsubscribe tokens and erased addresses."""
        if self._secret is None:
            rows = self.rows("SELECT value FROM meta WHERE key = 'secret'")
            if not rows:
                self.execute("INSERT OR IGNORE INTO meta (key, value) VALUES ('secret', ?)",
                             (secrets.token_hex(32),))
                rows = self.rows("SELECT value FROM meta WHERE key = 'secret'")
            self._secret = bytes.fromhex(rows[0]["value"])  # set once, never changed
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
        rows = self.rows("SELECT value FROM meta WHERE key = 'ledger_id'")
        if not rows:
            self.execute("INSERT OR IGNORE INTO meta (key, value) VALUES ('ledger_id', ?)",
                         (secrets.token_hex(8),))
            rows = self.rows("SELECT value FROM meta WHERE key = 'ledger_id'")
        return str(rows[0]["value"])

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
        self.execute("UPDATE runs SET finished_at = ?, status = ?, summary = ? WHERE id = ?",
                     (finished_at, status, summary, run_id))

    # -- requeueing ------------------------------------------------------------------------

    def requeue(self, states: tuple[str, ...], at: str, *, campaign: str | None = None,
                step: str | None = None) -> int:
        """Put messages in `states` back in the queue, due at once; returns how many.

        Only for people still enrolled and not suppressed. An enrolment that counted the
        message as its last step is reopened first, or nothing would pick the message up.
        """
        marks = ", ".join("?" for _ in states)
        chosen = [(column, value) for column, value in (("campaign", campaign), ("step", step))
                  if value is not None]
        scope = "".join(f" AND m.{column} = ?" for column, _ in chosen)
        scope_params = tuple(value for _, value in chosen)
        with self.transaction(immediate=True) as db:
            db.conn.execute(
                "UPDATE enrolments SET state = ?, exit_reason = NULL, exited_at = NULL"
                " WHERE state = ? AND exit_reason = 'all steps done' AND EXISTS (SELECT 1 FROM"
                f" messages m WHERE m.state IN ({marks}) AND m.campaign = enrolments.campaign"
                f" AND m.email = enrolments.email{scope})",
                (ACTIVE, COMPLETED, *states, *scope_params))
            return int(db.conn.execute(
                f"UPDATE messages AS m SET state = ?, next_attempt_at = ?, attempts = 0,"
                " error = coalesce(error || ' (requeued by ldmail retry)', 'requeued by"
                f" ldmail retry') WHERE m.state IN ({marks}){scope}"
                " AND EXISTS (SELECT 1 FROM enrolments e WHERE e.campaign = m.campaign AND"
                " e.email = m.email AND e.state = ?) AND NOT EXISTS (SELECT 1 FROM suppressions"
                " s WHERE s.email = m.email)",
                (DEFERRED, at, *states, *scope_params, ACTIVE)).rowcount)

    # -- suppressions and events ------------------------------------------------------------

    def suppress(self, email: str, reason: str, source: str, at: str) -> bool:
        added = self.execute(
            "INSERT OR IGNORE INTO suppressions (email, reason, source, created_at) "
            "VALUES (?, ?, ?, ?)", (email, reason, source, at)) == 1
        self.note_intervention()
        return added

    # A counter that suppress, forget and events import raise: a running send claims each
    # message with the full re-check (enrolment, suppression, goal) only once it changed,
    # which keeps the common claim to one lookup.
    INTERVENTIONS = "interventions"

    def note_intervention(self) -> None:
        self.execute("INSERT INTO meta (key, value) VALUES (?, '1') ON CONFLICT (key) DO UPDATE"
                     " SET value = CAST(value AS INTEGER) + 1", (self.INTERVENTIONS,))

    def interventions(self) -> str | None:
        rows = self.rows("SELECT value FROM meta WHERE key = ?", (self.INTERVENTIONS,))
        return str(rows[0]["value"]) if rows else None

    def goal_events(self, event: str, until: str) -> list[dict[str, Any]]:
        """Events of one kind up to `until` (ISO UTC), earliest first."""
        return self.rows("SELECT email, object, occurred_at FROM events WHERE event = ? "
                         "AND occurred_at <= ? ORDER BY occurred_at", (event, until))
