"""Step conditions: `when:` over a person's attributes and learning events.

A condition is a Jinja expression in the same sandbox as personas and audiences, with three
helpers over the person's goal events (voided ones left out, none dated after the moment
the run is for):

    reached(event, object='*')     did it happen at least once?
    count(event, object='*')       how often
    days_since(event, object='*')  days since the latest one; when it never happened, a
                                   missing value: any comparison with it is false (as in
                                   SQL), and the rest of the condition still counts

`object` may use * wildcards, as goals and triggers do.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from fnmatch import fnmatchcase
from itertools import combinations
from typing import Any

HELPERS = frozenset({"reached", "count", "days_since"})

# The verbs of ADL's vocabulary an LMS or LRS commonly sends (their last part is the event
# name); with the goals, triggers and LRS verbs of the project, the events a condition may
# name without a warning.
COMMON_EVENTS = frozenset({
    "registered", "completed", "passed", "failed", "attempted", "launched", "initialized",
    "terminated", "experienced", "answered", "progressed", "scored", "mastered",
    "satisfied", "waived", "enrolled", "attended"})


def verb_name(verb_id: str) -> str:
    """`http://adlnet.gov/expapi/verbs/registered` -> `registered`."""
    return verb_id.rstrip("/").rsplit("/", 1)[-1].lower()


def events_named(condition: str) -> list[str]:
    """The event names a condition's helpers are called with (constants only)."""
    from .expressions import calls  # the sandbox is loaded only where a condition is read

    return [str(args[0]) for _, args, _ in calls(condition, HELPERS)
            if args and isinstance(args[0], str)]


class _Never:
    """days_since for an event that never happened: every comparison with it is false, so
    `days_since('completed') > 30 or not reached('completed')` is true for someone who
    never completed (a None would make the whole condition fail)."""

    def __lt__(self, other: object) -> bool:
        return False

    __le__ = __gt__ = __ge__ = __lt__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Never)

    def __hash__(self) -> int:
        return 0

    def __bool__(self) -> bool:
        return False

    def __repr__(self) -> str:
        return "never"


NEVER = _Never()


@dataclass(frozen=True, slots=True)
class LearningEvent:
    event: str
    object: str
    at: datetime


def _helpers(events: Sequence[LearningEvent], now: datetime) -> dict[str, Callable[..., Any]]:
    def matching(event: str, pattern: str) -> list[LearningEvent]:
        if not isinstance(event, str) or not isinstance(pattern, str):
            raise ValueError("event and object are text, e.g. reached('completed', 'course:*')")
        return [e for e in events
                if e.event == event and e.at <= now and fnmatchcase(e.object, pattern)]

    def reached(event: str, object: str = "*") -> bool:  # noqa: A002 (the YAML's word)
        return bool(matching(event, object))

    def count(event: str, object: str = "*") -> int:  # noqa: A002
        return len(matching(event, object))

    def days_since(event: str, object: str = "*") -> float | _Never:  # noqa: A002
        found = matching(event, object)
        if not found:
            return NEVER
        return (now - max(e.at for e in found)).total_seconds() / 86400

    return {"reached": reached, "count": count, "days_since": days_since}


def condition_holds(condition: str, attributes: Mapping[str, Any],
                    events: Sequence[LearningEvent], now: datetime) -> bool:
    """The answer of a step's `when:` for one person at `now`; raises LdmailError (an
    ExpressionError or SecurityError) as persona expressions do."""
    from .expressions import evaluate

    return evaluate(condition, {**attributes, **_helpers(events, now)})


def _named_pairs(condition: str) -> list[tuple[str, str]]:
    """(event, object pattern) of each helper call whose event is a constant."""
    from .expressions import calls

    found: set[tuple[str, str]] = set()
    for _, args, keywords in calls(condition, HELPERS):
        pattern = args[1] if len(args) > 1 else keywords.get("object", "*")
        if args and isinstance(args[0], str):
            found.add((args[0], pattern if isinstance(pattern, str) else "*"))
    return sorted(found)


def _instance(pattern: str) -> str:
    """An object the `*` wildcard pattern matches ('course:*' -> 'course:x')."""
    made = pattern.replace("*", "x").replace("?", "x")
    return made if fnmatchcase(made, pattern) else pattern


@dataclass(frozen=True)
class Trial:
    """A made-up history to try a condition with: events, the moment, and how to say it."""

    events: tuple[LearningEvent, ...]
    at: datetime
    told: str  # "" for no events at the real moment


# Up to this many events named, every combination of them is tried; more, each alone, all
# but each, and all (a condition may hide a branch behind "a and not b").
COMBINED = 4
# The made-up "often, long ago": this many times, and answered this long after.
OFTEN = 50
LATER = timedelta(days=3650)


def trials(condition: str, now: datetime) -> list[Trial]:
    """The learning histories validate tries a condition with, so that a branch behind
    reached(), count() or days_since() is run too: none (at `now` and ten years on), and for
    each combination of the events it names, each once just before `now`, or OFTEN times and
    answered ten years on (days_since large, count large)."""
    pairs = _named_pairs(condition)
    tried = [Trial((), now, ""), Trial((), now + LATER, " (tried ten years on)")]
    if len(pairs) <= COMBINED:
        groups = [list(group) for size in range(1, len(pairs) + 1)
                  for group in combinations(pairs, size)]
    else:
        groups = [[pair] for pair in pairs] + \
            [[other for other in pairs if other != pair] for pair in pairs] + [pairs]
    for group in groups:
        names = ", ".join(event if pattern == "*" else f"{event} {pattern}"
                          for event, pattern in group)
        once = tuple(LearningEvent(event, _instance(pattern), now - timedelta(minutes=1))
                     for event, pattern in group)
        tried.append(Trial(once, now, f" (tried with made-up events: {names} just now)"))
        tried.append(Trial(tuple(LearningEvent(e.event, e.object, e.at - timedelta(days=day))
                                 for e in once for day in range(OFTEN)), now + LATER,
                           f" (tried with made-up events: {names} {OFTEN} times, "
                           "ten years ago)"))
    return tried
