"""The tree's imports form no cycle, `shared/` imports nothing of `services/`, and the layers
of `shared/` hold: the kernel imports nothing of the domain or the providers, the domain
nothing of the providers (docs/development.md, Layers).

Every import counts, at any depth of the code: a function's lazy import and one under
`TYPE_CHECKING` too, where a cycle hides until the day the modules load in another order
(or a type checker follows them). The packages an import loads on the way count as well,
but for the importer's own (they are loaded before it runs). The command line gets its own
check: `services/cli.py` (the `hookhub` command) imports `services/stack.py` (`hookhub
run`), never the other way round."""

from __future__ import annotations

import ast
import functools
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("services", "shared", "bench", "tests")


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(source: str, module: str, is_package: bool, modules: set[str]) -> set[str]:
    """Every module of `modules` that `module` imports: the one each import names (`from
    a.b import c` is a.b.c when c is a module, else a.b; relative imports made absolute)
    and the packages it loads on the way, but for `module`'s own (loaded before it runs)."""
    own_parts = module.split(".")
    own = {".".join(own_parts[:n]) for n in range(1, len(own_parts) + 1)}
    package = own_parts if is_package else own_parts[:-1]
    found: set[str] = set()
    for node in ast.walk(ast.parse(source, module)):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package[: len(package) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            names = [f"{base}.{alias.name}" for alias in node.names]
        for name in names:
            parts = name.split(".")
            prefixes = [".".join(parts[:n]) for n in range(len(parts), 0, -1)]
            named = next((prefix for prefix in prefixes if prefix in modules), None)
            if named is not None:
                found |= {named} | ({prefix for prefix in prefixes if prefix in modules} - own)
    return found - {module}


@functools.cache  # the tree's ~700 files parsed once for the module's tests
def _graph() -> dict[str, set[str]]:
    paths = [path for package in PACKAGES for path in (ROOT / package).rglob("*.py")]
    modules = {_module_name(path) for path in paths}
    return {
        _module_name(path): _imports(
            path.read_text(), _module_name(path), path.name == "__init__.py", modules
        )
        for path in paths
    }


def _cycles(graph: dict[str, set[str]]) -> list[str]:
    """One cycle through each group of modules that import each other (each strongly
    connected component of the graph, by Tarjan's algorithm), as a path a -> ... -> a,
    with the group's other modules after it."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    groups: list[set[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        for imported in sorted(graph[module]):
            if imported not in index:
                visit(imported)
                low[module] = min(low[module], low[imported])
            elif imported in stack:
                low[module] = min(low[module], index[imported])
        if low[module] == index[module]:
            group = set(stack[stack.index(module) :])
            del stack[stack.index(module) :]
            if len(group) > 1:
                groups.append(group)

    for module in sorted(graph):
        if module not in index:
            visit(module)
    named = []
    for group in groups:
        path = _way_back(graph, group)
        others = sorted(group - set(path))
        named.append(" -> ".join(path) + (f" (with {', '.join(others)})" if others else ""))
    return named


def _way_back(graph: dict[str, set[str]], group: set[str]) -> list[str]:
    """The shortest way from the group's first module back to itself, inside the group."""
    start = min(group)
    came_from: dict[str, str] = {}
    todo = [start]
    while todo:
        module = todo.pop(0)
        for imported in sorted(graph[module] & group):
            if imported == start:
                path = [module]
                while path[-1] != start:
                    path.append(came_from[path[-1]])
                return [*reversed(path), start]
            if imported not in came_from:
                came_from[imported] = module
                todo.append(imported)
    raise AssertionError(f"no way back to {start} in {sorted(group)}")


def _reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    seen: set[str] = set()
    todo = [start]
    while todo:
        for found in graph[todo.pop()] - seen:
            seen.add(found)
            todo.append(found)
    return seen


def test_no_module_is_on_an_import_cycle() -> None:
    cycles = _cycles(_graph())
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def test_shared_imports_nothing_of_services() -> None:
    climbing = sorted(
        f"{module} -> {imported}"
        for module, imports in _graph().items()
        if module.partition(".")[0] == "shared"
        for imported in imports
        if imported.partition(".")[0] == "services"
    )
    assert not climbing, climbing


# What each layer may not import: the layers above it, and the services.
FORBIDDEN = {
    "shared.kernel": ("shared.domain", "shared.providers", "services"),
    "shared.domain": ("shared.providers", "services"),
}


def _within(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def _layer_breaches(graph: dict[str, set[str]]) -> list[str]:
    """Every import of a module by one of a layer below it, as `importer -> imported`."""
    return sorted(
        f"{module} -> {imported}"
        for module, imports in graph.items()
        for layer, above in FORBIDDEN.items()
        if _within(module, layer)
        for imported in imports
        if any(_within(imported, package) for package in above)
    )


def test_the_layers_import_only_downwards() -> None:
    graph = _graph()
    # The layers are there to be held: a rename leaving them empty passes nothing.
    for layer in FORBIDDEN:
        assert any(_within(module, layer) for module in graph), f"no module under {layer}"
    breaches = _layer_breaches(graph)
    assert not breaches, "imports against the layers:\n" + "\n".join(breaches)


def test_a_layer_breach_is_found() -> None:
    """What the test above relies on: each forbidden direction is found, lazy and under
    TYPE_CHECKING too (the graph's edges), and the allowed ones are not."""
    graph = {
        "shared.kernel.mongo": {"shared.domain.tenancy"},
        "shared.kernel.http.app": {"shared.domain", "shared.kernel.runtime"},
        "shared.kernel.envelopes": {"shared.providers.chat"},
        "shared.kernel.runtime": {"services.cli"},
        "shared.domain.tokens": {"shared.providers", "shared.kernel.kafka"},
        "shared.domain.audit": {"shared.kernel.http.trail", "shared.domain.tenancy"},
        "shared.providers.apps": {"shared.domain.oauth.tokens", "shared.kernel.mongo"},
        "shared.kernelish": {"shared.providers"},  # not the kernel: a name that begins alike
    }
    assert _layer_breaches(graph) == [
        "shared.domain.tokens -> shared.providers",
        "shared.kernel.envelopes -> shared.providers.chat",
        "shared.kernel.http.app -> shared.domain",
        "shared.kernel.mongo -> shared.domain.tenancy",
        "shared.kernel.runtime -> services.cli",
    ]


def test_every_kind_of_import_is_an_edge() -> None:
    """What the tests above rely on: a lazy import, one under TYPE_CHECKING, a package an
    import loads on the way, a relative import; a name imported from a module is the module;
    the cycles found and named."""
    modules = {"p", "p.a", "p.b", "p.c", "p.d", "q", "q.e", "q.e.f", "r", "s", "s.t"}
    source = """
from typing import TYPE_CHECKING
from s import t
from .b import thing
if TYPE_CHECKING:
    from p.c import Thing
def lazy():
    import r
    from q.e import f
import p.d as d
"""
    every = {"p.b", "p.c", "p.d", "q", "q.e", "q.e.f", "r", "s", "s.t"}
    assert _imports(source, "p.a", False, modules) == every
    # Its own package is loaded before it runs: a cycle only when imported by name.
    assert "p" in _imports("import p\n", "p.a", False, modules)
    assert "p" in _imports("from p import name\n", "p.a", False, modules)
    assert "p" in _imports("from . import name\n", "p.a", False, modules)
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set(), "e": {"e2"}, "e2": {"e"}}
    assert sorted(_cycles(graph)) == ["a -> b -> c -> a", "e -> e2 -> e"]
    graph = {"a": {"b", "c"}, "b": {"a"}, "c": {"a"}}
    assert _cycles(graph) == ["a -> b -> a (with c)"]


def test_the_stack_does_not_import_the_command_line() -> None:
    graph = _graph()
    assert "services.stack" in graph["services.cli"]  # `hookhub run` starts the stack
    assert "services.cli" not in _reachable(graph, "services.stack")
