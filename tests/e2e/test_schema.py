"""The JSON Schemas come from the validating models, so editors and `validate` agree."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml

from ldmail.project.schema import SCHEMAS, schema_for

from .conftest import REPO, Cli
from .test_validate import edit


def test_shipped_schemas_are_current() -> None:
    for name in SCHEMAS:
        shipped = json.loads((REPO / "schemas" / f"{name}.schema.json").read_text("utf-8"))
        assert shipped == schema_for(name), f"run 'ldmail schema' to refresh {name}"


def test_shipped_and_scaffolded_files_name_their_schema(project: Path) -> None:
    for root in (REPO, project):
        files = [root / "audiences.yaml", root / "ldmail.yaml",
                 *sorted((root / "campaigns").glob("*.yaml"))]
        for path in files:
            first = path.read_text("utf-8").splitlines()[0]
            assert first.startswith("# yaml-language-server: $schema="), path
            target = (path.parent / first.split("=", 1)[1]).resolve()
            assert target.is_file(), f"{path} points at missing {target}"


def _schema_errors(path: Path, name: str) -> list[str]:
    # Editors see unquoted dates as text, as JSON does: round-trip through JSON to match.
    data = json.loads(json.dumps(yaml.safe_load(path.read_text("utf-8")), default=str))
    validator = jsonschema.Draft202012Validator(
        schema_for(name), format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)
    return [error.message for error in validator.iter_errors(data)]


def test_valid_files_pass_the_schema(project: Path) -> None:
    assert _schema_errors(project / "campaigns/welcome.yaml", "campaign") == []
    assert _schema_errors(project / "audiences.yaml", "audiences") == []
    assert _schema_errors(project / "ldmail.yaml", "settings") == []
    for path in sorted((REPO / "campaigns").glob("*.yaml")):
        assert _schema_errors(path, "campaign") == [], path


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("after: 3d", "afer: 3d"),                       # unknown key
        ("after: 3d", "after: 3 days"),                  # bad duration
        ("phase: activate", "phase: launch"),            # not a phase
        ("starts: 2026-01-01", "starts: soon"),          # not a date
        ("hours: \"09:00-17:00\"", "hours: nine to five"),  # bad hours
        ("title: Welcome to the learning platform\n", ""),  # missing required key
        ("holdout: 10%", "holdout: ten"),                # bad percentage
    ],
)
def test_schema_rejects_what_validate_rejects(project: Path, cli: Cli, old: str,
                                              new: str) -> None:
    edit(project / "campaigns/welcome.yaml", old, new)
    assert cli("validate", "--project", project).exit_code == 1
    assert _schema_errors(project / "campaigns/welcome.yaml", "campaign")
