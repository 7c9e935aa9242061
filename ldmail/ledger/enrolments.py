"""The enrolment moves: a sync's set-based SQL (stage the export, enrol, let people leave,
record goals), and the rounds of a campaign (next round, resume).

audience/enrolment.py decides: which campaigns are in scope and open, who met a trigger or
reached a goal, which people and targets are staged, the holdout draw. It hands those over as
plain rows, and every statement that reads or changes enrolments for it is here. The states
each move goes to and the exit reasons come from states.py, looked up once per sync and bound
as parameters.

The export is staged into `staged_people` and `staged_targets` (which campaigns target whom)
in the ledger, or, for a run that writes nothing and finds a different export, in temporary
tables of its own that hide the ledger's (SQLite looks a name up in temp first). A sync's
own tables are temporary: the campaigns in scope, who reached a goal, who met a trigger, who
asked to be forgotten, and what the sync changes. After a sync, the temporary view `synced`
holds the active enrolments as they are after it, whether it was written or not.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from ..states import (
    OCCURRENCE,
    EnrolmentOp,
    EnrolmentState,
    ExitReason,
    Group,
    enrolment_move,
)
from .core import STAGED
from .people import PersonMoves

E = EnrolmentState


def _literal(state: str) -> str:
    """A state as an SQL literal, for the one statement that takes no parameters (a view)."""
    assert "'" not in state
    return f"'{state}'"


# A run's own tables: the campaigns in scope, who reached a goal, who asked to be forgotten,
# and what the sync changes. `synced` is every active enrolment after the sync.
_RUN_TABLES = f"""
DROP VIEW IF EXISTS temp.synced;
DROP TABLE IF EXISTS temp.scope;
DROP TABLE IF EXISTS temp.reached;
DROP TABLE IF EXISTS temp.triggered;
DROP TABLE IF EXISTS temp.forgotten;
DROP TABLE IF EXISTS temp.exits;
DROP TABLE IF EXISTS temp.new;
DROP TABLE IF EXISTS temp.staged_people;
DROP TABLE IF EXISTS temp.staged_targets;
DROP TABLE IF EXISTS temp.staged_rejected;
DROP TABLE IF EXISTS temp.vanished;
CREATE TEMP TABLE vanished (id INTEGER PRIMARY KEY);
CREATE TEMP TABLE scope (id TEXT PRIMARY KEY, open INTEGER NOT NULL, holdout REAL NOT NULL,
    triggered INTEGER NOT NULL);
CREATE TEMP TABLE triggered (campaign TEXT NOT NULL, email TEXT NOT NULL, at TEXT NOT NULL,
    object TEXT NOT NULL, PRIMARY KEY (campaign, email)) WITHOUT ROWID;
CREATE TEMP TABLE reached (campaign TEXT NOT NULL, email TEXT NOT NULL,
    PRIMARY KEY (campaign, email)) WITHOUT ROWID;
CREATE TEMP TABLE forgotten (email TEXT PRIMARY KEY) WITHOUT ROWID;
CREATE TEMP TABLE exits (campaign TEXT NOT NULL, email TEXT NOT NULL, state TEXT NOT NULL,
    reason TEXT NOT NULL, PRIMARY KEY (campaign, email)) WITHOUT ROWID;
CREATE TEMP TABLE new (campaign TEXT NOT NULL, email TEXT NOT NULL, anchor_at TEXT NOT NULL,
    grp TEXT NOT NULL, persona TEXT, language TEXT, state TEXT NOT NULL, reason TEXT,
    enrolled_at TEXT NOT NULL, occurrence TEXT, PRIMARY KEY (campaign, email)) WITHOUT ROWID;
CREATE TEMP VIEW synced AS
    SELECT e.campaign, e.email, e.anchor_at, e.grp, e.occurrence FROM main.enrolments e
    WHERE e.state = {_literal(E.ACTIVE)} AND e.campaign IN (SELECT id FROM temp.scope)
      AND NOT EXISTS (SELECT 1 FROM temp.exits x
                      WHERE x.campaign = e.campaign AND x.email = e.email)
    UNION ALL
    -- A run that writes nothing reads the ledger again after its sync: a send that enrolled
    -- the same person meanwhile is already counted above.
    SELECT n.campaign, n.email, n.anchor_at, n.grp, n.occurrence FROM temp.new n
    WHERE n.state = {_literal(E.ACTIVE)} AND NOT EXISTS (SELECT 1 FROM main.enrolments e
                                            WHERE e.campaign = n.campaign AND e.email = n.email);
