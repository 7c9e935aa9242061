"""Persona and audience expressions: Jinja expressions evaluated in the sandbox."""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Mapping
from functools import cache
from typing import Any

from jinja2 import (
    StrictUndefined,
    TemplateSyntaxError,
    Undefined,
    UndefinedError,
    meta,
    nodes,
    pass_context,
)
from jinja2.exceptions import SecurityError as JinjaSecurityError
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment, safe_range
from jinja2.visitor import NodeTransformer

from ..errors import BudgetExceeded, ExpressionError, SecurityError
from .budget import MAX_INT_BITS, MAX_STRING, Budget, check_format_widths, check_percent

_UNSAFE_FORMAT = re.compile(r"\{[^{}]*?[.\[]\s*_")
# Internal filters the budgeting rewrite inserts into every compiled template.
_EMITTED, _PRODUCED, _ITEMS = "_ldmail_emitted", "_ldmail_produced", "_ldmail_items"


def _guarded(budget: Budget, function: Callable[..., Any]) -> Callable[..., Any]:
    """A filter whose arguments and result are held to the budget."""

    @functools.wraps(function)  # keeps jinja_pass_arg (pass_context and friends)
    def call(*args: Any, **kwargs: Any) -> Any:
        budget.check_arguments(function, args, kwargs)
        args = budget.sized_arguments(function, args)
        return budget.produced(function(*args, **kwargs))

    return call


class Sandbox(ImmutableSandboxedEnvironment):
    """Jinja's immutable sandbox, stricter still, with a time and size budget.

    Immutable: templates and expressions read values but never change them (no
    `vars.update(...)` leaking from one message into the next). Touching an unsafe attribute
    fails at once instead of yielding a value that fails only if printed (so a bare
    `{% set x = ''.__class__ %}` is caught too). Every call, filter, operator that can grow a
    value, loop item and output value is checked against `budget` (see budget.py); templates
    are compiled with those checks inserted, so no construct escapes them.
    """

    intercepted_binops = frozenset({"**", "*", "+", "%"})

    def __init__(self, budget: Budget | None = None, **options: Any) -> None:
        super().__init__(**options)
        self.budget = budget or Budget()
        self.filters = {name: _guarded(self.budget, function)
                        for name, function in self.filters.items()}
        # pass_context keeps Jinja from running these at compile time on constant input.
        self.filters[_EMITTED] = pass_context(lambda _, value: self.budget.emitted(value))
        self.filters[_PRODUCED] = pass_context(lambda _, value: self.budget.produced(value))
        self.filters[_ITEMS] = pass_context(
            lambda _, items, text: self.budget.items(items, text))

    def budgeted_range(self, *args: int) -> range:
        """Jinja's safe_range, with its arguments held to the budget."""
        self.budget.check_arguments(range, args, {})
        return safe_range(*args)

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        wrapped = super().wrap_str_format(value)
        if wrapped is None:
            return None
        owner, name = value.__self__, value.__name__
        check_format_widths(owner)  # '{:>999999999}'.format(1)
        budget = self.budget

        def checked(*args: Any, **kwargs: Any) -> str:
            budget.check_growth(name, owner, args, kwargs)  # '{0}' * 200, each a megabyte
            return wrapped(*args, **kwargs)

        return checked

    def unsafe_undefined(self, obj: Any, attribute: str) -> Undefined:
        raise JinjaSecurityError(
            f"access to attribute {attribute!r} of {type(obj).__name__!r} object is unsafe")

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        __self.budget.check_arguments(__obj, args, kwargs)
        args = __self.budget.sized_arguments(__obj, args)
        return __self.budget.produced(super().call(__context, __obj, *args, **kwargs))

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        if operator == "**" and isinstance(left, int) and isinstance(right, int) and \
                abs(left).bit_length() * abs(right) > MAX_INT_BITS:
            raise BudgetExceeded(f"{_short(left)} ** {_short(right)} is too large a number")
        if operator == "*":
            if isinstance(left, int) and isinstance(right, int) and \
                    left.bit_length() + right.bit_length() > MAX_INT_BITS:
                raise BudgetExceeded("multiplying these numbers gives too large a number")
            for items, times in ((left, right), (right, left)):
                if isinstance(items, str | bytes | list | tuple) and isinstance(times, int) and \
                        len(items) * times > MAX_STRING:
                    raise BudgetExceeded(f"repeating {len(items)} item(s) {times} times "
                                         "is too large")
        if operator == "%" and isinstance(left, str):
            check_percent(left, right)
        return self.budget.produced(super().call_binop(context, operator, left, right))

    def _generate(self, source: nodes.Template, name: str | None, filename: str | None,
                  defer_init: bool = False) -> str:
        """Compile with the budget's checks around every output, concatenation and loop."""
        for output in source.find_all(nodes.Output):
            output.nodes = [child if isinstance(child, nodes.TemplateData) else
                            _filtered(child, _EMITTED) for child in output.nodes]
        source = _ConcatChecks().visit(source)
        for loop in source.find_all(nodes.For):
            text = sum(len(data.data) for data in loop.find_all(nodes.TemplateData))
            loop.iter = _filtered(loop.iter, _ITEMS, nodes.Const(text))
        return super()._generate(source, name, filename, defer_init)


