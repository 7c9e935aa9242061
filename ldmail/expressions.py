"""Persona and audience expressions: Jinja expressions evaluated in the sandbox."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from functools import cache
from typing import Any

from jinja2 import StrictUndefined, TemplateSyntaxError, Undefined, UndefinedError, meta, nodes
from jinja2.exceptions import SecurityError as JinjaSecurityError
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment

from .errors import LdmailError, SecurityError


class ExpressionError(LdmailError):
    "An expression could not be compiled or evaluated."


# Limits on what one `**` or `*` may build: enough for any e-mail, too little to stall a CI run.
MAX_POWER_BITS = 10_000
MAX_REPEAT = 1_000_000
_UNSAFE_FORMAT = re.compile(r"\{[^{}]*?[.\[]\s*_")


class Sandbox(ImmutableSandboxedEnvironment):
    """Jinja's immutable sandbox, stricter still.

    Immutable: templates and expressions read values but never change them (no
    `vars.update(...)` leaking from one message into the next). Touching an unsafe attribute
    fails at once instead of yielding a value that fails only if printed (so a bare
    `{% set x = ''.__class__ %}` is caught too), and `**` and `*` cannot build numbers or
    strings big enough to hang a run.
    """

    intercepted_binops = frozenset({"**", "*"})

    def unsafe_undefined(self, obj: Any, attribute: str) -> Undefined:
        raise JinjaSecurityError(
            f"access to attribute {attribute!r} of {type(obj).__name__!r} object is unsafe")

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        if operator == "**" and isinstance(left, int) and isinstance(right, int) and \
                abs(left).bit_length() * abs(right) > MAX_POWER_BITS:
            raise JinjaSecurityError(f"{left} ** {right} is too large a number")
        if operator == "*":
            for items, times in ((left, right), (right, left)):
                if isinstance(items, str | list | tuple) and isinstance(times, int) and \
                        len(items) * times > MAX_REPEAT:
                    raise JinjaSecurityError(f"repeating {len(items)} item(s) {times} times "
                                             "is too large")
        return super().call_binop(context, operator, left, right)


def unsafe_access(tree: nodes.Node) -> list[tuple[int, str]]:
    """(line, name) of every reach into Python internals, found before anything runs.

    The sandbox blocks these when they run; finding them in the source also catches the
    ones in a branch that the sample people of `validate` never take.
    """
    found: list[tuple[int, str]] = []
    for node in tree.find_all((nodes.Getattr, nodes.Getitem, nodes.Filter, nodes.Const)):
        name: object = None
        if isinstance(node, nodes.Getattr):
            name = node.attr
        elif isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const):
            name = node.arg.value
        elif isinstance(node, nodes.Filter) and node.name == "attr" and node.args and \
                isinstance(node.args[0], nodes.Const):
            name = node.args[0].value
        elif isinstance(node, nodes.Const) and isinstance(node.value, str) and \
                _UNSAFE_FORMAT.search(node.value):
            found.append((node.lineno, node.value))
            continue
        if isinstance(name, str) and name.startswith("_"):
            found.append((node.lineno, name))
    # Outer nodes come first; by line, last found first, a chain a.__class__.__mro__ names
    # __class__ first.
    ordered = sorted(enumerate(found), key=lambda item: (item[1][0], -item[0]))
    return [item for _, item in ordered]


@cache
def _environment() -> Sandbox:
    environment = Sandbox(undefined=StrictUndefined)
    environment.globals.clear()  # no cycler, joiner, lipsum, namespace: only the person
    return environment


@cache
def compile_expression(source: str) -> Callable[..., Any]:
    """Compile once; raises ExpressionError with Jinja's reason on bad syntax."""
    try:
        compiled = _environment().compile_expression(source, undefined_to_none=False)
        tree = _environment().parse("{{ (" + source + ") }}")
    except TemplateSyntaxError as exc:
        reason = (exc.message or "syntax error").rstrip(".")
        if re.search(r"&&|\|\||(?<![=!<>])!(?!=)", source):
            reason += "; Jinja writes and, or, not instead of &&, ||, !"
        raise ExpressionError(
            f"invalid expression {source!r}: {reason}; "
            "write a Jinja expression such as \"department in ['Sales', 'IT']\""
        ) from None
    for _, name in unsafe_access(tree):
        raise ExpressionError(f"expression {source!r} is blocked by the sandbox: {name!r} "
                              "reaches into Python internals; use the person's attributes")
    return compiled


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
        key: tuple[str, tuple[Any, ...]] | None = (source, tuple(map(names.get, read)))
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
