"""Time and size budgets for running a repository's templates and expressions.

Jinja's sandbox stops templates from reaching Python internals, but not from spending hours or
gigabytes: nested loops, a macro that calls itself twice, `'x'|center(10**10)`, a string
doubled with `~` until memory runs out. CI validates every pull request, so every render and
every expression evaluation runs under a Budget:

- time: a wall-clock limit (LDMAIL_RENDER_SECONDS, default 2 s), enforced by SIGALRM in the main
  thread (it interrupts any pure-Python loop) and checked cooperatively at every call, loop
  item and output value (so a render in another thread stops too);
- size: no string, list or number larger than the limits below is built, numeric arguments
  that would make one (widths, repeat counts) are refused before the C code runs, and the
  output of one render, loop iterations included, is counted.

The limits are set by the operator (an environment variable), never by the repository: a
pull request must not be able to lift them.
"""

from __future__ import annotations

import math
import os
import re
import signal
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

from ..errors import BudgetExceeded, LdmailError

SECONDS_ENV = "LDMAIL_RENDER_SECONDS"
DEFAULT_SECONDS = 2.0
MAX_STRING = 1_000_000  # characters (or items) of any one value a template builds
MAX_OUTPUT = 5_000_000  # characters one render may emit, captured blocks and loops included
MAX_ITEMS = 1_000_000  # loop iterations in one render
MAX_INT_BITS = 10_000  # about 3,000 decimal digits
# A %-format field, "%0999999999d", and the spec of a {}-format field, "{:>999999999}".
_PERCENT_FIELD = re.compile(r"%[-#0 +]*[\d*]*(?:\.[\d*]*)?")
_BRACE_SPEC = re.compile(r"\{[^{}]*?:([^{}]*)\}")
_NUMBER = re.compile(r"\d+")
_NESTED_FIELD = re.compile(r"\{[^{}]*:[^{}]*\{")


# What one send may spend answering when: conditions, all people together: each evaluation
# keeps its own 2 s, but 40 people at 1.4 s would cost a cron run a minute.
CONDITION_SECONDS_ENV = "LDMAIL_CONDITION_SECONDS"
DEFAULT_CONDITION_SECONDS = 10.0


def seconds_from_environment(name: str = SECONDS_ENV, default: float = DEFAULT_SECONDS
                             ) -> float:
    """The operator's limit in the environment variable `name`, else `default`."""
    value = os.environ.get(name, "")
    try:
        seconds = float(value) if value else default
    except ValueError:
        raise LdmailError(f"{name}={value!r} is not a number of seconds; "
                          f"unset it for the default of {default:g} s") from None
    if not math.isfinite(seconds) or seconds <= 0:
        raise LdmailError(f"{name} must be a positive number of seconds")
    return seconds


