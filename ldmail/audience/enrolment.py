"""Who is in which campaign: enrol newly matching people, let others leave, record goals.

The export is read row by row into staging tables (`staged_people`, and `staged_targets`:
which campaigns target whom), and enrolments are brought in line with them in SQL, so a
million learners never exist as Python objects at once. A sync that writes keeps the staged
rows in the ledger with a fingerprint of what they follow from, and a later run with the
same fingerprint uses them as they are. A run that writes nothing stages a changed export in
temporary tables of its own. After sync(), the temporary view `synced` holds the active
enrolments as they are after the sync, whether it was written or not."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, time
from fnmatch import fnmatchcase
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

from .. import __version__
from ..clock import from_iso, iso
from ..errors import MassExit
from ..ledger import STAGED, EnrolmentState, Group, Ledger
from ..project.business_days import BusinessCalendar, parse_region
from ..project.config import Project
from ..project.models import Campaign, Goal
from ..project.schedule import (
    Planned,
    StepRecord,
    anchor_moment,
    campaign_is_open,
    in_holdout,
    upcoming,
)
from .export import AudienceLoader, PeopleStream, Person, Targeting, export_digest

log = logging.getLogger("ldmail.sync")

# People are staged this many at a time: large enough that SQLite's executemany does the
# work, small enough that a chunk's rows cost little memory.
CHUNK = 5000

# A run's own tables: the campaigns in scope, who reached a goal, who asked to be forgotten,
# and what the sync changes. `synced` is every active enrolment after the sync.
_RUN_TABLES = """
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
    WHERE e.state = 'active' AND e.campaign IN (SELECT id FROM temp.scope)
      AND NOT EXISTS (SELECT 1 FROM temp.exits x
                      WHERE x.campaign = e.campaign AND x.email = e.email)
    UNION ALL
    -- A run that writes nothing reads the ledger again after its sync: a send that enrolled
    -- the same person meanwhile is already counted above.
    SELECT n.campaign, n.email, n.anchor_at, n.grp, n.occurrence FROM temp.new n
    WHERE n.state = 'active' AND NOT EXISTS (SELECT 1 FROM main.enrolments e
                                            WHERE e.campaign = n.campaign AND e.email = n.email);
