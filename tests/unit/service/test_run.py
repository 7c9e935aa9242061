"""service.run promises `ldmail run`'s decisions: --interval of at least one second; each tick
pulls, sends at the (possibly shifted) clock, then reads the mailbox; a stop request during the
pull is not a run; a fatal transport error ends the service and is kept to be raised, while any
other error is logged and the next interval tries again; max_runs ends it; a signal ends it
after the message in hand; a mailbox that fails is logged, never fatal.

The ticks run in-process with a stopped clock passed in and a stand-in for the scheduler; no loop
is started (run_forever makes its own scheduler, so only its check before starting is tested)."""

from __future__ import annotations

import logging
import signal
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from ldmail.errors import LdmailError, TransportFatal
from ldmail.service.run import _Service, parse_interval, read_inbox_logged, run_forever

NOW = datetime(2026, 12, 1, 9, tzinfo=UTC)  # a Tuesday, 10:00 in Amsterdam: in the window
LOG = "ldmail.run"


class Scheduler:
    """What the service asks of its scheduler: whether it runs, and to shut down."""

    def __init__(self, running: bool = True) -> None:
        self.running = running
        self.shutdowns: list[bool] = []

    def shutdown(self, wait: bool = True) -> None:
        self.shutdowns.append(wait)
        self.running = False


def service(root: Path, *, shift: timedelta = timedelta(0), max_runs: int | None = None,
            scheduler: Scheduler | None = None, clock: datetime = NOW) -> _Service:
    """A service whose clock stands still at `clock`."""
    return _Service(root, None, shift, max_runs, scheduler or Scheduler(), lambda: clock)


def outbox(root: Path) -> list[Path]:
    folder = root / ".ldmail" / "outbox"
    return sorted(folder.glob("*.eml")) if folder.is_dir() else []


