"""The folders are the architecture: `ls ldmail/` lists the packages from the ground floor up,
and each module imports only from its own floor and the ones below it.

Every module is parsed, not imported, so an import inside a function or under TYPE_CHECKING
counts as much as one at the top: it is a dependency all the same, only a later one."""

from __future__ import annotations

import ast
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "ldmail"

# Bottom to top; the ground floor is the loose modules beside the packages.
FLOORS = ("ground", "sandbox", "project", "ledger", "audience", "measurement", "content",
          "delivery", "inbox", "service", "cli")
GROUND = {"__init__.py", "__main__.py", "errors.py", "clock.py", "units.py", "states.py",
          "outside.py", "py.typed"}
# `python -m ldmail` is the console script's twin: its file is on the ground floor, its
# import of the command line is not a step up.
ENTRY = {"ldmail.__main__": "cli"}

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
    upward = sorted(edge for edge in _edges()
                    if FLOORS.index(_floor(edge[1])) > FLOORS.index(_floor(edge[0])))
    assert not upward, (
        f"imports from a higher floor (order: {' < '.join(FLOORS)}); move what is imported "
        f"down, or the importer up:{_listed(upward)}")


def test_no_import_cycle_between_modules() -> None:
    """Not even inside one package: a module that needs another which needs it back is one
    module in two files (graph and the SMTP transport once were)."""
    graph: dict[str, set[str]] = {}
    for importer, imported in _edges():
        graph.setdefault(importer, set()).add(imported)
    try:
        tuple(TopologicalSorter(graph).static_order())
    except CycleError as exc:
        raise AssertionError(f"import cycle: {' -> '.join(exc.args[1])}") from None


def _classes_and_calls() -> tuple[list[tuple[str, ast.ClassDef]], list[tuple[str, str]]]:
    """Every class with the module it is in; every call written as `a.b(...)` or
    `a.b.c(...)`, as its dotted text, with its module."""
    classes, calls = [], []
    for module, (path, _) in _modules().items():
        for node in ast.walk(ast.parse(path.read_text("utf-8"), str(path))):
            if isinstance(node, ast.ClassDef):
                classes.append((module, node))
            elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                calls.append((module, ast.unparse(node.func)))
    return classes, calls


def test_every_exception_class_is_in_errors() -> None:
    """One place lists what can go wrong, so the CLI's one printer knows every error."""
    exceptions = {"Exception", "ValueError", "LdmailError", "RuntimeError", "OSError"}
    outside = [f"{module}.{node.name}" for module, node in _classes_and_calls()[0]
               if module != "ldmail.errors" and any(
                   ast.unparse(base).split(".")[-1] in exceptions | {"Error"} or
                   ast.unparse(base).endswith("Error") for base in node.bases)]
    assert not outside, f"exception classes outside ldmail/errors.py: {outside}"


def test_only_the_clock_reads_the_wall_clock() -> None:
    """`--now` moves the whole calendar only if nothing else asks the machine what time it is
    (time.monotonic, for durations, is not the wall clock)."""
    wall = {"datetime.now", "datetime.utcnow", "date.today", "time.time", "datetime.today"}
    reads = sorted({(module, call) for module, call in _classes_and_calls()[1]
                    if module != "ldmail.clock" and call in wall})
    assert not reads, f"wall-clock reads outside ldmail/clock.py: {reads}"


# The command line only parses, calls the core and prints: each command and printer fits on a
# screen, and each command group's module stays small enough to read whole.
CLI = PACKAGE / "cli"
LONGEST_FUNCTION = 60
LONGEST_MODULE = 250


def test_no_function_of_the_command_line_is_longer_than_a_screen() -> None:
    """Counted from the first decorator to the last line, nested functions and methods too."""
    long = []
    for path in sorted(CLI.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text("utf-8"), str(path))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
                lines = (node.end_lineno or node.lineno) - first + 1
                if lines > LONGEST_FUNCTION:
                    long.append(f"{path.name}:{first} {node.name} ({lines} lines)")
    assert not long, (f"functions in ldmail/cli/ over {LONGEST_FUNCTION} lines (split them into "
                      f"named helpers, or move the rule they hold into the core): {long}")


def test_no_module_of_the_command_line_is_longer_than_a_command_group_needs() -> None:
    long = [f"{path.name} ({lines} lines)" for path in sorted(CLI.glob("*.py"))
            if (lines := len(path.read_text("utf-8").splitlines())) > LONGEST_MODULE]
    assert not long, (f"modules in ldmail/cli/ over {LONGEST_MODULE} lines (one module per "
                      f"command group): {long}")