"""

# Why active enrolments end, in order of precedence: each statement only adds the
# enrolments no earlier one took (INSERT OR IGNORE on the key).
_EXITS = (
    """INSERT OR IGNORE INTO temp.exits (campaign, email, state, reason)
    SELECT e.campaign, e.email, :converted, 'goal reached'
    FROM temp.reached r JOIN main.enrolments e ON e.campaign = r.campaign AND e.email = r.email
    WHERE e.state = 'active' AND e.campaign IN (SELECT id FROM temp.scope)""",
    """INSERT OR IGNORE INTO temp.exits (campaign, email, state, reason)
    SELECT e.campaign, e.email, :left, 'suppressed'
    FROM (SELECT email FROM main.suppressions UNION SELECT email FROM temp.forgotten) s
    JOIN temp.scope c JOIN main.enrolments e ON e.campaign = c.id AND e.email = s.email
    WHERE e.state = 'active'""",
    # Missing from the export for the whole grace period (see _missing).
    """INSERT OR IGNORE INTO temp.exits (campaign, email, state, reason)
    SELECT e.campaign, e.email, :left, 'no longer in the people export'
    FROM main.enrolments e
    WHERE e.state = 'active' AND e.campaign IN (SELECT id FROM temp.scope)
      AND (:no_grace OR e.missing_since <= :grace_cut)
      AND NOT EXISTS (SELECT 1 FROM staged_people x WHERE x.email = e.email)
      AND NOT EXISTS (SELECT 1 FROM staged_rejected r WHERE r.email = e.email)""",
    # In the export, but no longer targeted by the campaign. A scan of every active
    # enrolment, with one lookup each for most of them.
    """INSERT OR IGNORE INTO temp.exits (campaign, email, state, reason)
    SELECT e.campaign, e.email, :left,
        'no longer in the audience (persona ' || coalesce(x.persona, 'none') || ')'
    FROM main.enrolments e JOIN staged_people x ON x.email = e.email
    WHERE e.state = 'active' AND e.campaign IN (SELECT id FROM temp.scope)
      AND NOT EXISTS (SELECT 1 FROM staged_targets t
                      WHERE t.campaign = e.campaign AND t.email = e.email)""")

# Active enrolments whose person is missing from the export and not yet leaving.
_MISSING = """
FROM main.enrolments e
WHERE e.state = 'active' AND e.campaign IN (SELECT id FROM temp.scope)
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
    CASE WHEN r.email IS NULL THEN :active ELSE :converted END,
    CASE WHEN r.email IS NULL THEN NULL ELSE 'goal reached before enrolment' END,
    {stamp_values}, g.object
{joining} AND t.anchor_at IS NOT NULL
ORDER BY t.campaign, t.email
"""
_NEW_INTO_LEDGER = _NEW.format(
    target="main.enrolments", reason="exit_reason", stamps="enrolled_at, exited_at",
    stamp_values=":now, CASE WHEN r.email IS NULL THEN NULL ELSE :now END", joining=_JOINING)
_NEW_INTO_RUN = _NEW.format(target="temp.new", reason="reason", stamps="enrolled_at",
                            stamp_values=":now", joining=_JOINING)


@dataclass
class SyncResult:
    """What the sync changed."""

    enrolled: int = 0  # enrolments begun
    people: int = 0  # the people they are for (one person may join several campaigns)
    exited: int = 0
    vanished: int = 0


def goal_reached_at(ledger: Ledger, goal: Goal, now: datetime) -> dict[str, datetime]:
    """When each address first reached a goal; events after `now` have not happened yet."""
    reached: dict[str, datetime] = {}
    for event in ledger.goal_events(goal.event, iso(now)):
        if goal.object is None or fnmatchcase(event.object, goal.object):
            reached.setdefault(event.email, from_iso(event.occurred_at))
    return reached


def triggered_at(ledger: Ledger, campaign: Campaign, now: datetime
                 ) -> dict[str, list[tuple[datetime, str]]]:
    """Each address's rounds of a triggered campaign, earliest first: the first event of
    each object that matches the trigger, from the day the campaign starts (in its time
    zone) up to `now`."""
    trigger = campaign.trigger
    assert trigger is not None
    since = datetime.combine(campaign.starts, time(0), tzinfo=campaign.send_window.timezone)
    found: dict[str, list[tuple[datetime, str]]] = {}
    seen: set[tuple[str, str]] = set()
    for event in ledger.goal_events(trigger.event, iso(now)):  # earliest first
        if trigger.object is None or fnmatchcase(event.object, trigger.object):
            moment = from_iso(event.occurred_at)
            if moment >= since and (event.email, event.object) not in seen:
                seen.add((event.email, event.object))
                found.setdefault(event.email, []).append((moment, event.object))
    return found


def _next_rounds(project: Project, ledger: Ledger, now: datetime, only: str | None) -> None:
    """A triggered campaign (repeat: per-object) whose round is done starts again for the
    person's next object: day 0 at that object's first event."""
    for campaign_id, file in project.campaigns.items():
        trigger = file.model.trigger
        if trigger is None or trigger.repeat != "per-object" or \
                only not in (None, campaign_id) or not campaign_is_open(file.model, now):
            continue
        done = ledger.finished_rounds(campaign_id)
        if not done:
            continue
        rounds = triggered_at(ledger, file.model, now)
        reached = set(goal_reached_at(ledger, file.model.goal, now)) if file.model.goal else set()
        starts = []
        for email, had in done.items():
            if email in reached:  # past its goal: the sync ends the enrolment there
                continue
            upcoming = next(((at, target) for at, target in rounds.get(email, ())
                             if target not in had), None)
            if upcoming is not None:
                starts.append((email, iso(upcoming[0]), upcoming[1]))
        if starts:
            log.info("%s: %d new round(s) for people who met the trigger again", campaign_id,
                     ledger.next_round(campaign_id, starts))


def _resume_voided(project: Project, ledger: Ledger, now: datetime, only: str | None) -> None:
    """Campaigns whose goal says resume_when_voided take back the enrolments a goal event
    ended when an LRS voided that event and no other event reaches the goal."""
    for campaign_id, file in project.campaigns.items():
        goal = file.model.goal
        if goal is None or not goal.resume_when_voided or only not in (None, campaign_id):
            continue
        voided = {event.email for event in ledger.voided_goal_events(goal.event)
                  if goal.object is None or fnmatchcase(event.object, goal.object)}
        if voided:
            resumed = ledger.resume_voided(campaign_id,
                                           voided - set(goal_reached_at(ledger, goal, now)))
            if resumed:
                log.info("%s: %d enrolment(s) resumed: their goal event was voided",
                         campaign_id, resumed)


def _group(campaign_id: str, email: str, share: float) -> str:
    return Group.HOLDOUT if in_holdout(campaign_id, email, share) else Group.TREATMENT


def export_mark(project: Project, now: datetime) -> str:
    """Everything the staged export follows from: the export's bytes, the audiences, the
    campaigns and today's date (tenure_days counts from it)."""
    digest = hashlib.sha256(f"ldmail {__version__}\n".encode())
    digest.update(repr((project.settings.languages, project.settings.default_language,
                        project.audiences)).encode())
    for campaign_id, file in sorted(project.campaigns.items()):
        digest.update(f"\n{campaign_id}\n{file.model!r}".encode())
    digest.update(f"\n{now.date().isoformat()}\n".encode())
    digest.update(export_digest(project))
    return digest.hexdigest()


