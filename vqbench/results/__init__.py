"""Results: the tidy row schema and the store that the suite writes and the reports read.

One row per measured figure (see ``ROW_COLUMNS``); runs carry the environment fingerprint.
The default store is an SQLite file, ``.vqbench/results.sqlite`` in the working folder
(``$VQBENCH_STORE`` or an explicit path overrides it).
"""

from __future__ import annotations

from vqbench.results._environment import environment_fingerprint, environment_hash
from vqbench.results._export import read_export
from vqbench.results._importers import import_file, import_pytest_benchmark
from vqbench.results._samples import decode_samples, encode_samples
from vqbench.results._schema import ROW_COLUMNS, ROW_STATUSES, RUN_COLUMNS, RUN_STATUSES
from vqbench.results._store import (
    DEFAULT_STORE,
    STORE_ENV,
    ResultStore,
    RunBusyError,
    StoreError,
    default_store_path,
    load_results,
    open_store,
)

__all__ = [
    "DEFAULT_STORE",
    "ROW_COLUMNS",
    "ROW_STATUSES",
    "RUN_COLUMNS",
    "RUN_STATUSES",
    "STORE_ENV",
    "ResultStore",
    "RunBusyError",
    "StoreError",
    "decode_samples",
    "default_store_path",
    "encode_samples",
    "environment_fingerprint",
    "environment_hash",
    "import_file",
    "import_pytest_benchmark",
    "load_results",
    "open_store",
    "read_export",
]