"""

# Why active enrolments end, in order of precedence: each statement only adds the
# enrolments no earlier one took (INSERT OR IGNORE on the key).
_EXITS = (
    """INSERT OR IGNORE INTO temp.exits (campaign, email, state, reason)
    SELECT e.campaign, e.email, :reach_goal, :goal_reached
    FROM temp.reached r JOIN main.enrolments e ON e.campaign = r.campaign AND e.email = r.email
    WHERE e.state = :active AND e.campaign IN (SELECT id FROM temp.scope)""",
    """INSERT OR IGNORE INTO temp.exits (campaign, email, state, reason)
    SELECT e.campaign, e.email, :suppress, :suppressed
    FROM (SELECT email FROM main.suppressions UNION SELECT email FROM temp.forgotten) s
    JOIN temp.scope c JOIN main.enrolments e ON e.campaign = c.id AND e.email = s.email
    WHERE e.state = :active""",
    # Missing from the export for the whole grace period (see note_missing).
    """INSERT OR IGNORE INTO temp.exits (campaign, email, state, reason)
    SELECT e.campaign, e.email, :leave, :not_in_export
    FROM main.enrolments e
    WHERE e.state = :active AND e.campaign IN (SELECT id FROM temp.scope)
      AND (:no_grace OR e.missing_since <= :grace_cut)
      AND NOT EXISTS (SELECT 1 FROM staged_people x WHERE x.email = e.email)
      AND NOT EXISTS (SELECT 1 FROM staged_rejected r WHERE r.email = e.email)""",
    # In the export, but no longer targeted by the campaign. A scan of every active
    # enrolment, with one lookup each for most of them.
    """INSERT OR IGNORE INTO temp.exits (campaign, email, state, reason)
    SELECT e.campaign, e.email, :leave,
        :not_in_audience || ' (persona ' || coalesce(x.persona, 'none') || ')'
    FROM main.enrolments e JOIN staged_people x ON x.email = e.email
    WHERE e.state = :active AND e.campaign IN (SELECT id FROM temp.scope)
      AND NOT EXISTS (SELECT 1 FROM staged_targets t
                      WHERE t.campaign = e.campaign AND t.email = e.email)""")

# Active enrolments whose person is missing from the export and not yet leaving.
_MISSING = """
FROM main.enrolments e
WHERE e.state = :active AND e.campaign IN (SELECT id FROM temp.scope)
  AND NOT EXISTS (SELECT 1 FROM staged_people x WHERE x.email = e.email)
  AND NOT EXISTS (SELECT 1 FROM staged_rejected r WHERE r.email = e.email)
  AND NOT EXISTS (SELECT 1 FROM temp.exits q WHERE q.campaign = e.campaign AND q.email = e.email)
"""

# Who joins: targeted by an open campaign (one with a trigger: once a matching event
# arrived), never enrolled in it before, not suppressed.
_JOINING = """
FROM staged_targets t JOIN temp.scope c ON c.id = t.campaign AND c.open
LEFT JOIN temp.reached r ON r.campaign = t.campaign AND r.email = t.email
LEFT JOIN temp.triggered g ON g.campaign = t.campaign AND g.email = t.email
WHERE (NOT c.triggered OR g.email IS NOT NULL)
  AND NOT EXISTS (SELECT 1 FROM main.enrolments e
                  WHERE e.campaign = t.campaign AND e.email = t.email)
  AND NOT EXISTS (SELECT 1 FROM main.suppressions s WHERE s.email = t.email)
  AND NOT EXISTS (SELECT 1 FROM temp.forgotten f WHERE f.email = t.email)
"""

# The enrolments that begin: into the ledger, or (writing nothing) into temp.new. Day 0 is
# the triggering event's time, an anchor date, or (staged as '') the moment of enrolment.
_NEW = """
INSERT INTO {target} (campaign, email, anchor_at, grp, persona, language, state, {reason},
    {stamps}, occurrence)
