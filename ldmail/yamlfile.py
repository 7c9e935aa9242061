"""YAML loading that remembers the line of every key, so errors can say `file:line`."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .errors import Problem

Loc = tuple[str | int, ...]


@dataclass
class LocatedYaml:
    """A parsed YAML document and the line of every key and list item in it."""

    path: Path
    display: str
    data: Any
    lines: dict[Loc, int] = field(default_factory=dict)

    def line_of(self, loc: Loc) -> int:
        """Line of the deepest known node on `loc` (1 when nothing matches)."""
        for cut in range(len(loc), 0, -1):
            line = self.lines.get(tuple(loc[:cut]))
            if line is not None:
                return line
        return 1


def _record_lines(node: yaml.Node, loc: Loc, lines: dict[Loc, int]) -> None:
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else str(key_node)
            lines[loc + (key,)] = key_node.start_mark.line + 1
            _record_lines(value_node, loc + (key,), lines)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            lines[loc + (index,)] = item.start_mark.line + 1
            _record_lines(item, loc + (index,), lines)


def load_yaml(path: Path, display: str) -> LocatedYaml | Problem:
    """Parse one YAML file; a syntax error comes back as a located Problem, not an exception."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        return Problem(display, None, f"not UTF-8 text ({exc.reason}); save the file as UTF-8")
    except OSError as exc:
        return Problem(display, None, f"cannot read: {exc.strerror}")
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        what = exc.problem or "invalid YAML"
        return Problem(display, line, f"YAML syntax error: {what}; check indentation and quoting")
    except yaml.YAMLError as exc:
        return Problem(display, None, f"YAML error: {exc}")
    finally:
        loader.dispose()
    lines: dict[Loc, int] = {}
    if node is not None:
        _record_lines(node, (), lines)
    return LocatedYaml(path, display, data, lines)
