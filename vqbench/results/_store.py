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


def _process_start(pid: int) -> int | None:
    """The start time of process ``pid`` in clock ticks since boot (Linux), to tell a reused pid."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return int(fh.read().rsplit(")", 1)[-1].split()[19])
    except (OSError, ValueError, IndexError):
        return None


def _owner() -> dict:
    """The process that writes a run: pid, host and start time, to tell a died run from a running one."""
    owner: dict[str, Any] = {"pid": os.getpid(), "host": socket.gethostname()}
    start = _process_start(os.getpid())
    if start is not None:
        owner["start"] = start
    return owner


def _owner_alive(config: dict) -> bool:
    """False when the run's process is known to be gone: same host, no such pid (or the pid now
    belongs to a process started later). Runs started elsewhere, or before owners were recorded,
    count as alive (nothing here can tell)."""
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
    start = owner.get("start")
    if isinstance(start, int) and _process_start(pid) not in (None, start):
        return False  # the pid was reused by a newer process
    try:  # a zombie (killed, not yet reaped by its parent) is gone too
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[-1].split()[0] != "Z"
    except OSError:
        return True


class RunBusyError(StoreError):
    """The run is being written by a live process: it cannot be resumed or imported into."""


def _busy_message(run_id: str, config: dict) -> str:
    owner = config.get("owner") or {}
    return (
        f"run {run_id} is still being written by process {owner.get('pid')} on host "
        f"{owner.get('host')!r}; wait until it ends (or stop it) before resuming it"
    )


def _new_run_id() -> str:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    return f"{stamp}-{secrets.token_hex(3)}"


class ResultStore:
    """Runs and their rows in an SQLite file (default ``.vqbench/results.sqlite``; ``$VQBENCH_STORE``).

    ``readonly=True`` opens an existing store for reading only (reports); a missing file is then
    an error instead of a new store. A new store file is created at the first write (a run that
    starts, an import), so a command that refuses its input leaves no file behind; it appears
    whole (built beside and linked into place), so another process never sees it half made.
    """

    def __init__(self, path: str | Path | None = None, *, readonly: bool = False) -> None:
        self.path = Path(path).expanduser() if path is not None else default_store_path()
        self.readonly = readonly
        self.current_run: str | None = None
        self._lock = threading.Lock()
        self.created = False
        self._conn: sqlite3.Connection | None = None
        self._check_file()
        if self.path.exists():
            self._conn = self._connect()

    # -- opening -----------------------------------------------------------------------------
    def _check_file(self) -> None:
        """Validate the file before any connection that could write to it; a refused file is
        left as it was (no journal files beside it)."""
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
        with open(path, "rb") as fh:
            header = fh.read(100)
        if not header:
            raise StoreError(
                f"{path} is an empty file, not a vqbench result store; it was left untouched: "
                "remove it or pass another --store path"
            )
        if header[: len(_SQLITE_HEADER)] != _SQLITE_HEADER or len(header) < 100:
            raise StoreError(
                f"result store {path} is not an SQLite database (corrupt or another file); "
                "it was left untouched: move it away or pass another --store path"
            )
        app_id = int.from_bytes(header[68:72], "big")
        version = int.from_bytes(header[60:64], "big", signed=True)
        if app_id != APPLICATION_ID:
            raise StoreError(
                f"{path} is an SQLite database but not a vqbench result store (application_id "
                f"{app_id:#x}, a vqbench store has {APPLICATION_ID:#x}); it was left untouched: "
                "pass another --store path"
            )
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"result store {path} has schema version {version}, newer than this vqbench "
                f"understands ({SCHEMA_VERSION}); upgrade vqbench"
            )
        sidecars = [Path(f"{path}{s}") for s in ("-wal", "-shm")]
        before = {p for p in sidecars if p.exists()}
        try:
            ro = sqlite3.connect(self._ro_uri(), uri=True, timeout=30)
            try:
                check = ro.execute("PRAGMA quick_check").fetchall()
            finally:
                ro.close()
        except sqlite3.DatabaseError as exc:
            self._remove_new(sidecars, before)
            raise StoreError(
                f"result store {path} is corrupt or unreadable ({exc}); it was left untouched: "
                "move it away or pass another --store path"
            ) from exc
        if check != [("ok",)]:
            self._remove_new(sidecars, before)
            problems = "; ".join(str(r[0]) for r in check[:3])
            raise StoreError(
                f"result store {path} is corrupt (integrity check: {problems}); it was left untouched"
            )
        if not self.readonly:
            self._check_writable()

    @staticmethod
    def _remove_new(sidecars: list[Path], before: set[Path]) -> None:
        """Remove the journal files that checking a refused store made beside it."""
        for side in sidecars:
            if side not in before:
                side.unlink(missing_ok=True)

    def _ro_uri(self) -> str:
        """A read-only URI; in a folder this user cannot write (where SQLite cannot make its
        shared-memory file), the file is read as immutable."""
        uri = f"{self.path.resolve().as_uri()}?mode=ro"
        parent = self.path.resolve().parent
        if not os.access(parent, os.W_OK) and not Path(f"{self.path}-shm").exists():
            uri += "&immutable=1"
        return uri

    def _check_creatable(self) -> None:
        parent = self.path.parent
        default_parent = (Path.cwd() / DEFAULT_STORE).parent
        if not parent.exists() and parent.resolve() != default_parent.resolve():
            raise StoreError(
                f"the folder {parent} of result store {self.path} does not exist; "
                "create it first or pass another --store path"
            )
        if parent.exists():
            self._check_writable()

    def _check_writable(self) -> None:
        parent = self.path.parent if str(self.path.parent) else Path(".")
        if self.path.exists() and not os.access(self.path, os.W_OK):
            raise StoreError(f"result store {self.path} is not writable (check its permissions)")
        if not os.access(parent, os.W_OK | os.X_OK):
            raise StoreError(
                f"result store folder {parent} is not writable (SQLite needs it for its journal)"
            )

    def _create(self) -> None:
        """Create the store file whole: built under a temporary name, then linked into place
        (if another process created it meanwhile, that one is used)."""
        parent = self.path.parent
        try:
            parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(
                f"cannot create the folder {parent} for result store {self.path}: {exc}"
            ) from exc
        tmp = parent / f".{self.path.name}.new-{os.getpid()}-{secrets.token_hex(4)}"
        try:
            conn = sqlite3.connect(str(tmp), isolation_level=None)
            try:
                conn.execute("PRAGMA journal_mode=WAL")
                for sql in _schema_sql():
                    conn.execute(sql)
            finally:
                conn.close()
            try:
                os.link(tmp, self.path)
                self.created = True
            except FileExistsError:
                pass
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"cannot create result store {self.path}: {exc}") from exc
        finally:
            for suffix in ("", "-wal", "-shm", "-journal"):
                Path(f"{tmp}{suffix}").unlink(missing_ok=True)
        if not self.created:
            self._check_file()

    def _connect(self) -> sqlite3.Connection:
        try:
            if self.readonly:
                return sqlite3.connect(self._ro_uri(), uri=True, timeout=30, check_same_thread=False)
            conn = sqlite3.connect(str(self.path), timeout=30, check_same_thread=False, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA foreign_keys=ON")
            names = conn.execute("SELECT name FROM sqlite_master WHERE type IN ('table', 'index')")
            tables = {r[0] for r in names}
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            wanted = {"runs", "results", "results_run", "results_metric"}
            if not wanted <= tables or version != SCHEMA_VERSION:
                conn.execute("BEGIN IMMEDIATE")
                for sql in _schema_sql():
                    conn.execute(sql)
                conn.execute("COMMIT")
            return conn
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open result store {self.path} for writing: {exc}") from exc

    def _connection(self) -> sqlite3.Connection:
        """The connection, creating the store file first where there is none yet."""
        if self._conn is None:
            if not self.path.exists():
                self._create()
            self._conn = self._connect()
        return self._conn

    # -- lifecycle ---------------------------------------------------------------------------
    def close(self) -> None:
        """Close the connection (the store object is unusable afterwards)."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()

    def close_or_discard(self) -> None:
        """Close. (A store file is created only at the first write, so a command that refused
        to run has nothing to discard; a file is never removed, since other processes may hold
        rows in it.)"""
        self.close()

    def __enter__(self) -> ResultStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"ResultStore({str(self.path)!r}{', readonly=True' if self.readonly else ''})"

    def _transaction(self, work: Any) -> Any:
        """Run ``work(conn)`` in one write transaction: all of it or none."""
        if self.readonly:
            raise StoreError(f"result store {self.path} was opened read-only")
        with self._lock:
            conn = self._connection()
            try:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    out = work(conn)
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
                conn.execute("COMMIT")
                return out
            except sqlite3.Error as exc:
                raise StoreError(f"writing to result store {self.path} failed: {exc}") from exc

    def _write(self, statements: list[tuple[str, Any]], many: bool = False) -> None:
        """Run ``statements`` in one transaction: all of them or none."""

        def work(conn: sqlite3.Connection) -> None:
            for sql, params in statements:
                if many:
                    conn.executemany(sql, params)
                else:
                    conn.execute(sql, params)

        self._transaction(work)

    def _read(self, sql: str, params: tuple = ()) -> list[tuple]:
        with self._lock:
            if self._conn is None:  # no store file yet: nothing stored
                return []
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

        Passing the ``run_id`` of an existing run of the same suite reopens it (``--resume``); its
        environment and start time are kept. A run whose writer is still alive is not reopened
        (:class:`RunBusyError`): the check and the claim are one transaction, so of two processes
        that resume one run, one wins.
        """
        if not isinstance(suite, str) or not suite:
            raise ValueError(f"suite must be a non-empty string, got {suite!r}")
        if not isinstance(environment, dict):
            raise TypeError(f"environment must be a dict, got {type(environment).__name__}")
        env_json = canonical_json(environment, "run environment")
        config = {**(config or {}), "owner": _owner()}
        config_json = canonical_json(config, "run config")
        if run_id is not None and (not isinstance(run_id, str) or not run_id.strip()):
            raise ValueError(f"run_id must be a non-empty string, got {run_id!r}")

        def claim(conn: sqlite3.Connection) -> bool:
            """Reopen the existing run (checked and taken in one transaction), or False."""
            sql = "SELECT suite, status, config FROM runs WHERE run_id = ?"
            found = conn.execute(sql, (run_id,)).fetchall()
            if not found:
                return False
            old_suite, status, old_config = found[0]
            if old_suite != suite:
                raise ValueError(f"run {run_id!r} exists with suite {old_suite!r}, not {suite!r}")
            old = json.loads(old_config)
            if status == "running" and _owner_alive(old):
                raise RunBusyError(_busy_message(run_id, old))
            owned = canonical_json({**old, "owner": _owner()}, "run config")
            conn.execute(
                "UPDATE runs SET status = 'running', finished = NULL, config = ? WHERE run_id = ?",
                (owned, run_id),
            )
            return True

        if run_id is not None and self._transaction(claim):
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

    def add_run(self, run: dict, rows: list[dict]) -> str:
        """Store a whole run at once (an import): its record and every row in one transaction, so
        a file that fails half-way leaves nothing. ``run`` holds ``run_id``, ``suite``,
        ``environment``, ``config``, ``status`` and optionally ``started``/``finished``. An
        existing run id is refused."""
        run_id = run.get("run_id")
        if not isinstance(run_id, str) or not run_id.strip():
            raise ValueError(f"run_id must be a non-empty string, got {run_id!r}")
        suite = run.get("suite")
        if not isinstance(suite, str) or not suite:
            raise ValueError(f"suite must be a non-empty string, got {suite!r}")
        environment = run.get("environment") or {}
        if not isinstance(environment, dict):
            raise TypeError(f"environment must be a dict, got {type(environment).__name__}")
        status = run.get("status", "finished")
        if status not in ("finished", "interrupted"):
            raise ValueError(f"an added run's status must be finished or interrupted, got {status!r}")
        values = (
            run_id,
            str(run.get("started") or utc_now()),
            str(run.get("finished") or utc_now()),
            suite,
            status,
            canonical_json(environment, "run environment"),
            environment_hash(environment),
            canonical_json(run.get("config") or {}, "run config"),
        )
        normalized = [normalize_row({**r, "run_id": run_id}, run_id=run_id, suite=suite) for r in rows]
        marks = ", ".join("?" for _ in RUN_COLUMNS)
        row_marks = ", ".join("?" for _ in ROW_COLUMNS)

        def work(conn: sqlite3.Connection) -> None:
            if conn.execute("SELECT 1 FROM runs WHERE run_id = ?", (run_id,)).fetchall():
                raise ValueError(f"run {run_id} already exists in {self.path}")
            conn.execute(f"INSERT INTO runs ({', '.join(RUN_COLUMNS)}) VALUES ({marks})", values)
            sql = f"INSERT INTO results ({', '.join(ROW_COLUMNS)}) VALUES ({row_marks})"
            conn.executemany(sql, normalized)

        self._transaction(work)
        return run_id

    def update_config(self, run_id: str, **entries: Any) -> None:
        """Set keys of a run's stored config (a gate verdict, an acceptance)."""
        self._require_run(run_id)

        def work(conn: sqlite3.Connection) -> None:
            row = conn.execute("SELECT config FROM runs WHERE run_id = ?", (run_id,)).fetchone()
            old = json.loads(row[0])
            new = canonical_json({**old, **entries}, "run config")
            conn.execute("UPDATE runs SET config = ? WHERE run_id = ?", (new, run_id))

        self._transaction(work)

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

    def import_file(self, path: str | Path, *, new_id: bool = False) -> str:
        """Import a vqbench JSON export or a pytest-benchmark JSON file; returns the run id.

        An export whose run id is already in the store is refused, unless the same file was
        imported before (then nothing changes); ``new_id=True`` stores it under a new id."""
        from vqbench.results._importers import import_file

        return import_file(self, path, new_id=new_id)


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
    "RunBusyError",
    "StoreError",
    "default_store_path",
    "load_results",
    "open_store",
]
