"""Persona and audience expressions: Jinja expressions evaluated in the sandbox."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import cache
from typing import Any

from jinja2 import StrictUndefined, TemplateSyntaxError, UndefinedError, meta
from jinja2.exceptions import SecurityError as JinjaSecurityError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from .errors import LdmailError, SecurityError


class ExpressionError(LdmailError):
    "An expression could not be compiled or evaluated."


@cache
def _environment() -> ImmutableSandboxedEnvironment:
    # Immutable: an expression may read a person's attributes but never change them.
    return ImmutableSandboxedEnvironment(undefined=StrictUndefined)


@cache
def compile_expression(source: str) -> Callable[..., Any]:
    """Compile once; raises ExpressionError with Jinja's reason on bad syntax."""
    try:
        return _environment().compile_expression(source, undefined_to_none=False)
    except TemplateSyntaxError as exc:
        raise ExpressionError(
            f"invalid expression {source!r}: {exc.message}; "
            "write a Jinja expression such as \"department in ['Sales', 'IT']\""
        ) from None


@cache
def free_names(source: str) -> frozenset[str]:
    """Names an expression reads; used to catch typos before any person is evaluated."""
    try:
        parsed = _environment().parse("{{ (" + source + ") }}")
    except TemplateSyntaxError:
        return frozenset()
    return frozenset(meta.find_undeclared_variables(parsed))


# Answers by expression and the values of the names it reads. Persona rules read few,
# low-cardinality attributes (department, tenure_days), so most people hit the cache.
_ANSWERS: dict[tuple[str, tuple[Any, ...]], bool] = {}
_MAX_ANSWERS = 200_000


@cache
def _read_names(source: str) -> tuple[str, ...]:
    return tuple(sorted(free_names(source)))


def evaluate(source: str, names: Mapping[str, Any]) -> bool:
    """Evaluate an expression over `names`, as a yes/no answer."""
    read = _read_names(source)
    try:
        key: tuple[str, tuple[Any, ...]] | None = (source, tuple(names.get(n) for n in read))
        hash(key)
    except TypeError:
        key = None  # an unhashable value: evaluate without the cache
    if key is not None:
        cached = _ANSWERS.get(key)
        if cached is not None:
            return cached
    answer = _evaluate(source, names)
    if key is not None:
        if len(_ANSWERS) >= _MAX_ANSWERS:
            _ANSWERS.clear()
        _ANSWERS[key] = answer
    return answer


def _evaluate(source: str, names: Mapping[str, Any]) -> bool:
    expression = compile_expression(source)
    try:
        result = expression(**names)
        return bool(result)
    except UndefinedError as exc:
        known = ", ".join(sorted(names)) or "none"
        raise ExpressionError(
            f"expression {source!r}: {exc.message}; the names you can use are: {known}"
        ) from None
    except JinjaSecurityError as exc:
        raise SecurityError(f"expression {source!r} was blocked by the sandbox: {exc}") from None
    except TypeError:
        # A comparison with a missing value (an empty date, say) is false, as in SQL.
        return False
    except (ValueError, ArithmeticError) as exc:
        raise ExpressionError(f"expression {source!r} failed: {exc}") from None
