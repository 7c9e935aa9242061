"""Personal data stays out of git: what ldmail writes with names and addresses in it is
ignored by the `.gitignore` that `init` writes (and the shipped example has), and `validate`
warns when git tracks it anyway."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from .conftest import REPO, Cli

NOW = "2026-12-17T10:00+01:00"
PRIVATE = (".ldmail/", "preview-gallery/", "reports/", "exports/ldmail/processed/")


def git(folder: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(folder), *args], check=True, capture_output=True,
                          text=True, timeout=60).stdout


@pytest.fixture
def repository(example: Path) -> Path:
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    shutil.copy(REPO / ".gitignore", example / ".gitignore")
    git(example, "init", "-q")
    git(example, "-c", "user.name=t", "-c", "user.email=t@example.org", "add", "-A")
    git(example, "-c", "user.name=t", "-c", "user.email=t@example.org", "commit", "-qm", "x")
    return example


def test_what_ldmail_writes_with_names_in_it_stays_out_of_git(repository: Path,
                                                              cli: Cli) -> None:
    from .bounce_mails import postfix_bounce
    from .test_inbox import maildir, use_inbox

    assert cli("send", "--project", repository, "--now", NOW).exit_code == 0
    assert cli("preview", "--out", repository / "preview-gallery", "--project", repository,
               "--now", NOW).exit_code == 0
    assert cli("report", "--out", repository / "reports" / "report.html", "--project",
               repository, "--now", NOW).exit_code == 0
    one = next((repository / ".ldmail" / "outbox").glob("*.eml")).read_bytes()
    address = next(line for line in one.decode().splitlines() if line.startswith("To:"))
    address = address.rpartition("<")[2].rstrip(">").split()[-1]
    maildir(repository, [postfix_bounce(one, address)])
    use_inbox(repository, kind="maildir", path="exports/inbox")
    assert cli("inbox", "--project", repository, "--now", NOW).exit_code == 0
    assert list((repository / "exports" / "ldmail" / "processed").rglob("*"))
    changed = git(repository, "status", "--porcelain", "--untracked-files=all").splitlines()
    shown = [line[3:] for line in changed]
    assert not [path for path in shown if path.startswith(PRIVATE)], shown
    assert "ldmail.yaml" in shown  # the status is real: the edited settings show
    assert "git tracks" not in cli("validate", "--project", repository).output


def test_validate_warns_when_git_tracks_the_ledger_or_a_gallery(repository: Path,
                                                                cli: Cli) -> None:
    assert cli("send", "--project", repository, "--now", NOW).exit_code == 0
    assert cli("preview", "--out", repository / "gallery", "--project", repository,
               "--now", NOW).exit_code == 0
    git(repository, "add", "-f", ".ldmail/ledger.db", "gallery")
    result = cli("validate", "--project", repository)
    warnings = [line for line in result.output.splitlines() if "git tracks" in line]
    assert any(line.startswith("warning: .ldmail/ledger.db: git tracks 1 file(s) in .ldmail,"
                               " which hold names and addresses; untrack them (git rm -r "
                               "--cached .ldmail)") for line in warnings), warnings
    assert any("in gallery, which hold names and addresses" in line for line in warnings), \
        warnings
