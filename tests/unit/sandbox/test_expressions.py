"""ldmail.sandbox.expressions promises that persona, audience and when: expressions are Jinja
expressions run in an immutable sandbox under a budget: a yes/no answer over the names given,
a reach into Python internals refused before anything runs (even in a branch never taken),
no value changed, nothing huge built, a comparison with a missing value false as in SQL, and
one clear message for every other failure. Templates compiled by `Sandbox` get the same
checks around every output, concatenation and loop."""

from __future__ import annotations

import re
from typing import Any

import pytest
from jinja2.exceptions import SecurityError as JinjaSecurityError

from ldmail.errors import BudgetExceeded, ExpressionError, SecurityError
from ldmail.sandbox.budget import Budget
from ldmail.sandbox.expressions import (
    Sandbox,
    calls,
    compile_expression,
    evaluate,
    free_names,
    unsafe_access,
)

PERSON: dict[str, Any] = {"department": "Sales", "level": 5, "name": "Ann", "start": None}


@pytest.mark.parametrize(("source", "answer"), [
    ("department in ['Sales', 'IT']", True), ("level > 3 and department == 'IT'", False),
    ("name", True), ("''", False), ("level|string ~ 'x' == '5x'", True)])
def test_an_expression_is_a_yes_or_no_answer_over_the_names(source: str, answer: bool) -> None:
    assert evaluate(source, PERSON) is answer


def test_an_unknown_name_is_named_with_the_ones_that_can_be_used() -> None:
    with pytest.raises(ExpressionError, match=r"^expression 'departmnet == 1': 'departmnet' is "
                                              r"undefined; the names you can use are: "
                                              r"department, level, name, start$"):
        evaluate("departmnet == 1", PERSON)


@pytest.mark.parametrize("helper", ["range(3)", "lipsum(1)", "namespace()", "cycler(1)"])
def test_an_expression_sees_only_the_names_it_is_given(helper: str) -> None:
    with pytest.raises(ExpressionError, match="is undefined"):
        evaluate(f"{helper} is defined", PERSON)


@pytest.mark.parametrize("source", ["a && b", "a || b", "!a"])
def test_a_syntax_error_in_another_languages_spelling_gets_a_hint(source: str) -> None:
    with pytest.raises(ExpressionError, match=f"invalid expression {source!r}: .*; Jinja writes "
                                              "and, or, not instead of &&, \\|\\|, !"):
        compile_expression(source)


@pytest.mark.parametrize("source", [
    "false and name.__class__", "name|attr('__init__')", "name['_secret']",
    "'{0.__class__}'.format(name)"])
def test_a_reach_into_python_internals_is_refused_before_it_runs(source: str) -> None:
    with pytest.raises(ExpressionError, match=f"expression {re.escape(repr(source))} is "
                                              "blocked by the sandbox: .* reaches into Python "
                                              "internals"):
        evaluate(source, PERSON)


def test_an_expression_cannot_change_the_values_it_reads() -> None:
    tags = ["new"]
    with pytest.raises(SecurityError, match="was blocked by the sandbox: access to attribute "
                                            "'append' of 'list' object is unsafe"):
        evaluate("tags.append('admin') or true", {"tags": tags})
    assert tags == ["new"]


@pytest.mark.parametrize(("source", "reason"), [
    ("'x' * 10000000", "repeating 1 item(s) 10000000 times is too large"),
    ("10 ** 100000", "10 ** 100000 is too large a number"),
    ("'x'|center(10**9)", "the number 1000000000 is too large an argument"),
    ("[1, 2]|join('x' * 600000)", "join would build more than 1,000,000")])
def test_an_expression_that_would_build_something_huge_is_stopped(source: str,
                                                                  reason: str) -> None:
    with pytest.raises(SecurityError, match=f"^expression {re.escape(repr(source))} .*"
                                            f"{re.escape(reason)}"):
        evaluate(source, PERSON)


def test_a_comparison_with_a_missing_value_is_false_as_in_sql() -> None:
    assert evaluate("start > 3", PERSON) is False
    assert evaluate("start < 3", PERSON) is False


def test_a_failure_while_evaluating_is_one_clear_line() -> None:
    with pytest.raises(ExpressionError, match=r"^expression 'level / 0' failed: division by "
                                              r"zero$"):
        evaluate("level / 0", PERSON)


def test_the_names_an_expression_reads_are_found_without_running_it() -> None:
    assert free_names("department == 'x' and level > limit") == {"department", "level", "limit"}
    assert free_names("a &&") == frozenset()


def test_helper_calls_are_listed_with_their_constant_arguments() -> None:
    found = calls("reached('completed', 'course:*') and count('passed', object=x) > 2 "
                  "and other('y')", frozenset({"reached", "count"}))
    assert found == [("reached", ("completed", "course:*"), {}),
                     ("count", ("passed",), {"object": None})]
    assert calls("reached(", frozenset({"reached"})) == []


def test_unsafe_access_in_a_template_is_found_by_line_outer_first() -> None:
    tree = Sandbox().parse("hello\n{{ a.__class__.__mro__ }}\n{{ x|attr('_y') }}\n{{ a.b }}")
    assert unsafe_access(tree) == [(2, "__class__"), (2, "__mro__"), (3, "_y")]


def test_a_sandboxed_template_renders_ordinary_loops_and_values() -> None:
    template = Sandbox(budget=Budget(seconds=5)).from_string(
        "{% for i in range(3) %}{{ name }}{{ i }} {% endfor %}")
    assert template.render(name="Ann") == "Ann0 Ann1 Ann2 "


@pytest.mark.parametrize(("source", "reason"), [
    ("{% for i in range(1000) %}{{ 'x' * 10000 }}{% endfor %}", "output larger than 5,000,000"),
    ("{% set s = 'x' * 900000 %}{{ s ~ s }}", "builds a value of 1,800,000 characters"),
    ("{{ '{:>999999999}'.format(1) }}", "a format width of 999999999 is too large"),
    ("{{ range(10**7)|length }}", "the number 10000000 is too large an argument")])
def test_a_sandboxed_template_is_held_to_its_budget(source: str, reason: str) -> None:
    template = Sandbox(budget=Budget(seconds=5)).from_string(source)
    with pytest.raises(BudgetExceeded, match=reason):
        template.render()


def test_a_sandboxed_template_fails_at_once_on_an_unsafe_attribute_even_unprinted() -> None:
    template = Sandbox(budget=Budget(seconds=5)).from_string("{% set x = ''.__class__ %}ok")
    with pytest.raises(JinjaSecurityError, match="'__class__' of 'str' object is unsafe"):
        template.render()
