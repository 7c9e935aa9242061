"""Near-free cron runs: remember when nothing can change, and until when.

A `send` that found nothing due records a marker in the ledger: a fingerprint of everything
that decides who is enrolled and what is due (the project's settings, audiences and campaigns,
holidays and blackout days included, the people export's bytes, today's date here and in each
campaign's time zone, the ledger's counts of enrolments, messages, suppressions and goal
events, the holidays package's version) and the earliest moment at which anything could become
due (a step's due time or send-window opening on an open day, or a goal event dated in the
future). A later run with the same fingerprint before that moment would do all the work of
loading the export and walking every enrolment only to find nothing again: it reports the same
summary and stops. Any change (a new export, an edited campaign, `suppress`, `events import`,
a new day) changes the fingerprint, and the run does everything as usual.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from datetime import datetime

from ..audience.enrolment import export_mark
from ..clock import from_iso, iso
from ..ledger import QUIET, Ledger
from ..project.business_days import holidays_version
from ..project.config import Project

log = logging.getLogger("ldmail.quiet")


@dataclass(frozen=True)
class Quiet:
    waiting: int
    until: datetime
    opens: str | None  # when the first step waiting for its send window may go (ISO, UTC)


def fingerprint(project: Project, ledger: Ledger, now: datetime) -> str:
    # The staged export's mark covers the export, audiences, campaigns and today's date.
    digest = hashlib.sha256(export_mark(project, now).encode())
    digest.update(repr(project.settings).encode())
    for _, file in sorted(project.campaigns.items()):
        digest.update(now.astimezone(file.model.send_window.timezone).date().isoformat().encode())
    digest.update(repr(ledger.change_counter()).encode())
    # The holidays closing a send window come from the holidays package: a new version may
    # know other days, and so move the moment the marker waits for.
    if "country" in project.audiences.people.columns or \
            any(project.business_calendar(c).countries for c in project.campaigns):
        digest.update(holidays_version().encode())
    return digest.hexdigest()


def find(project: Project, ledger: Ledger, now: datetime) -> Quiet | None:
    """The recorded quiet spell, if `now` falls in it and nothing changed since."""
    value = ledger.meta(QUIET)
    if value is None:
        log.debug("quiet path not taken: the last run found something due (no marker)")
        return None
    try:
        marker = json.loads(value)
        since, until = from_iso(marker["since"]), from_iso(marker["until"])
        waiting = int(marker["waiting"])
        opens = marker.get("opens")
    except (ValueError, KeyError, TypeError):
        return None
    if not since <= now < until:
        log.debug("quiet path not taken: %s is outside the quiet spell %s to %s",
                  iso(now), marker["since"], marker["until"])
        return None
    if marker.get("fingerprint") != fingerprint(project, ledger, now):
        log.debug("quiet path not taken: settings, campaigns, the export or the ledger changed")
        return None
    log.debug("quiet path: nothing can be due before %s and nothing changed", marker["until"])
    return Quiet(waiting, until, opens if isinstance(opens, str) else None)


def forget(ledger: Ledger) -> None:
    """Drop the marker: this run does the full work (and may change what is due)."""
    ledger.drop_meta(QUIET)


def remember(project: Project, ledger: Ledger, now: datetime, until: datetime | None,
             waiting: int, opens: str | None) -> None:
    """Record that nothing is due from `now` until `until` (None: nothing ever will be)."""
    future_events = ledger.next_event_after(iso(now))
    if future_events is not None:  # a goal event dated later starts to count then
        event_at = from_iso(future_events)
        until = event_at if until is None else min(until, event_at)
    marker = {"fingerprint": fingerprint(project, ledger, now), "since": iso(now),
              "until": iso(until) if until is not None else "9999-12-31T23:59:59Z",
              "waiting": waiting, "opens": opens}
    ledger.set_meta(QUIET, json.dumps(marker))
