"""When a step is due, and when it may go out: send windows in the reader's own time zone,
never on a day the business calendar closes."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from ..errors import NoSendDay
from ..states import DONE_STATES, MessageOp, MessageState, message_sources
from .business_days import OPEN, BusinessCalendar
from .models import Campaign, SendWindow, Step, Variant

# How far ahead a send window is looked for before the calendar is called closed for good
# (blackout ranges chained end to end, or holidays on every day of the window).
HORIZON = timedelta(days=3660)


def in_holdout(campaign_id: str, email: str, share: float) -> bool:
    """Deterministic control-group membership: the same person lands in the same group always."""
    if share <= 0:
        return False
    digest = hashlib.sha256(f"{campaign_id}\x00{email.lower()}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < share


def assign_variant(campaign_id: str, step: Step, email: str) -> Variant | None:
    """The variant of `step` one person gets (None for a step without variants).

    Deterministic, like the holdout: the same person gets the same variant in every run. The
    hash is salted with the step, so the draw is independent of the holdout's and of the
    other steps' variants; each variant's share of the range is its share of the weights.
    """
    if not step.variants:
        return None
    digest = hashlib.sha256(
        f"variant\x00{campaign_id}\x00{step.id}\x00{email.lower()}".encode()).digest()
    # Shares, not the weights themselves: 1e-320 and 1e-320 are an even split too.
    point = int.from_bytes(digest[:8], "big") / 2**64
    shares = step.shares()
    for variant in step.variants:
        point -= shares[variant.id]
        if point < 0:
            return variant
    return step.variants[-1]  # rounding at the very top of the range


def _local(day: date, at: time, zone: ZoneInfo) -> datetime:
    """A wall-clock time on a day; in a DST gap it moves forward to a time that exists."""
    moment = datetime.combine(day, at, tzinfo=zone)
    round_trip = moment.astimezone(UTC).astimezone(zone)
    if round_trip.replace(tzinfo=None) != moment.replace(tzinfo=None):
        return round_trip if round_trip > moment.replace(fold=1) else moment.replace(fold=1)
    return moment


@lru_cache(maxsize=65536)
def next_window_open(moment: datetime, window: SendWindow, zone: ZoneInfo | None = None,
                     closed: BusinessCalendar = OPEN) -> datetime:
    """The earliest instant at or after `moment` that falls inside the send window (in UTC),
    on a day the business calendar `closed` leaves open."""
    zone = zone or window.timezone
    start, end = window.hours
    local = moment.astimezone(zone)
    today = day = local.date()
    while True:
        if closed:
            day = closed.first_open(day)
        if day - today > HORIZON:
            raise NoSendDay(f"no send window opens in the ten years after {today}: the "
                            "holidays and blackout in ldmail.yaml (or the campaign) close "
                            "every day of it")
        if day.weekday() in window.days:
            opens, closes = _local(day, start, zone), _local(day, end, zone)
            if day == today and opens <= local < closes:
                return moment.astimezone(UTC)
            if local < opens:
                return opens.astimezone(UTC)
        day += timedelta(days=1)


@dataclass(frozen=True, slots=True)
class Shift:
    """A send the business calendar moved: where the window would have opened, and why not."""

    was: datetime  # UTC
    reason: str


def window_shift(moment: datetime, window: SendWindow, zone: ZoneInfo | None,
                 closed: BusinessCalendar, send_at: datetime) -> Shift | None:
    """Whether the closed days moved a send that would otherwise go at an earlier opening."""
    if not closed:
        return None
    was = next_window_open(moment, window, zone)
    if was == send_at:
        return None
    reason = closed.closed(was.astimezone(zone or window.timezone).date())
    return Shift(was, reason or "closed")


def anchor_moment(campaign: Campaign, anchor_value: object, enrolled_at: datetime,
                  zone: ZoneInfo | None) -> datetime | None:
    """Day 0 for one person: their anchor date at midnight local time, or enrolment time."""
    if campaign.anchor is None:
        return enrolled_at
    if not isinstance(anchor_value, date):
        return None
    local_zone = zone or campaign.send_window.timezone
    return _local(anchor_value, time(0), local_zone).astimezone(UTC)


def campaign_is_open(campaign: Campaign, now: datetime) -> bool:
    """Enrolment is open from `starts` to `ends` (inclusive), in the campaign's time zone."""
    today = now.astimezone(campaign.send_window.timezone).date()
    return campaign.starts <= today and (campaign.ends is None or today <= campaign.ends)


@dataclass(frozen=True, slots=True)
class StepRecord:
    """What the ledger knows about one step for one person."""

    state: str
    at: datetime | None
    next_attempt_at: datetime | None = None
    attempts: int = 0


@dataclass(frozen=True, slots=True)
class Planned:
    """A step that has not gone out yet, and when it will."""

    step: Step
    due_at: datetime
    send_at: datetime
    retry: bool = False
    attempts: int = 0
    shift: Shift | None = None  # the business calendar moved it from an earlier opening


# States whose message row exists and is claimed again (an UPDATE, not an INSERT).
RETRY_STATES = frozenset(message_sources(MessageOp.CLAIM))


def upcoming(campaign: Campaign, anchor_at: datetime, history: dict[str, StepRecord],
             zone: ZoneInfo | None, now: datetime, closed: BusinessCalendar = OPEN
             ) -> list[Planned]:
    """Every step not yet sent, in order, with the moment each will go out.

    A step is due at day 0 + `after`, but never sooner than `min_gap` after the step
    before it went out, so a person who joins late catches up one message at a time. It
    goes out when the send window next opens on a day `closed` leaves open.
    """
    planned: list[Planned] = []
    previous: datetime | None = None
    for step in campaign.steps:
        record = history.get(step.id)
        if record is not None and record.state in DONE_STATES:
            if record.state != MessageState.SKIPPED:  # a skipped step sent nothing to space
                previous = record.at or previous
            continue
        due = anchor_at + step.after
        if previous is not None:
            due = max(due, previous + campaign.min_gap)
        retry = record is not None and record.state in RETRY_STATES
        if retry and record is not None and record.next_attempt_at is not None:
            due = max(due, record.next_attempt_at)
        earliest = max(due, now)
        send_at = next_window_open(earliest, campaign.send_window, zone, closed)
        planned.append(Planned(step, due, send_at, retry, record.attempts if record else 0,
                               window_shift(earliest, campaign.send_window, zone, closed,
                                            send_at)))
        previous = send_at
    return planned
