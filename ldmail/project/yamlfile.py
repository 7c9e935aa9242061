"""YAML loading that remembers the line of every key, so errors can say `file:line`."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..errors import Problem
from ..sandbox.confine import read_regular_text

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


def _record_lines(node: yaml.Node, loc: Loc, lines: dict[Loc, int],
                  duplicates: list[tuple[int, str]]) -> None:
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else str(key_node)
            line = key_node.start_mark.line + 1
            first = lines.get(loc + (key,))
            if first is not None and key != "<<":
                duplicates.append((line, f"duplicate key '{key}' (first on line {first}); YAML "
                                         "would silently keep only the last one: remove one"))
            lines[loc + (key,)] = line
            _record_lines(value_node, loc + (key,), lines, duplicates)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            lines[loc + (index,)] = item.start_mark.line + 1
            _record_lines(item, loc + (index,), lines, duplicates)


def _unclosed_quote(text: str, first: int, last: int) -> int | None:
    """The last line in first..last that opens a quote it does not close, if any."""
    source = text.splitlines()
    for number in range(min(last, len(source)), max(first, 1) - 1, -1):
        line = source[number - 1]
        if line.replace('\\"', "").count('"') % 2 == 1:
            return number
        if re.search(r"(:|^\s*-)\s+'", line) and line.replace("''", "").count("'") % 2 == 1:
            return number
    return None


def _explain(exc: yaml.MarkedYAMLError, text: str) -> tuple[int | None, str]:
    """A located, plain-words version of PyYAML's parser message."""
    problem, context = exc.problem or "invalid YAML", exc.context or ""
    at = exc.problem_mark.line + 1 if exc.problem_mark else None
    opened = exc.context_mark.line + 1 if exc.context_mark else at
    if "'\\t'" in problem:
        return at, ("a tab is used for indentation; YAML indents with spaces only: replace the "
                    "tab with spaces")
    if context.startswith("while scanning a quoted scalar"):
        return opened, "the quote opened on this line is never closed; add the closing quote"
    for kind, bracket, closer in (("sequence", "[", "]"), ("mapping", "{", "}")):
        if context.startswith(f"while parsing a flow {kind}"):
            return opened, (f"the '{bracket}' opened on this line is not closed (line {at} "
                            f"is reached first); add the '{closer}'")
    if at is not None:
        quote = _unclosed_quote(text, opened or 1, at)
        if quote is not None and quote < at:
            return quote, (f"the quote opened on this line is not closed on it (YAML read on "
                           f"to line {at}); add the closing quote")
    if "mapping values are not allowed" in problem:
        return at, ("a ':' where no key can start: this line is indented deeper than the key "
                    "above it, or a value holding ': ' needs quotes")
    if problem.startswith("expected <block end>"):
        return at, ("this line is indented differently from the keys around it; indent keys "
                    "of one mapping (or items of one list) by the same number of spaces")
    if "could not find expected ':'" in problem:
        return opened, "this line is not 'key: value'; add the ':' or put the text in quotes"
    return at, f"{problem}; check indentation and quoting"


# Limits that keep a hostile file (an alias "billion laughs" bomb, a structure nested 2,000
# deep, a 5,000-digit number) from costing more than milliseconds; real campaign files are far
# inside them. Aliases are allowed (a shared send window, say) but may expand to at most
# MAX_NODES values in all.
MAX_BYTES = 1_000_000
MAX_DEPTH = 50
MAX_NODES = 10_000
MAX_SCALAR = 100_000
_LONG_NUMBER = re.compile(r"[-+]?[0-9_.eE+-]{40,}|[-+]?0[xob][0-9a-fA-F_]{40,}")
_OPENS = (yaml.MappingStartEvent, yaml.SequenceStartEvent)
_CLOSES = (yaml.MappingEndEvent, yaml.SequenceEndEvent)