class _Stager:
    """Writes people, and the campaigns that target each, into the staging tables."""

    def __init__(self, ledger: Ledger, schema: str, campaigns: list[tuple[str, Campaign]],
                 loader: AudienceLoader, now: datetime) -> None:
        self.ledger = ledger
        self.conn = ledger.db.conn
        self.schema = schema
        self.campaigns = [(campaign_id, campaign, Targeting(campaign, loader))
                          for campaign_id, campaign in campaigns]
        self.now = now
        # Day 0 by campaign, anchor value and time zone: few distinct ones for many people.
        self.anchors: dict[tuple[str, Any, ZoneInfo | None], str | None] = {}
        self.people: list[tuple[Any, ...]] = []
        self.targeted: list[tuple[Any, ...]] = []

    def add(self, person: Person) -> None:
        email, zone, country = person.email, person.timezone, person.country
        self.people.append((person.row, email, person.display_name, person.language,
                            person.persona, zone.key if zone else None,
                            str(country) if country else None))
        for campaign_id, campaign, targets in self.campaigns:
            if not targets(person):
                continue
            if campaign.anchor is None:
                anchor: str | None = ""  # the moment of enrolment, whenever that is
            else:
                value = person.attributes.get(campaign.anchor)
                key = (campaign_id, value, zone)
                try:
                    anchor = self.anchors[key]
                except KeyError:
                    moment = anchor_moment(campaign, value, self.now, zone)
                    anchor = self.anchors[key] = iso(moment) if moment is not None else None
            self.targeted.append((campaign_id, email, person.row, anchor, person.persona,
                                  person.language))
        if len(self.people) >= CHUNK:
            self.flush()

    def flush(self) -> None:
        with self.ledger.transaction(immediate=self.schema == "main"):
            self.conn.executemany(f"INSERT INTO {self.schema}.staged_people"
                                  " VALUES (?, ?, ?, ?, ?, ?, ?)", self.people)
            self.conn.executemany(f"INSERT INTO {self.schema}.staged_targets"
                                  " VALUES (?, ?, ?, ?, ?, ?)", self.targeted)
        self.people.clear()
        self.targeted.clear()


def _private_staging(ledger: Ledger) -> None:
    """Staging tables of the run's own, shaped as the ledger's and hiding them (SQLite looks
    a name up in temp first): for a run that writes nothing and finds a different export."""
    for table in ("staged_people", "staged_targets", "staged_rejected"):
        (ddl,) = ledger.db.conn.execute(
            "SELECT sql FROM main.sqlite_master WHERE type = 'table' AND name = ?",
            (table,)).fetchone()
        ledger.db.conn.execute(ddl.replace("CREATE TABLE", "CREATE TEMP TABLE", 1))


