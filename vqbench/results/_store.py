"""The result store: an SQLite file of runs and their tidy rows.

Every write is one transaction, so a process killed mid-run leaves whole rows (whole
``write_rows`` batches) only. A file that is not a vqbench store, is corrupt, or cannot be written
is reported when the store is opened, before anything runs, and is never modified.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import sqlite3
import threading
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from vqbench.results._environment import environment_hash
from vqbench.results._frames import rows_frame, runs_frame
from vqbench.results._schema import (
    ROW_COLUMNS,
    RUN_COLUMNS,
    RUN_STATUSES,
    canonical_json,
    normalize_row,
    utc_now,
)

DEFAULT_STORE = Path(".vqbench") / "results.sqlite"
STORE_ENV = "VQBENCH_STORE"
APPLICATION_ID = 0x76716231  # "vqb1": marks an SQLite file as a vqbench store
SCHEMA_VERSION = 1
_SQLITE_HEADER = b"SQLite format 3\x00"


class StoreError(RuntimeError):
    """The store file cannot be used: not a vqbench store, corrupt, unwritable or too new."""


def default_store_path() -> Path:
    """``$VQBENCH_STORE`` when set, else ``.vqbench/results.sqlite`` in the working folder."""
    env = os.environ.get(STORE_ENV, "").strip()
    return Path(env).expanduser() if env else DEFAULT_STORE


def _schema_sql() -> list[str]:
    runs = ", ".join(f"{k} {v}" for k, v in RUN_COLUMNS.items())
    rows = ", ".join(f"{k} {v}" for k, v in ROW_COLUMNS.items())
    return [
        f"CREATE TABLE IF NOT EXISTS runs ({runs})",
        f"CREATE TABLE IF NOT EXISTS results (row_id INTEGER PRIMARY KEY AUTOINCREMENT, {rows})",
        "CREATE INDEX IF NOT EXISTS results_run ON results (run_id, cell_id)",
        "CREATE INDEX IF NOT EXISTS results_metric ON results (quantizer, metric)",
        f"PRAGMA application_id = {APPLICATION_ID}",
        f"PRAGMA user_version = {SCHEMA_VERSION}",
    ]


def _owner() -> dict:
    """The process that runs a run: its pid and host, to tell a died run from a running one."""
    return {"pid": os.getpid(), "host": socket.gethostname()}


def _owner_alive(config: dict) -> bool:
    """False when the run's process is known to be gone: same host, no such pid. Runs started
    elsewhere, or before owners were recorded, count as alive (nothing here can tell)."""
    owner = config.get("owner") if isinstance(config, dict) else None
    if not isinstance(owner, dict) or owner.get("host") != socket.gethostname():
        return True
    pid = owner.get("pid")
    if not isinstance(pid, int) or pid <= 0:
        return True
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie (killed, not yet reaped by its parent) is gone too
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[-1].split()[0] != "Z"
    except OSError:
        return True


def _new_run_id() -> str:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    return f"{stamp}-{secrets.token_hex(3)}"


class ResultStore:
    """Runs and their rows in an SQLite file (default ``.vqbench/results.sqlite``; ``$VQBENCH_STORE``).

    ``readonly=True`` opens an existing store for reading only (reports); a missing file is then
    an error instead of a new store.
    """

    def __init__(self, path: str | Path | None = None, *, readonly: bool = False) -> None:
        self.path = Path(path).expanduser() if path is not None else default_store_path()
        self.readonly = readonly
        self.current_run: str | None = None
        self._lock = threading.Lock()
        self.created = not self.path.exists()
        self._check_file()
        self._conn = self._connect()

    # -- opening -----------------------------------------------------------------------------
    def _check_file(self) -> None:
        """Validate the file read-only before any connection that could write to it."""
        path = self.path
        if path.exists() and not path.is_file():
            raise StoreError(f"result store {path} is not a file (expected an SQLite file path)")
        if not path.exists():
            if self.readonly:
                raise FileNotFoundError(
                    f"no result store at {path}; run `vqbench run` first or pass --store PATH"
                )
            self._check_creatable()
            return
        if path.stat().st_size == 0:
            if not self.readonly:
                self._check_writable()
            return
        with open(path, "rb") as fh:
            header = fh.read(len(_SQLITE_HEADER))
        if header != _SQLITE_HEADER:
            raise StoreError(
                f"result store {path} is not an SQLite database (corrupt or another file); "
                "it was left untouched: move it away or pass another --store path"
            )
        try:
            ro = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=30)
            try:
                app_id = ro.execute("PRAGMA application_id").fetchone()[0]
                version = ro.execute("PRAGMA user_version").fetchone()[0]
                tables = {r[0] for r in ro.execute("SELECT name FROM sqlite_master WHERE type='table'")}
                check = ro.execute("PRAGMA quick_check").fetchall()
            finally:
                ro.close()
        except sqlite3.DatabaseError as exc:
            raise StoreError(
                f"result store {path} is corrupt or unreadable ({exc}); it was left untouched: "
                "move it away or pass another --store path"
            ) from exc
        if check != [("ok",)]:
            problems = "; ".join(str(r[0]) for r in check[:3])
            raise StoreError(
                f"result store {path} is corrupt (integrity check: {problems}); it was left untouched"
            )
        if app_id != APPLICATION_ID and tables - {"sqlite_sequence"}:
            raise StoreError(
                f"{path} is an SQLite database but not a vqbench result store "
                f"(tables {sorted(tables)}); pass another --store path"
            )
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"result store {path} has schema version {version}, newer than this vqbench "
                f"understands ({SCHEMA_VERSION}); upgrade vqbench"
            )
        if not self.readonly:
            self._check_writable()

    def _check_creatable(self) -> None:
        parent = self.path.parent
        default_parent = (Path.cwd() / DEFAULT_STORE).parent
        if not parent.exists() and parent.resolve() != default_parent.resolve():
            raise StoreError(
                f"the folder {parent} of result store {self.path} does not exist; "
                "create it first or pass another --store path"
            )
        try:
            parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(
                f"cannot create the folder {parent} for result store {self.path}: {exc}"
            ) from exc
        self._check_writable()

    def _check_writable(self) -> None:
        parent = self.path.parent if str(self.path.parent) else Path(".")
        if self.path.exists() and not os.access(self.path, os.W_OK):
            raise StoreError(f"result store {self.path} is not writable (check its permissions)")
        if not os.access(parent, os.W_OK | os.X_OK):
            raise StoreError(
                f"result store folder {parent} is not writable (SQLite needs it for its journal)"
            )

    def _connect(self) -> sqlite3.Connection:
        try:
            if self.readonly:
                conn = sqlite3.connect(
                    f"{self.path.resolve().as_uri()}?mode=ro",
                    uri=True,
                    timeout=30,
                    check_same_thread=False,
                )
                return conn
            conn = sqlite3.connect(str(self.path), timeout=30, check_same_thread=False, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA foreign_keys=ON")
            conn.execute("BEGIN IMMEDIATE")
            for sql in _schema_sql():
                conn.execute(sql)
            conn.execute("COMMIT")
            return conn
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open result store {self.path} for writing: {exc}") from exc

    # -- lifecycle ---------------------------------------------------------------------------
    def close(self) -> None:
        """Close the connection (the store object is unusable afterwards)."""
        with self._lock:
            self._conn.close()

    def close_or_discard(self) -> None:
        """Close; a store file that this object created and that holds no run is removed again,
        so that a command that refused to run leaves nothing behind."""
        empty = not self.readonly and self.created and not self._read("SELECT 1 FROM runs LIMIT 1")
        self.close()
        if empty:
            for suffix in ("", "-wal", "-shm", "-journal"):
                Path(f"{self.path}{suffix}").unlink(missing_ok=True)

    def __enter__(self) -> ResultStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"ResultStore({str(self.path)!r}{', readonly=True' if self.readonly else ''})"

    def _write(self, statements: list[tuple[str, Any]], many: bool = False) -> None:
        """Run ``statements`` in one transaction: all of them or none."""
        if self.readonly:
            raise StoreError(f"result store {self.path} was opened read-only")
        with self._lock:
            try:
                self._conn.execute("BEGIN IMMEDIATE")
                try:
                    for sql, params in statements:
                        if many:
                            self._conn.executemany(sql, params)
                        else:
                            self._conn.execute(sql, params)
                except BaseException:
                    self._conn.execute("ROLLBACK")
                    raise
                self._conn.execute("COMMIT")
            except sqlite3.Error as exc:
                raise StoreError(f"writing to result store {self.path} failed: {exc}") from exc

    def _read(self, sql: str, params: tuple = ()) -> list[tuple]:
        with self._lock:
            return self._conn.execute(sql, params).fetchall()

    # -- runs --------------------------------------------------------------------------------
    def start_run(
        self,
        suite: str,
        environment: dict,
        config: dict | None = None,
        run_id: str | None = None,
    ) -> str:
        """Record a new run (status "running") and return its id.

        Passing the ``run_id`` of an existing run of the same suite reopens it (``--resume``, or
        merging cells measured elsewhere); its environment and start time are kept.
        """
        if not isinstance(suite, str) or not suite:
            raise ValueError(f"suite must be a non-empty string, got {suite!r}")
        if not isinstance(environment, dict):
            raise TypeError(f"environment must be a dict, got {type(environment).__name__}")
        env_json = canonical_json(environment, "run environment")
        config = {**(config or {}), "owner": _owner()}
        config_json = canonical_json(config, "run config")
        if run_id is not None:
            if not isinstance(run_id, str) or not run_id.strip():
                raise ValueError(f"run_id must be a non-empty string, got {run_id!r}")
            existing = self._read("SELECT suite FROM runs WHERE run_id = ?", (run_id,))
            if existing:
                if existing[0][0] != suite:
                    raise ValueError(f"run {run_id!r} exists with suite {existing[0][0]!r}, not {suite!r}")
                old = json.loads(self._read("SELECT config FROM runs WHERE run_id = ?", (run_id,))[0][0])
                owned = canonical_json({**old, "owner": _owner()}, "run config")
                self._write(
                    [
                        (
                            "UPDATE runs SET status = 'running', finished = NULL, config = ? "
                            "WHERE run_id = ?",
                            (owned, run_id),
                        )
                    ]
                )
                self.current_run = run_id
                return run_id
        run_id = run_id or _new_run_id()
        values = (
            run_id,
            utc_now(),
            None,
            suite,
            "running",
            env_json,
            environment_hash(environment),
            config_json,
        )
        marks = ", ".join("?" for _ in RUN_COLUMNS)
        self._write([(f"INSERT INTO runs ({', '.join(RUN_COLUMNS)}) VALUES ({marks})", values)])
        self.current_run = run_id
        return run_id

    def finish_run(self, run_id: str, status: str = "finished") -> None:
        """Mark a run "finished" (or "interrupted") and stamp its end time."""
        if status not in RUN_STATUSES:
            raise ValueError(f"run status must be one of {RUN_STATUSES}, got {status!r}")
        self._require_run(run_id)
        finished = None if status == "running" else utc_now()
        self._write(
            [("UPDATE runs SET status = ?, finished = ? WHERE run_id = ?", (status, finished, run_id))]
        )

    def _require_run(self, run_id: str) -> None:
        if not self._read("SELECT 1 FROM runs WHERE run_id = ?", (run_id,)):
            known = [r[0] for r in self._read("SELECT run_id FROM runs ORDER BY started DESC LIMIT 5")]
            raise KeyError(f"no run {run_id!r} in {self.path}; recent runs: {known or 'none'}")

    def resolve_run(self, run_id: str | None = "latest") -> str:
        """A run id as given, or the latest run's id for ``None``/"latest"; a unique prefix works too."""
        if run_id in (None, "latest"):
            found = self._read(
                "SELECT run_id FROM runs WHERE status != 'remeasure' "
                "ORDER BY started DESC, rowid DESC LIMIT 1"
            )
            if not found:
                raise KeyError(f"result store {self.path} holds no runs yet; run `vqbench run` first")
            return found[0][0]
        if self._read("SELECT 1 FROM runs WHERE run_id = ?", (run_id,)):
            return run_id
        matches = [r[0] for r in self._read("SELECT run_id FROM runs WHERE run_id LIKE ? || '%'", (run_id,))]
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            raise KeyError(f"run id prefix {run_id!r} is ambiguous: {matches[:5]}")
        self._require_run(run_id)
        return run_id  # pragma: no cover - _require_run raised

    def run_info(self, run_id: str) -> dict:
        """One run as a dict, with ``environment`` and ``config`` parsed."""
        self._require_run(run_id)
        row = self._read(f"SELECT {', '.join(RUN_COLUMNS)} FROM runs WHERE run_id = ?", (run_id,))[0]
        info = dict(zip(RUN_COLUMNS, row, strict=True))
        info["environment"] = json.loads(info["environment"])
        info["config"] = json.loads(info["config"])
        if info["status"] == "running" and not _owner_alive(info["config"]):
            info["status"] = "died"
        return info

    def runs(self) -> Any:
        """All runs, oldest first, with row counts (``n_rows``, ``n_errors``)."""
        cols = ", ".join(f"r.{c}" for c in RUN_COLUMNS)
        records = self._read(
            f"SELECT {cols}, COUNT(x.row_id), COALESCE(SUM(x.status = 'error'), 0) "
            "FROM runs r LEFT JOIN results x ON x.run_id = r.run_id "
            "GROUP BY r.run_id ORDER BY r.started, r.rowid"
        )
        frame = runs_frame(records, extra_columns=("n_rows", "n_errors"))
        for i in frame.index[frame["status"] == "running"]:
            if not _owner_alive(json.loads(frame.at[i, "config"])):
                frame.at[i, "status"] = "died"
        return frame

    # -- rows --------------------------------------------------------------------------------
    def write_rows(self, rows: list[dict]) -> None:
        """Write rows in one transaction (all or none).

        Missing ``run_id`` is the run this store last started; missing ``time`` is now; missing
        ``suite`` is the run's suite. Write all rows of a cell in one call, so that a cell is
        either wholly stored or absent.
        """
        if isinstance(rows, dict):
            raise TypeError("write_rows expects a list of row dicts, got one dict; wrap it in a list")
        rows = list(rows)
        if not rows:
            return
        suites: dict[str, str] = {}
        values = []
        for row in rows:
            run_id = (row.get("run_id") if isinstance(row, dict) else None) or self.current_run
            if run_id and run_id not in suites:
                found = self._read("SELECT suite FROM runs WHERE run_id = ?", (run_id,))
                if not found:
                    raise KeyError(
                        f"rows refer to run {run_id!r}, which is not in {self.path}; call start_run() first"
                    )
                suites[run_id] = found[0][0]
            values.append(normalize_row(row, run_id=run_id, suite=suites.get(run_id)))
        marks = ", ".join("?" for _ in ROW_COLUMNS)
        sql = f"INSERT INTO results ({', '.join(ROW_COLUMNS)}) VALUES ({marks})"
        self._write([(sql, values)], many=True)

    def rows(self, run_id: str | None = None) -> Any:
        """Rows of one run (or of all runs for ``None``) as a typed DataFrame, in write order."""
        cols = ", ".join(ROW_COLUMNS)
        if run_id is None:
            records = self._read(f"SELECT {cols} FROM results ORDER BY row_id")
        else:
            self._require_run(run_id)
            records = self._read(f"SELECT {cols} FROM results WHERE run_id = ? ORDER BY row_id", (run_id,))
        return rows_frame(records)

    def done_cells(self, run_id: str) -> set[str]:
        """Cell ids that already have rows in ``run_id`` (any status), for ``--resume``."""
        self._require_run(run_id)
        found = self._read(
            "SELECT DISTINCT cell_id FROM results WHERE run_id = ? AND cell_id != ''", (run_id,)
        )
        return {r[0] for r in found}

    # -- files -------------------------------------------------------------------------------
    def export(self, run_id: str, path: str | Path) -> Path:
        """Write one run to ``path``: ``.json`` (run and rows), ``.csv`` or ``.parquet`` (rows)."""
        from vqbench.results._export import export_run

        return export_run(self, run_id, path)

    def import_file(self, path: str | Path) -> str:
        """Import a vqbench JSON export or a pytest-benchmark JSON file; returns the run id."""
        from vqbench.results._importers import import_file

        return import_file(self, path)


def open_store(store: ResultStore | str | Path | None = None, *, readonly: bool = False) -> ResultStore:
    """A store from an existing object, a path, or the default location."""
    if isinstance(store, ResultStore):
        return store
    return ResultStore(store, readonly=readonly)


def load_results(run_id: str | None = None, store: ResultStore | str | Path | None = None) -> Any:
    """Stored rows as a pandas DataFrame: one run (an id, a unique prefix or "latest"), or all for None."""
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
    "StoreError",
    "default_store_path",
    "load_results",
    "open_store",
]
