"""`--project` and `--now` mean the same before the command as after it, for every command.

Typer 0.2x carries a click of its own, so options given before the command once silently
fell back to the real clock and the current folder: a time-travel rehearsal written
`ldmail --now … send` sent real mail now.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ldmail.cli import app

from .conftest import Cli, copy_example

NOW = "2026-12-08T10:00+01:00"
LATER = "2026-12-22T10:00+01:00"
FIT = '"Hoe goed passen de trainingen bij je werk? / How well do the courses fit your work?"'
PERSON = "linda.dekker@hearthandhome.example"

# Every command that takes --project and --now, with arguments that make it do real work.
READING = [
    ["validate"],
    ["audience"],
    ["preview", "--campaign", "platform-launch"],
    ["send", "--dry-run"],
    ["plan"],
    ["history", PERSON],
    ["report"],
    ["schema", "--out", "schemas"],
]
# Commands that change the ledger, or need an outside service: each form on its own copy.
CHANGING = [
    ["send"],
    ["suppress", PERSON],
    ["forget", PERSON],
    ["retry", "--failed"],
    ["inbox", "--dry-run"],
    ["events", "pull"],
    ["events", "import", "lms.csv"],
    ["survey", "import", "answers.csv"],
]
# A log line's own time stamp is the wall clock: the only part allowed to differ.
STAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d{4} ", re.M)


def _normal(output: str, *folders: Path) -> str:
    for folder in folders:
        output = output.replace(str(folder), "DIR")
    return STAMP.sub("", output)


def _both_forms(cli: Cli, folder: Path, args: list[str], now: str) -> tuple[str, str]:
    before = cli("--project", folder, "--now", now, *args)
    after = cli(*args, "--project", folder, "--now", now)
    assert before.exit_code == after.exit_code, (args, before.output, after.output)
    assert "no ldmail project here" not in before.output, (args, before.output)
    return before.output, after.output


@pytest.fixture(scope="module")
def sent_once(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shipped example after its first sends: made once, copied for each test."""
    target = tmp_path_factory.mktemp("sent") / "example"
    copy_example(target)
    sent = CliRunner().invoke(app, ["send", "--project", str(target), "--now", NOW])
    assert sent.exit_code == 0, sent.output
    return target


@pytest.fixture
def sent_example(sent_once: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the sent example, run from a folder outside it."""
    example = shutil.copytree(sent_once, tmp_path / "example")
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    monkeypatch.chdir(outside)
    return example


@pytest.mark.parametrize("args", READING, ids=lambda args: " ".join(args))
def test_reading_commands_answer_the_same_either_way(sent_example: Path, cli: Cli,
                                                     args: list[str]) -> None:
    before, after = _both_forms(cli, sent_example, args, LATER)
    assert _normal(before) == _normal(after)


@pytest.mark.parametrize("args", CHANGING, ids=lambda args: " ".join(args))
def test_changing_commands_answer_the_same_either_way(sent_example: Path, cli: Cli,
                                                      tmp_path: Path, args: list[str]) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    shutil.copytree(sent_example, first)
    shutil.copytree(sent_example, second)
    for copy in (first, second):
        (copy / "lms.csv").write_text("E-mail;Event;Course;Timestamp\n"
                                      f"{PERSON};registered;path:first-90-days;"
                                      "09-12-2026 09:00:00\n")
        (copy / "answers.csv").write_text(f"Email,Completion time,{FIT}\n"
                                          f"{PERSON},2026-12-20 10:00,Past niet bij mij\n")
    def given(copy: Path) -> list[str]:  # a file named on the command line: in that copy
        return [str(copy / arg) if arg.endswith(".csv") else arg for arg in args]

    before = cli("--project", first, "--now", LATER, *given(first))
    after = cli(*given(second), "--project", second, "--now", LATER)
    assert before.exit_code == after.exit_code, (args, before.output, after.output)
    assert "no ldmail project here" not in before.output, (args, before.output)
    assert _normal(before.output, first) == _normal(after.output, second)
    assert "file not found" not in before.output


def test_now_before_the_command_is_the_moment_of_the_run(sent_example: Path, cli: Cli) -> None:
    """Sunday: the window is shut, whichever way --now is written (not the real clock)."""
    sunday = "2026-12-13T10:00+01:00"
    before, after = _both_forms(cli, sent_example, ["send", "--dry-run"], sunday)
    assert "would send 0 " in before and "would send 0 " in after


def test_every_command_that_takes_the_options_is_covered() -> None:
    covered = {" ".join(args[:2]) if args[0] in ("events", "survey") else args[0]
               for args in READING + CHANGING}
    import typer.main

    command = typer.main.get_command(app)
    names: set[str] = set()
    for name, sub in getattr(command, "commands", {}).items():
        inner = getattr(sub, "commands", None)
        for child in (inner or {None: sub}):
            option_names = {opt for param in (inner[child] if inner else sub).params
                            for opt in getattr(param, "opts", [])}
            if "--now" in option_names:
                names.add(f"{name} {child}" if inner else name)
    assert names - covered == {"run"}, names - covered  # run never returns: tested in test_run


@pytest.mark.parametrize("value", ["", " ", "9999-12-31", "0001-01-01", "2026-13-01",
                                   "1969-07-20T20:17Z"])
def test_a_now_that_cannot_be_used_is_one_line_in_either_form(sent_example: Path, cli: Cli,
                                                              value: str) -> None:
    """An empty --now never means the real clock; the calendar's edges are not a traceback."""
    for result in (cli("--now", value, "send", "--project", sent_example),
                   cli("send", "--project", sent_example, "--now", value)):
        assert result.exit_code == 1, result.output
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"error --now '{value}' is "), lines
        assert "sent" not in result.stdout


