"""`ldmail run`: the send job on an interval, in-process, until SIGTERM or Ctrl-C; with the
LRS pull before each send and the sender's mailbox after it."""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import Any

from ..clock import wall_now
from ..delivery.send import send
from ..errors import LdmailError, TransportFatal
from ..measurement.lrs import pull_logged
from ..project.config import load_project
from ..units import parse_duration

log = logging.getLogger("ldmail.run")


def read_inbox_logged(root: Path, now: datetime, db: Path | None,
                      stop: threading.Event | None = None) -> None:
    """Bounces and unsubscribe mails, when ldmail.yaml has an inbox: block. A failure (a
    refused login, an unreachable server) is logged, not fatal: sending goes on, and the
    next interval tries the mailbox again. A stop request ends it between two mails."""
    from ..inbox import read_inbox

    try:
        project = load_project(root)
        if project.settings.inbox is None:
            return
        result = read_inbox(project, now, db=db, stop=stop)
    except LdmailError as exc:
        log.error("inbox failed: %s", exc)
    else:
        log.info("%s", result.summary())
        if result.stopped:
            log.info("inbox %s", result.stopped)


def parse_interval(text: str | None) -> timedelta | None:
    """`--interval` as given (None: run.interval in ldmail.yaml): at least one second."""
    if text is None:
        return None
    try:
        every = parse_duration(text)
    except ValueError as exc:
        raise LdmailError(f"--interval: {exc}") from None
    if every.total_seconds() < 1:
        raise LdmailError(f"--interval {text}: give a time of at least one second between "
                          "runs, e.g. 5m")
    return every


class _Service:
    """The state one `ldmail run` keeps between its ticks: the stop request, the count of
    runs, and a fatal transport error that ends it. `clock` is the wall clock each tick
    reads (then shifted by `shift`)."""

    def __init__(self, root: Path, db: Path | None, shift: timedelta,
                 max_runs: int | None, scheduler: Any,
                 clock: Callable[[], datetime] = wall_now) -> None:
        self.root, self.db, self.shift, self.max_runs = root, db, shift, max_runs
        self.scheduler, self.clock = scheduler, clock
        self.stop = threading.Event()
        self.runs = 0
        self.fatal: list[TransportFatal] = []

    def end(self) -> None:
        self.stop.set()
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)

    def tick(self) -> None:
        """One run: pull, send, then the mailbox."""
        now = self.clock() + self.shift
        try:
            if not self._pull_and_send(now):
                return  # stopped during the pull: not a run
        except TransportFatal as exc:
            # A refused login or a missing password does not mend itself: stop, and say so
            # with a non-zero exit, instead of failing quietly every interval.
            log.error("run failed: %s", exc)
            self.fatal.append(exc)
            self.end()
            return
        except LdmailError as exc:
            log.error("run failed: %s", exc)
        if not self.stop.is_set():
            read_inbox_logged(self.root, now, self.db, self.stop)
        self.runs += 1
        if self.max_runs is not None and self.runs >= self.max_runs:
            self.end()

    def _pull_and_send(self, now: datetime) -> bool:
        """False when a stop request came during the pull, so nothing was sent."""
        project = load_project(self.root)  # re-read: campaigns may change between runs
        # Goals from the LRS first, when lrs: is set; a stop request cuts the pull short.
        pull_logged(project, log, now, db=self.db, stop=self.stop)
        if self.stop.is_set():
            return False
        summary = send(project, now, db=self.db, stop=self.stop)
        log.info("run at %s: sent %d, waiting %d, retry later %d, failed %d, unknown %d",
                 now.isoformat(timespec="seconds"), summary.sent, summary.waiting_window,
                 summary.deferred, summary.failed, summary.unknown_total)
        for hold in summary.domain_holds:
            log.warning("%s", hold.line(hold.resumes_by))
        return True

    def on_signal(self, signum: int, frame: FrameType | None) -> None:
        log.info("received %s; finishing the message in hand, then stopping",
                 signal.Signals(signum).name)
        self.end()


def run_forever(root: Path, interval: timedelta | None, *, db: Path | None = None,
                start: datetime | None = None, max_runs: int | None = None,
                clock: Callable[[], datetime] = wall_now) -> int:
    """Run `send` now and then every `interval`; returns the number of runs done.

    With `start` (--now) the simulated clock starts there and then runs at the speed of
    `clock` (the wall clock). A stop request lets the message in hand finish and be
    recorded, so no claim is left open; the rest waits for the next start.
    """
    shift = start - clock() if start is not None else timedelta(0)
    from apscheduler.executors.pool import ThreadPoolExecutor
    from apscheduler.schedulers.blocking import BlockingScheduler
    from apscheduler.triggers.interval import IntervalTrigger

    every = interval or load_project(root).settings.run.interval
    if every.total_seconds() < 1:
        raise LdmailError("run.interval in ldmail.yaml must be at least one second, e.g. 5m")
    executor = ThreadPoolExecutor(1)
    service = _Service(root, db, shift, max_runs,
                       BlockingScheduler(executors={"default": executor}, timezone=UTC), clock)
    previous = {sig: signal.signal(sig, service.on_signal)
                for sig in (signal.SIGTERM, signal.SIGINT)}
    service.scheduler.add_job(service.tick, IntervalTrigger(seconds=every.total_seconds()),
                              # the scheduler's own time, which is always the wall clock
                              id="send", next_run_time=wall_now(), max_instances=1,
                              coalesce=True, misfire_grace_time=None)
    log.info("sending every %s; stop with Ctrl-C or SIGTERM", every)
    try:
        service.scheduler.start()
    finally:
        # shutdown(wait=False) returns at once; wait here for the job in hand to finish.
        executor.shutdown(wait=True)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    log.info("stopped after %d run(s)", service.runs)
    if service.fatal:
        raise service.fatal[0]
    return service.runs
