"""The folders are the architecture: `ls ldmail/` lists the packages from the ground floor up,
and each module imports only from its own floor and the ones below it.

Every module is parsed, not imported, so an import inside a function or under TYPE_CHECKING
counts as much as one at the top: it is a dependency all the same, only a later one."""

from __future__ import annotations

import ast
from itertools import pairwise
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "ldmail"

# Bottom to top; the ground floor is the loose modules beside the packages.
FLOORS = ("ground", "sandbox", "project", "ledger", "audience", "content", "measurement",
          "delivery", "inbox", "cli")
GROUND = {"__init__.py", "__main__.py", "errors.py", "clock.py", "units.py", "outside.py",
          "py.typed"}
# `python -m ldmail` is the console script's twin: its file is on the ground floor, its
# import of the command line is not a step up.
ENTRY = {"ldmail.__main__": "cli"}

# Imports that go up a floor today and need a design decision before they can go. A new one
# fails the test; so does one that is gone, so that this list only ever shrinks.
KNOWN_EDGES = {
    # upcoming() skips a step by its message state, and the states are the ledger's: either
    # the state vocabulary moves below project or upcoming() moves above the ledger.
    ("ldmail.project.schedule", "ldmail.ledger.states"),
    # validate warns about a campaign too small to show its hypothesis (power before
    # sending); measurement never imports content, so the two floors could swap.
    ("ldmail.content.validate", "ldmail.measurement.sensitivity"),
    # `ldmail run` reads the inbox between sends: the service drives both delivery and inbox
    # and belongs above them.
    ("ldmail.delivery.service", "ldmail.inbox"),
}

Edge = tuple[str, str]


def _modules() -> dict[str, tuple[Path, bool]]:
    """Every module's dotted name, its file, and whether it is a package's __init__."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        found[".".join(parts[:-1] if is_package else parts)] = (path, is_package)
    return found


def _floor(module: str) -> str:
    if module in ENTRY:
        return ENTRY[module]
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in FLOORS else "ground"


def _edges() -> set[Edge]:
    """(importer, imported) for every import of one ldmail module by another."""
    modules = _modules()
    edges = set()
    for module, (path, is_package) in modules.items():
        here = module.split(".") if is_package else module.split(".")[:-1]
        for node in ast.walk(ast.parse(path.read_text("utf-8"), str(path))):
            targets = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = here[:len(here) - node.level + 1] if node.level else []
                source = ".".join(base + ([node.module] if node.module else []))
                # `from .. import outside` imports a module, `from .. import __version__` a name
                targets = [f"{source}.{alias.name}" if f"{source}.{alias.name}" in modules
                           else source for alias in node.names]
            edges |= {(module, target) for target in targets
                      if target.split(".")[0] == "ldmail" and target != module}
    return edges


def _listed(edges: list[Edge]) -> str:
    return "".join(f"\n  {importer} -> {imported}" for importer, imported in edges)


def test_the_folder_lists_the_floors() -> None:
    found = {path.name for path in PACKAGE.iterdir() if path.name != "__pycache__"}
    assert found == set(FLOORS[1:]) | GROUND, (
        f"ldmail/ should hold only the packages {', '.join(FLOORS[1:])} and the ground "
        f"floor's {', '.join(sorted(GROUND))}; unexpected: {sorted(found - set(FLOORS) - GROUND)}"
        f", missing: {sorted((set(FLOORS[1:]) | GROUND) - found)}")


def test_no_module_imports_from_a_floor_above_its_own() -> None:
    upward = sorted(edge for edge in _edges() - KNOWN_EDGES
                    if FLOORS.index(_floor(edge[1])) > FLOORS.index(_floor(edge[0])))
    assert not upward, (
        f"imports from a higher floor (order: {' < '.join(FLOORS)}); move what is imported "
        f"down, or the importer up:{_listed(upward)}")


def test_no_import_cycle_between_packages() -> None:
    through: dict[Edge, Edge] = {}  # floor -> floor, and one module edge that makes it
    for importer, imported in sorted(_edges() - KNOWN_EDGES):
        pair = (_floor(importer), _floor(imported))
        if pair[0] != pair[1]:
            through.setdefault(pair, (importer, imported))
    above: dict[str, set[str]] = {floor: set() for floor in FLOORS}
    for low, high in through:
        above[low].add(high)

    def cycle_from(start: str, path: list[str]) -> list[str] | None:
        for following in sorted(above[path[-1]]):
            if following == start:
                return [*path, start]
            if following not in path:
                found = cycle_from(start, [*path, following])
                if found:
                    return found
        return None

    for floor in FLOORS:
        cycle = cycle_from(floor, [floor])
        assert cycle is None, (
            f"import cycle {' -> '.join(cycle)}, through:"
            f"{_listed([through[pair] for pair in pairwise(cycle)])}")


def test_every_known_edge_is_still_there() -> None:
    gone = sorted(KNOWN_EDGES - _edges())
    assert not gone, f"no longer imported; take these out of KNOWN_EDGES:{_listed(gone)}"