def _beyond_limits(text: str) -> tuple[int, str] | None:
    """(line, reason) of the first place the document exceeds a limit, read as events.

    PyYAML's parser is iterative, so this pass is safe on any input; its composer and
    constructor (recursive, and expanding every alias) only run once this pass is clean.
    """
    loader = yaml.SafeLoader(text)
    depth = values = 0
    expanded: dict[str, int] = {}  # anchor -> values it stands for
    open_anchors: list[tuple[str | None, int]] = []
    try:
        while loader.check_event():
            event = loader.get_event()  # type: ignore[no-untyped-call]
            line = event.start_mark.line + 1
            if isinstance(event, _OPENS):
                depth, values = depth + 1, values + 1
                if depth > MAX_DEPTH:
                    return line, (f"nested more than {MAX_DEPTH} levels deep; campaign files "
                                  "need a handful: flatten it")
                open_anchors.append((event.anchor, values))
            elif isinstance(event, _CLOSES):
                depth -= 1
                anchor, first = open_anchors.pop()
                if anchor is not None:
                    expanded[anchor] = values - first + 1
            elif isinstance(event, yaml.ScalarEvent):
                values += 1
                if len(event.value) > MAX_SCALAR:
                    return line, (f"a value of {len(event.value):,} characters (at most "
                                  f"{MAX_SCALAR:,}); put long text in a template")
                if event.implicit[0] and event.style is None and \
                        _LONG_NUMBER.fullmatch(event.value):
                    return line, (f"a number of {len(event.value):,} digits; no setting needs "
                                  "more than a few: check the value (or quote it as text)")
                if event.anchor is not None:
                    expanded[event.anchor] = 1
            elif isinstance(event, yaml.AliasEvent):
                if any(anchor == event.anchor for anchor, _ in open_anchors):
                    return line, (f"the alias *{event.anchor} is inside the value it names, a "
                                  "loop; repeat the value instead")
                values += expanded.get(event.anchor or "", 1)
            if values > MAX_NODES:
                return line, (f"more than {MAX_NODES:,} values once aliases (*name) are "
                              "expanded; repeat fewer values through aliases")
    except yaml.YAMLError:
        return None  # the full parse below explains it with its location
    finally:
        loader.dispose()
    return None


def _unreadable_line(text: str) -> int | None:
    """The line of the first scalar that PyYAML cannot construct, if one can be found."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        pending = [node] if node is not None else []
        while pending:
            current = pending.pop(0)
            if isinstance(current, yaml.ScalarNode):
                try:
                    loader.construct_object(current, deep=True)
                except (ValueError, OverflowError, TypeError):
                    return int(current.start_mark.line) + 1
            elif isinstance(current, yaml.MappingNode):
                pending.extend(item for pair in current.value for item in pair)
            elif isinstance(current, yaml.SequenceNode):
                pending.extend(current.value)
    except yaml.YAMLError:
        return None
    finally:
        loader.dispose()
    return None


def load_yaml(path: Path, display: str) -> LocatedYaml | Problem:
    """Parse one YAML file; a syntax error comes back as a located Problem, not an exception."""
    text = read_regular_text(path, display, MAX_BYTES)
    if isinstance(text, Problem):
        return text
    beyond = _beyond_limits(text)
    if beyond is not None:
        return Problem(display, *beyond)
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except yaml.MarkedYAMLError as exc:
        line, what = _explain(exc, text)
        return Problem(display, line, f"YAML syntax error: {what}")
    except (ValueError, OverflowError, TypeError) as exc:
        # A value of the right shape that is not one: "2026-02-30", a tagged !!int of
        # thousands of digits, a timestamp with an hour offset of 99.
        return Problem(display, _unreadable_line(text), f"a value cannot be read ({exc}); "
                       "check dates (2026-03-31) and numbers")
    except yaml.YAMLError as exc:
        return Problem(display, None, f"YAML error: {exc}")
    finally:
        loader.dispose()
    lines: dict[Loc, int] = {}
    duplicates: list[tuple[int, str]] = []
    if node is not None:
        _record_lines(node, (), lines, duplicates)
    if duplicates:
        return Problem(display, *duplicates[0])
    return LocatedYaml(path, display, data, lines)