def _stage_export(project: Project, ledger: Ledger, now: datetime, schema: str) -> None:
    """Read the export into `schema`'s staging tables; duplicate rows are dropped there.

    Into the ledger, each step is a short transaction of its own, so other programs that
    write (`suppress`, `events import`) never wait for the whole export to be read. The
    fingerprint goes first: until the sync stores it again, no run trusts half-staged rows.
    """
    conn = ledger.db.conn
    # Into the run's own temporary tables, no lock on the ledger is needed.
    immediate = schema == "main"
    with ledger.transaction(immediate=immediate):
        if schema == "main":
            conn.execute("DELETE FROM main.meta WHERE key = ?", (STAGED,))
        for index in ("staged_people_email", "staged_targets_key"):
            conn.execute(f"DROP INDEX IF EXISTS {schema}.{index}")  # made again after the load
        conn.execute(f"DELETE FROM {schema}.staged_people")
        conn.execute(f"DELETE FROM {schema}.staged_targets")
        conn.execute(f"DELETE FROM {schema}.staged_rejected")
    people = PeopleStream(project, now.date())
    stager = _Stager(ledger, schema,
                     [(campaign_id, file.model) for campaign_id, file in project.campaigns.items()],
                     people.loader, now)
    for person in people:
        stager.add(person)
    stager.flush()
    with ledger.transaction(immediate=immediate):
        conn.executemany(f"INSERT OR IGNORE INTO {schema}.staged_rejected (email) VALUES (?)",
                         ((rejected.email.strip().lower(),) for rejected in people.rejected
                          if "@" in rejected.email))
    with ledger.transaction(immediate=immediate):
        # Covering: the walk over active enrolments finds all it needs in the index.
        conn.execute(f"CREATE INDEX {schema}.staged_people_email"
                     " ON staged_people (email, row, timezone, persona, language, country)")
    with ledger.transaction(immediate=immediate):
        duplicates = conn.execute(
            f"SELECT x.row, x.email, f.first FROM {schema}.staged_people x JOIN (SELECT email,"
            f" min(row) AS first FROM {schema}.staged_people GROUP BY email HAVING count(*) > 1)"
            " f ON f.email = x.email WHERE x.row > f.first ORDER BY x.row").fetchall()
        for row, email, first in duplicates:
            people.reject_duplicate(row, email, first)
        if duplicates:
            later = ",".join(str(row) for row, _, _ in duplicates)  # integers from SQLite
            conn.execute(f"DELETE FROM {schema}.staged_people WHERE row IN ({later})")
            conn.execute(f"DELETE FROM {schema}.staged_targets WHERE row IN ({later})")
    with ledger.transaction(immediate=immediate):
        conn.execute(f"CREATE UNIQUE INDEX {schema}.staged_targets_key"
                     " ON staged_targets (campaign, email)")


def _fill_run_tables(project: Project, ledger: Ledger, now: datetime, only: str | None
                     ) -> None:
    conn = ledger.db.conn
    scope = [(campaign_id, file.model) for campaign_id, file in project.campaigns.items()
             if only is None or campaign_id == only]
    conn.executemany("INSERT INTO temp.scope VALUES (?, ?, ?, ?)",
                     [(campaign_id, campaign_is_open(campaign, now), campaign.holdout,
                       campaign.trigger is not None) for campaign_id, campaign in scope])
    for campaign_id, campaign in scope:
        if campaign.trigger is not None:
            conn.executemany("INSERT INTO temp.triggered VALUES (?, ?, ?, ?)",
                             ((campaign_id, email, iso(rounds[0][0]), rounds[0][1])
                              for email, rounds in triggered_at(ledger, campaign, now).items()))
        if campaign.goal is not None:
            conn.executemany("INSERT INTO temp.reached VALUES (?, ?)",
                             ((campaign_id, email)
                              for email in goal_reached_at(ledger, campaign.goal, now)))
    hashes = ledger.forgotten_hashes()
    if hashes:
        # A forgotten person may still be in the HR export; their hash keeps them out.
        conn.executemany("INSERT INTO temp.forgotten VALUES (?)", (
            (email,) for (email,) in conn.execute("SELECT email FROM staged_people")
            if ledger.address_hash(email) in hashes))


