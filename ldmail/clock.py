"""The one place that knows what time it is, so `--now` can move the whole calendar."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta, tzinfo
from functools import lru_cache

from .errors import LdmailError

# The moments ldmail can plan around: campaigns run for months and a plan looks years
# ahead, so the calendar must have room on both sides of --now.
EARLIEST_NOW = datetime(1970, 1, 1, tzinfo=UTC)
LATEST_NOW = datetime(9000, 1, 1, tzinfo=UTC)


def parse_now(value: str | None, zone: Callable[[], tzinfo] = lambda: UTC) -> datetime:
    """`--now` as an aware datetime; a value without an offset is read in `zone()` (the
    project's time zone). None (no --now) is the real clock; an empty or unreadable value
    is an error, never the real clock by accident."""
    if value is None:
        return wall_now()
    example = "write e.g. 2026-12-15 or 2026-12-15T09:30+01:00"
    try:
        given = datetime.fromisoformat(value.strip())
    except ValueError:
        raise LdmailError(f"--now '{value}' is not an ISO date or date-time; {example}"
                          ) from None
    try:
        moment = (given if given.tzinfo else given.replace(tzinfo=zone())).astimezone(UTC)
    except (ValueError, OverflowError):  # at the very edge of the calendar
        moment = LATEST_NOW if given.year > 1 else EARLIEST_NOW - timedelta(days=1)
    if not EARLIEST_NOW <= moment < LATEST_NOW:
        raise LdmailError(f"--now '{value}' is outside the years ldmail can plan in "
                          f"({EARLIEST_NOW.year}-{LATEST_NOW.year - 1}); {example}")
    return moment


def machine_zone() -> tzinfo:
    """This computer's own time zone: only where no project names one."""
    return datetime.now().astimezone().tzinfo or UTC


def shown(moment: datetime, zone: tzinfo) -> str:
    """A moment as a person reads it: in `zone`, with the zone's name (Tue 2026-12-08 10:00
    CET)."""
    return moment.astimezone(zone).strftime("%a %Y-%m-%d %H:%M %Z")


def wall_now() -> datetime:
    """The real time, whatever `--now` says: for comparing with other machines' clocks."""
    return datetime.now(UTC)


@lru_cache(maxsize=65536)  # a run writes and reads the same few moments for many people
def iso(moment: datetime) -> str:
    """UTC ISO text as stored in the ledger; sorts in time order."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@lru_cache(maxsize=65536)  # and shares one datetime object between them
def from_iso(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))
