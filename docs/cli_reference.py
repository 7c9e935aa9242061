"""Write docs/cli.md, the command reference, from the command line itself.

    python docs/cli_reference.py           # rewrite docs/cli.md
    python docs/cli_reference.py --check   # exit 1 when docs/cli.md is not what the code says

The page is built from each command's parameters and docstring (not from Typer's rich help
screen, whose layout changes with Typer's version and the terminal's width), so it changes
only when a command, an option or a help text does. tests/test_cli_reference.py runs the
check, so the reference can never drift from the code.
"""

from __future__ import annotations

import inspect
import sys
from enum import Enum
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import typer.main  # noqa: E402  (after the path is set)

from ldmail.cli import app  # noqa: E402

PAGE = REPO / "docs" / "cli.md"
# Typer's own options for installing shell completion: described by Typer, not by us.
TYPERS_OWN = {"install_completion", "show_completion"}
INTRO = """# Command reference

Every command and option of `ldmail`, generated from the code by `docs/cli_reference.py` (a
test fails when this page and the code disagree). `ldmail COMMAND --help` shows the same in
the terminal. `--project` and `--now` mean the same before the command as after it.
"""


def _default(param: Any) -> str:
    value = param.default
    if value is None or value is False or value == () or callable(value) \
            or param.param_type_name != "option" or getattr(param, "is_flag", False):
        return ""
    if isinstance(value, Enum):
        value = value.value
    return f"`{value}`"


def _names(param: Any) -> str:
    """Only what every supported Typer keeps the same: the names, the metavar, the flag and
    the default (an enum default lists the choices)."""
    if param.param_type_name == "argument":
        return f"`{(param.metavar or param.name).upper().strip('[]')}`"
    names = ", ".join(f"`{name}`" for name in [*param.opts, *param.secondary_opts])
    if getattr(param, "is_flag", False):
        return names
    if isinstance(param.default, Enum):
        return f"{names} " + "\\|".join(choice.value for choice in type(param.default))
    return f"{names} {param.metavar or param.name.upper()}"


def _help(param: Any) -> str:
    text = " ".join((getattr(param, "help", None) or "").split())
    return text.replace("|", "\\|")


def _usage(path: str, command: Any) -> str:
    arguments = [(p.metavar or p.name).upper().strip("[]") + ("" if p.required else "?")
                 for p in command.params if p.param_type_name == "argument"]
    tail = " COMMAND" if hasattr(command, "commands") else ""
    return f"`{' '.join([path, '[OPTIONS]', *arguments]) + tail}`"


def _section(path: str, command: Any) -> list[str]:
    lines = [f"## {path}", "", _usage(path, command), ""]
    doc = inspect.cleandoc(command.help or "")
    if doc:
        lines += [doc.replace("\b\n", ""), ""]
    params = [p for p in command.params
              if not getattr(p, "hidden", False) and p.name not in TYPERS_OWN]
    if params:
        lines += ["| argument or option | default | what it does |", "|---|---|---|"]
        lines += [f"| {_names(p)} | {_default(p)} | {_help(p)} |" for p in params]
        lines.append("")
    for name, sub in getattr(command, "commands", {}).items():
        if not getattr(sub, "hidden", False):
            lines += _section(f"{path} {name}", sub)
    return lines


def reference() -> str:
    return INTRO + "\n" + "\n".join(_section("ldmail", typer.main.get_command(app))).rstrip() \
        + "\n"


def main() -> None:
    text = reference()
    if "--check" in sys.argv[1:]:
        if PAGE.read_text(encoding="utf-8") != text:
            sys.exit("docs/cli.md is not what the code says; run: python docs/cli_reference.py")
        return
    PAGE.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
