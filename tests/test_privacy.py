"""`suppress` stops all mail for good; `forget` leaves no trace of the person in the ledger."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from .conftest import Cli

DAY1 = "2026-12-01T10:00+01:00"
DAY4 = "2026-12-04T10:00+01:00"
ANN = "ann.devries@example.org"


def outbox_recipients(project: Path) -> list[str]:
    return [line for path in sorted((project / ".ldmail/outbox").glob("*.eml"))
            for line in path.read_text("utf-8").splitlines() if line.startswith("To:")]


def test_suppressed_person_gets_nothing_more(project: Path, cli: Cli) -> None:
    assert cli("send", "--project", project, "--now", DAY1).exit_code == 0
    first = [to for to in outbox_recipients(project) if ANN in to]
    assert len(first) == 1
    result = cli("suppress", ANN, "--reason", "asked by phone", "--project", project)
    assert result.exit_code == 0
    assert f"{ANN} is now suppressed" in result.stdout
    assert cli("send", "--project", project, "--now", DAY4).exit_code == 0
    assert [to for to in outbox_recipients(project) if ANN in to] == first
    history = cli("history", ANN, "--project", project).stdout
    assert "asked by phone" in history and "suppressed" in history


def test_suppression_list_import(project: Path, cli: Cli, tmp_path: Path) -> None:
    bounces = tmp_path / "bounces.csv"
    bounces.write_text("Email;Reason\nbob.smith@example.org;mailbox full\nnonsense;x\n",
                       encoding="utf-8")
    result = cli("suppress", "--file", bounces, "--project", project)
    assert result.exit_code == 0
    assert "1 address(es) suppressed, 0 already suppressed, 1 row(s) skipped" in result.stdout
    assert "row 3: invalid e-mail address 'nonsense'" in result.stdout
    assert cli("send", "--project", project, "--now", DAY1).exit_code == 0
    assert not [to for to in outbox_recipients(project) if "bob.smith" in to]


def test_forget_erases_every_trace(project: Path, cli: Cli) -> None:
    assert cli("send", "--project", project, "--now", DAY1).exit_code == 0
    result = cli("forget", ANN, "--project", project)
    assert result.exit_code == 0
    assert ANN not in result.output
    ledger_files = list((project / ".ldmail").glob("ledger.db*"))
    for path in ledger_files:
        data = path.read_bytes()
        assert b"ann.devries" not in data.lower() and b"de vries" not in data.lower(), path
    assert not [to for to in outbox_recipients(project) if ANN in to]
    for command in (["history", ANN], ["send", "--now", DAY4], ["report"]):
        output = cli(*command, "--project", project).output
        assert ANN not in output and "de Vries" not in output, command
    assert not [to for to in outbox_recipients(project) if ANN in to]  # never mailed again
    with sqlite3.connect(project / ".ldmail/ledger.db") as db:
        rows = db.execute("SELECT count(*) FROM messages WHERE email LIKE 'forgotten:%'")
        assert rows.fetchone()[0] == 1  # still counted, under a keyed hash
