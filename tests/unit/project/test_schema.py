"""ldmail.project.schema: the JSON Schemas editors use are generated from the same models
that validate the files, show defaults the way an author writes them, accept what the
scaffold writes and reject what validation rejects; `ldmail schema` writes them only into a
folder that holds a project."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from ldmail.errors import ProjectNotFound
from ldmail.project.models import SendWindow, Settings
from ldmail.project.schema import SCHEMAS, schema_for, write_project_schemas, write_schemas


def schema_errors(data: Any, name: str) -> list[str]:
    # Editors see unquoted dates as text, as JSON does.
    as_json = json.loads(json.dumps(data, default=str))
    validator = jsonschema.Draft202012Validator(schema_for(name))
    return [error.message for error in validator.iter_errors(as_json)]


def test_each_schema_names_its_draft_and_its_kind_of_file() -> None:
    assert sorted(SCHEMAS) == ["audiences", "campaign", "settings"]
    for name in SCHEMAS:
        schema = schema_for(name)
        assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
        assert schema["title"] == f"ldmail {name} file"
        jsonschema.Draft202012Validator.check_schema(schema)


def test_defaults_are_shown_as_an_author_writes_them() -> None:
    settings = schema_for("settings")
    assert settings["$defs"]["Transport"]["properties"]["timeout"]["default"] == "30s"
    assert settings["$defs"]["RunSettings"]["properties"]["interval"]["default"] == "5m"
    assert settings["properties"]["timezone"]["default"] == "Europe/Amsterdam"
    window = schema_for("campaign")["$defs"]["SendWindow"]["properties"]
    assert window["hours"]["default"] == "09:00-17:00"
    assert window["days"]["default"] == ["mon", "tue", "wed", "thu", "fri"]


def test_the_defaults_shown_read_back_as_the_models_own() -> None:
    window = schema_for("campaign")["$defs"]["SendWindow"]["properties"]
    shown = {key: spec["default"] for key, spec in window.items()}
    assert SendWindow.model_validate(shown) == SendWindow()
    run = schema_for("settings")["$defs"]["RunSettings"]["properties"]["interval"]["default"]
    assert Settings.model_validate({"run": {"interval": run}}) == Settings()


def test_the_scaffolded_files_pass_their_schemas(scaffold: Path) -> None:
    for file, name in (("ldmail.yaml", "settings"), ("audiences.yaml", "audiences"),
                       ("campaigns/welcome.yaml", "campaign")):
        data = yaml.safe_load((scaffold / file).read_text(encoding="utf-8"))
        assert schema_errors(data, name) == [], file


def test_the_schema_rejects_what_validation_rejects(scaffold: Path) -> None:
    campaign = yaml.safe_load((scaffold / "campaigns/welcome.yaml").read_text(encoding="utf-8"))
    assert schema_errors({**campaign, "titel": "x"}, "campaign") == [
        "Additional properties are not allowed ('titel' was unexpected)"]
    step = campaign["steps"][0]
    assert schema_errors({**campaign, "steps": [{**step, "after": "3 days"}]}, "campaign")
    without_template = {k: v for k, v in step.items() if k != "template"}
    assert schema_errors({**campaign, "steps": [without_template]}, "campaign")
    both = {**step, "variants": [{"id": "a", "template": "w/a"}, {"id": "b", "template": "w/b"}]}
    assert schema_errors({**campaign, "steps": [both]}, "campaign")


def test_write_schemas_writes_one_current_file_per_kind(tmp_path: Path) -> None:
    folder = tmp_path / "new" / "schemas"
    written = write_schemas(folder)
    assert [path.name for path in written] == [
        "campaign.schema.json", "audiences.schema.json", "settings.schema.json"]
    for path in written:
        name = path.name.removesuffix(".schema.json")
        text = path.read_text(encoding="utf-8")
        assert json.loads(text) == schema_for(name) and text.endswith("}\n")


def test_schemas_are_written_only_into_a_project(scaffold: Path, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ProjectNotFound, match="no ldmail project here"):
        write_project_schemas(empty)
    assert list(empty.iterdir()) == []
    stale = scaffold / "schemas" / "settings.schema.json"
    stale.write_text("{}", encoding="utf-8")
    assert stale in write_project_schemas(scaffold)
    assert json.loads(stale.read_text(encoding="utf-8")) == schema_for("settings")
