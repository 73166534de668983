"""Imports flow one way (DESIGN §2): no module of src/ imports itself through a cycle, the core
vocabulary imports nothing above it, and only the API and the CLI import the engine.

Every import statement counts, also those inside functions and under TYPE_CHECKING: a cycle that
only type checking sees is still a cycle in the design."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"

VOCABULARY = {f"asrhub.core.{m}" for m in ("audio", "errors", "events", "commands", "config", "work", "channel",
                                                 "language", "resources")}  # resources: a leaf (where packaged files are)
ENGINE = {f"asrhub.core.{m}" for m in ("service", "scheduler", "failover", "hub", "reload", "metrics", "admission",
                                       "session", "transcribe", "streams")}
ENGINE_USERS = ("asrhub.api", "asrhub.cli", "asrhub.core", "asrhub.cluster")


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


def test_the_core_vocabulary_imports_only_the_vocabulary() -> None:
    graph = import_graph()
    assert VOCABULARY <= set(graph)
    bad = {m: sorted(graph[m] - VOCABULARY) for m in VOCABULARY if graph[m] - VOCABULARY}
    assert bad == {}


def test_only_the_api_and_the_cli_import_the_engine() -> None:
    graph = import_graph()
    bad = {m: sorted(deps & ENGINE) for m, deps in graph.items()
           if deps & ENGINE and not m.startswith(ENGINE_USERS)}
    assert bad == {}
