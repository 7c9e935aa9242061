"""The CI workflow shipped for campaign repos is valid and uses the README's commands."""

from __future__ import annotations

import shlex

import yaml

from .conftest import REPO, Cli

WORKFLOW = REPO / ".github" / "workflows" / "campaigns.yml"


def test_workflow_is_valid_and_uses_the_readme_install(cli: Cli) -> None:
    workflow = yaml.safe_load(WORKFLOW.read_text("utf-8"))
    # YAML 1.1 reads the key `on` as True.
    triggers = workflow.get("on", workflow.get(True))
    assert "pull_request" in triggers
    steps = workflow["jobs"]["check"]["steps"]
    assert all("uses" in step or "run" in step for step in steps)
    runs = [step["run"] for step in steps if "run" in step]
    readme = (REPO / "README.md").read_text("utf-8")
    install, path = runs[0], runs[1]
    assert install == "./install.sh" and f"{install} && .venv/bin/ldmail" in readme, \
        "the workflow installs exactly as the README says"
    assert path == 'echo "$PWD/.venv/bin" >> "$GITHUB_PATH"'
    for command in runs[2:]:
        words = shlex.split(command)
        assert words[0] == "ldmail"
        result = cli(words[1], "--help")
        assert result.exit_code == 0
        for option in (w for w in words if w.startswith("--")):
            assert option in result.stdout, (command, option)
    uploads = [s for s in steps if str(s.get("uses", "")).startswith("actions/upload-artifact")]
    assert uploads and uploads[0]["with"]["path"].rstrip("/") == "preview-gallery"
    assert "ldmail preview --out preview-gallery --sample-people" in runs
    assert "ldmail validate --format github --sample-people" in runs
    # Nothing else reads the export unless the repository holds one.
    dry_run = next(s for s in steps if s.get("run") == "ldmail send --dry-run")
    assert dry_run["if"] == "hashFiles('people.csv') != ''"
