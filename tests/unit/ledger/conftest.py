"""Ledgers for the ledger's unit tests: a fresh SQLite file under tmp_path, and helpers that
bring people and messages into a state through the ledger's own operations (a sync, a
claim and its outcome), never by writing rows by hand."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import NamedTuple

import pytest

from ldmail.ledger import Ledger, MessageKey, MessageState, Recheck

M = MessageState
NOW = "2026-03-02T09:00:00Z"
LATER = "2026-03-05T09:00:00Z"
CAMPAIGN = "welcome"
ANN = "ann@example.org"
BOB = "bob@example.org"
KEY = MessageKey(CAMPAIGN, "hello", ANN)


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "data" / "ledger.db"


@pytest.fixture
def ledger(path: Path) -> Iterator[Ledger]:
    with Ledger(path) as opened:
        yield opened


class Synced(NamedTuple):
    enrolled: int
    people: int
    exited: int
    vanished: int


def treatment(campaign: str, email: str, share: float) -> str:
    return "treatment"


def sync(ledger: Ledger, people: Sequence[str], now: str = NOW, *,
         campaigns: Sequence[str] = (CAMPAIGN,),
         targets: Mapping[str, Iterable[str]] | None = None,
         reached: Iterable[tuple[str, str]] = (),
         triggered: Iterable[tuple[str, str, str, str]] = (),
         rejected: Iterable[str] = (), persist: bool = True, grace_cut: str | None = None,
         holdout: float = 0.0, group: Callable[[str, str, float], str] = treatment,
         names: Mapping[str, str] | None = None, persona: str = "staff") -> Synced:
    """One sync as audience/enrolment.py runs it: `people` is the export (one row each), every
    one targeted by every campaign unless `targets` says who each campaign targets. Without
    `grace_cut`, people missing from the export leave at once."""
    run = ledger.enrolment_sync(now, persist=persist, group=group)
    run.start_staging()
    rows = {email: row for row, email in enumerate(people, 1)}
    aimed = targets if targets is not None else dict.fromkeys(campaigns, people)
    run.stage([(row, email, (names or {}).get(email), "en", persona, "Europe/Amsterdam", "NL")
               for email, row in rows.items()],
              [(campaign, email, rows[email], "", persona, "en")
               for campaign, emails in aimed.items() for email in emails])
    run.finish_staging(rejected)
    with ledger.transaction(immediate=persist):
        run.scope([(campaign, True, holdout, bool(triggered)) for campaign in campaigns])
        run.triggered(triggered)
        run.reached(reached)
        run.keep_out_forgotten()
        exited = run.find_exits(grace_cut or now, no_grace=grace_cut is None)
        vanished = run.newly_missing()
        if not persist:
            return Synced(*run.enrol_in_run(), exited, vanished)
        run.note_missing()
        enrolled = run.enrol()
        run.apply_exits()
    return Synced(*enrolled, exited, vanished)


def claim(ledger: Ledger, key: MessageKey = KEY, stamp: str = NOW, *, retry: bool = False,
          interventions: str | None = None, recheck: Recheck | None = None,
          recipient: str | None = None, cc: str | None = None,
          message_id: str = "<1@example.org>") -> bool:
    """One claim by a run that found the ledger's intervention counter at `interventions`."""
    with ledger.delivery(1, stamp, interventions) as delivery:
        return delivery.claim(key, stamp, message_id, retry=retry,
                              recheck=recheck or Recheck(ledger.address_hash(key.email)),
                              recipient=recipient, cc=cc)


def put(ledger: Ledger, state: MessageState, key: MessageKey = KEY, stamp: str = NOW, *,
        last_step: bool = False, recipient: str | None = None, cc: str | None = None,
        message_id: str = "<1@example.org>") -> None:
    """The message `key` brought to `state` by the moves a send makes (its enrolment must be
    active): claimed, then the outcome that leads there."""
    token = ledger.address_hash(key.email)
    if state in (M.HELD, M.SKIPPED):
        with ledger.delivery(1, stamp, ledger.interventions()) as delivery:
            (delivery.hold if state is M.HELD else delivery.skip)(key, stamp, "a reason", token)
        return
    assert claim(ledger, key, stamp, interventions=ledger.interventions(), recipient=recipient,
                 cc=cc, message_id=message_id)
    with ledger.delivery(1, stamp, ledger.interventions()) as delivery:
        if state in (M.SENT, M.BOUNCED):
            delivery.delivered(key, last_step=last_step)
        elif state is M.UNKNOWN:
            delivery.reply_lost(key, "no reply", last_step=last_step)
        elif state is M.DEFERRED:
            delivery.defer(key, "421 try later", stamp)
        elif state is M.FAILED:
            delivery.fail(key, "550 rejected", bounce=None, last_step=last_step)
    if state is M.BOUNCED:
        ledger.bounce(key, "550 no such user", stamp, mail=None, suppression=None)
    assert ledger.message_state(key) is state
