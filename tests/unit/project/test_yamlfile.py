"""ldmail.project.yamlfile: YAML is parsed with the line of every key and list item, and
anything wrong with a file (syntax, a duplicate key, an unreadable value, a hostile size or
shape) comes back as one located Problem, `file:line: what to do`, never as an exception."""

from __future__ import annotations

from pathlib import Path

import pytest

from ldmail.errors import Problem
from ldmail.project.yamlfile import MAX_BYTES, MAX_SCALAR, LocatedYaml, load_yaml


def located(tmp_path: Path, text: str) -> LocatedYaml:
    path = tmp_path / "file.yaml"
    path.write_text(text, encoding="utf-8")
    result = load_yaml(path, "campaigns/welcome.yaml")
    assert isinstance(result, LocatedYaml), str(result)
    return result


def refusal(tmp_path: Path, text: str | bytes) -> str:
    """The one line a user sees for a file that cannot be read."""
    path = tmp_path / "file.yaml"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    result = load_yaml(path, "campaigns/welcome.yaml")
    assert isinstance(result, Problem), "the file was read"
    return str(result)


def test_every_key_and_list_item_knows_its_line(tmp_path: Path) -> None:
    loaded = located(tmp_path, "title: Welcome\nsteps:\n  - id: hello\n    after: 0d\n"
                               "  - id: later\n    after: 3d\n")
    assert loaded.data == {"title": "Welcome", "steps": [{"id": "hello", "after": "0d"},
                                                         {"id": "later", "after": "3d"}]}
    assert loaded.line_of(("title",)) == 1
    assert loaded.line_of(("steps", 1)) == 5
    assert loaded.line_of(("steps", 1, "after")) == 6


def test_a_location_below_the_known_nodes_falls_back_to_its_deepest_known_parent(
        tmp_path: Path) -> None:
    loaded = located(tmp_path, "title: Welcome\nsteps:\n  - id: hello\n")
    assert loaded.line_of(("steps", 0, "template")) == 3  # a missing key: its step's line
    assert loaded.line_of(("nowhere", "deeper")) == 1
    assert loaded.line_of(()) == 1


def test_an_empty_file_is_no_data_not_an_error(tmp_path: Path) -> None:
    loaded = located(tmp_path, "# only a comment\n")
    assert loaded.data is None
    assert loaded.line_of(("anything",)) == 1


def test_aliases_of_a_shared_value_are_allowed(tmp_path: Path) -> None:
    loaded = located(tmp_path, "window: &office {days: mon-fri}\none: *office\ntwo: *office\n")
    assert loaded.data["two"] == {"days": "mon-fri"}
    assert loaded.line_of(("two",)) == 3


def test_a_duplicate_key_names_the_line_of_its_first_use(tmp_path: Path) -> None:
    assert refusal(tmp_path, "title: One\nphase: activate\ntitle: Two\n") == (
        "campaigns/welcome.yaml:3: duplicate key 'title' (first on line 1); YAML would "
        "silently keep only the last one: remove one")


def test_repeated_merge_keys_are_not_duplicates(tmp_path: Path) -> None:
    loaded = located(tmp_path, "base: &b {x: 1}\nextra: &e {y: 2}\nboth:\n  <<: *b\n  <<: *e\n")
    assert loaded.data["both"] == {"x": 1, "y": 2}


@pytest.mark.parametrize(("text", "expected"), [
    ("title: x\nsteps:\n\t- id: a\n",
     "campaigns/welcome.yaml:3: YAML syntax error: a tab is used for indentation; YAML "
     "indents with spaces only: replace the tab with spaces"),
    ("title: x\nsender: \"Learning <l@example.org>\nphase: activate\nstarts: 2026-01-01\n",
     "campaigns/welcome.yaml:2: YAML syntax error: the quote opened on this line is never "
     "closed; add the closing quote"),
    ("personas: [a, b\nphase: activate\n",
     "campaigns/welcome.yaml:1: YAML syntax error: the '[' opened on this line is not closed "
     "(line 2 is reached first); add the ']'"),
    ("title: x\n  phase: activate\n",
     "campaigns/welcome.yaml:2: YAML syntax error: a ':' where no key can start: this line is "
     "indented deeper than the key above it, or a value holding ': ' needs quotes"),
    ("audience:\n    personas: [a]\n  where: x\n",
     "campaigns/welcome.yaml:3: YAML syntax error: this line is indented differently from the "
     "keys around it; indent keys of one mapping (or items of one list) by the same number of "
     "spaces"),
    ("title: x\njust some words\nphase: activate\n",
     "campaigns/welcome.yaml:2: YAML syntax error: this line is not 'key: value'; add the ':' "
     "or put the text in quotes"),
])
def test_syntax_errors_say_where_and_what_to_do_in_plain_words(tmp_path: Path, text: str,
                                                                 expected: str) -> None:
    assert refusal(tmp_path, text) == expected


def test_an_impossible_date_is_located_and_explained(tmp_path: Path) -> None:
    assert refusal(tmp_path, "title: x\nstarts: 2026-02-30\n") == (
        "campaigns/welcome.yaml:2: a value cannot be read (day is out of range for month); "
        "check dates (2026-03-31) and numbers")


@pytest.mark.parametrize(("text", "expected"), [
    ("a: " + "[" * 60 + "]" * 60 + "\n",
     "campaigns/welcome.yaml:1: nested more than 50 levels deep; campaign files need a "
     "handful: flatten it"),
    ("a: &a [x, x, x, x, x, x, x, x, x, x]\n"
     "b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
     "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\n"
     "d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n",
     "campaigns/welcome.yaml:4: more than 10,000 values once aliases (*name) are expanded; "
     "repeat fewer values through aliases"),
    ("a: &a [1, *a]\n",
     "campaigns/welcome.yaml:1: the alias *a is inside the value it names, a loop; repeat the "
     "value instead"),
    ("title: x\nweeks: " + "9" * 50 + "\n",
     "campaigns/welcome.yaml:2: a number of 50 digits; no setting needs more than a few: "
     "check the value (or quote it as text)"),
    ("title: x\ndescription: " + "x" * (MAX_SCALAR + 1) + "\n",
     "campaigns/welcome.yaml:2: a value of 100,001 characters (at most 100,000); put long text "
     "in a template"),
])
def test_hostile_shapes_are_refused_with_their_line(tmp_path: Path, text: str,
                                                    expected: str) -> None:
    assert refusal(tmp_path, text) == expected


def test_a_quoted_long_number_is_text(tmp_path: Path) -> None:
    loaded = located(tmp_path, "id: \"" + "9" * 50 + "\"\n")
    assert loaded.data == {"id": "9" * 50}


def test_files_that_are_not_utf8_text_or_too_large_are_refused(tmp_path: Path) -> None:
    assert refusal(tmp_path, b"title: x\nsender: \xff\n") == (
        "campaigns/welcome.yaml:2: not UTF-8 text (byte 0xff cannot be read); save the file "
        "as UTF-8")
    assert refusal(tmp_path, "# " + "x" * MAX_BYTES) == (
        "campaigns/welcome.yaml: 1,000,002 bytes, more than the 1,000,000 a file of this kind "
        "may have; check that this is the right file")


def test_a_folder_in_place_of_the_file_is_refused(tmp_path: Path) -> None:
    result = load_yaml(tmp_path, "campaigns/welcome.yaml")
    assert str(result) == ("campaigns/welcome.yaml: not a regular file; replace it with a "
                           "text file")
