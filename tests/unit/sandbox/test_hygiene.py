"""ldmail.sandbox.hygiene promises text from untrusted input made safe for where it goes:
control and direction characters shown as escapes rather than obeyed, a CSV cell never run as
a formula, a value made a safe piece of a file name; and private folders (0700) and files
(0600) that are never written through a symbolic link."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from ldmail.errors import LdmailError
from ldmail.sandbox.hygiene import (
    csv_cell,
    excerpt,
    file_name_part,
    first_control,
    one_line,
    private_folder,
    visible,
    write_private,
)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def test_terminal_escapes_and_direction_overrides_are_shown_not_obeyed() -> None:
    assert visible("\x1b]0;pwned\x07Ann") == "\\x1b]0;pwned\\x07Ann"
    assert visible("admin\u202etxt.exe") == "admin\\u202etxt.exe"
    assert visible("tab\tand\nnewline stay, \x7f and \x9b do not") == \
        "tab\tand\nnewline stay, \\x7f and \\x9b do not"
    assert visible("Zoë 日本") == "Zoë 日本"


def test_one_line_also_shows_line_breaks() -> None:
    assert one_line("Subject\r\nBcc: all@example.com") == "Subject\\r\\nBcc: all@example.com"


def test_an_excerpt_is_quoted_on_one_line_and_cut_at_the_limit() -> None:
    assert excerpt("a\nb") == "'a\\nb'"
    assert excerpt("x" * 10, limit=10) == "'" + "x" * 10 + "'"
    assert excerpt("x" * 11, limit=10) == "'" + "x" * 9 + "…'"


def test_the_first_control_character_is_named_as_an_escape() -> None:
    assert first_control("course:excel") is None
    assert first_control("a\tb\u202ec") == "\\x09"
    assert first_control("line\u2028separator") == "\\u2028"
    assert first_control("mark\u200e") == "\\u200e"


@pytest.mark.parametrize("value", ["=HYPERLINK(\"x\")", "+1", "-2+3", "@SUM(A1)", "\tx", "\rx"])
def test_a_cell_a_spreadsheet_would_run_as_a_formula_gets_an_apostrophe(value: str) -> None:
    assert csv_cell(value) == "'" + value


def test_plain_text_and_numbers_stay_as_they_are_in_a_cell() -> None:
    assert csv_cell("Ann") == "Ann"
    assert csv_cell(-3) == -3
    assert csv_cell(None) is None


@pytest.mark.parametrize(("value", "part"), [
    ("../../etc/passwd", "etc_passwd"), ("Sales Team", "sales_team"),
    ("welcome-1", "welcome-1"), ("///", "none"), ("", "none")])
def test_a_value_becomes_a_safe_piece_of_a_file_name(value: str, part: str) -> None:
    assert file_name_part(value) == part


def test_a_private_folder_and_the_parents_it_creates_are_owner_only(tmp_path: Path) -> None:
    existing = tmp_path / "repo"
    existing.mkdir(mode=0o755)
    target = existing / ".ldmail" / "preview"
    assert private_folder(target) == target
    assert _mode(target) == _mode(existing / ".ldmail") == 0o700
    existing.chmod(0o755)
    assert _mode(private_folder(existing)) == 0o700  # an existing one is tightened


def test_a_private_folder_refuses_a_symbolic_link(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    with pytest.raises(LdmailError, match="link is a symbolic link; remove it"):
        private_folder(tmp_path / "link")


def test_a_private_folder_that_cannot_be_created_says_so(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x", "utf-8")
    with pytest.raises(LdmailError, match="cannot create the folder .*choose a place you can "
                                          "write to"):
        private_folder(tmp_path / "file" / "sub")


def test_a_private_file_is_written_owner_only_and_an_existing_one_tightened(
        tmp_path: Path) -> None:
    path = tmp_path / "report.html"
    path.write_text("old", "utf-8")
    path.chmod(0o644)
    write_private(path, "<p>Zoë</p>")
    assert path.read_text("utf-8") == "<p>Zoë</p>"
    assert _mode(path) == 0o600


def test_a_private_file_is_never_written_through_a_symbolic_link(tmp_path: Path) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("keep", "utf-8")
    (tmp_path / "preview.html").symlink_to(victim)
    with pytest.raises(LdmailError, match="preview.html is a symbolic link; remove it"):
        write_private(tmp_path / "preview.html", "overwritten")
    assert victim.read_text("utf-8") == "keep"


def test_a_private_file_in_a_missing_folder_says_what_to_check(tmp_path: Path) -> None:
    with pytest.raises(LdmailError, match=r"cannot write \(No such file or directory\); check "
                                          r"the folder exists"):
        write_private(tmp_path / "missing" / "a.html", "x")
