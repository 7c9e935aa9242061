"""`forget`: a person's address replaced by its keyed hash in every row and column, their
details dropped, and the file rewritten so that no old page holds them."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterable, Iterator
from typing import Any

from . import core
from .core import STAGED
from .delivery import FORGOTTEN
from .people import PersonMoves

ERASED = "(erased)"  # what stands where a forgotten person's words (a reason, a name) were
_KEPT = frozenset({"email", "campaign", "step"})  # fields of a summary entry that stay


class _Redactor:
    """Finds a person's address (any case) and names in a text, and puts the hash or ERASED
    in their place; in a JSON document (a run's summary), an entry about the person keeps
    only its campaign and step."""

    def __init__(self, email: str, hashed: str, names: Iterable[str]) -> None:
        self.email, self.hashed = email.lower(), hashed
        # Whole words only: another address that merely contains this one stays as it is.
        address = rf"(?<![\w.%+-]){re.escape(email)}(?![\w-]|\.\w)"
        words = [rf"\b{re.escape(name.strip())}\b" for name in names if len(name.strip()) >= 3]
        self.pattern = re.compile("|".join([address, *words]), re.IGNORECASE)

    def mentions(self, value: object) -> bool:
        return isinstance(value, str) and self.pattern.search(value) is not None

    def __call__(self, value: str | int | float | None) -> str | int | float | None:
        if not isinstance(value, str) or not self.mentions(value):
            return value
        try:
            document = json.loads(value)
        except ValueError:
            return self._text(value)
        if isinstance(document, dict | list):
            return json.dumps(self._walk(document))
        return self._text(value)

    def _text(self, text: str) -> str:
        return self.pattern.sub(
            lambda found: self.hashed if found[0].lower() == self.email else ERASED, text)

    def _walk(self, item: Any) -> Any:
        if isinstance(item, list):
            return [self._walk(value) for value in item]
        if isinstance(item, dict):
            if str(item.get("email", "")).lower() == self.email:
                return {key: self.hashed if key == "email" else value if key in _KEPT
                        else ERASED for key, value in item.items()}
            return {key: self._walk(value) for key, value in item.items()}
        return self._text(item) if isinstance(item, str) else item


class ErasureMoves(PersonMoves):
    def names_of(self, email: str) -> list[str]:
        """The person's names as the staged export holds them (to be erased with them)."""
        return [str(name) for (name,) in self.db.conn.execute(
            "SELECT DISTINCT name FROM main.staged_people WHERE email = ? AND name IS NOT NULL",
            (email,))]

    def erase(self, email: str, at: str, names: Iterable[str] = ()) -> int:
        """Replace the address by its keyed hash everywhere and drop the person's details;
        returns how many rows changed. make_final() then rewrites the file.

        Message and enrolment rows stay (under the hash) so counts and the report stay true,
        and a suppression under the hash keeps the person from ever being mailed again. Any
        other column that mentions the address or a name (an error, a run's summary, a
        reason) gets the hash or ERASED in its place. In the same transaction a running send
        is told to re-check its claims (whoever calls this, not only `forget`).
        """
        hashed = FORGOTTEN + self.address_hash(email)
        redact = _Redactor(email, hashed, names)
        conn = self.db.conn
        conn.execute("PRAGMA secure_delete = ON")  # freed pages are zeroed, not left readable
        conn.create_function("ldmail_mentions", 1, redact.mentions, deterministic=True)
        conn.create_function("ldmail_redact", 1, redact, deterministic=True)
        changed = 0
        with self.transaction(immediate=True) as db:
            for table in ("enrolments", "messages", "events", "survey_answers"):
                changed += db.conn.execute(f"UPDATE OR IGNORE {table} SET email = ? WHERE"
                                           " email = ?", (hashed, email)).rowcount
                db.conn.execute(f"DELETE FROM {table} WHERE email = ?", (email,))
            for column in ("recipient", "cc"):  # as someone's manager
                changed += db.conn.execute(f"UPDATE messages SET {column} = ? WHERE"
                                           f" {column} = ?", (hashed, email)).rowcount
            # A reason names the address, or words of the message (a name): all of it goes.
            db.conn.execute("UPDATE messages SET error = ? WHERE error IS NOT NULL AND"
                            " (email = ? OR recipient = ? OR cc = ?)",
                            (ERASED, hashed, hashed, hashed))
            db.conn.execute("DELETE FROM suppressions WHERE email = ?", (email,))
            for table in ("staged_people", "staged_targets", "staged_rejected"):
                changed += db.conn.execute(f"DELETE FROM main.{table} WHERE email = ?",
                                           (email,)).rowcount
            db.conn.execute("DELETE FROM meta WHERE key = ?", (STAGED,))  # stage the export anew
            db.conn.execute("INSERT OR IGNORE INTO suppressions (email, reason, source,"
                            " created_at) VALUES (?, 'forgotten on request', 'forget', ?)",
                            (hashed, at))
            self.note_intervention()  # a running send re-checks before its next claim
            for table, column in self._columns():
                db.conn.execute(f'UPDATE "{table}" SET "{column}" = ldmail_redact("{column}")'
                                f' WHERE ldmail_mentions("{column}")')
        return changed

    def _columns(self) -> Iterator[tuple[str, str]]:
        tables = [row[0] for row in self.db.conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")]
        for table in tables:
            for row in self.db.conn.execute(f'PRAGMA table_info("{table}")').fetchall():
                yield table, str(row[1])

    def make_final(self, wait: float) -> bool:
        """Rewrite the file and empty the write-ahead log, so that no old page holds what was
        erased; False when another connection kept a read snapshot (which pins the old
        pages) for `wait` seconds."""
        conn = self.db.conn
        conn.execute("VACUUM")
        deadline = time.monotonic() + wait
        # Each checkpoint waits for readers up to the busy time-out: keep it short here.
        conn.execute("PRAGMA busy_timeout = 200")
        try:
            while True:
                busy = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
                if not busy:
                    return True
                if time.monotonic() >= deadline:
                    return False
                time.sleep(0.1)
        finally:
            conn.execute(f"PRAGMA busy_timeout = {int(core.BUSY_TIMEOUT * 1000)}")
