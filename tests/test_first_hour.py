"""A user's first hour: commands find their project from any folder inside it, and say
clearly when there is none."""

from __future__ import annotations

from pathlib import Path

import pytest

from .conftest import Cli


def test_commands_work_from_a_subfolder_of_the_project(project: Path, cli: Cli,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(project / "templates" / "en")
    checked = cli("validate")
    assert checked.exit_code == 0, checked.output
    assert "ok: 1 campaign(s)" in checked.stdout
    sent = cli("send", "--now", "2026-12-01T10:00+01:00")
    assert sent.exit_code == 0, sent.output
    # The ledger and the outbox are the project's, not the current folder's.
    assert (project / ".ldmail" / "ledger.db").is_file()
    assert not (project / "templates" / "en" / ".ldmail").exists()


def test_outside_any_project_one_line_names_init(tmp_path: Path, cli: Cli,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.chdir(empty)
    for args in (("validate",), ("send", "--dry-run"), ("schema",)):
        result = cli(*args)
        assert result.exit_code == 1, args
        assert result.stderr.count("\n") == 1, result.stderr
        assert "no ldmail project here or in any folder above it" in result.stderr
        assert "ldmail init" in result.stderr
    assert list(empty.iterdir()) == [], "schema wrote into a folder that is no project"


def test_an_explicit_project_is_not_searched_upwards(project: Path, cli: Cli) -> None:
    result = cli("validate", "--project", project / "campaigns")
    assert result.exit_code == 1
    assert "no ldmail project here (" in result.stderr