def sync(project: Project, ledger: Ledger, now: datetime, *, persist: bool,
         only: str | None = None, accept_exits: bool = False) -> SyncResult:
    """Bring enrolments in line with the export; with persist=False nothing is written.

    The export is read only when it, the audiences, the campaigns or the day changed since
    the last sync that was written; a sync that writes keeps what it read in the ledger.
    """
    conn = ledger.db.conn
    result = SyncResult()
    mark = export_mark(project, now)
    states = {"active": EnrolmentState.ACTIVE, "converted": EnrolmentState.CONVERTED,
              "left": EnrolmentState.LEFT, "treatment": Group.TREATMENT, "now": iso(now)}
    assert not conn.in_transaction, "executescript would commit it"
    conn.executescript(_RUN_TABLES)
    conn.create_function("ldmail_group", 3, _group, deterministic=True)
    stored = conn.execute("SELECT value FROM meta WHERE key = ?", (STAGED,)).fetchone()
    restaged = stored is None or stored[0] != mark
    log.debug("export %s: %s", project.audiences.people.source,
              "read again (it, the audiences, the campaigns or the day changed)" if restaged
              else "not read: the staged rows match its fingerprint")
    if restaged:
        if not persist:
            _private_staging(ledger)
        _stage_export(project, ledger, now, "main" if persist else "temp")
    # The changes themselves are one transaction; one that writes holds the lock from its
    # first read, so nothing it read can change before it writes.
    if persist:
        _resume_voided(project, ledger, now, only)
        _next_rounds(project, ledger, now, only)
    grace = project.settings.exits.grace
    params: dict[str, Any] = {**states, "grace_cut": iso(now - grace), "no_grace": not grace}
    with ledger.transaction(immediate=persist):
        _fill_run_tables(project, ledger, now, only)
        result.exited = sum(conn.execute(statement, params).rowcount for statement in _EXITS)
        _guard_mass_exits(project, ledger, result, accept_exits)
        if persist:
            _missing(ledger, now)
        if not persist:
            result.enrolled = conn.execute(_NEW_INTO_RUN, states).rowcount
            result.people = conn.execute("SELECT count(DISTINCT email) FROM temp.new"
                                         ).fetchone()[0]
            return result
        newest = conn.execute("SELECT coalesce(max(rowid), 0) FROM main.enrolments").fetchone()[0]
        result.enrolled = conn.execute(_NEW_INTO_LEDGER, states).rowcount
        if result.enrolled:
            result.people = conn.execute("SELECT count(DISTINCT email) FROM main.enrolments"
                                         " WHERE rowid > ?", (newest,)).fetchone()[0]
        _apply_exits(ledger, now)
        # Trusted from now on only if the export did not change while it was read (a new
        # size, inode or modification time makes export_digest read it again).
        if restaged and export_mark(project, now) == mark:
            conn.execute("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key)"
                         " DO UPDATE SET value = excluded.value", (STAGED, mark))
    return result


MIN_VANISHED = 5  # fewer people than this vanishing never trips the guard


def _guard_mass_exits(project: Project, ledger: Ledger, result: SyncResult,
                      accept_exits: bool) -> None:
    """Stop (before anything is written) when too many people vanish from the export at once.

    A half-written or filtered export would otherwise end hundreds of campaigns for good.
    Counted: enrolments whose person went missing in this run (they leave after the grace
    period, or at once without one).
    """
    conn = ledger.db.conn
    # Only the newly missing count: those missing for a while passed this check back then.
    # They are kept in temp.vanished, so _missing marks them without a second scan.
    vanishing = conn.execute(f"INSERT INTO temp.vanished SELECT e.rowid {_MISSING}"
                             " AND e.missing_since IS NULL").rowcount + conn.execute(
        "SELECT count(*) FROM temp.exits x JOIN main.enrolments e ON e.campaign = x.campaign"
        " AND e.email = x.email WHERE x.reason = 'no longer in the people export'"
        " AND e.missing_since IS NULL").fetchone()[0]
    result.vanished = vanishing
    # A few people leaving a small campaign is ordinary: only a share AND a handful stop it.
    if accept_exits or vanishing < MIN_VANISHED:
        return
    active = conn.execute("SELECT count(*) FROM main.enrolments WHERE state = 'active' AND"
                          " campaign IN (SELECT id FROM temp.scope)").fetchone()[0]
    limit = project.settings.exits.max_share
    if vanishing <= limit * active:
        return
    people = project.audiences.people.source
    raise MassExit(
        f"{people} lacks the people of {vanishing} of {active} active enrolments "
        f"({vanishing / active:.0%}, more than the {limit:.0%} allowed): a truncated or "
        "half-written export would end their campaigns, so nothing was changed. Check the "
        "export; if these people really left, run 'ldmail send --accept-exits' once (or "
        "raise exits.max_share in ldmail.yaml)")


