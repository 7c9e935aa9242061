"""Fixtures for the delivery unit tests: the scaffold with five people the tests know by name,
no holdout, so each of them is due the first step at NOW; and the few helpers that read it.

Copied from tests/e2e/smtp_server.py (which starts real servers) so nothing here opens a socket.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml

from ldmail.ledger import Ledger, MessageRecord
from ldmail.project.config import Project, load_project
from ldmail.project.scaffold import init_project

AMSTERDAM = ZoneInfo("Europe/Amsterdam")
START = date(2026, 12, 1)  # a Tuesday: the send window (mon-fri 09:00-17:00) is open
NOW = datetime.combine(START, time(10, 0), tzinfo=AMSTERDAM)
BACKOFF = timedelta(minutes=10)  # the documented default of retry.backoff

HEADER = "Email;First name;Last name;Language;Department;Start date;Certification"
PEOPLE = {
    "ann@example.org": "Ann;de Vries;EN;Sales;03-02-2019;",
    "bob@example.org": "Bob;Smith;EN;Finance;15-06-2015;GDPR basics",
    "chloe@example.org": "Chloé;Martin;NL;HR;01-10-2026;",
    "dirk@example.org": "Dirk;Jansen;NL;IT;12-01-2012;",
    "emma@example.org": "Emma;Bakker;EN;Support;20-08-2021;",
}


def iso(moment: datetime) -> str:
    """A moment as the ledger stores it (UTC, seconds, Z)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def write_people(project: Path, rows: dict[str, str]) -> None:
    lines = [HEADER, *(f"{email};{rest}" for email, rest in rows.items())]
    (project / "people.csv").write_text("\r\n".join(lines) + "\r\n", encoding="utf-8")


def edit_yaml(path: Path, change: Callable[[dict[str, Any]], None]) -> None:
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    change(data)
    path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")


def messages_of(project: Project, email: str) -> list[MessageRecord]:
    """The ledger's messages about `email`, read back through the ledger itself."""
    with Ledger.of(project, readonly=True) as ledger:
        return ledger.history(email).messages


def hello(project: Project, email: str) -> MessageRecord | None:
    """The ledger's row of the first step (welcome/hello) for `email`, if any."""
    return next((m for m in messages_of(project, email) if m.step == "hello"), None)


@pytest.fixture(scope="session")
def five_people(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The scaffold (made by init_project once: writing its schemas takes longer than a send)
    with the five PEOPLE and no holdout."""
    made = tmp_path_factory.mktemp("delivery") / "repo"
    init_project(made)
    write_people(made, PEOPLE)
    edit_yaml(made / "campaigns" / "welcome.yaml", lambda c: c.update(holdout="0%"))
    return made


@pytest.fixture
def people(five_people: Path, tmp_path: Path) -> Path:
    """A fresh copy of the five PEOPLE's project: all five are due `hello` at NOW."""
    return Path(shutil.copytree(five_people, tmp_path / "repo"))


@pytest.fixture
def project(people: Path) -> Project:
    """The five PEOPLE's project, loaded (loading takes longer than a send: done once)."""
    return load_project(people)