class RunAllowance:
    """A time allowance shared by many evaluations of one run (the run's when: conditions).

    Only the time inside `measuring()` counts: what the run does between evaluations (writing
    skipped steps, reading the export again for the next pass) is not the conditions' doing,
    and on a large audience would otherwise leave fast conditions unanswered. `clock` is a
    seam for tests (a counter instead of the machine's speed).
    """

    def __init__(self, seconds: float | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.seconds = seconds if seconds is not None else seconds_from_environment(
            CONDITION_SECONDS_ENV, DEFAULT_CONDITION_SECONDS)
        self.used = 0.0
        self._clock = clock

    def spent(self) -> bool:
        """Whether the allowance is used up (asked before each evaluation)."""
        return self.used >= self.seconds

    @contextmanager
    def measuring(self) -> Iterator[None]:
        """Count the time of the block (one evaluation) against the allowance."""
        started = self._clock()
        try:
            yield
        finally:
            self.used += self._clock() - started


MAX_ALLOCATED = 50_000_000  # characters of all the values one render builds, together


def _size(value: Any, limit: int = MAX_STRING) -> int:
    """Characters (or items) in `value`, strings inside lists and dicts included.

    The walk stops as soon as the total passes `limit`: a list of a thousand references to
    one megabyte string weighs a gigabyte once printed, though it holds only a thousand items.
    """
    if isinstance(value, str | bytes):
        return len(value)
    if not isinstance(value, list | tuple | dict):
        return 0
    total, pending = 0, [value]
    while pending and total <= limit:
        current = pending.pop()
        items = list(current.items()) if isinstance(current, dict) else current
        total += len(items)
        for item in items:
            if isinstance(item, str | bytes):
                total += len(item)
            elif isinstance(item, list | tuple | dict):
                pending.append(item)
            if total > limit:
                break
    return total


class Budget:
    """What one render or evaluation may spend; `running()` opens a fresh allowance."""

    def __init__(self, seconds: float | None = None) -> None:
        self.seconds = seconds if seconds is not None else seconds_from_environment()
        self._deadline = math.inf
        self._output = 0
        self._items = 0
        self._allocated = 0
        self._armed = False
        self._alarm = False
        self._nested = 0
        self._handler = self._on_alarm  # one bound method, so the installed one is recognised

    def running(self) -> Budget:
        """`with budget.running():` spends within a fresh allowance; nesting keeps the outer.

        A plain context manager rather than a generator: it wraps every message of a send.
        The SIGALRM handler is installed once and stays (it does nothing while no render is
        running), so each render costs two setitimer calls, not four system calls more.
        """
        return self

    def __enter__(self) -> None:
        if self._armed:
            self._nested += 1
            return
        self._deadline = time.monotonic() + self.seconds
        self._output = self._items = self._allocated = 0
        self._alarm = threading.current_thread() is threading.main_thread()
        if self._alarm:
            if signal.getsignal(signal.SIGALRM) is not self._handler:
                signal.signal(signal.SIGALRM, self._handler)
            signal.setitimer(signal.ITIMER_REAL, self.seconds)
        self._armed = True

    def __exit__(self, *exc_info: object) -> None:
        if self._nested:
            self._nested -= 1
            return
        self._armed = False
        if self._alarm:
            signal.setitimer(signal.ITIMER_REAL, 0)
        self._deadline = math.inf

    def _on_alarm(self, signum: int, frame: FrameType | None) -> None:
        if self._armed:  # the alarm may land just after the render finished
            raise self._too_slow()

    def _exceeded(self, message: str) -> BudgetExceeded:
        """The error to raise, with the alarm disarmed first.

        Unwinding hundreds of template frames takes a while; an alarm landing meanwhile would
        raise a second error from wherever the unwinding is, outside the caller's handlers.
        """
        if self._armed and self._alarm:
            signal.setitimer(signal.ITIMER_REAL, 0)
        self._armed = False
        return BudgetExceeded(message)

    def _too_slow(self) -> BudgetExceeded:
        return self._exceeded(f"took longer than {self.seconds:g} s; simplify the loops or "
                              "macros (the limit is set by LDMAIL_RENDER_SECONDS)")

    def tick(self) -> None:
        if time.monotonic() > self._deadline:
            raise self._too_slow()

    def produced(self, value: Any) -> Any:
        """`value` when it is within the size limits, else BudgetExceeded."""
        self.tick()
        size = _size(value)
        if size > MAX_STRING:
            raise self._exceeded(f"builds a value of {size:,} characters or items, more than "
                                 f"the {MAX_STRING:,} allowed")
        self._allocated += size
        if self._allocated > MAX_ALLOCATED:
            raise self._exceeded(f"builds more than {MAX_ALLOCATED:,} characters of values in "
                                 "all; simplify the loops")
        if isinstance(value, int) and value.bit_length() > MAX_INT_BITS:
            raise self._exceeded(f"builds a number of more than {MAX_INT_BITS:,} bits")
        return value

    def emitted(self, value: Any, constant_chars: int = 0) -> Any:
        """Count one value written to the output (and the template text around it)."""
        self._output += _size(value, MAX_OUTPUT)
        self._output += constant_chars
        if self._output > MAX_OUTPUT:
            raise self._exceeded(f"output larger than {MAX_OUTPUT:,} characters")
        self.tick()
        return value

    def items(self, iterable: Iterable[Any], constant_chars: int = 0) -> Iterator[Any]:
        """A loop's items, counted; each iteration also writes the loop's own template text."""
        for item in iterable:
            self._items += 1
            if self._items > MAX_ITEMS:
                raise self._exceeded(f"loops more than {MAX_ITEMS:,} times in one message")
            if constant_chars:
                self.emitted("", constant_chars)
            else:
                self.tick()
            yield item

    def sized_arguments(self, function: Any, args: tuple[Any, ...]) -> tuple[Any, ...]:
        """`args` with iterators made lists (at most MAX_ITEMS), and joins and sums checked.

        `range(100000)|join('y' * 100000)` asks C code for ten gigabytes at once; with its
        items in a list, the size of the result is known before it is built.
        """
        if not any(isinstance(arg, Iterator) for arg in args):
            sized = args
        else:
            sized = tuple(self._listed(arg) if isinstance(arg, Iterator) else arg
                          for arg in args)
        name = getattr(function, "__name__", "")
        if name in {"join", "do_join", "sum", "do_sum"}:
            owner = getattr(function, "__self__", None)
            separator = owner if isinstance(owner, str) else next(
                (arg for arg in sized[2:] if isinstance(arg, str)), "")
            for items in sized:
                if isinstance(items, list | tuple | range):
                    total = len(separator) * len(items) + sum(
                        _size(item) or len(str(item)) for item in items)
                    if total > MAX_STRING:
                        raise self._exceeded(f"{name.removeprefix('do_')} would build more "
                                             f"than {MAX_STRING:,} characters or items")
        return sized

    def _listed(self, items: Iterator[Any]) -> list[Any]:
        listed: list[Any] = []
        weight = 0
        for item in items:
            listed.append(item)
            weight += 1 + _size(item)
            if weight > MAX_STRING:
                raise self._exceeded(f"builds a list of more than {MAX_STRING:,} items or "
                                     "characters")
        return listed

    def check_arguments(self, function: Any, args: tuple[Any, ...],
                        kwargs: dict[str, Any]) -> None:
        """Refuse arguments that would make C code build something huge before it runs."""
        self.tick()
        values = (*args, *kwargs.values())
        for value in values:
            if isinstance(value, int) and not isinstance(value, bool) and \
                    abs(value) > MAX_STRING:
                raise self._exceeded(f"the number {value if value < 10**12 else 'given'} is too "
                                     f"large an argument (at most {MAX_STRING:,})")
        name = getattr(function, "__name__", "")
        if name in {"format", "do_format", "format_map"}:
            owner = getattr(function, "__self__", None)  # 'text'.format(...) or text|format
            for text in (owner, *values):
                if isinstance(text, str):
                    check_format_widths(text)
        if name in {"replace", "do_replace"}:
            self._check_replace(function, args)
        self.check_growth(name, getattr(function, "__self__", None), args, kwargs)

    def check_growth(self, name: str, owner: Any, args: tuple[Any, ...],
                      kwargs: dict[str, Any]) -> None:
        """Filters and methods whose result can be far larger than any one argument."""
        estimate = 0
        texts = [a for a in (*args, *kwargs.values()) if isinstance(a, str | bytes)]
        longest = max((len(t) for t in texts), default=0)
        if name == "expandtabs" and isinstance(owner, str | bytes):
            size = next((a for a in args if isinstance(a, int)), 8)
            estimate = len(owner) * max(size, 1)
        elif name in {"format", "format_map"} and isinstance(owner, str):
            # '{0}' repeated 200 times, each filled with a megabyte
            values = [*args, *kwargs.values()]
            if name == "format_map" and args and isinstance(args[0], dict):
                values = list(args[0].values())
            widest = max((_size(v) or len(str(v)) for v in values), default=0)
            estimate = len(owner) + owner.count("{") * widest
        elif name == "translate" and isinstance(owner, str) and args and \
                isinstance(args[0], dict):
            widest = max((_size(v) for v in args[0].values()), default=1)
            estimate = len(owner) * max(widest, 1)
        elif name == "do_indent" and len(args) >= 2:
            text, width = str(args[0]), args[1]
            per_line = width if isinstance(width, int) else _size(width)
            estimate = len(text) + text.count("\n") * per_line
        elif name in {"do_tojson", "do_pprint", "soft_str", "do_string"}:
            estimate = max((_size(arg) for arg in args), default=0)
        if estimate > MAX_STRING or (longest > MAX_STRING):
            raise self._exceeded(f"{name.removeprefix('do_')} would build more than "
                                 f"{MAX_STRING:,} characters")

    def _check_replace(self, function: Any, args: tuple[Any, ...]) -> None:
        owner = getattr(function, "__self__", None)
        if isinstance(owner, str):  # 'text'.replace(old, new)
            subject, rest = owner, args
        else:  # text|replace(old, new): (eval_ctx, text, old, new); text may be any value
            subject = str(args[1]) if len(args) > 1 else ""
            rest = tuple(args[2:])
        if len(rest) >= 2 and isinstance(rest[0], str) and isinstance(rest[1], str):
            old, new = rest[0], rest[1]
            grows = len(new) - len(old)
            if grows > 0:
                count = len(subject) + 1 if not old else subject.count(old)
                if len(subject) + count * grows > MAX_STRING:
                    raise self._exceeded(f"replace would build more than {MAX_STRING:,} "
                                         "characters")


def check_percent(text: str, values: Any) -> None:
    """`text % values` must not repeat a large value into a huge string."""
    check_format_widths(text)
    items = list(values.values()) if isinstance(values, dict) else \
        list(values) if isinstance(values, tuple) else [values]
    widest = max((_size(v) or len(str(v)) for v in items), default=0)
    if len(text) + text.count("%") * widest > MAX_STRING:
        raise BudgetExceeded(f"'%' formatting would build more than {MAX_STRING:,} characters")


def check_format_widths(text: str) -> None:
    """Refuse a format string whose field width or precision would build a huge string."""
    if _NESTED_FIELD.search(text):
        raise BudgetExceeded("a format field inside another ('{0:>{1}}') is not allowed; "
                             "write the width in the format")
    fields = _PERCENT_FIELD.findall(text) + _BRACE_SPEC.findall(text)
    for number in _NUMBER.findall(" ".join(fields)):
        if len(number) > 7 or int(number) > MAX_STRING:
            raise BudgetExceeded(f"a format width of {number[:12]} is too large (at most "
                                 f"{MAX_STRING:,})")
    if any("*" in field for field in fields):
        raise BudgetExceeded("a format width taken from the arguments ('*') is not allowed; "
                             "write the width in the format")
