"""Every command in the authoring guide exists, with the options it uses."""

from __future__ import annotations

import re
import shlex

from .conftest import REPO, Cli

GUIDE = REPO / "docs" / "guide.md"


def guide_commands() -> list[list[str]]:
    text = GUIDE.read_text(encoding="utf-8")
    blocks = re.findall(r"```bash\n(.*?)```", text, flags=re.S)
    return [shlex.split(line) for block in blocks for line in block.splitlines()
            if line.startswith("ldmail ")]


def test_guide_has_commands() -> None:
    assert len(guide_commands()) >= 12


def test_every_guide_command_and_option_exists(cli: Cli) -> None:
    for words in guide_commands():
        path = [w for w in words[1:3] if not w.startswith("-")]
        command = path[:2] if path[:1] == ["events"] else path[:1]
        result = cli(*command, "--help")
        assert result.exit_code == 0, f"{' '.join(words)}: {result.output}"
        for option in (w for w in words if w.startswith("--")):
            assert option in result.stdout, f"{option} not in 'ldmail {command} --help'"
