"""Fixtures for unit tests: a scaffolded project made by the core, never by the CLI.

Unit tests run in-process with no subprocess, socket, server or browser (see
tests/test_architecture.py); anything that needs one lives in tests/e2e/.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from ldmail.project.config import Project, load_project
from ldmail.project.scaffold import init_project


@pytest.fixture
def scaffold(tmp_path: Path) -> Path:
    """A fresh project as `ldmail init` writes it."""
    target = tmp_path / "repo"
    init_project(target)
    return target


@pytest.fixture
def loaded(scaffold: Path) -> Project:
    """The fresh project, loaded and validated."""
    return load_project(scaffold)
