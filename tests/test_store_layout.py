"""The store's modules import one way: exporters and importers take a store, the store's parts
import no file formats (cycles and module sizes: tests/test_layout.py)."""

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
