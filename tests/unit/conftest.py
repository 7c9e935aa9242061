"""Fixtures for unit tests: a scaffolded project made by the core, never by the CLI.

Unit tests run in-process with no subprocess, socket, server or browser (see
tests/test_architecture.py); anything that needs one lives in tests/e2e/.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from ldmail.project.config import Project, load_project
from ldmail.project.scaffold import init_project


@pytest.fixture(scope="session")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One project as `ldmail init` writes it (writing its schemas is most of the cost), made
    once per session; never changed, only copied."""
    target = tmp_path_factory.mktemp("pristine") / "repo"
    init_project(target)
    return target


@pytest.fixture
def scaffold(pristine: Path, tmp_path: Path) -> Path:
    """A fresh project as `ldmail init` writes it, to change at will."""
    return Path(shutil.copytree(pristine, tmp_path / "repo"))


@pytest.fixture
def loaded(scaffold: Path) -> Project:
    """The fresh project, loaded and validated."""
    return load_project(scaffold)
