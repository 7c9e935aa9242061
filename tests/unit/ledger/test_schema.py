"""ledger/schema.py promises: the ledger's tables are versioned migrations, applied in order and
each once; a ledger made by an older ldmail is upgraded when it is opened, keeping what it
recorded, and the operations of this version then work on it."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

from sqlite_utils import Database

from ldmail.ledger import MIGRATIONS, Ledger, MessageKey, MessageState
from ldmail.ledger.schema import migrations
from tests.unit.ledger.conftest import ANN, CAMPAIGN, LATER, NOW, claim

M = MessageState
OLD_KEY = MessageKey(CAMPAIGN, "hello", ANN)


def old_ledger(path: Path, before: str) -> None:
    """A ledger as an ldmail that knew the migrations before `before` left it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    database = Database(path)
    migrations().apply(database, stop_before=before)
    database.close()


def first_version_ledger(path: Path) -> None:
    """A ledger of the first schema with what a send then wrote: a person, an active
    enrolment with a deferred message, and a staged-export mark."""
    old_ledger(path, "m002_streamed_sync")
    conn = sqlite3.connect(path)
    with conn:
        conn.execute("INSERT INTO meta VALUES ('staged', 'fingerprint'), ('secret', ?)",
                     ("ab" * 32,))
        conn.execute("INSERT INTO people VALUES (?, 'Ann', 'en', 'staff', NULL, ?, ?)",
                     (ANN, NOW, NOW))
        conn.execute("INSERT INTO enrolments VALUES (?, ?, ?, ?, 'treatment', 'staff', 'en',"
                     " 'active', NULL, NULL)", (CAMPAIGN, ANN, NOW, NOW))
        conn.execute("INSERT INTO messages (campaign, step, email, due_at, state, attempts,"
                     " error, next_attempt_at) VALUES (?, ?, ?, ?, 'deferred', 1, '421', ?)",
                     (*OLD_KEY, NOW, NOW))
    conn.close()


def applied(path: Path) -> list[str]:
    database = Database(path)
    try:
        return [migration.name for migration in migrations().applied(database)]
    finally:
        database.close()


def test_the_migrations_are_numbered_in_the_order_they_apply() -> None:
    numbers = [int(re.fullmatch(r"m(\d{3})_[a-z_]+", step.__name__)[1])  # type: ignore[index]
               for step in MIGRATIONS]
    assert numbers == list(range(1, len(MIGRATIONS) + 1))


def test_a_new_ledger_has_every_migration_applied_once_in_order(path: Path) -> None:
    with Ledger(path):
        pass
    with Ledger(path):  # opened again: nothing left to apply
        pass
    assert applied(path) == [step.__name__ for step in MIGRATIONS]


def test_a_first_version_ledger_is_upgraded_and_keeps_what_it_recorded(path: Path) -> None:
    first_version_ledger(path)
    with Ledger(path) as ledger:
        history = ledger.history(ANN)
        (enrolment,) = history.enrolments
        (message,) = history.messages
        assert (enrolment.state, enrolment.missing_since, enrolment.occurrence) == (
            "active", None, None)
        assert (message.state, message.error, message.attempts) == ("deferred", "421", 1)
        assert (message.variant, message.recipient, message.bounced_at) == (None, None, None)
        assert ledger.secret() == bytes.fromhex("ab" * 32)  # old tokens stay valid
        # Rows staged before the country column are not trusted: the export is read again.
        assert ledger.meta("staged") is None
    assert applied(path) == [step.__name__ for step in MIGRATIONS]


def test_the_operations_of_this_version_work_on_an_upgraded_ledger(path: Path) -> None:
    first_version_ledger(path)
    with Ledger(path) as ledger:
        assert claim(ledger, OLD_KEY, LATER, retry=True, cc="boss@example.org")
        with ledger.delivery(2, LATER, None) as delivery:
            delivery.delivered(OLD_KEY, last_step=True)
        ledger.bounce(OLD_KEY, "550 no such user", LATER, mail="m1", suppression="bounced")
        (message,) = ledger.history(ANN).messages
        assert (message.state, message.attempts, message.cc, message.bounced_at) == (
            M.BOUNCED, 2, "boss@example.org", LATER)
        assert ledger.mail_applied("m1") == "bounce"


def test_a_ledger_of_a_later_schema_version_is_upgraded_from_where_it_stopped(
        path: Path) -> None:
    old_ledger(path, "m009_message_variants")
    assert applied(path)[-1] == "m008_voided_events"
    with Ledger(path) as ledger:
        assert ledger.stopped_domains(NOW, 1) == []  # m013's table is there
    assert applied(path) == [step.__name__ for step in MIGRATIONS]
