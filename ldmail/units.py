"""Parsers for the small value languages of campaign files: durations, weekdays, times, zones;
and counts written back as words ("1 person", "1,200 people")."""

from __future__ import annotations

import difflib
import re
from datetime import time, timedelta
from functools import cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_WEEKDAY_NAMES = {name: number for number, names in enumerate((
    ("mon", "monday"), ("tue", "tues", "tuesday"), ("wed", "weds", "wednesday"),
    ("thu", "thur", "thurs", "thursday"), ("fri", "friday"), ("sat", "saturday"),
    ("sun", "sunday"))) for name in names}
_DURATION = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_RATE = re.compile(r"^\s*(\d+)\s*/\s*(s|sec|second|m|min|minute|h|hour|d|day)\s*$")
_RATE_SECONDS = {"s": 1, "sec": 1, "second": 1, "m": 60, "min": 60, "minute": 60,
                 "h": 3600, "hour": 3600, "d": 86400, "day": 86400}


def parse_duration(value: object) -> timedelta:
    """`3d`, `2w`, `36h`, `90m`, `30s` -> timedelta."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, int) and not isinstance(value, bool) and value == 0:
        return timedelta(0)
    match = _DURATION.match(str(value)) if isinstance(value, str) else None
    if not match:
        raise ValueError(
            f"'{value}' is not a duration; write a number and a unit: 90m, 36h, 3d or 2w"
        )
    return timedelta(seconds=int(match.group(1)) * _UNIT_SECONDS[match.group(2)])


def format_duration(delta: timedelta) -> str:
    """The shortest exact spelling of a duration, the inverse of parse_duration."""
    seconds = int(delta.total_seconds())
    for unit in ("w", "d", "h", "m"):
        if seconds and seconds % _UNIT_SECONDS[unit] == 0:
            return f"{seconds // _UNIT_SECONDS[unit]}{unit}"
    return f"{seconds}s" if seconds else "0d"


def parse_percentage(value: object) -> float:
    """`10%` -> 0.10; a bare 0 is allowed (no holdout)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value == 0:
        return 0.0
    if isinstance(value, (list, tuple, dict)):
        raise ValueError(f"expected one percentage such as 10%, got a {type(value).__name__}")
    text = str(value).strip()
    if isinstance(value, str) and text.endswith("%"):
        try:
            number = float(text[:-1])
        except ValueError:
            number = -1.0
        if 0 <= number < 100:
            return number / 100
    if isinstance(value, float) and 0 < value < 1:
        raise ValueError(f"'{value}' is not a percentage; write it with a % sign: "
                         f"{value * 100:g}%")
    raise ValueError(
        f"'{value}' is not a percentage; write it with a % sign, from 0% to 99%, e.g. 10%")


def parse_points(value: object) -> float:
    """`15pp`, `+15 pp` or `15` (percentage points) -> 0.15, a difference of two shares."""
    text = str(value).strip().lower().removeprefix("+")
    for unit in ("pp", "%-points", "points"):
        if text.endswith(unit):
            text = text[: -len(unit)].strip()
            break
    if isinstance(value, bool) or text.endswith("%"):
        number = -1.0
    else:
        try:
            number = float(text)
        except ValueError:
            number = -1.0
    if 0 < number <= 100:
        return number / 100
    raise ValueError(f"'{value}' is not an uplift in percentage points; write e.g. 15pp "
                     "(from more than 0 to 100)")


def parse_weekdays(value: object) -> tuple[int, ...]:
    """`mon-fri`, `mon,wed,fri` or a YAML list -> sorted weekday numbers (Monday is 0)."""
    parts: list[str]
    if isinstance(value, (list, tuple)):
        parts = [str(v) for v in value]
    elif isinstance(value, str):
        parts = [p for p in re.split(r"[,\s]+", value) if p]
    else:
        raise ValueError(f"'{value}' is not a list of weekdays; write e.g. mon-fri or [mon, wed]")
    days: set[int] = set()
    for part in parts:
        bounds = part.lower().split("-")
        if len(bounds) > 2 or any(b not in _WEEKDAY_NAMES for b in bounds):
            raise ValueError(
                f"'{part}' is not a weekday; use mon, tue, wed, thu, fri, sat, sun "
                "or a range mon-fri"
            )
        first, last = _WEEKDAY_NAMES[bounds[0]], _WEEKDAY_NAMES[bounds[-1]]
        span = range(first, last + 1) if first <= last else [*range(first, 7), *range(0, last + 1)]
        days.update(span)
    if not days:
        raise ValueError("no weekdays given; write e.g. mon-fri")
    return tuple(sorted(days))


def parse_weekday(value: object) -> int:
    days = parse_weekdays(value)
    if len(days) != 1:
        raise ValueError(f"'{value}' names {len(days)} days; give exactly one, e.g. fri")
    return days[0]


def parse_time(value: object) -> time:
    """`15:00` -> time. YAML 1.1 reads an unquoted 15:00 as the number 900; we undo that."""
    if isinstance(value, time):
        return value
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 24 * 60:
        return time(value // 60, value % 60)
    match = re.match(r"^\s*(\d{1,2}):(\d{2})\s*$", str(value))
    if match and int(match.group(1)) < 24 and int(match.group(2)) < 60:
        return time(int(match.group(1)), int(match.group(2)))
    raise ValueError(f"'{value}' is not a time of day; write HH:MM in quotes, e.g. \"09:00\"")


def parse_hours(value: object) -> tuple[time, time]:
    """`09:00-17:00` -> (start, end); the end must come after the start."""
    parts = str(value).split("-")
    if len(parts) != 2:
        raise ValueError(f"'{value}' is not a range of hours; write it as \"09:00-17:00\"")
    start, end = parse_time(parts[0]), parse_time(parts[1])
    if end <= start:
        raise ValueError(f"'{value}': the window must end after it starts, e.g. \"09:00-17:00\"")
    return start, end


@cache
def _zone_names() -> tuple[str, ...]:
    return tuple(sorted(available_timezones()))


def parse_timezone(value: object) -> ZoneInfo:
    """An IANA zone name such as Europe/Amsterdam."""
    if isinstance(value, ZoneInfo):
        return value
    name = str(value).strip()
    try:
        if name and name == name.strip("/") and ".." not in name:
            return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        pass
    if re.match(r"^[A-Z]{0,5}\s*[+-]\s*\d{1,2}(:?\d{2})?$", name, re.IGNORECASE):
        raise ValueError(f"'{name}' is a UTC offset, not a time zone: offsets ignore daylight "
                         "saving time; write the zone's IANA name, e.g. Europe/Amsterdam")
    close = difflib.get_close_matches(name, _zone_names(), n=1)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    raise ValueError(f"'{name}' is not an IANA time zone{hint}; write e.g. Europe/Amsterdam")


def parse_rate(value: object) -> float:
    """`30/min` -> messages per second."""
    match = _RATE.match(str(value))
    if not match or int(match.group(1)) == 0:
        raise ValueError(f"'{value}' is not a rate; write messages per unit, e.g. 30/min or 5/s")
    return int(match.group(1)) / _RATE_SECONDS[match.group(2)]


def plural(count: int, one: str, many: str) -> str:
    """A count and its noun, singular for one: `1 person`, `0 people`, `1,200 people`."""
    return f"{count:,} {one if count == 1 else many}"