SELECT t.campaign, t.email,
    CASE WHEN c.triggered THEN g.at WHEN t.anchor_at = '' THEN :now ELSE t.anchor_at END,
    CASE WHEN c.holdout > 0 THEN ldmail_group(t.campaign, t.email, c.holdout)
         ELSE :treatment END, t.persona, t.language,
    CASE WHEN r.email IS NULL THEN :enrol ELSE :enrol_reached END,
    CASE WHEN r.email IS NULL THEN NULL ELSE :goal_reached_before END,
    {stamp_values}, g.object
{joining} AND t.anchor_at IS NOT NULL
ORDER BY t.campaign, t.email
"""
_NEW_INTO_LEDGER = _NEW.format(
    target="main.enrolments", reason="exit_reason", stamps="enrolled_at, exited_at",
    stamp_values=":now, CASE WHEN r.email IS NULL THEN NULL ELSE :now END", joining=_JOINING)
_NEW_INTO_RUN = _NEW.format(target="temp.new", reason="reason", stamps="enrolled_at",
                            stamp_values=":now", joining=_JOINING)

# How many people each campaign has mailed or held out, ended enrolments included, with the
# enrolments a sync that wrote nothing would begin (temp.new): the group sizes a campaign's
# report will compare.
_GROUP_SIZES = """
SELECT campaign, grp, count(*) FROM (
    SELECT campaign, grp FROM main.enrolments
    UNION ALL
    SELECT n.campaign, n.grp FROM temp.new n
    WHERE NOT EXISTS (SELECT 1 FROM main.enrolments e
                      WHERE e.campaign = n.campaign AND e.email = n.email))
GROUP BY campaign, grp"""

# Every active enrolment after the sync, with the history of its steps as one string
# (fields split by \x1f, steps by \x1e: see step_records): SQLite groups it faster than
# Python could. A triggered campaign's history is its current round's: the messages keyed
# step@object.
_SYNCED = """
SELECT s.campaign, s.email, s.grp, x.row, x.persona, x.language, x.timezone, x.country,
    s.anchor_at, s.occurrence,
    (SELECT group_concat(substr(m.step, 1, instr(m.step || '@', '@') - 1) || char(31)
            || m.state || char(31)
            || coalesce(m.sent_at, m.claimed_at, '') || char(31)
            || coalesce(m.next_attempt_at, '') || char(31) || m.attempts, char(30))
     FROM main.messages m WHERE m.campaign = s.campaign AND m.email = s.email
       AND (s.occurrence IS NULL OR substr(m.step, instr(m.step, '@') + 1) = s.occurrence))
