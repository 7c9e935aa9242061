"""ldmail.project.tracked: which files with names and addresses in them git tracks. The files
in (or at) each private folder and in every preview gallery (an index.html beside a mail/
folder) are found; `tracked_files` asks git and answers None, never an error, when there is
no work tree, no git, or git hangs.

git itself is never started here: these tests give `tracked_files` a `run` that answers as
git would.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from ldmail.project import tracked
from ldmail.project.tracked import GIT_TIMEOUT, private_tracked, tracked_files

# What a hung git raises, taken from the module under test (a unit test imports no subprocess).
TIMEOUT: Any = vars(tracked)["subprocess"].TimeoutExpired


def test_files_in_a_private_folder_are_found_per_folder() -> None:
    files = ["README.md", ".ldmail/ledger.db", ".ldmail/outbox/1.eml", "reports/q1.html",
             "reports-old/q4.html", "campaigns/welcome.yaml"]
    assert private_tracked(files, [".ldmail", "reports", "exports/inbox"]) == {
        ".ldmail": [".ldmail/ledger.db", ".ldmail/outbox/1.eml"],
        "reports": ["reports/q1.html"]}


def test_a_private_file_named_by_itself_is_found() -> None:
    assert private_tracked(["data/ledger.db", "data/ledger.db-wal.txt"], ["data/ledger.db"]) \
        == {"data/ledger.db": ["data/ledger.db"]}


def test_a_preview_gallery_anywhere_is_found_by_its_shape() -> None:
    files = ["docs/index.html", "site/index.html", "site/mail/welcome-hello.html",
             "site/style.css", "campaigns/welcome.yaml"]
    assert private_tracked(files, []) == {
        "site": ["site/index.html", "site/mail/welcome-hello.html", "site/style.css"]}


def test_a_gallery_inside_a_listed_folder_is_not_listed_twice() -> None:
    files = ["preview-gallery/index.html", "preview-gallery/mail/a.html"]
    assert private_tracked(files, ["preview-gallery"]) == {"preview-gallery": files}


def test_nothing_private_tracked_is_an_empty_answer() -> None:
    assert private_tracked([], [".ldmail"]) == {}
    assert private_tracked(["ldmail.yaml", "templates/en/welcome/hello.md"], [".ldmail"]) == {}


class Git:
    """A run of git that answers as given, and keeps the calls made."""

    def __init__(self, *, returncode: int = 0, stdout: bytes = b"",
                 error: BaseException | None = None) -> None:
        self.returncode, self.stdout, self.error = returncode, stdout, error
        self.calls: list[dict[str, Any]] = []

    def __call__(self, args: list[str], **options: Any) -> SimpleNamespace:
        self.calls.append({"args": args, **options})
        if self.error is not None:
            raise self.error
        return SimpleNamespace(returncode=self.returncode, stdout=self.stdout)


def test_the_tracked_files_are_read_from_gits_nul_separated_list() -> None:
    git = Git(stdout=b".ldmail/ledger.db\0odd name\nwith newline.txt\0caf\xe9.txt\0")
    assert tracked_files("/work/repo", run=git) == [
        ".ldmail/ledger.db", "odd name\nwith newline.txt", "caf\ufffd.txt"]
    calls = git.calls
    assert calls[0]["args"][:3] == ["git", "-C", "/work/repo"]
    assert calls[0]["timeout"] == GIT_TIMEOUT and calls[0]["check"] is False


@pytest.mark.parametrize("answer", [
    {"returncode": 128},                                               # not a work tree
    {"error": FileNotFoundError(2, "No such file or directory")},      # git not installed
    {"error": TIMEOUT(["git"], GIT_TIMEOUT)},                         # git hangs
])
def test_no_work_tree_no_git_or_a_hung_git_is_no_answer(answer: dict[str, Any]) -> None:
    assert tracked_files("/work/repo", run=Git(**answer)) is None
