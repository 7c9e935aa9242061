"""Shell completion of campaign ids, step ids and persona names, read straight from the files.

Completion runs on every <Tab>, so it reads only what it needs and never fails loudly.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from ..project.config import AUDIENCES_FILE, CAMPAIGNS_DIR


def _load(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError, UnicodeDecodeError):
        return None


def campaign_ids(root: Path, prefix: str) -> list[str]:
    return sorted(p.stem for p in (root / CAMPAIGNS_DIR).glob("*.y*ml")
                  if p.stem.startswith(prefix))


def step_ids(root: Path, campaign: str | None, prefix: str) -> list[str]:
    ids: list[str] = []
    for name in [campaign] if campaign else campaign_ids(root, ""):
        data = _load(root / CAMPAIGNS_DIR / f"{name}.yaml")
        steps = data.get("steps") if isinstance(data, dict) else None
        for step in steps if isinstance(steps, list) else []:
            if isinstance(step, dict) and str(step.get("id", "")).startswith(prefix):
                ids.append(str(step["id"]))
    return sorted(set(ids))


def persona_names(root: Path, prefix: str) -> list[str]:
    data = _load(root / AUDIENCES_FILE)
    personas = data.get("personas") if isinstance(data, dict) else None
    return [str(p) for p in personas if str(p).startswith(prefix)] \
        if isinstance(personas, dict) else []
