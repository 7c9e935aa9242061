"""Shared fixtures: a scaffolded project in tmp_path and a way to run the real CLI."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from typer.testing import CliRunner

from ldmail.cli import app

if TYPE_CHECKING:
    from .smtp_server import SmtpServer

REPO = Path(__file__).resolve().parents[2]

Cli = Callable[..., "CliResult"]


class CliResult:
    def __init__(self, exit_code: int, stdout: str, stderr: str) -> None:
        self.exit_code, self.stdout, self.stderr = exit_code, stdout, stderr

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def summary_line(output: str) -> str:
    """The summary line of `send` ("sent 7 · waiting …"), without the time it starts with
    when the output is not a terminal (as under the test runner)."""
    match = re.search(r"^(?:\S+ )?((?:would send|sent) \d+ .*)$", output, re.M)
    assert match, output
    return match[1]


@pytest.fixture
def cli() -> Cli:
    """Invoke `ldmail ARGS…` in-process, as a user would type it."""

    def invoke(*args: str | Path) -> CliResult:
        result = CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False)
        return CliResult(result.exit_code, result.stdout, result.stderr)

    return invoke


@pytest.fixture
def project(tmp_path: Path, cli: Cli) -> Path:
    """A fresh `ldmail init` project."""
    target = tmp_path / "repo"
    assert cli("init", target).exit_code == 0
    return target


def copy_example(target: Path) -> Path:
    """The shipped example at the repository's top level, copied to `target`."""
    target.mkdir()
    for name in ("ldmail.yaml", "audiences.yaml", "people.csv"):
        shutil.copy(REPO / name, target / name)
    for name in ("campaigns", "templates"):
        shutil.copytree(REPO / name, target / name)
    return target


@pytest.fixture
def example(tmp_path: Path) -> Path:
    """A copy of the shipped example at the repository's top level."""
    return copy_example(tmp_path / "example")


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    """A scriptable SMTP server on loopback (see tests/e2e/smtp_server.py)."""
    from .smtp_server import serve  # imported here: smtp_server imports this module

    yield from serve()


@pytest.fixture
def mailing(project: Path, smtp_server: SmtpServer) -> Path:
    """The scaffold with five known people, no holdout, sending to `smtp_server`."""
    from .smtp_server import known_people

    return known_people(project, smtp_server.port)


@contextmanager
def mounted_tmpfs(target: Path, options: str) -> Iterator[Path]:
    """A tmpfs mounted on `target` (skips the test where mounting is not allowed)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a file system needs root")
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(target)],
                             capture_output=True, check=False)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield target
    finally:
        subprocess.run(["umount", str(target)], check=False)