FROM temp.synced s JOIN staged_people x ON x.email = s.email
"""


def step_records(history: str | None) -> Iterator[list[str]]:
    """The steps of an enrolment's history as `synced_enrolments` gives it, each as its step
    id, state, when it was sent (or claimed), its next attempt and its attempts ('' for none)."""
    for record in history.split("\x1e") if history else ():
        yield record.split("\x1f")


def sync_moves(now: str) -> dict[str, str]:
    """The moves a sync makes, looked up in the table once per sync, and the exit reasons:
    the parameters of its statements. Exits and the enrolments they end are active ones."""
    active = E.ACTIVE
    return {
        "active": active,
        "enrol": enrolment_move(EnrolmentOp.ENROL, E.NEW, E.ACTIVE),
        "enrol_reached": enrolment_move(EnrolmentOp.ENROL, E.NEW, E.CONVERTED),
        "reach_goal": enrolment_move(EnrolmentOp.REACH_GOAL, active),
        "suppress": enrolment_move(EnrolmentOp.SUPPRESS, active),
        "leave": enrolment_move(EnrolmentOp.LEAVE, active),
        "goal_reached": ExitReason.GOAL_REACHED,
        "goal_reached_before": ExitReason.GOAL_REACHED_BEFORE,
        "suppressed": ExitReason.SUPPRESSED,
        "not_in_export": ExitReason.NOT_IN_EXPORT,
        "not_in_audience": ExitReason.NOT_IN_AUDIENCE,
        "treatment": Group.TREATMENT,
        "now": now,
    }


class EnrolmentSync:
    """One sync on the ledger's connection: its tables, the staging of the export, and the
    moves it makes. `EnrolmentMoves.enrolment_sync` hands one out; it writes to the ledger
    only when `persist` (a run that writes nothing stages into tables of its own)."""

    def __init__(self, ledger: EnrolmentMoves, now: str, *, persist: bool,
                 group: Callable[[str, str, float], str]) -> None:
        self.ledger = ledger
        self.conn = conn = ledger.db.conn
        self.persist = persist
        self.schema = "main" if persist else "temp"
        self.moves = sync_moves(now)
        assert not conn.in_transaction, "executescript would commit it"
        conn.executescript(_RUN_TABLES)
        # The holdout draw, for the enrolments that begin in a campaign with a holdout.
        conn.create_function("ldmail_group", 3, group, deterministic=True)

    # -- staging ----------------------------------------------------------------------------

    def staged_mark(self) -> str | None:
        """The fingerprint of what the staged rows follow from (None: none to trust)."""
        return self.ledger.meta(STAGED)

    def start_staging(self) -> None:
        """Empty the staging tables this sync stages into (a run that writes nothing gets
        its own first).

        Into the ledger, each step of staging is a short transaction of its own, so other
        programs that write (`suppress`, `events import`) never wait for the whole export to
        be read. The fingerprint goes first: until the sync stores it again, no run trusts
        half-staged rows.
        """
        if not self.persist:
            self._private_staging()
        conn, schema = self.conn, self.schema
        with self.ledger.transaction(immediate=self.persist):
            if schema == "main":
                conn.execute("DELETE FROM main.meta WHERE key = ?", (STAGED,))
            for index in ("staged_people_email", "staged_targets_key"):
                conn.execute(f"DROP INDEX IF EXISTS {schema}.{index}")  # made again after load
            conn.execute(f"DELETE FROM {schema}.staged_people")
            conn.execute(f"DELETE FROM {schema}.staged_targets")
            conn.execute(f"DELETE FROM {schema}.staged_rejected")

    def _private_staging(self) -> None:
        """Staging tables of the run's own, shaped as the ledger's and hiding them (SQLite looks
        a name up in temp first): for a run that writes nothing and finds a different export."""
        for table in ("staged_people", "staged_targets", "staged_rejected"):
            (ddl,) = self.conn.execute(
                "SELECT sql FROM main.sqlite_master WHERE type = 'table' AND name = ?",
                (table,)).fetchone()
            self.conn.execute(ddl.replace("CREATE TABLE", "CREATE TEMP TABLE", 1))

    def stage(self, people: list[tuple[Any, ...]], targets: list[tuple[Any, ...]]) -> None:
        """A chunk of the export: people (row, email, name, language, persona, time zone,
        country) and the campaigns that target them (campaign, email, row, day 0, persona,
        language)."""
        with self.ledger.transaction(immediate=self.persist):
            self.conn.executemany(f"INSERT INTO {self.schema}.staged_people"
                                  " VALUES (?, ?, ?, ?, ?, ?, ?)", people)
            self.conn.executemany(f"INSERT INTO {self.schema}.staged_targets"
                                  " VALUES (?, ?, ?, ?, ?, ?)", targets)

    def finish_staging(self, rejected: Iterable[str]) -> list[tuple[int, str, int]]:
        """Note the addresses of the export's rejected rows, index the staged rows and drop
        the later rows of an address staged twice; returns those (row, address, first row)."""
        conn, schema, immediate = self.conn, self.schema, self.persist
        with self.ledger.transaction(immediate=immediate):
            conn.executemany(f"INSERT OR IGNORE INTO {schema}.staged_rejected (email) VALUES (?)",
                             ((email,) for email in rejected))
        with self.ledger.transaction(immediate=immediate):
            # Covering: the walk over active enrolments finds all it needs in the index.
            conn.execute(f"CREATE INDEX {schema}.staged_people_email"
                         " ON staged_people (email, row, timezone, persona, language, country)")
        with self.ledger.transaction(immediate=immediate):
            duplicates: list[tuple[int, str, int]] = conn.execute(
                f"SELECT x.row, x.email, f.first FROM {schema}.staged_people x JOIN (SELECT"
                f" email, min(row) AS first FROM {schema}.staged_people GROUP BY email HAVING"
                " count(*) > 1) f ON f.email = x.email WHERE x.row > f.first ORDER BY x.row"
            ).fetchall()
            if duplicates:
                later = ",".join(str(row) for row, _, _ in duplicates)  # integers from SQLite
                conn.execute(f"DELETE FROM {schema}.staged_people WHERE row IN ({later})")
                conn.execute(f"DELETE FROM {schema}.staged_targets WHERE row IN ({later})")
        with self.ledger.transaction(immediate=immediate):
            conn.execute(f"CREATE UNIQUE INDEX {schema}.staged_targets_key"
                         " ON staged_targets (campaign, email)")
        return duplicates

    def trust_staged(self, mark: str) -> None:
        """From now on, a sync with this fingerprint uses the staged rows as they are."""
        self.ledger.set_meta(STAGED, mark)

    # -- the run's tables -------------------------------------------------------------------

    def scope(self, campaigns: Iterable[tuple[str, bool, float, bool]]) -> None:
        """The campaigns this sync changes: id, open, holdout share, triggered."""
        self.conn.executemany("INSERT INTO temp.scope VALUES (?, ?, ?, ?)", campaigns)

    def triggered(self, rounds: Iterable[tuple[str, str, str, str]]) -> None:
        """Who met a campaign's trigger: campaign, address, when (day 0), the object."""
        self.conn.executemany("INSERT INTO temp.triggered VALUES (?, ?, ?, ?)", rounds)

    def reached(self, reached: Iterable[tuple[str, str]]) -> None:
        """Who reached a campaign's goal: campaign, address."""
        self.conn.executemany("INSERT INTO temp.reached VALUES (?, ?)", reached)

    def keep_out_forgotten(self) -> None:
        """A forgotten person may still be in the HR export; their hash keeps them out."""
        hashes = self.ledger.forgotten_hashes()
        if hashes:
            address_hash = self.ledger.address_hash
            self.conn.executemany("INSERT INTO temp.forgotten VALUES (?)", (
                (email,) for (email,) in self.conn.execute("SELECT email FROM staged_people")
                if address_hash(email) in hashes))

    # -- the moves --------------------------------------------------------------------------

    def find_exits(self, grace_cut: str, *, no_grace: bool) -> int:
        """Find the active enrolments that end, and why (written by apply_exits); returns how
        many. Missing people leave once missing since `grace_cut`, or at once with
        `no_grace`."""
        params: dict[str, Any] = {**self.moves, "grace_cut": grace_cut, "no_grace": no_grace}
        return sum(self.conn.execute(statement, params).rowcount for statement in _EXITS)

    def newly_missing(self) -> int:
        """How many active enrolments' people went missing from the export in this run (they
        leave after the grace period, or at once without one). They are kept in
        temp.vanished, so note_missing marks them without a second scan."""
        conn = self.conn
        vanished: int = conn.execute(f"INSERT INTO temp.vanished SELECT e.rowid {_MISSING}"
                                     " AND e.missing_since IS NULL", self.moves).rowcount
        # ...and those leaving now without ever having been noted missing (no grace period).
        leaving: int = conn.execute(
            "SELECT count(*) FROM temp.exits x JOIN main.enrolments e ON e.campaign ="
            " x.campaign AND e.email = x.email WHERE x.reason = :not_in_export"
            " AND e.missing_since IS NULL", self.moves).fetchone()[0]
        return vanished + leaving

    def active_in_scope(self) -> int:
        """How many enrolments of the campaigns in scope are active (before the sync)."""
        return int(self.conn.execute(
            "SELECT count(*) FROM main.enrolments WHERE state = ? AND"
            " campaign IN (SELECT id FROM temp.scope)", (self.moves["active"],)).fetchone()[0])

    def note_missing(self) -> None:
        """Note who went missing from the export in this run, and forget who came back."""
        conn = self.conn
        conn.execute("UPDATE main.enrolments SET missing_since = ? WHERE rowid IN (SELECT id"
                     " FROM temp.vanished)", (self.moves["now"],))
        conn.execute("UPDATE main.enrolments SET missing_since = NULL WHERE missing_since IS"
                     " NOT NULL AND state = ? AND (EXISTS (SELECT 1 FROM staged_people x"
                     " WHERE x.email = enrolments.email) OR EXISTS (SELECT 1 FROM"
                     " staged_rejected r WHERE r.email = enrolments.email))",
                     (self.moves["active"],))

    def enrol(self) -> tuple[int, int]:
        """Enrol the people who join, in the ledger: how many enrolments, and people."""
        conn = self.conn
        newest = conn.execute("SELECT coalesce(max(rowid), 0) FROM main.enrolments").fetchone()[0]
        enrolled = conn.execute(_NEW_INTO_LEDGER, self.moves).rowcount
        if not enrolled:
            return 0, 0
        return enrolled, conn.execute("SELECT count(DISTINCT email) FROM main.enrolments"
                                      " WHERE rowid > ?", (newest,)).fetchone()[0]

    def enrol_in_run(self) -> tuple[int, int]:
        """The enrolments that would begin, in the run's own temp.new (nothing is written):
        how many, and for how many people."""
        enrolled = self.conn.execute(_NEW_INTO_RUN, self.moves).rowcount
        return enrolled, self.conn.execute("SELECT count(DISTINCT email) FROM temp.new"
                                           ).fetchone()[0]

    def apply_exits(self) -> None:
        """End the enrolments find_exits found, each as its move and reason say."""
        conn = self.conn
        conn.execute(
            "UPDATE enrolments SET state = x.state, exit_reason = x.reason, exited_at = :now"
            " FROM temp.exits x WHERE enrolments.campaign = x.campaign"
            " AND enrolments.email = x.email AND enrolments.state = :active", self.moves)
        # The ledger now holds these exits itself; `synced` must not leave them out twice.
        conn.execute("DELETE FROM temp.exits")


