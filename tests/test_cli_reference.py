"""docs/cli.md is what the code says, and every command and option says what it does."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import typer.main

from ldmail.cli import app

REPO = Path(__file__).resolve().parent.parent


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("cli_reference", REPO / "docs/cli_reference.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("cli_reference", module)
    spec.loader.exec_module(module)
    return module


def test_the_committed_reference_is_what_the_code_says() -> None:
    generator = _generator()
    committed = (REPO / "docs/cli.md").read_text(encoding="utf-8")
    assert committed == generator.reference(), (
        "docs/cli.md is out of date: run `python docs/cli_reference.py` and commit it")


def test_every_command_and_option_is_documented() -> None:
    undocumented = []

    def visit(path: str, command: object) -> None:
        if not getattr(command, "help", None):
            undocumented.append(path)
        for param in getattr(command, "params", []):
            if param.name in _generator().TYPERS_OWN:
                continue
            if not (getattr(param, "help", None) or "").strip():
                undocumented.append(f"{path} {param.opts[0]}")
        for name, sub in getattr(command, "commands", {}).items():
            visit(f"{path} {name}", sub)

    visit("ldmail", typer.main.get_command(app))
    assert not undocumented, f"no help text: {undocumented}"
