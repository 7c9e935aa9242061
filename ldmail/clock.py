"""The one place that knows what time it is, so `--now` can move the whole calendar."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import lru_cache

from .errors import LdmailError


def parse_now(value: str | None) -> datetime:
    """`--now` as an aware datetime; a value without an offset is this machine's local time."""
    if value is None:
        return wall_now()
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        raise LdmailError(
            f"--now '{value}' is not an ISO date or date-time; write e.g. 2026-12-15 or "
            "2026-12-15T09:30+01:00"
        ) from None
    if moment.tzinfo is None:
        moment = moment.astimezone()
    return moment.astimezone(UTC)


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
