"""The result store: an SQLite file of runs and their tidy rows, and the ways to open one.

:class:`ResultStore` is assembled from its parts: the file and its connection
(``_connection``), the read side (``_reading``) and the write side (``_writing``), plus export to
and import from files (``_export``, ``_importers``), which take a store and import none of this.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vqbench.results._connection import DEFAULT_STORE, STORE_ENV, default_store_path
from vqbench.results._errors import RunBusyError, StoreError
from vqbench.results._export import export_run
from vqbench.results._importers import import_file as _import_file
from vqbench.results._writing import StoreWriting


class ResultStore(StoreWriting):
    """Runs and their rows in an SQLite file (default ``.vqbench/results.sqlite``; ``$VQBENCH_STORE``).

    ``readonly=True`` opens an existing store for reading only (reports); a missing file is then
    an error instead of a new store. A new store file is created at the first write (a run that
    starts, an import), so a command that refuses its input leaves no file behind; it appears
    whole (built beside and linked into place), so another process never sees it half made.
    """

    def export(self, run_id: str, path: str | Path) -> Path:
        """Write one run to ``path``: ``.json`` (run and rows), ``.csv`` or ``.parquet`` (rows)."""
        return export_run(self, run_id, path)

    def import_file(self, path: str | Path, *, new_id: bool = False) -> str:
        """Import a vqbench JSON export or a pytest-benchmark JSON file; returns the run id.

        An export whose run id is already in the store is refused, unless the same file was
        imported before (then nothing changes); ``new_id=True`` stores it under a new id."""
        return _import_file(self, path, new_id=new_id)


def open_store(store: ResultStore | str | Path | None = None, *, readonly: bool = False) -> ResultStore:
    """A store from an existing object, a path, or the default location."""
    if isinstance(store, ResultStore):
        return store
    return ResultStore(store, readonly=readonly)


def load_results(run_id: str | None = None, store: ResultStore | str | Path | None = None) -> Any:
    """Stored rows as a pandas DataFrame: one run (an id, a unique prefix or "latest"), or all for None.

    Renamed metrics come under their new names."""
    owned = not isinstance(store, ResultStore)
    st = open_store(store, readonly=True)
    try:
        if run_id is not None:
            run_id = st.resolve_run(run_id)
        return st.rows(run_id)
    finally:
        if owned:
            st.close()


__all__ = [
    "DEFAULT_STORE",
    "STORE_ENV",
    "ResultStore",
    "RunBusyError",
    "StoreError",
    "default_store_path",
    "load_results",
    "open_store",
]
