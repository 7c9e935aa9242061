"""One time-zone rule: a time written without a zone is read in the project's `timezone`, and
every time shown is in that zone with its name, whatever zone the machine is set to."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from ldmail.measurement.report_text import Words

from ..projects import edit_yaml
from .conftest import Cli, summary_line
from .smtp_server import ledger_rows

PERSON = "linda.dekker@hearthandhome.example"


@pytest.fixture(autouse=True)
def machine_in_new_york(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """This computer's own zone is neither the project's nor UTC: nothing may follow it."""
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def _set_zone(project: Path, zone: str) -> None:
    def change(data: dict[str, Any]) -> None:
        data["timezone"] = zone

    edit_yaml(project / "ldmail.yaml", change)


def test_now_without_an_offset_is_in_the_projects_zone(example: Path, cli: Cli) -> None:
    plain = cli("send", "--dry-run", "--project", example, "--now", "2026-12-01T10:00")
    amsterdam = cli("send", "--dry-run", "--project", example, "--now", "2026-12-01T10:00+01:00")
    assert plain.exit_code == amsterdam.exit_code == 0, plain.output
    assert summary_line(plain.stdout) == summary_line(amsterdam.stdout)
    assert summary_line(plain.stdout).startswith("would send 846 ")

    _set_zone(example, "Asia/Tokyo")  # and the campaigns, which name no zone of their own
    tokyo = cli("send", "--dry-run", "--project", example, "--now", "2026-12-01T10:00")
    offset = cli("send", "--dry-run", "--project", example, "--now", "2026-12-01T10:00+09:00")
    assert summary_line(tokyo.stdout) == summary_line(offset.stdout)
    # People with a zone of their own in the export wait for their window, shown in Tokyo's.
    assert summary_line(tokyo.stdout).startswith("would send 790 · waiting for send window 56 ")
    assert "which opens Tue 2026-12-01 17:00 JST for the first of them" in tokyo.stdout


def test_lms_rows_without_a_zone_are_read_in_the_projects_zone(project: Path, cli: Cli
                                                                ) -> None:
    export = project / "lms.csv"
    export.write_text("E-mail;Event;Course;Timestamp\n"
                      "ann@example.org;registered;course:excel;02-12-2026 14:30\n"
                      "bob@example.org;registered;course:excel;2026-12-02T14:30+00:00\n",
                      encoding="utf-8")
    assert cli("events", "import", export, "--project", project).exit_code == 0
    _set_zone(project, "Asia/Tokyo")
    export.write_text("E-mail;Event;Course;Timestamp\n"
                      "cas@example.org;registered;course:excel;02-12-2026 14:30\n",
                      encoding="utf-8")
    assert cli("events", "import", export, "--project", project).exit_code == 0
    stored = {row["email"]: row["occurred_at"] for row in
              ledger_rows(project, "SELECT email, occurred_at FROM events")}
    assert stored == {"ann@example.org": "2026-12-02T13:30:00Z",  # Europe/Amsterdam, CET
                      "bob@example.org": "2026-12-02T14:30:00Z",  # its own offset wins
                      "cas@example.org": "2026-12-02T05:30:00Z"}  # Asia/Tokyo


def test_send_and_history_show_times_in_the_projects_zone_with_its_name(example: Path,
                                                                        cli: Cli) -> None:
    early = cli("send", "--project", example, "--now", "2026-12-01T07:00")
    assert "window, which opens Tue 2026-12-01 09:00 CET for the first" in early.stdout
    assert cli("send", "--project", example, "--now", "2026-12-09T10:00").exit_code == 0
    history = cli("history", PERSON, "--project", example).stdout
    assert "Tue 2026-12-01 07:00 CET" in history  # enrolled
    assert "Wed 2026-12-09 10:00 CET" in history  # kick-off sent
    assert "EST" not in history and "UTC" not in history


def test_a_campaign_without_its_own_zone_sends_in_the_projects(project: Path, cli: Cli
                                                                ) -> None:
    _set_zone(project, "America/Chicago")
    plan = cli("plan", "--project", project, "--now", "2026-12-01T08:00")
    assert plan.exit_code == 0, plan.output
    assert " CST " in plan.stdout and " CET " not in plan.stdout

    def own_zone(data: dict[str, Any]) -> None:
        data.setdefault("send_window", {})["timezone"] = "Europe/Berlin"

    for campaign in (project / "campaigns").glob("*.yaml"):
        edit_yaml(campaign, own_zone)
    plan = cli("plan", "--project", project, "--now", "2026-12-01T08:00")
    assert " CET " in plan.stdout and " CST " not in plan.stdout


def test_the_reports_moment_is_in_the_projects_zone() -> None:
    words = Words("nl", ZoneInfo("Europe/Amsterdam"))
    assert words.moment(datetime(2026, 12, 8, 9, 0, tzinfo=UTC)) == \
        "8 december 2026, 10:00 (CET)"
