"""Fixtures for the project package's unit tests: YAML text checked as a user's file is."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from pydantic import BaseModel

from ldmail.errors import Problem
from ldmail.project.config import validate_model
from ldmail.project.yamlfile import load_yaml

Complaints = Callable[[type[BaseModel], str], list[str]]


@pytest.fixture
def complaints(tmp_path: Path) -> Complaints:
    """What `validate` says about YAML text read as `model`'s file: one line per problem,
    `file.yaml:line: what to do`; an empty list when the text is valid."""

    def check(model: type[BaseModel], text: str) -> list[str]:
        path = tmp_path / "file.yaml"
        path.write_text(text, encoding="utf-8")
        located = load_yaml(path, "file.yaml")
        assert not isinstance(located, Problem), str(located)
        problems: list[Problem] = []
        validate_model(model, located, problems)
        return [str(problem) for problem in problems]

    return check
