"""The ledger's tables, as versioned migrations applied in order by sqlite-utils."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sqlite_utils import Database, Migrations


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


def m005_survey_answers(db: Database) -> None:
    # Answers to a campaign's evaluation survey ("did the training fit me"), one per row of a
    # Forms export. `response` is the keyed hash of what names the answer within its campaign
    # (the form's response ID, or address, time and answer, with the address): re-importing
    # the same export adds nothing, and no copy of the address is kept outside `email`.
    db.execute("""
        CREATE TABLE survey_answers (
            id INTEGER PRIMARY KEY, campaign TEXT NOT NULL, email TEXT NOT NULL,
            answer TEXT NOT NULL, submitted_at TEXT NOT NULL, response TEXT NOT NULL,
            source TEXT, UNIQUE (campaign, response))""")
    db.execute("CREATE INDEX survey_answers_email ON survey_answers (email)")


def m006_inbox(db: Database) -> None:
    # `ldmail inbox`: a bounce finds its message by the Message-ID the send gave it, and says
    # when it came back. `inbox_mails` holds each applied mail of the sender's mailbox as the
    # keyed hash of its Message-ID, so a mail left in the folder is never applied twice.
    db.execute("ALTER TABLE messages ADD COLUMN bounced_at TEXT")
    db.execute("CREATE INDEX messages_message_id ON messages (message_id)")
    db.execute("""
        CREATE TABLE inbox_mails (
            mail TEXT PRIMARY KEY, outcome TEXT NOT NULL, applied_at TEXT NOT NULL)
        WITHOUT ROWID""")


def m007_event_statements(db: Database) -> None:
    # `ldmail events pull`: the xAPI statement id an event came from, so a voiding statement
    # of the LRS finds the goal event it revokes.
    db.execute("ALTER TABLE events ADD COLUMN statement TEXT")
    db.execute("CREATE INDEX events_statement ON events (statement) WHERE statement IS NOT NULL")


def m008_voided_events(db: Database) -> None:
    # A voiding statement no longer deletes the goal event it points at: the event stays,
    # marked, so history shows what the LRS revoked and when, and no read counts it.
    db.execute("ALTER TABLE events ADD COLUMN voided_at TEXT")


def m009_message_variants(db: Database) -> None:
    # A/B variants: which variant of its step a message carried (NULL for a step without
    # variants), written with the claim, so the report compares what people really received.
    db.execute("ALTER TABLE messages ADD COLUMN variant TEXT")


def m010_staged_country(db: Database) -> None:
    # A person's own country (the export's `country` column), whose public holidays close
    # their send window. Rows staged before it have none: the next sync reads the export again.
    db.execute("ALTER TABLE staged_people ADD COLUMN country TEXT")
    db.execute("DELETE FROM meta WHERE key = 'staged'")


def m011_message_manager(db: Database) -> None:
    # Managers in the loop: the address a message went to when it is not the person's own (a
    # step to the manager), and the address copied in (cc_manager). The row keeps the person's
    # key, so a manager gets a step about a person at most once; these columns let an
    # unsubscribe token, a bounce and `forget` find the manager, and `history` show them.
    db.execute("ALTER TABLE messages ADD COLUMN recipient TEXT")
    db.execute("ALTER TABLE messages ADD COLUMN cc TEXT")
    db.execute("CREATE INDEX messages_recipient ON messages (recipient) WHERE recipient IS NOT"
               " NULL")
    db.execute("CREATE INDEX messages_cc ON messages (cc) WHERE cc IS NOT NULL")


def m012_enrolment_rounds(db: Database) -> None:
    # Triggered campaigns run once per object (each finished course): the object of an
    # enrolment's current round. Its messages carry it in their step key (step@object).
    db.execute("ALTER TABLE enrolments ADD COLUMN occurrence TEXT")


def m013_sender_failures(db: Database) -> None:
    # `ldmail inbox`: bounces whose reason is on the sending side (SPF, DKIM, DMARC, a block
    # list, spam or policy filters), per receiving domain, with the reason without any
    # address. Each names the message it is about (counted once, on its first sender-side
    # bounce: a repeat, or a delay before the failure, adds nothing) and the failed address
    # as its keyed hash, so the stop counts distinct recipients, not mails. Enough of them
    # within a while stop `send` to that domain until they age out or `ldmail inbox --resume
    # DOMAIN` clears them (cleared_at).
    db.execute("""
        CREATE TABLE sender_failures (
            id INTEGER PRIMARY KEY, domain TEXT NOT NULL, reason TEXT NOT NULL,
            at TEXT NOT NULL, cleared_at TEXT, message INTEGER, recipient TEXT)""")
    db.execute("CREATE INDEX sender_failures_at ON sender_failures (at) WHERE cleared_at IS"
               " NULL")
    db.execute("CREATE UNIQUE INDEX sender_failures_message ON sender_failures (message)"
               " WHERE message IS NOT NULL")


# The schema's versions, in order. sqlite-utils applies them (and records each in its
# _sqlite_migrations table); it is only imported when one is pending, because importing it
# costs more than a whole cron run that finds nothing to do.
MIGRATIONS = [m001_initial, m002_streamed_sync, m003_missing_since, m004_staged_rejected,
              m005_survey_answers, m006_inbox, m007_event_statements,
              m008_voided_events, m009_message_variants, m010_staged_country,
              m011_message_manager, m012_enrolment_rounds, m013_sender_failures]
MIGRATION_SET = "ldmail"


def migrations() -> Migrations:
    from sqlite_utils import Migrations

    found = Migrations(MIGRATION_SET)
    for function in MIGRATIONS:
        found()(function)
    return found
