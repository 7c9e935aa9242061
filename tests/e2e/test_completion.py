"""Shell completion offers the project's own campaign ids and persona names."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path


def complete(project: Path, words: str) -> list[str]:
    env = {**os.environ, "_LDMAIL_COMPLETE": "complete_bash", "COMP_WORDS": words,
           "COMP_CWORD": str(len(words.split(" ")) - 1)}
    # The script installed beside this Python (in .venv), not another install on PATH.
    script = Path(sys.executable).with_name("ldmail")
    command = str(script) if script.exists() else (shutil.which("ldmail") or sys.executable)
    args = [command] if command.endswith("ldmail") else [command, "-m", "ldmail"]
    result = subprocess.run(args, cwd=project, env=env, capture_output=True, text=True,
                            timeout=30, check=False)
    return result.stdout.split()


def test_campaign_ids(project: Path) -> None:
    assert complete(project, "ldmail preview -c we") == ["welcome"]
    assert complete(project, "ldmail preview we") == ["welcome"]  # the deprecated form


def test_persona_names(project: Path) -> None:
    assert complete(project, "ldmail preview -c welcome --persona n") == ["newcomer"]


def test_step_ids_are_those_of_the_chosen_campaign(project: Path) -> None:
    welcome = (project / "campaigns" / "welcome.yaml").read_text(encoding="utf-8")
    (project / "campaigns" / "other.yaml").write_text(
        welcome.replace("id: first-course", "id: follow-up"), encoding="utf-8")
    assert complete(project, "ldmail preview -c welcome --step f") == ["first-course"]
    assert complete(project, "ldmail preview -c other --step f") == ["follow-up"]
    assert complete(project, "ldmail send -c other --step f") == []  # send has no --step
    assert complete(project, "ldmail retry -c other --step f") == ["follow-up"]