def test_time_only_moves_forward_in_a_ledger(sent_example: Path, cli: Cli) -> None:
    """A year typo in --now is refused before anything changes; --allow-past is the
    deliberate rehearsal on a copy."""
    from .smtp_server import ledger_rows

    everything = "SELECT campaign, email, state, exit_reason FROM enrolments ORDER BY 1, 2"
    before = ledger_rows(sent_example, everything)
    runs = ledger_rows(sent_example, "SELECT count(*) AS n FROM runs")[0]["n"]
    typo = cli("send", "--project", sent_example, "--now", "2016-12-08T10:00+01:00")
    assert typo.exit_code == 1
    assert typo.stderr.strip().splitlines() == [
        "error it is Thu 2016-12-08 10:00 CET for this run, before run 1 of this ledger, which "
        "ran at Tue 2026-12-08 10:00 CET: time only moves forward in a ledger. Check --now (and "
        "this machine's clock); to rehearse on a copy of the ledger on purpose, add --allow-past"]
    assert ledger_rows(sent_example, everything) == before
    assert ledger_rows(sent_example, "SELECT count(*) AS n FROM runs")[0]["n"] == runs
    # A few minutes back is two machines' clocks, not a typo.
    assert cli("send", "--project", sent_example, "--now", "2026-12-08T09:57+01:00"
               ).exit_code == 0
    rehearsal = cli("send", "--project", sent_example, "--now", "2016-12-08T10:00+01:00",
                    "--allow-past")
    assert "time only moves forward" not in rehearsal.output


def test_plan_for_a_person_before_a_later_run_shows_those_sends_still_to_come(
        sent_example: Path, cli: Cli) -> None:
    assert cli("send", "--project", sent_example, "--now", "2026-12-17T10:00+01:00"
               ).exit_code == 0
    now = cli("plan", "--person", PERSON, "--project", sent_example, "--now", LATER,
              "--format", "json")
    earlier = cli("plan", "--person", PERSON, "--project", sent_example, "--now",
                  "2026-12-10T10:00+01:00", "--format", "json")

    def kick_off(output: str) -> dict[str, object]:
        steps = json.loads(output)
        return next(s for s in steps if s["campaign"] == "platform-launch"
                    and s["step"] == "kick-off")

    assert kick_off(now.stdout)["status"] == "sent"
    shown = kick_off(earlier.stdout)
    assert shown["status"] == "planned", shown
    assert "after --now" in str(shown["note"])
