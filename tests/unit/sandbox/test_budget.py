"""ldmail.sandbox.budget promises that a render or evaluation spends within a time and size
budget set by the operator (never the repository): a pure-Python loop is interrupted when
its time is up, no value, output or loop beyond the limits is built, arguments that would
make C code build something huge are refused before it runs, and a run's when: conditions
share one allowance that counts only their own time."""

from __future__ import annotations

import time

import pytest

from ldmail.errors import BudgetExceeded, LdmailError
from ldmail.sandbox.budget import (
    CONDITION_SECONDS_ENV,
    MAX_ALLOCATED,
    MAX_INT_BITS,
    MAX_ITEMS,
    MAX_OUTPUT,
    MAX_STRING,
    SECONDS_ENV,
    Budget,
    RunAllowance,
    check_format_widths,
    check_percent,
    seconds_from_environment,
)


def test_the_operator_sets_the_time_limit_in_the_environment(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(SECONDS_ENV, raising=False)
    assert seconds_from_environment() == 2.0
    assert Budget().seconds == 2.0
    monkeypatch.setenv(SECONDS_ENV, "0.5")
    assert Budget().seconds == 0.5
    monkeypatch.setenv(CONDITION_SECONDS_ENV, "")
    assert RunAllowance().seconds == 10.0


@pytest.mark.parametrize("value", ["two", "0", "-1", "nan", "inf"])
def test_a_limit_that_is_not_a_positive_number_is_an_error(
        monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv(SECONDS_ENV, value)
    with pytest.raises(LdmailError, match=f"{SECONDS_ENV}"):
        seconds_from_environment()


def test_a_pure_python_loop_is_interrupted_when_its_time_is_up() -> None:
    budget = Budget(seconds=0.01)
    with pytest.raises(BudgetExceeded, match=r"took longer than 0\.01 s; simplify the loops "
                                             r"or macros \(the limit is set by "
                                             r"LDMAIL_RENDER_SECONDS\)"):
        with budget.running():
            give_up = time.monotonic() + 5  # only if the alarm never comes
            while time.monotonic() < give_up:
                pass
            pytest.fail("the loop was not interrupted")
    with budget.running():  # the next render has a fresh allowance
        budget.tick()


def test_no_value_larger_than_the_limit_is_accepted() -> None:
    budget = Budget(seconds=5)
    assert budget.produced("x" * MAX_STRING) == "x" * MAX_STRING
    with pytest.raises(BudgetExceeded, match="builds a value of 1,000,001 characters or items"):
        budget.produced("x" * (MAX_STRING + 1))
    with pytest.raises(BudgetExceeded, match="builds a number of more than 10,000 bits"):
        budget.produced(1 << MAX_INT_BITS)


def test_a_list_of_references_to_one_big_string_weighs_what_it_would_print() -> None:
    big = "x" * 100_000
    with pytest.raises(BudgetExceeded, match="characters or items"):
        Budget(seconds=5).produced([[big] * 5, {"k": big}, (big,) * 5])


def test_all_values_of_one_render_together_are_bounded_and_the_next_render_starts_afresh(
        ) -> None:
    budget = Budget(seconds=5)
    value = "x" * MAX_STRING
    with pytest.raises(BudgetExceeded, match=f"more than {MAX_ALLOCATED:,} characters of values"):
        with budget.running():
            for _ in range(MAX_ALLOCATED // MAX_STRING + 1):
                budget.produced(value)
    with budget.running():
        budget.produced(value)


def test_a_nested_running_keeps_the_outer_allowance() -> None:
    budget = Budget(seconds=5)
    half = "x" * (MAX_OUTPUT // 2)
    with budget.running():
        budget.emitted(half)
        with budget.running():
            budget.emitted(half)
        with pytest.raises(BudgetExceeded, match="output larger than 5,000,000 characters"):
            budget.emitted("y")


def test_template_text_written_by_every_loop_iteration_counts_as_output() -> None:
    budget = Budget(seconds=5)
    with pytest.raises(BudgetExceeded, match="output larger than"):
        with budget.running():
            for _ in budget.items(range(MAX_ITEMS), constant_chars=1000):
                pass


def test_a_loop_may_not_run_more_than_the_item_limit() -> None:
    budget = Budget(seconds=5)
    with pytest.raises(BudgetExceeded, match="loops more than 1,000,000 times in one message"):
        with budget.running():
            for _ in budget.items(range(MAX_ITEMS + 1)):
                pass


def test_numeric_arguments_that_would_build_something_huge_are_refused_first() -> None:
    budget = Budget(seconds=5)
    with pytest.raises(BudgetExceeded, match=r"the number 10000000000 is too large an argument "
                                             r"\(at most 1,000,000\)"):
        budget.check_arguments(str.center, ("x", 10**10), {})
    with pytest.raises(BudgetExceeded, match="the number given is too large"):
        budget.check_arguments(str.ljust, ("x",), {"width": 10**20})
    budget.check_arguments(str.center, ("x", 80), {})  # an ordinary width passes


def test_methods_whose_result_outgrows_their_arguments_are_refused() -> None:
    budget = Budget(seconds=5)
    text = "a" * 1000
    with pytest.raises(BudgetExceeded, match="replace would build more than 1,000,000"):
        budget.check_arguments(text.replace, ("a", "b" * 2000), {})
    budget.check_arguments(text.replace, ("a", "bb"), {})
    with pytest.raises(BudgetExceeded, match="expandtabs would build more than"):
        budget.check_arguments(("\t" * 2000).expandtabs, (1000,), {})
    with pytest.raises(BudgetExceeded, match="format would build more than"):
        budget.check_arguments("{0}{0}{0}".format, ("x" * 400_000,), {})


def test_a_join_of_many_items_is_sized_before_it_is_built() -> None:
    budget, separator = Budget(seconds=5), "y" * 1000
    with pytest.raises(BudgetExceeded, match="join would build more than 1,000,000"):
        budget.sized_arguments(separator.join, (iter(range(2000)),))
    joined = budget.sized_arguments(",".join, (iter(["a", "b"]),))
    assert joined == (["a", "b"],)  # the iterator became a list


def test_format_widths_and_percent_formatting_are_bounded() -> None:
    check_format_widths("{:>10} %5d")
    for text, reason in [("%0999999999d", "a format width of 0999999999"),
                         ("{:>999999999}", "a format width of 999999999"),
                         ("{0:>{1}}", "a format field inside another"),
                         ("%*d", "a format width taken from the arguments")]:
        with pytest.raises(BudgetExceeded, match=reason):
            check_format_widths(text)
    with pytest.raises(BudgetExceeded, match="'%' formatting would build more than"):
        check_percent("%s" * 300, tuple(["x" * 10_000] * 300))
    check_percent("%s and %s", ("a", "b"))


class _Ticks:
    """A clock that moves only when told to."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_run_allowance_counts_only_the_time_inside_its_evaluations() -> None:
    clock = _Ticks()
    allowance = RunAllowance(3.0, clock=clock)
    with allowance.measuring():
        clock.now += 1.0
    clock.now += 100  # the run's own work between evaluations
    assert allowance.used == 1.0 and not allowance.spent()
    with pytest.raises(ZeroDivisionError), allowance.measuring():
        clock.now += 2.0
        raise ZeroDivisionError  # a failed evaluation still spends its time
    assert allowance.spent()
