"""The store's modules import one way: exporters and importers take a store, the store's parts
import no file formats."""

from __future__ import annotations

import ast
from pathlib import Path

import vqbench.results

RESULTS = Path(vqbench.results.__file__).parent
CORE = ("_connection", "_errors", "_ownership", "_reading", "_writing", "_renames", "_frames", "_schema")
FILE_FORMATS = ("_export", "_importers")


def _imports(module: str) -> set[str]:
    tree = ast.parse((RESULTS / f"{module}.py").read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("vqbench.results."):
            found.add(node.module.rsplit(".", 1)[1])
        elif isinstance(node, ast.Import):
            found |= {a.name.rsplit(".", 1)[1] for a in node.names if a.name.startswith("vqbench.results.")}
    return found


def test_the_store_parts_import_no_file_formats():
    for module in CORE:
        assert not _imports(module) & set(FILE_FORMATS), module


def test_nothing_below_the_store_imports_it():
    for path in RESULTS.glob("_*.py"):
        if path.stem not in ("_store", "__init__"):
            assert "_store" not in _imports(path.stem), path.name


def test_results_modules_have_no_import_cycle():
    graph = {p.stem: _imports(p.stem) for p in RESULTS.glob("*.py") if p.stem != "__init__"}

    def visit(node, trail):
        assert node not in trail, " -> ".join([*trail, node])
        for nxt in graph.get(node, ()):
            visit(nxt, [*trail, node])

    for module in graph:
        visit(module, [])


def test_store_modules_stay_small():
    for path in RESULTS.glob("*.py"):
        assert len(path.read_text().splitlines()) < 500, path.name
