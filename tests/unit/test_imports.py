"""Imports flow one way (DESIGN §1-2): no module of src/ imports itself through a cycle, and every floor
imports only the floors below it, with no exemptions:

    core  <  store, operators, providers, wire  <  engine  <  cluster  <  hub  <  api  <  cli
    core, wire  <  client

Every import statement counts, also those inside functions and under TYPE_CHECKING: a cycle that
only type checking sees is still a cycle in the design."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"

BELOW: dict[str, set[str]] = {
    "core": set(),
    "store": {"core"},
    "operators": {"core"},
    "providers": {"core"},
    "wire": {"core"},
    "client": {"core", "wire"},
    "engine": {"core", "store", "operators", "providers", "wire"},
    "cluster": {"core", "store", "operators", "providers", "wire", "engine"},
    "hub": {"core", "store", "operators", "providers", "wire", "engine", "cluster"},
    "api": {"core", "store", "operators", "providers", "wire", "engine", "cluster", "hub", "formats"},
    "formats": {"core"},
    "cli": {"core", "store", "operators", "providers", "wire", "engine", "cluster", "hub", "api", "formats"},
    "__main__": {"cli"},
    "": {"core"},  # the package itself: its version
}


def floor(module: str) -> str:
    """`asrhub.engine.service` -> `engine`; `asrhub.hub` -> `hub`; `asrhub` -> ``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def module_name(path: Path) -> str:
    parts = ["asrhub", *path.relative_to(SRC).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    modules = {module_name(p): p for p in SRC.rglob("*.py") if "gen" not in p.relative_to(SRC).parts}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        deps: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                candidates = [target, *(f"{target}.{a.name}" for a in node.names)]
            elif isinstance(node, ast.Import):
                candidates = [a.name for a in node.names]
            else:
                continue
            deps |= {c for c in candidates if c in modules and c != name}
        graph[name] = deps
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_import_graph_has_no_cycle() -> None:
    assert cycles(import_graph()) == []


def test_the_cycle_finder_finds_cycles() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_every_module_is_on_a_known_floor() -> None:
    assert {floor(m) for m in import_graph()} <= set(BELOW)


def arrows_up(graph: dict[str, set[str]]) -> dict[str, list[str]]:
    """Each module's imports of a module on its own floor's level or above (other than its own floor)."""
    bad = {m: sorted(d for d in deps if floor(d) != floor(m) and floor(d) not in BELOW[floor(m)])
           for m, deps in graph.items()}
    return {m: d for m, d in bad.items() if d}


def test_every_import_runs_down_a_floor() -> None:
    assert arrows_up(import_graph()) == {}


def test_the_floor_check_sees_an_arrow_up() -> None:
    """The rule itself, on a made-up graph: core importing the engine is caught."""
    graph = {"asrhub.core.audio": {"asrhub.engine.service"}, "asrhub.engine.service": {"asrhub.core.audio"},
             "asrhub.operators.turn_model": {"asrhub.providers.base"}}
    assert arrows_up(graph) == {"asrhub.core.audio": ["asrhub.engine.service"],
                                "asrhub.operators.turn_model": ["asrhub.providers.base"]}
