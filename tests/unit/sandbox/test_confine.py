"""ldmail.sandbox.confine promises that every path a campaign repository names stays inside
the project once symbolic links are resolved (templates inside templates/), unless the
operator lists the folder in LDMAIL_DATA_DIRS; that only regular UTF-8 files within a size
limit are read, with a located problem for anything else; and that every escaping or
dangling link is reported."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ldmail.errors import OutsideProject, Problem
from ldmail.sandbox.confine import (
    DATA_DIRS_ENV,
    confined,
    escaping_links,
    read_regular_text,
    trusted_dirs,
)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    (root / "templates").mkdir(parents=True)
    (root / "templates" / "welcome.html").write_text("Hello", "utf-8")
    (root / "people.csv").write_text("email\n", "utf-8")
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "secret.txt").write_text("password", "utf-8")
    return root.resolve()


def test_a_path_inside_the_project_comes_back_resolved(project: Path) -> None:
    link = project / "templates" / "alias.html"
    link.symlink_to("welcome.html")
    assert confined(project / "templates" / ".." / "people.csv", project, "people.csv") == \
        project / "people.csv"
    assert confined(link, project / "templates", "templates/alias.html") == \
        project / "templates" / "welcome.html"


def test_a_link_that_leaves_the_project_is_refused_with_its_target(project: Path) -> None:
    link = project / "templates" / "evil.html"
    link.symlink_to(project.parent / "elsewhere" / "secret.txt")
    with pytest.raises(OutsideProject) as info:
        confined(link, project, "templates/evil.html")
    target = project.parent / "elsewhere" / "secret.txt"
    assert str(info.value).startswith(f"templates/evil.html: points to {target}, outside the "
                                      "project;")
    with pytest.raises(OutsideProject, match="outside templates/"):
        confined(project / "people.csv", project / "templates", "people.csv",
                 label="templates/")


def test_the_operators_data_dirs_are_allowed_only_for_data(
        project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    elsewhere = project.parent / "elsewhere"
    monkeypatch.setenv(DATA_DIRS_ENV, os.pathsep.join(["", str(elsewhere), "/nonexistent"]))
    assert trusted_dirs()[0] == elsewhere
    secret = elsewhere / "secret.txt"
    assert confined(secret, project, "export", data=True) == secret
    with pytest.raises(OutsideProject):
        confined(secret, project, "templates/x.html")


def test_a_regular_utf8_file_is_read_without_its_byte_order_mark(tmp_path: Path) -> None:
    path = tmp_path / "a.html"
    path.write_bytes("\ufeffHallo Zoë".encode())
    assert read_regular_text(path, "templates/a.html", 100) == "Hallo Zoë"


def test_a_file_over_the_limit_is_a_problem_not_read(tmp_path: Path) -> None:
    path = tmp_path / "big.html"
    path.write_bytes(b"x" * 2000)
    assert read_regular_text(path, "templates/big.html", 1000) == Problem(
        "templates/big.html", None, "2,000 bytes, more than the 1,000 a file of this kind may "
        "have; check that this is the right file")
    assert read_regular_text(path, "templates/big.html", 2000) == "x" * 2000


def test_a_fifo_or_a_folder_is_refused_before_reading(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.html"
    os.mkfifo(fifo)
    for path in (fifo, tmp_path):
        assert read_regular_text(path, "templates/x.html", 100) == Problem(
            "templates/x.html", None, "not a regular file; replace it with a text file")


def test_undecodable_bytes_are_located_by_line(tmp_path: Path) -> None:
    path = tmp_path / "latin.html"
    path.write_bytes(b"one\ntwo\nZo\xeb\n")
    assert read_regular_text(path, "templates/latin.html", 100) == Problem(
        "templates/latin.html", 3, "not UTF-8 text (byte 0xeb cannot be read); save the file "
        "as UTF-8")


def test_a_missing_file_is_a_problem(tmp_path: Path) -> None:
    problem = read_regular_text(tmp_path / "gone.html", "templates/gone.html", 100)
    assert problem == Problem("templates/gone.html", None, "cannot read: No such file or "
                              "directory")


def test_every_escaping_or_dangling_link_is_reported(project: Path) -> None:
    templates = project / "templates"
    (templates / "ok.html").symlink_to("welcome.html")
    (templates / "out.html").symlink_to(project.parent / "elsewhere" / "secret.txt")
    (templates / "gone.html").symlink_to("nothing.html")
    (templates / "up.csv").symlink_to(project / "people.csv")
    in_project = escaping_links(project, "templates")
    assert [str(problem) for problem in in_project] == [
        "templates/gone.html: is a symbolic link to nothing.html, which does not exist; "
        "replace it with the file itself",
        f"templates/out.html: is a symbolic link to {project.parent}/elsewhere/secret.txt, "
        "outside the project; a campaign repository may only use its own files: replace the "
        "link with the file itself"]
    in_own_folder = escaping_links(project, "templates", own_folder=True)
    assert [problem.file for problem in in_own_folder] == \
        ["templates/gone.html", "templates/out.html", "templates/up.csv"]
    assert "outside templates/" in in_own_folder[2].message


def test_a_named_folder_that_is_itself_a_link_elsewhere_is_reported(project: Path) -> None:
    (project / "campaigns").symlink_to(project.parent / "elsewhere")
    assert [problem.file for problem in escaping_links(project, "campaigns")] == ["campaigns"]
    assert escaping_links(project, "missing") == []