def _short(number: int) -> str:
    return str(number) if number.bit_length() < 64 else "a large number"


def _filtered(node: nodes.Node, name: str, *args: nodes.Expr) -> nodes.Filter:
    return nodes.Filter(node, name, list(args), [], None, None, lineno=node.lineno)


class _ConcatChecks(NodeTransformer):
    """Wraps every `a ~ b` in the size check, in one pass over the tree."""

    def visit_Concat(self, node: nodes.Concat) -> nodes.Node:
        checked = self.generic_visit(node)
        assert isinstance(checked, nodes.Node)
        return _filtered(checked, _PRODUCED)


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


def calls(source: str, functions: frozenset[str]
          ) -> list[tuple[str, tuple[Any, ...], dict[str, Any]]]:
    """Each call of one of `functions` in an expression, with its arguments, each the
    constant it is or None: what validate checks and tries a condition's events with."""
    try:
        parsed = _environment().parse("{{ (" + source + ") }}")
    except TemplateSyntaxError:
        return []

    def constant(node: nodes.Node) -> Any:
        return node.value if isinstance(node, nodes.Const) else None

    return [(node.node.name, tuple(constant(arg) for arg in node.args),
             {keyword.key: constant(keyword.value) for keyword in node.kwargs})
            for node in parsed.find_all(nodes.Call)
            if isinstance(node.node, nodes.Name) and node.node.name in functions]


def evaluate(source: str, names: Mapping[str, Any]) -> bool:
    """Evaluate an expression over `names`, as a yes/no answer.

    Not memoised here: audience.Rule keeps one answer per distinct value of the names a rule
    reads, which serves every person of an export but a few hundred.
    """
    expression = compile_expression(source)
    try:
        with _environment().budget.running():
            return bool(expression(**names))
    except UndefinedError as exc:
        known = ", ".join(sorted(names)) or "none"
        raise ExpressionError(
            f"expression {source!r}: {exc.message}; the names you can use are: {known}"
        ) from None
    except JinjaSecurityError as exc:
        raise SecurityError(f"expression {source!r} was blocked by the sandbox: {exc}") from None
    except (BudgetExceeded, MemoryError, RecursionError) as exc:
        reason = str(exc) if isinstance(exc, BudgetExceeded) else "ran out of memory"
        raise SecurityError(f"expression {source!r} {reason}") from None
    except TypeError:
        # A comparison with a missing value (an empty date, say) is false, as in SQL.
        return False
    except (ValueError, ArithmeticError, LookupError, AttributeError) as exc:
        raise ExpressionError(f"expression {source!r} failed: {exc}") from None
