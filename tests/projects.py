"""Projects the tests share, with no server or process: five people known by name, the moment
they are all due, and the small edits the tests make to a project's files.

Both tests/unit/ and tests/e2e/ use these, so neither keeps a copy of the other's.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import yaml

LEDGER = Path(".ldmail") / "ledger.db"
AMSTERDAM = ZoneInfo("Europe/Amsterdam")
START = date(2026, 12, 1)  # a Tuesday: the send window (mon-fri 09:00-17:00) is open


def at(day: date, hour: int, minute: int = 0) -> datetime:
    """A wall-clock moment in Amsterdam, as users type `--now`."""
    return datetime.combine(day, time(hour, minute), tzinfo=AMSTERDAM)


# Five people the tests know by name; with the holdout off, each gets every step.
HEADER = "Email;First name;Last name;Language;Department;Start date;Certification"
PEOPLE = {
    "ann@example.org": "Ann;de Vries;EN;Sales;03-02-2019;",
    "bob@example.org": "Bob;Smith;EN;Finance;15-06-2015;GDPR basics",
    "chloe@example.org": "Chloé;Martin;NL;HR;01-10-2026;",
    "dirk@example.org": "Dirk;Jansen;NL;IT;12-01-2012;",
    "emma@example.org": "Emma;Bakker;EN;Support;20-08-2021;",
}
NOW = at(START, 10)
BACKOFF = timedelta(minutes=10)  # the documented default of retry.backoff


def write_people(project: Path, rows: dict[str, str]) -> None:
    lines = [HEADER, *(f"{email};{rest}" for email, rest in rows.items())]
    (project / "people.csv").write_text("\r\n".join(lines) + "\r\n", encoding="utf-8")


def iso(moment: datetime) -> str:
    """A moment as the ledger stores it (UTC, seconds, Z)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def from_iso(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def edit_yaml(path: Path, change: Callable[[dict[str, Any]], None]) -> None:
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    change(data)
    path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")
