"""The modules' imports form no cycle through the command line: `services/cli.py` (the
`hookhub` command) imports `services/stack.py` (`hookhub run`), never the other way round,
not even inside a function, where an import cycle hides until the day both load first."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("services", "shared")


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, modules: set[str]) -> set[str]:
    """Every module of ours `path` imports, at any depth of its code (a function's lazy
    imports too), with the packages an import loads on the way."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # `from a.b import c`: a.b.c when c is a module, else a name of a.b.
            names = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
        for name in names:
            parts = name.split(".")
            found |= {".".join(parts[:n]) for n in range(1, len(parts) + 1)} & modules
    return found


def _graph() -> dict[str, set[str]]:
    paths = [path for package in PACKAGES for path in (ROOT / package).rglob("*.py")]
    modules = {_module_name(path) for path in paths}
    return {_module_name(path): _imports(path, modules) for path in paths}


def _reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    seen: set[str] = set()
    todo = [start]
    while todo:
        for found in graph[todo.pop()] - seen:
            seen.add(found)
            todo.append(found)
    return seen


def test_the_stack_does_not_import_the_command_line() -> None:
    graph = _graph()
    assert "services.stack" in graph["services.cli"]  # `hookhub run` starts the stack
    assert "services.cli" not in _reachable(graph, "services.stack")


def test_the_command_line_and_the_stack_are_on_no_import_cycle() -> None:
    graph = _graph()
    for module in ("services.cli", "services.stack"):
        assert module not in _reachable(graph, module), module
