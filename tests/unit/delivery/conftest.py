"""Fixtures for the delivery unit tests: the scaffold with five people the tests know by name,
no holdout, so each of them is due the first step at NOW; and the few helpers that read it.
The five people and the edits come from tests/projects.py, which the end-to-end tests share.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from ldmail.ledger import Ledger, MessageRecord
from ldmail.project.config import Project, load_project

from ...projects import PEOPLE, edit_yaml, write_people


def messages_of(project: Project, email: str) -> list[MessageRecord]:
    """The ledger's messages about `email`, read back through the ledger itself."""
    with Ledger.of(project, readonly=True) as ledger:
        return ledger.history(email).messages


def hello(project: Project, email: str) -> MessageRecord | None:
    """The ledger's row of the first step (welcome/hello) for `email`, if any."""
    return next((m for m in messages_of(project, email) if m.step == "hello"), None)


@pytest.fixture(scope="session")
def five_people(pristine: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The scaffold with the five PEOPLE and no holdout, made once per session."""
    made = Path(shutil.copytree(pristine, tmp_path_factory.mktemp("delivery") / "repo"))
    write_people(made, PEOPLE)
    edit_yaml(made / "campaigns" / "welcome.yaml", lambda c: c.update(holdout="0%"))
    return made


@pytest.fixture
def people(five_people: Path, tmp_path: Path) -> Path:
    """A fresh copy of the five PEOPLE's project: all five are due `hello` at NOW."""
    return Path(shutil.copytree(five_people, tmp_path / "repo"))


@pytest.fixture
def project(people: Path) -> Project:
    """The five PEOPLE's project, loaded (loading takes longer than a send: done once)."""
    return load_project(people)
