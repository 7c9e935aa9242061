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
from collections.abc import Iterable, Iterator
from types import FrameType
from typing import Any

from .errors import LdmailError

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


class BudgetExceeded(LdmailError):
    "A template or expression took too long or built something too large."


def seconds_from_environment() -> float:
    value = os.environ.get(SECONDS_ENV, "")
    try:
        seconds = float(value) if value else DEFAULT_SECONDS
    except ValueError:
        raise LdmailError(f"{SECONDS_ENV}={value!r} is not a number of seconds; "
                          f"unset it for the default of {DEFAULT_SECONDS:g} s") from None
    if not math.isfinite(seconds) or seconds <= 0:
        raise LdmailError(f"{SECONDS_ENV} must be a positive number of seconds")
    return seconds


def _size(value: Any) -> int:
    return len(value) if isinstance(value, str | bytes | list | tuple | dict) else 0


class Budget:
    """What one render or evaluation may spend; `running()` opens a fresh allowance."""

    def __init__(self, seconds: float | None = None) -> None:
        self.seconds = seconds if seconds is not None else seconds_from_environment()
        self._deadline = math.inf
        self._output = 0
        self._items = 0
        self._armed = False
        self._alarm = False
        self._nested = 0

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
        self._output = self._items = 0
        self._alarm = threading.current_thread() is threading.main_thread()
        if self._alarm:
            if signal.getsignal(signal.SIGALRM) != self._on_alarm:
                signal.signal(signal.SIGALRM, self._on_alarm)
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
        if isinstance(value, int) and value.bit_length() > MAX_INT_BITS:
            raise self._exceeded(f"builds a number of more than {MAX_INT_BITS:,} bits")
        return value

    def emitted(self, value: Any, constant_chars: int = 0) -> Any:
        """Count one value written to the output (and the template text around it)."""
        self._output += len(value) if isinstance(value, str) else 0
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
                        len(item) if isinstance(item, str | list | tuple) else 20
                        for item in items)
                    if total > MAX_STRING:
                        raise self._exceeded(f"{name.removeprefix('do_')} would build more "
                                             f"than {MAX_STRING:,} characters or items")
        return sized

    def _listed(self, items: Iterator[Any]) -> list[Any]:
        listed: list[Any] = []
        for item in items:
            listed.append(item)
            if len(listed) > MAX_STRING:
                raise self._exceeded(f"more than {MAX_STRING:,} items in one value")
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

    def _check_replace(self, function: Any, args: tuple[Any, ...]) -> None:
        owner = getattr(function, "__self__", None)
        if isinstance(owner, str):  # 'text'.replace(old, new)
            subject, rest = owner, args
        else:  # text|replace(old, new): (eval_ctx, text, old, new)
            texts = [a for a in args if isinstance(a, str)]
            subject, rest = (texts[0], tuple(texts[1:])) if texts else ("", ())
        if len(rest) >= 2 and isinstance(rest[0], str) and isinstance(rest[1], str):
            old, new = rest[0], rest[1]
            grows = len(new) - len(old)
            if grows > 0:
                count = len(subject) + 1 if not old else subject.count(old)
                if len(subject) + count * grows > MAX_STRING:
                    raise self._exceeded(f"replace would build more than {MAX_STRING:,} "
                                         "characters")


def check_format_widths(text: str) -> None:
    """Refuse a format string whose field width or precision would build a huge string."""
    fields = _PERCENT_FIELD.findall(text) + _BRACE_SPEC.findall(text)
    for number in _NUMBER.findall(" ".join(fields)):
        if len(number) > 7 or int(number) > MAX_STRING:
            raise BudgetExceeded(f"a format width of {number[:12]} is too large (at most "
                                 f"{MAX_STRING:,})")
    if any("*" in field for field in fields):
        raise BudgetExceeded("a format width taken from the arguments ('*') is not allowed; "
                             "write the width in the format")
