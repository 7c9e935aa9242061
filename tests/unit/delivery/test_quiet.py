"""ldmail.delivery.quiet promises near-free cron runs: a marker recorded when nothing was due
(`remember`) is found again (`find`) only while `now` lies in its quiet spell and nothing that
decides what is due has changed (the export, the ledger, the day); a goal event dated later
ends the spell at that moment; `forget` drops it; a send that finds it does no other work.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from pathlib import Path

import pytest

from ldmail.clock import iso
from ldmail.delivery import quiet
from ldmail.delivery.send import send
from ldmail.delivery.transport import MemoryTransport
from ldmail.ledger import GoalEvent, Ledger
from ldmail.project.config import Project

from ...projects import NOW, PEOPLE, write_people

UNTIL = NOW + timedelta(hours=2)
OPENS = iso(NOW + timedelta(hours=1))


def test_a_remembered_spell_is_found_while_it_lasts_and_not_after(project: Project) -> None:
    with Ledger.of(project) as ledger:
        assert quiet.find(project, ledger, NOW) is None  # no marker yet
        quiet.remember(project, ledger, NOW, UNTIL, 3, OPENS)
        spell = quiet.find(project, ledger, NOW + timedelta(hours=1))
        assert spell is not None
        assert (spell.waiting, spell.until, spell.opens) == (3, UNTIL, OPENS)
        assert quiet.find(project, ledger, UNTIL) is None
        assert quiet.find(project, ledger, NOW - timedelta(seconds=1)) is None


def test_forget_drops_the_marker(project: Project) -> None:
    with Ledger.of(project) as ledger:
        quiet.remember(project, ledger, NOW, UNTIL, 0, None)
        quiet.forget(ledger)
        assert quiet.find(project, ledger, NOW) is None


def test_a_change_in_the_ledger_ends_the_spell(project: Project) -> None:
    with Ledger.of(project) as ledger:
        quiet.remember(project, ledger, NOW, UNTIL, 0, None)
        ledger.suppress(sorted(PEOPLE)[0], "asked to", "command", iso(NOW))
        assert quiet.find(project, ledger, NOW + timedelta(minutes=1)) is None


def test_a_new_export_ends_the_spell(people: Path, project: Project) -> None:
    with Ledger.of(project) as ledger:
        quiet.remember(project, ledger, NOW, UNTIL, 0, None)
        write_people(people, {**PEOPLE, "fred@example.org": "Fred;Vos;EN;IT;01-01-2020;"})
        assert quiet.find(project, ledger, NOW + timedelta(minutes=1)) is None


def test_a_spell_with_no_end_still_ends_with_the_day(project: Project) -> None:
    with Ledger.of(project) as ledger:
        quiet.remember(project, ledger, NOW, None, 0, None)
        assert quiet.find(project, ledger, NOW + timedelta(hours=6)) is not None
        assert quiet.find(project, ledger, NOW + timedelta(days=1)) is None


def test_a_goal_event_dated_later_ends_the_spell_when_it_starts_to_count(
        project: Project) -> None:
    event_at = NOW + timedelta(minutes=30)
    with Ledger.of(project) as ledger:
        ledger.record_events([GoalEvent(sorted(PEOPLE)[0], "registered", "platform",
                                        iso(event_at))], "test")
        quiet.remember(project, ledger, NOW, UNTIL, 0, None)
        spell = quiet.find(project, ledger, NOW + timedelta(minutes=1))
        assert spell is not None and spell.until == event_at
        assert quiet.find(project, ledger, event_at) is None


def test_a_send_that_finds_the_spell_takes_the_quiet_path_and_sends_nothing(
        project: Project, caplog: pytest.LogCaptureFixture) -> None:
    transport = MemoryTransport()
    assert send(project, NOW, transports=[transport]).sent == 5
    send(project, NOW + timedelta(minutes=5), transports=[transport])  # nothing due: remembered
    with Ledger.of(project, readonly=True) as ledger:
        assert quiet.find(project, ledger, NOW + timedelta(minutes=10)) is not None
    caplog.set_level(logging.DEBUG, logger="ldmail.quiet")
    again = send(project, NOW + timedelta(minutes=10), transports=[transport])
    assert again.sent == 0 and again.ok
    assert any(r.getMessage().startswith("quiet path: nothing can be due before")
               for r in caplog.records)
    assert len(transport.attempts) == 5