def messages(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [record.getMessage() for record in caplog.records if record.name == LOG]


@pytest.mark.parametrize(("text", "expected"), [
    (None, None), ("5m", timedelta(minutes=5)), ("1s", timedelta(seconds=1)),
    ("2h", timedelta(hours=2))])
def test_an_interval_is_read_as_a_duration(text: str | None, expected: timedelta | None) -> None:
    assert parse_interval(text) == expected


def test_an_interval_under_a_second_or_unreadable_is_refused() -> None:
    with pytest.raises(LdmailError, match="^--interval 0s: give a time of at least one second "
                       "between runs, e.g. 5m$"):
        parse_interval("0s")
    with pytest.raises(LdmailError, match="^--interval: .*"):
        parse_interval("soon")


def test_a_tick_sends_at_the_clock_and_counts_a_run(
        scaffold: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=LOG)
    running = service(scaffold)
    running.tick()
    sent = outbox(scaffold)
    assert sent and running.runs == 1 and not running.stop.is_set()
    assert messages(caplog)[0].startswith(f"run at 2026-12-01T09:00:00+00:00: sent {len(sent)},")


def test_the_shift_moves_the_clock_the_send_sees(scaffold: Path) -> None:
    before = datetime(2025, 6, 1, 9, tzinfo=UTC)  # before the campaign starts
    service(scaffold, clock=before).tick()
    assert outbox(scaffold) == []
    service(scaffold, shift=NOW - before, clock=before).tick()
    assert outbox(scaffold)


def test_max_runs_ends_the_service_after_that_many_ticks(scaffold: Path) -> None:
    scheduler = Scheduler()
    running = service(scaffold, max_runs=2, scheduler=scheduler)
    running.tick()
    assert not running.stop.is_set() and scheduler.shutdowns == []
    running.tick()
    assert running.runs == 2 and running.stop.is_set()
    assert scheduler.shutdowns == [False]  # returns at once; run_forever waits for the job


def test_a_stop_request_before_the_send_is_not_a_run(scaffold: Path) -> None:
    running = service(scaffold)
    running.stop.set()
    running.tick()
    assert running.runs == 0 and outbox(scaffold) == []


def test_a_fatal_transport_error_ends_the_service_and_is_kept(
        scaffold: Path, caplog: pytest.LogCaptureFixture) -> None:
    (scaffold / ".ldmail").mkdir(exist_ok=True)
    (scaffold / ".ldmail" / "outbox").write_text("a file where the outbox folder goes")
    scheduler = Scheduler()
    running = service(scaffold, scheduler=scheduler)
    running.tick()
    assert [type(error) for error in running.fatal] == [TransportFatal]
    assert running.stop.is_set() and scheduler.shutdowns == [False] and running.runs == 0
    assert messages(caplog) == [f"run failed: {running.fatal[0]}"]
    assert "cannot create the outbox" in str(running.fatal[0])


def test_any_other_error_is_logged_and_the_next_interval_tries_again(
        scaffold: Path, caplog: pytest.LogCaptureFixture) -> None:
    (scaffold / "ldmail.yaml").write_text("languages: [en, nl\n", encoding="utf-8")
    running = service(scaffold)
    running.tick()
    assert running.runs == 1 and not running.stop.is_set() and running.fatal == []
    logged = messages(caplog)
    assert [line.split(":")[0] for line in logged] == ["run failed", "inbox failed"]
    assert "ldmail.yaml" in logged[0]


def test_a_signal_ends_the_service_after_the_message_in_hand(
        scaffold: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=LOG)
    idle = Scheduler(running=False)
    running = service(scaffold, scheduler=idle)
    running.on_signal(signal.SIGTERM, None)
    assert running.stop.is_set() and idle.shutdowns == []  # nothing to shut down yet
    assert messages(caplog) == ["received SIGTERM; finishing the message in hand, then stopping"]


def test_without_an_inbox_block_the_mailbox_is_not_read(
        scaffold: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=LOG)
    read_inbox_logged(scaffold, NOW, None)
    assert messages(caplog) == []


def test_a_mailbox_that_fails_is_logged_not_raised(
        scaffold: Path, caplog: pytest.LogCaptureFixture) -> None:
    with (scaffold / "ldmail.yaml").open("a", encoding="utf-8") as settings:
        settings.write("inbox:\n  kind: maildir\n  path: mail/inbox\n")
    read_inbox_logged(scaffold, NOW, None)
    assert messages(caplog) == ["inbox failed: mail/inbox: no Maildir folder there (it has no "
                                "cur/ or new/); check inbox.path in ldmail.yaml"]


def test_a_mailbox_read_is_summed_up_in_the_log(
        scaffold: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=LOG)
    with (scaffold / "ldmail.yaml").open("a", encoding="utf-8") as settings:
        settings.write("inbox:\n  kind: maildir\n  path: mail/inbox\n")
    (scaffold / "mail" / "inbox" / "new").mkdir(parents=True)
    (scaffold / "mail" / "inbox" / "new" / "1.mail").write_bytes(
        b"From: ann@example.org\nSubject: hello\n\nA question.\n")
    read_inbox_logged(scaffold, NOW, None)
    assert messages(caplog) == ["inbox: 0 bounces (0 hard, 0 soft), 0 unsubscribes, 1 left "
                                "alone (not a bounce or an unsubscribe)"]


def test_an_interval_under_a_second_in_the_settings_stops_before_anything_runs(
        scaffold: Path) -> None:
    with (scaffold / "ldmail.yaml").open("a", encoding="utf-8") as settings:
        settings.write("run:\n  interval: 0s\n")
    handler = signal.getsignal(signal.SIGTERM)
    with pytest.raises(LdmailError, match="^run.interval in ldmail.yaml must be at least one "
                       "second, e.g. 5m$"):
        run_forever(scaffold, None)
    assert signal.getsignal(signal.SIGTERM) is handler
    assert outbox(scaffold) == []
