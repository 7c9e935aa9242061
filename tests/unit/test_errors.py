"""ldmail.errors promises every exception in one place, drawn as a tree in its docstring, and
one clear, located line of text for each error a user sees."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

from ldmail import errors
from ldmail.errors import (
    ConfigError,
    HttpFailed,
    IllegalTransition,
    LdmailError,
    OutsideProject,
    Problem,
    ProjectNotFound,
    RenderError,
)

_DRAWN = re.compile(r"^(?P<indent>[\s│├└─]*)(?P<name>[A-Z]\w+)(?:\s+\((?P<base>\w+)\))?\s")


def _drawing() -> list[tuple[str, str]]:
    """(class, the class drawn as its parent) for every line of the docstring's tree."""
    assert errors.__doc__ is not None
    pairs: list[tuple[str, str]] = []
    stack: list[tuple[int, str]] = []
    for line in errors.__doc__.splitlines()[2:]:
        found = _DRAWN.match(line)
        if not found:
            continue
        column, name = len(found["indent"]), found["name"]
        while stack and stack[-1][0] >= column:
            stack.pop()
        parent = stack[-1][1] if stack else (found["base"] or "Exception")
        pairs.append((name, parent))
        stack.append((column, name))
    return pairs


def test_the_docstring_draws_each_exception_under_its_real_base_class() -> None:
    drawn = _drawing()
    assert len(drawn) > 20
    for name, parent in drawn:
        cls = getattr(errors, name)
        base = {"ValueError": ValueError, "Exception": Exception}.get(parent) or \
            getattr(errors, parent)
        assert cls.__bases__ == (base,), f"{name} is drawn under {parent}"


def test_every_exception_class_of_the_module_is_in_the_drawing() -> None:
    defined = {name for name, value in vars(errors).items()
               if inspect.isclass(value) and issubclass(value, BaseException)
               and value.__module__ == errors.__name__}
    assert defined == {name for name, _ in _drawing()}


def test_a_problem_names_its_file_and_line_or_only_the_file() -> None:
    assert str(Problem("campaigns/a.yaml", 12, "unknown key 'sned'")) == \
        "campaigns/a.yaml:12: unknown key 'sned'"
    assert str(Problem("people.csv", None, "empty file")) == "people.csv: empty file"


def test_a_config_error_lists_every_problem_on_a_line_of_its_own() -> None:
    problems = [Problem("a.yaml", 1, "first"), Problem("b.yaml", None, "second")]
    error = ConfigError(problems)
    assert error.problems == problems
    assert str(error) == "a.yaml:1: first\nb.yaml: second"
    assert isinstance(error, LdmailError)


def test_project_not_found_says_where_it_looked_and_what_to_do(tmp_path: Path) -> None:
    here = str(ProjectNotFound(tmp_path))
    above = str(ProjectNotFound(tmp_path, searched_up=True))
    assert here.startswith(f"{tmp_path}: no ldmail project here (")
    assert "here or in any folder above it" in above
    assert "--project DIR" in here and "'ldmail init DIR'" in here


def test_a_render_error_is_located_and_keeps_its_parts() -> None:
    error = RenderError("templates/welcome.html", 7, "'name' is undefined", security=True)
    assert str(error) == "templates/welcome.html:7: 'name' is undefined"
    assert (error.file, error.line, error.reason, error.security) == \
        ("templates/welcome.html", 7, "'name' is undefined", True)
    assert str(RenderError("templates/x.html", None, "missing")) == "templates/x.html: missing"


def test_outside_project_names_the_target_and_becomes_a_problem(tmp_path: Path) -> None:
    error = OutsideProject("templates/evil.html", Path("/etc/passwd"), "templates/")
    assert str(error).startswith("templates/evil.html: points to /etc/passwd, outside templates/;")
    assert "LDMAIL_DATA_DIRS" in str(error)
    problem = error.problem()
    assert problem.file == "templates/evil.html" and problem.line is None
    assert str(problem) == str(error)


def test_an_illegal_transition_says_what_was_asked_of_which_state() -> None:
    error = IllegalTransition("message", "deliver", "sent", "welcome for ann")
    assert str(error).startswith("ledger: cannot deliver a sent message (welcome for ann); "
                                 "nothing was written for it.")
    assert "This is a bug" in str(error)
    assert str(IllegalTransition("enrolment", "leave", None)).startswith(
        "ledger: cannot leave no row; nothing")
    assert (error.kind, error.operation, error.state) == ("message", "deliver", "sent")


def test_an_illegal_transition_puts_an_before_a_state_starting_with_a_vowel() -> None:
    assert "cannot enrol an active enrolment;" in str(
        IllegalTransition("enrolment", "enrol", "active"))
    assert "cannot retry an unknown message;" in str(
        IllegalTransition("message", "retry", "unknown"))
    assert "cannot claim a held message;" in str(IllegalTransition("message", "claim", "held"))


def test_http_failed_keeps_how_far_the_request_got() -> None:
    error = HttpFailed("https://lrs/x: too slow", "answer", late=True)
    assert (error.phase, error.stopped, error.late) == ("answer", False, True)
    assert str(error) == "https://lrs/x: too slow"


@pytest.mark.parametrize("name", ["JsonLimit", "FieldError", "UnreadableFile", "RowRejected"])
def test_row_level_errors_are_value_errors_not_user_errors(name: str) -> None:
    cls = getattr(errors, name)
    assert issubclass(cls, ValueError) and not issubclass(cls, LdmailError)


def test_a_json_limit_and_a_field_error_keep_where_they_are() -> None:
    limit = errors.JsonLimit("nested too deeply", line=4)
    assert (limit.reason, limit.line, str(limit)) == ("nested too deeply", 4, "nested too deeply")
    field = errors.FieldError(("send", "window"), "ends before it starts")
    assert field.loc == ("send", "window") and str(field) == "ends before it starts"


def test_an_unforeseen_error_is_one_line_of_bounded_length() -> None:
    assert errors.describe(RuntimeError("a bug\n  in the\toutbox")) == \
        "RuntimeError: a bug in the outbox"
    assert errors.describe(KeyboardInterrupt()) == "KeyboardInterrupt"
    assert errors.describe(ValueError("x" * 500)) == "ValueError: " + "x" * 200
