"""The shape of the package: no import cycles, dependencies that point one way, small modules.

Read from the source with ``ast`` (every import, also those inside functions), so that a cycle or a
wrong-way import fails here before it fails at run time.
"""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "vqbench"

#: room -> the rooms it must not import (quantizers and datasets know nothing of the suite or the
#: reports; results is read and written by both and imports neither; reports read rows only).
FORBIDDEN = {
    "quantizers": ("suite", "reports", "results", "datasets"),
    "datasets": ("suite", "reports", "results", "quantizers"),
    "results": ("suite", "reports", "quantizers", "datasets"),
    "reports": ("suite", "quantizers", "datasets"),
}
#: Modules longer than the limit because they are one concept, with why.
LONG_ONE_CONCEPT = {
    "vqbench/quantizers/baselines.py": "each baseline's factory beside its settings, one per paper",
    "vqbench/quantizers/fsq/triton.py": "the Triton kernels of FSQ's forward, backward, encode and decode",
    "vqbench/reports/nightly.py": "one gated night: its history, verdict, summary, report and links",
    "vqbench/reports/compare.py": "one verdict per effect: figures matched, collapsed and judged",
}
MAX_LINES = 500


def _module_name(path: Path) -> tuple[str, bool]:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    is_package = parts[-1] == "__init__"
    return ".".join(parts[:-1] if is_package else parts), is_package


@cache
def import_graph() -> dict[str, set[str]]:
    """Module -> the vqbench modules it imports anywhere in its body."""
    modules = {_module_name(p)[0]: p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        is_package = path.name == "__init__.py"
        edges: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = name.split(".")[: None if is_package else -1]
                    base = base[: len(base) - node.level + 1]
                    stem = ".".join(base + ([node.module] if node.module else []))
                else:
                    stem = node.module or ""
                targets = [stem] + [f"{stem}.{a.name}" for a in node.names]
            for target in targets:
                while target and target not in modules:
                    target = target.rpartition(".")[0]
                if target and target != name:
                    edges.add(target)
        graph[name] = edges
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
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
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_cycle():
    assert _cycles(import_graph()) == []


@pytest.mark.parametrize("room", sorted(FORBIDDEN))
def test_dependencies_point_one_way(room):
    wrong = sorted(
        f"{module} imports {target}"
        for module, targets in import_graph().items()
        if module.startswith(f"vqbench.{room}.") or module == f"vqbench.{room}"
        for target in targets
        if any(
            target == f"vqbench.{other}" or target.startswith(f"vqbench.{other}.")
            for other in FORBIDDEN[room]
        )
    )
    assert wrong == []


def test_no_module_is_long_unless_it_is_one_concept():
    long = {
        str(p.relative_to(PACKAGE.parent)): n
        for p in PACKAGE.rglob("*.py")
        if (n := len(p.read_text().splitlines())) > MAX_LINES
    }
    assert {k: v for k, v in long.items() if k not in LONG_ONE_CONCEPT} == {}
