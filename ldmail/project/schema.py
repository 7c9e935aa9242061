"""JSON Schemas of the project files, generated from the same models that validate them."""

from __future__ import annotations

import json
from datetime import time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import BaseModel
from pydantic.json_schema import GenerateJsonSchema

from ..errors import ProjectNotFound
from ..units import WEEKDAYS, format_duration
from .config import is_project
from .models import Audiences, Campaign, Settings

SCHEMAS: dict[str, type[BaseModel]] = {
    "campaign": Campaign,
    "audiences": Audiences,
    "settings": Settings,
}
SCHEMA_DIR = "schemas"


class _AuthorSpelling(GenerateJsonSchema):
    """Show defaults the way an author writes them (`1d`, `"09:00"`), not as Python values."""

    def encode_default(self, dft: Any) -> Any:
        if isinstance(dft, timedelta):
            return format_duration(dft)
        if isinstance(dft, time):
            return dft.strftime("%H:%M")
        if isinstance(dft, ZoneInfo):
            return dft.key
        if isinstance(dft, tuple) and dft and all(isinstance(t, time) for t in dft):
            return "-".join(t.strftime("%H:%M") for t in dft)
        if isinstance(dft, tuple) and dft and all(isinstance(d, int) for d in dft):
            return [WEEKDAYS[d] for d in dft]
        return super().encode_default(dft)


def schema_for(name: str) -> dict[str, Any]:
    model = SCHEMAS[name]
    schema = model.model_json_schema(schema_generator=_AuthorSpelling)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = f"ldmail {name} file"
    return schema


def write_project_schemas(root: Path) -> list[Path]:
    """`ldmail schema` without --out: into the project's schemas/ folder, never into a folder
    that holds no project."""
    if not is_project(root):
        raise ProjectNotFound(root.resolve())
    return write_schemas(root / SCHEMA_DIR)


def write_schemas(folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name in SCHEMAS:
        path = folder / f"{name}.schema.json"
        path.write_text(json.dumps(schema_for(name), indent=2) + "\n", encoding="utf-8")
        written.append(path)
    return written
