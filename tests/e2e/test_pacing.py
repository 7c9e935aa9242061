"""Pacing that holds across runs: the rate and the daily cap come from the ledger, so cron
runs in a row (and `ldmail run`) never exceed them; plan and the dry run say the pace."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ldmail.delivery.transport.base import Pacer
from ldmail.project.models import Transport

from ..projects import NOW, edit_yaml, write_people
from .conftest import Cli, summary_line
from .smtp_server import SmtpServer, send, serve, use_smtp

SPACING = 2.0  # seconds between two messages at 30/min
# The server notes a message when its thread gets to it: on a busy machine one may be noted up
# to this much late, which shortens the gap to the next. A pacer that lets two go at once, or
# keeps a shorter spacing, still fails: over n messages it saves at least a whole spacing.
JITTER = 1.0


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    yield from serve()


def _people(project: Path, port: int, count: int, **transport: object) -> None:
    write_people(project, {f"p{i:02d}@example.org": f"P{i};Test;EN;Sales;01-01-2015;"
                           for i in range(count)})
    edit_yaml(project / "campaigns" / "welcome.yaml", lambda c: c.update(holdout="0%"))
    use_smtp(project, port, **transport)


def test_exchange_online_preset_sets_rate_and_cap() -> None:
    preset = Transport(limits="exchange-online")
    assert (preset.rate, preset.daily_cap) == (0.5, 10_000)
    mine = Transport(limits="exchange-online", rate="10/min", daily_cap=500)
    assert (round(mine.rate or 0, 4), mine.daily_cap) == (round(10 / 60, 4), 500)


def test_pacer_waits_for_the_previous_runs_last_handover() -> None:
    pacer = Pacer(30 / 60, not_before=time.time() + 0.4)
    started = time.monotonic()
    pacer.wait()
    first = time.monotonic() - started
    pacer.wait()
    second = time.monotonic() - started
    # Lower bounds are the pacer's promise; the upper one only says it did not wait forever.
    assert 0.35 <= first < 10 and second - first >= SPACING - 0.01


@pytest.mark.slow
def test_three_cron_runs_never_exceed_the_rate_or_the_cap(project: Path, cli: Cli,
                                                         smtp_server: SmtpServer) -> None:
    """12 people due, rate 30/min, daily cap 10: runs of 3, 3 and what the cap allows.
    Measured at the server: never two messages closer than 2 s, never more than 10. (A run
    that forgot the previous run's last handover would save a whole spacing at the seam.)"""
    _people(project, smtp_server.port, 12, rate="30/min", daily_cap=10)
    outputs = [send(cli, project, NOW, "--limit", "3"), send(cli, project, NOW, "--limit", "3"),
               send(cli, project, NOW)]
    assert all(result.exit_code == 0 for result in outputs), [r.output for r in outputs]
    received = smtp_server.received
    assert len(received) == 10
    assert len({r.key for r in received}) == 10  # nothing doubled
    times = [r.at for r in received]
    crowded = [(i, j, round(times[j] - times[i], 2)) for i in range(len(times))
               for j in range(i + 1, len(times))
               if times[j] - times[i] < (j - i) * SPACING - JITTER]
    assert not crowded, crowded[:5]  # (first, last, seconds between them)
    assert summary_line(outputs[2].output).startswith("sent 4 ")
    assert "2 held back by the daily cap (room again from " in outputs[2].output

    # The next day the cap makes room again: the last 2 go.
    result = send(cli, project, NOW.replace(day=NOW.day + 1))
    assert result.exit_code == 0 and len(smtp_server.received) == 12


def test_dry_run_and_plan_say_the_pace(project: Path, cli: Cli,
                                       smtp_server: SmtpServer) -> None:
    _people(project, smtp_server.port, 60, limits="exchange-online", daily_cap=40)
    result = send(cli, project, NOW, "--dry-run")
    assert result.exit_code == 0, result.output
    assert summary_line(result.output).startswith("would send 40 ")
    assert "at the transport's rate the last of these 40 goes out " in result.output
    assert "20 held back by the daily cap" in result.output
    payload = json.loads(send(cli, project, NOW, "--dry-run", "--format", "json").stdout)
    assert payload["held_by_cap"] == 20 and payload["last_due_at"]
    assert smtp_server.received == []

    result = cli("plan", "--project", project, "--now", NOW.isoformat())
    assert result.exit_code == 0, result.output
    assert "60 sends but the daily cap is 40; the other 20 wait" in result.output
    assert "at 30 a minute the busiest day" in result.output and "40 sends) takes 0 h 01 min" \
        in result.output
