"""The folders are the architecture: `ls ldmail/` lists the packages from the ground floor up,
and each module imports only from its own floor and the ones below it.

Every module is parsed, not imported, so an import inside a function or under TYPE_CHECKING
counts as much as one at the top: it is a dependency all the same, only a later one. Only
the ledger's package holds SQL."""

from __future__ import annotations

import ast
import re
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


# The start of an SQL statement as ldmail writes one (keywords in capitals, at the start of
# the text, of a line, or after a semicolon or parenthesis), so that English ("update the
# export", "select a campaign") and IMAP's SELECT or CREATE commands never match.
SQL = re.compile(
    r"(?:^|[;(])\s*(?:SELECT\s.+?\sFROM\s|INSERT\s+(?:OR\s+[A-Z]+\s+)?INTO\s"
    r"|UPDATE\s+[\w.]+\s+SET\s|DELETE\s+FROM\s|ALTER\s+TABLE\s|PRAGMA\s+\w+"
    r"|(?:CREATE|DROP)\s+(?:TEMP\s+|TEMPORARY\s+|UNIQUE\s+)?(?:TABLE|INDEX|VIEW|TRIGGER)\s"
    r"|WITH\s+(?:RECURSIVE\s+)?\w+\s+AS\s*\(|BEGIN\s+(?:IMMEDIATE|EXCLUSIVE)\b"
    r"|SAVEPOINT\s+\w+)", re.DOTALL | re.MULTILINE)


def _sql(path: Path) -> list[str]:
    """The string constants (an f-string's placeholders taken as a name) that hold SQL."""
    found = []
    nodes = list(ast.walk(ast.parse(path.read_text("utf-8"), str(path))))
    pieces = {id(part) for node in nodes if isinstance(node, ast.JoinedStr)
              for part in node.values}
    for node in nodes:
        if isinstance(node, ast.JoinedStr):
            text = "".join(str(part.value) if isinstance(part, ast.Constant) else "x"
                           for part in node.values)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and \
                id(node) not in pieces:
            text = node.value
        else:
            continue
        if SQL.search(text):
            found.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno}: "
                         f"{' '.join(text.split())[:70]}")
    return found


def test_the_sql_pattern_tells_statements_from_words() -> None:
    statements = ["SELECT email FROM staged_people", "\nINSERT OR IGNORE INTO temp.exits (a)",
                  "UPDATE enrolments SET state = ?", " DELETE FROM main.meta WHERE key = ?",
                  "CREATE TEMP TABLE vanished (id INTEGER PRIMARY KEY);",
                  "DROP INDEX IF EXISTS x.staged_people_email", "PRAGMA busy_timeout = 1",
                  "BEGIN IMMEDIATE", "x; CREATE UNIQUE INDEX k ON t (a)"]
    words = ["update the export, then select a campaign from the list", "SELECT", "CREATE",
             "UID SEARCH", "Select the people from the export", "drop table salt from"]
    assert [text for text in statements if not SQL.search(text)] == []
    assert [text for text in words if SQL.search(text)] == []


def test_no_sql_outside_the_ledger() -> None:
    """The ledger is the one owner of what it stores: every statement on its tables is an
    operation of ldmail/ledger/, and other modules pass it plain data."""
    ledger = PACKAGE / "ledger"
    assert _sql(ledger / "enrolments.py"), "the pattern no longer finds the sync's statements"
    outside = [found for path in sorted(PACKAGE.rglob("*.py")) if ledger not in path.parents
               for found in _sql(path)]
    assert not outside, "SQL outside ldmail/ledger/ (move it into a ledger operation):" + \
        "".join(f"\n  {found}" for found in outside)


# A function a reader can hold fits on a screen; the command line only parses, calls the core
# and prints, so each command group's module stays small enough to read whole.
CLI = PACKAGE / "cli"
LONGEST_FUNCTION = 60
LONGEST_MODULE = 250


def test_no_function_is_longer_than_a_screen() -> None:
    """Counted from the first decorator to the last line, nested functions and methods too."""
    long = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text("utf-8"), str(path))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
                lines = (node.end_lineno or node.lineno) - first + 1
                if lines > LONGEST_FUNCTION:
                    long.append(f"{path.relative_to(PACKAGE.parent)}:{first} {node.name} "
                                f"({lines} lines)")
    assert not long, (f"functions over {LONGEST_FUNCTION} lines (split them into named "
                      f"helpers; in the command line, move the rule they hold into the core): "
                      f"{long}")


def test_no_module_of_the_command_line_is_longer_than_a_command_group_needs() -> None:
    long = [f"{path.name} ({lines} lines)" for path in sorted(CLI.glob("*.py"))
            if (lines := len(path.read_text("utf-8").splitlines())) > LONGEST_MODULE]
    assert not long, (f"modules in ldmail/cli/ over {LONGEST_MODULE} lines (one module per "
                      f"command group): {long}")


# The tests mirror the code: each core module has a unit test module of the same name in the
# same place under tests/unit/, which runs in-process; whatever needs a process, a socket, a
# server or the command line lives in tests/e2e/.
UNIT = PACKAGE.parent / "tests" / "unit"
OUT_OF_PROCESS = ("subprocess", "socketserver", "http.server", "asyncio", "aiosmtpd",
                  "multiprocessing", "typer.testing", "ldmail.cli", "tests.e2e")
# Modules a unit test may import for their names (socket.gethostname, smtplib's exceptions),
# never to open a connection.
CONNECTING = re.compile(r"\b(socket\.(socket|create_connection|create_server)|smtplib\.SMTP"
                        r"(_SSL)?|imaplib\.IMAP4(_SSL)?|httpx\.HTTPTransport)\(")


def test_every_core_module_has_a_unit_test_module() -> None:
    missing = []
    for path in sorted(PACKAGE.rglob("*.py")):
        inside = path.relative_to(PACKAGE)
        if inside.parts[0] == "cli" or path.name in ("__init__.py", "__main__.py"):
            continue  # the command line is tested through itself, in tests/e2e/
        mirror = UNIT / inside.parent / f"test_{path.name}"
        if not mirror.exists():
            missing.append(f"ldmail/{inside} -> {mirror.relative_to(UNIT.parent.parent)}")
    assert not missing, f"core modules without their unit test module: {missing}"


def _imported(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text("utf-8"), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_unit_tests_stay_in_process() -> None:
    """No subprocess, socket, server or command line in tests/unit/ (relative imports reach
    only tests/unit/ itself, whose folders hold no such helper)."""
    found = [f"{path.relative_to(UNIT.parent.parent)}: {name}"
             for path in sorted(UNIT.rglob("*.py")) for name in sorted(_imported(path))
             if any(name == banned or name.startswith(banned + ".")
                    for banned in OUT_OF_PROCESS)]
    found += [f"{path.relative_to(UNIT.parent.parent)}: {match[0]}"
              for path in sorted(UNIT.rglob("*.py"))
              for match in CONNECTING.finditer(path.read_text("utf-8"))]
    assert not found, f"unit tests that leave the process (move them to tests/e2e/): {found}"