def _missing(ledger: Ledger, now: datetime) -> None:
    """Note who went missing from the export in this run, and forget who came back."""
    conn = ledger.db.conn
    conn.execute("UPDATE main.enrolments SET missing_since = ? WHERE rowid IN (SELECT id FROM"
                 " temp.vanished)", (iso(now),))
    conn.execute("UPDATE main.enrolments SET missing_since = NULL WHERE missing_since IS NOT"
                 " NULL AND state = 'active' AND (EXISTS (SELECT 1 FROM staged_people x"
                 " WHERE x.email = enrolments.email) OR EXISTS (SELECT 1 FROM staged_rejected r"
                 " WHERE r.email = enrolments.email))")


def _apply_exits(ledger: Ledger, now: datetime) -> None:
    stamp = {"stamp": iso(now)}
    conn = ledger.db.conn
    conn.execute(
        "UPDATE enrolments SET state = x.state, exit_reason = x.reason, exited_at = :stamp"
        " FROM temp.exits x WHERE enrolments.campaign = x.campaign"
        " AND enrolments.email = x.email AND enrolments.state = 'active'", stamp)
    # The ledger now holds these exits itself; `synced` must not leave them out twice.
    conn.execute("DELETE FROM temp.exits")


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


def group_sizes(ledger: Ledger) -> dict[str, tuple[int, int]]:
    """Mailed and held-out people per campaign, after a sync with `persist=False`."""
    sizes: dict[str, list[int]] = {}
    for campaign_id, group, count in ledger.db.conn.execute(_GROUP_SIZES):
        sizes.setdefault(campaign_id, [0, 0])[group == Group.HOLDOUT] += count
    return {campaign_id: (mailed, held) for campaign_id, (mailed, held) in sizes.items()}


class Enrolment(NamedTuple):  # a tuple: made for every active enrolment of every run
    """One active enrolment after the sync, with the person's current row in the export."""

    campaign: str
    email: str
    group: str
    row: int
    persona: str | None
    language: str
    timezone: ZoneInfo | None
    country: str | None = None  # the export's country or region code (NL, DE-BY)
    occurrence: str | None = None  # a triggered campaign's round: the object it is for


# Every active enrolment after the sync, with the history of its steps as one string
# (fields split by \x1f, steps by \x1e): SQLite groups it faster than Python could. A
# triggered campaign's history is its current round's: the messages keyed step@object.
_ACTIVE = """
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


def _history(text: str | None) -> dict[str, StepRecord]:
    history: dict[str, StepRecord] = {}
    for record in text.split("\x1e") if text else ():
        step, state, at, retry_at, attempts = record.split("\x1f")
        history[step] = StepRecord(state, from_iso(at) if at else None,
                                   from_iso(retry_at) if retry_at else None, int(attempts))
    return history


def active_enrolments(project: Project, ledger: Ledger, now: datetime
                      ) -> Iterator[tuple[Enrolment, tuple[Planned, ...]]]:
    """Each active enrolment after the sync, with its steps still to go (none for holdout).

    People whose campaign, day 0, time zone, country and history are the same have the same
    steps at the same moments: those are worked out once (most people share them with
    thousands).
    """
    schedules: dict[tuple[str, str, str | None, str | None, str | None],
                    tuple[Planned, ...]] = {}
    zones: dict[str | None, ZoneInfo | None] = {None: None}
    calendars: dict[tuple[str, str | None], BusinessCalendar] = {}
    for campaign_id, email, group, row, persona, language, zone_key, country, anchor_at, \
            occurrence, history in ledger.db.conn.execute(_ACTIVE):
        zone = zones.get(zone_key)
        if zone is None and zone_key is not None:
            zone = zones[zone_key] = ZoneInfo(zone_key)
        enrolment = Enrolment(campaign_id, email, group, row, persona, language, zone, country,
                              occurrence)
        if group != Group.TREATMENT:
            yield enrolment, ()
            continue
        key = (campaign_id, anchor_at, zone_key, country, history)
        plans = schedules.get(key)
        if plans is None:
            if len(schedules) >= 100_000:  # distinct histories: keep the memo bounded
                schedules.clear()
            closed = calendars.get((campaign_id, country))
            if closed is None:
                closed = calendars[(campaign_id, country)] = \
                    project.business_calendar(campaign_id).for_person(
                        parse_region(country) if country else None)
            plans = schedules[key] = tuple(upcoming(
                project.campaigns[campaign_id].model, from_iso(anchor_at), _history(history),
                zone, now, closed))
        yield enrolment, plans