class EnrolmentMoves(PersonMoves):
    def enrolment_sync(self, now: str, *, persist: bool,
                       group: Callable[[str, str, float], str]) -> EnrolmentSync:
        """A sync at `now` (ISO UTC); `group` draws the group of an enrolment that begins in a
        campaign with a holdout (campaign, address, share)."""
        return EnrolmentSync(self, now, persist=persist, group=group)

    def synced_enrolments(self) -> Iterator[Any]:
        """Every active enrolment after the last sync on this connection, with the person's
        staged row: campaign, address, group, row, persona, language, time zone, country,
        day 0, occurrence, and the history of its steps (see step_records)."""
        return self.db.conn.execute(_SYNCED)

    def group_sizes(self) -> dict[str, tuple[int, int]]:
        """Mailed and held-out people per campaign, after a sync with `persist=False`."""
        sizes: dict[str, list[int]] = {}
        for campaign_id, group, count in self.db.conn.execute(_GROUP_SIZES):
            sizes.setdefault(campaign_id, [0, 0])[group == Group.HOLDOUT] += count
        return {campaign_id: (mailed, held) for campaign_id, (mailed, held) in sizes.items()}

    def finished_rounds(self, campaign: str) -> dict[str, set[str]]:
        """A triggered campaign's completed enrolments that may start another round (the
        staged export still targets the person, and they are not suppressed): address ->
        the objects it already had a round for (its messages' step keys, and the current
        round's)."""
        found: dict[str, set[str]] = {}
        # An enrolment without an object finished before the campaign had a trigger: it
        # had its round (its steps were sent), and starts none.
        for email, occurrence in self.db.conn.execute(
                "SELECT e.email, e.occurrence FROM enrolments e JOIN main.staged_targets t"
                " ON t.campaign = e.campaign AND t.email = e.email WHERE e.campaign = ? AND"
                " e.state = ? AND e.occurrence IS NOT NULL AND NOT EXISTS (SELECT 1 FROM"
                " suppressions s WHERE s.email = e.email)",
                (campaign, EnrolmentState.COMPLETED)):
            found[email] = {occurrence}
        if found:
            for email, step in self.db.conn.execute(
                    "SELECT email, step FROM messages WHERE campaign = ? AND instr(step, '@')",
                    (campaign,)):
                if email in found:
                    found[email].add(step.split(OCCURRENCE, 1)[1])
        return found

    def next_round(self, campaign: str, rounds: Iterable[tuple[str, str, str]]) -> int:
        """Completed enrolments of a triggered campaign start again: (address, day 0, the
        round's object) each; returns how many did."""
        before = EnrolmentState.COMPLETED
        with self.transaction(immediate=True) as db:
            started = sum(db.conn.execute(
                "UPDATE enrolments SET state = ?, anchor_at = ?, occurrence = ?, exit_reason ="
                " NULL, exited_at = NULL WHERE campaign = ? AND email = ? AND state = ?",
                (enrolment_move(EnrolmentOp.NEXT_ROUND, before), anchor_at, occurrence,
                 campaign, email, before)).rowcount
                for email, anchor_at, occurrence in rounds)
        if started:
            self.note_intervention()
        return started

    def resume_voided(self, campaign: str, emails: Iterable[str]) -> int:
        """Enrolments a goal ended that a voiding statement took back go on where they
        stopped; returns how many did."""
        before = EnrolmentState.CONVERTED
        with self.transaction(immediate=True) as db:
            resumed = sum(db.conn.execute(
                "UPDATE enrolments SET state = ?, exit_reason = NULL, exited_at = NULL"
                " WHERE campaign = ? AND email = ? AND state = ?",
                (enrolment_move(EnrolmentOp.RESUME, before), campaign, email, before)
            ).rowcount for email in emails)
        if resumed:
            self.note_intervention()
        return resumed
