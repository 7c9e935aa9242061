"""Rough edges that read as broken: each one now ends in one clear line and the right exit."""

from __future__ import annotations

from pathlib import Path

import pytest

from .conftest import Cli, summary_line
from .smtp_server import SmtpServer, use_smtp
from .test_smtp_faults import auth_server  # noqa: F401 - the fixture

DAY1 = "2026-12-01T10:00+01:00"
pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH:UserWarning")


def test_init_onto_a_file_or_an_unwritable_place(tmp_path: Path, cli: Cli) -> None:
    afile = tmp_path / "notes.txt"
    afile.write_text("x", encoding="utf-8")
    on_file = cli("init", afile)
    assert on_file.exit_code == 1 and "is a file; give a new or empty folder" in on_file.stderr
    nowhere = cli("init", "/proc/no-such-place/repo")
    assert nowhere.exit_code == 1 and "cannot create it" in nowhere.stderr
    assert "Traceback" not in on_file.output + nowhere.output


def test_report_out_writes_the_file_its_extension_asks_for(project: Path, cli: Cli) -> None:
    assert cli("send", "--project", project, "--now", DAY1).exit_code == 0
    # The CSV is for Excel by default: a byte order mark first.
    for name, start in (("r.txt", "\nWelcome to the learning platform"),
                        ("r.csv", "\ufeffcampaign,"), ("r.json", "{"),
                        ("r.html", "<!DOCTYPE html>")):
        result = cli("report", "--out", project / "out" / name, "--project", project, "--now",
                     DAY1)
        assert result.exit_code == 0 and "Report written to" in result.stdout
        assert (project / "out" / name).read_text("utf-8").startswith(start), name


def test_run_stops_with_exit_1_when_the_transport_cannot_work(
        project: Path, cli: Cli, auth_server: SmtpServer,  # noqa: F811
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LDMAIL_SMTP_PASSWORD", "wrong-Pa55word")
    use_smtp(project, auth_server.port, user="learning@example.org")
    result = cli("run", "--interval", "1m", "--runs", "3", "--project", project, "--now", DAY1)
    assert result.exit_code == 1, result.output
    assert "login as learning@example.org refused (535)" in result.output
    assert "wrong-Pa55word" not in result.output
    # It stopped at once (three runs a minute apart would take two minutes).


def test_a_deleted_ledger_never_means_a_silent_full_resend(project: Path, cli: Cli,
                                                           tmp_path: Path) -> None:
    first = cli("send", "--project", project, "--now", DAY1)
    assert first.exit_code == 0 and summary_line(first.stdout).startswith("sent 7 ")
    ledger = project / ".ldmail" / "ledger.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{ledger}{suffix}").unlink(missing_ok=True)
    again = cli("send", "--project", project, "--now", "2026-12-01T11:00+01:00")
    assert again.exit_code == 1
    assert "ledger.db is missing, but" in again.stderr and "--new-ledger" in again.stderr
    assert not ledger.exists()
    assert len(list((project / ".ldmail" / "outbox").glob("*.eml"))) == 7
    events = tmp_path / "lms.csv"
    events.write_text("E-mail;Event;Course;Timestamp\nann.devries@example.org;registered;x;"
                      "02-12-2026 09:00\n", encoding="utf-8")
    for args in (("events", "import", events), ("suppress", "bob.smith@example.org"),
                 ("retry",)):  # no command that writes creates an empty ledger in its place
        refused = cli(*args, "--project", project)
        assert refused.exit_code == 1 and "ledger.db is missing" in refused.stderr, args
        assert not ledger.exists()

    other = tmp_path / "other"
    assert cli("init", other).exit_code == 0
    assert cli("send", "--project", other, "--now", DAY1).exit_code == 0
    for suffix in ("", "-wal", "-shm"):  # someone copies another project's ledger in
        source = Path(f"{other / '.ldmail' / 'ledger.db'}{suffix}")
        if source.exists():
            Path(f"{ledger}{suffix}").write_bytes(source.read_bytes())
    replaced = cli("send", "--project", project, "--now", "2026-12-01T11:00+01:00")
    assert replaced.exit_code == 1 and "is not the ledger earlier runs wrote" in replaced.stderr

    for suffix in ("", "-wal", "-shm"):
        Path(f"{ledger}{suffix}").unlink(missing_ok=True)
    fresh = cli("send", "--new-ledger", "--project", project, "--now",
                "2026-12-01T11:00+01:00")
    assert fresh.exit_code == 0 and summary_line(fresh.stdout).startswith("sent 7 "), fresh.output
    later = cli("send", "--project", project, "--now", "2026-12-01T12:00+01:00")
    assert later.exit_code == 0 and summary_line(later.stdout).startswith("sent 0 ")

    backup = {suffix: Path(f"{ledger}{suffix}").read_bytes() for suffix in ("", "-wal")
              if Path(f"{ledger}{suffix}").exists()}
    step_two = cli("send", "--project", project, "--now", "2026-12-04T12:00+01:00")
    assert step_two.exit_code == 0 and summary_line(step_two.stdout).startswith("sent 7 ")
    for suffix in ("", "-wal", "-shm"):
        Path(f"{ledger}{suffix}").unlink(missing_ok=True)
    for suffix, data in backup.items():  # an older backup put back
        Path(f"{ledger}{suffix}").write_bytes(data)
    older = cli("send", "--project", project, "--now", "2026-12-04T13:00+01:00")
    assert older.exit_code == 1 and "is an older copy" in older.stderr, older.output


def test_version_comes_from_the_package_metadata(cli: Cli) -> None:
    from importlib.metadata import version

    result = cli("--version")
    assert result.exit_code == 0 and result.stdout == f"ldmail {version('ldmail')}\n"
    assert cli("-h").stdout.startswith("Usage: ")


def test_two_calls_in_one_process_do_not_share_options(tmp_path: Path, cli: Cli,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    assert cli("init", first).exit_code == 0 and cli("init", second).exit_code == 0
    (second / "campaigns" / "welcome.yaml").rename(second / "campaigns" / "other.yaml")
    assert cli("--project", first, "validate").exit_code == 0
    monkeypatch.chdir(second)
    shown = cli("preview", "-c", "welcome")  # no --project: the current folder, not `first`
    assert shown.exit_code == 1 and "no campaign 'welcome'" in shown.stderr


def test_verbose_says_why_a_run_does_what_it_does(project: Path, cli: Cli) -> None:
    first = cli("--verbose", "send", "--project", project, "--now", DAY1)
    assert first.exit_code == 0
    assert "export people.csv: read again" in first.stderr
    assert "lane 0 (outbox): welcome/hello to" in first.stderr
    again = cli("-v", "send", "--project", project, "--now", "2026-12-01T10:30+01:00")
    assert "quiet path" in again.stderr or "not read: the staged rows" in again.stderr
