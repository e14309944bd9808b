"""The store file and its SQLite connection: checked before use, created whole, schema kept current.

Every write is one transaction, so a process killed mid-run leaves whole rows (whole
``write_rows`` batches) only. A file that is not a vqbench store, is corrupt, or cannot be written
is reported when the store is opened, before anything runs, and is never modified.
"""

from __future__ import annotations

import os
import secrets
import sqlite3
import threading
from pathlib import Path
from typing import Any, TypeVar

from vqbench.errors import MissingFileError
from vqbench.results._errors import StoreError
from vqbench.results._schema import ROW_COLUMNS, RUN_COLUMNS

DEFAULT_STORE = Path(".vqbench") / "results.sqlite"
STORE_ENV = "VQBENCH_STORE"
APPLICATION_ID = 0x76716231  # "vqb1": marks an SQLite file as a vqbench store
SCHEMA_VERSION = 1
_SQLITE_HEADER = b"SQLite format 3\x00"
_SCHEMA_OBJECTS = {"runs", "results", "results_run", "results_metric"}
_Store = TypeVar("_Store", bound="StoreConnection")


def default_store_path() -> Path:
    """``$VQBENCH_STORE`` when set, else ``.vqbench/results.sqlite`` in the working folder."""
    env = os.environ.get(STORE_ENV, "").strip()
    return Path(env).expanduser() if env else DEFAULT_STORE


def schema_sql() -> list[str]:
    """The statements that create the tables and indexes and mark the file as a vqbench store."""
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


# -- checking a file before any connection that could write to it ---------------------------------
def check_file(path: Path, readonly: bool) -> None:
    """Validate the store file at ``path``; a refused file is left as it was (no journal files
    beside it). A missing file is an error for ``readonly``, else its folder must allow creating it."""
    if path.exists() and not path.is_file():
        raise StoreError(f"result store {path} is not a file (expected an SQLite file path)")
    if not path.exists():
        if readonly:
            raise MissingFileError(f"no result store at {path}; run `vqbench run` first or pass --store PATH")
        _check_creatable(path)
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
    _check_integrity(path)
    if not readonly:
        _check_writable(path)


def _check_integrity(path: Path) -> None:
    sidecars = [Path(f"{path}{s}") for s in ("-wal", "-shm")]
    before = {p for p in sidecars if p.exists()}
    try:
        ro = sqlite3.connect(readonly_uri(path), uri=True, timeout=30)
        try:
            check = ro.execute("PRAGMA quick_check").fetchall()
        finally:
            ro.close()
    except sqlite3.DatabaseError as exc:
        _remove_new(sidecars, before)
        raise StoreError(
            f"result store {path} is corrupt or unreadable ({exc}); it was left untouched: "
            "move it away or pass another --store path"
        ) from exc
    if check != [("ok",)]:
        _remove_new(sidecars, before)
        problems = "; ".join(str(r[0]) for r in check[:3])
        raise StoreError(
            f"result store {path} is corrupt (integrity check: {problems}); it was left untouched"
        )


def _remove_new(sidecars: list[Path], before: set[Path]) -> None:
    """Remove the journal files that checking a refused store made beside it."""
    for side in sidecars:
        if side not in before:
            side.unlink(missing_ok=True)


def readonly_uri(path: Path) -> str:
    """A read-only URI; in a folder this user cannot write (where SQLite cannot make its
    shared-memory file), the file is read as immutable."""
    uri = f"{path.resolve().as_uri()}?mode=ro"
    parent = path.resolve().parent
    if not os.access(parent, os.W_OK) and not Path(f"{path}-shm").exists():
        wal = Path(f"{path}-wal")
        if wal.exists() and wal.stat().st_size > 0:  # read as immutable, its rows would vanish
            raise StoreError(
                f"result store {path} has rows in its write-ahead log {wal} that SQLite can read "
                f"only where it can create {path}-shm, and the folder {parent} is not writable: "
                "copy the store and its -wal file to a writable folder (or open it once where "
                "its folder is writable) and pass that --store path"
            )
        uri += "&immutable=1"
    return uri


def _check_creatable(path: Path) -> None:
    parent = path.parent
    default_parent = (Path.cwd() / DEFAULT_STORE).parent
    if not parent.exists() and parent.resolve() != default_parent.resolve():
        raise StoreError(
            f"the folder {parent} of result store {path} does not exist; "
            "create it first or pass another --store path"
        )
    if parent.exists():
        _check_writable(path)


def _check_writable(path: Path) -> None:
    parent = path.parent if str(path.parent) else Path(".")
    if path.exists() and not os.access(path, os.W_OK):
        raise StoreError(f"result store {path} is not writable (check its permissions)")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise StoreError(f"result store folder {parent} is not writable (SQLite needs it for its journal)")


# -- creating and connecting ----------------------------------------------------------------------
def create_file(path: Path) -> bool:
    """Create the store file whole: built under a temporary name, then linked into place.
    True when this call made it; False when another process created it meanwhile (then that one
    is checked and used)."""
    parent = path.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreError(f"cannot create the folder {parent} for result store {path}: {exc}") from exc
    tmp = parent / f".{path.name}.new-{os.getpid()}-{secrets.token_hex(4)}"
    created = False
    try:
        conn = sqlite3.connect(str(tmp), isolation_level=None)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            for sql in schema_sql():
                conn.execute(sql)
        finally:
            conn.close()
        try:
            os.link(tmp, path)
            created = True
        except FileExistsError:
            pass
    except (OSError, sqlite3.Error) as exc:
        raise StoreError(f"cannot create result store {path}: {exc}") from exc
    finally:
        for suffix in ("", "-wal", "-shm", "-journal"):
            Path(f"{tmp}{suffix}").unlink(missing_ok=True)
    if not created:
        check_file(path, readonly=False)
    return created


def connect(path: Path, readonly: bool) -> sqlite3.Connection:
    """A connection to the existing store at ``path``; a writable one brings the schema up to date."""
    try:
        if readonly:
            return sqlite3.connect(readonly_uri(path), uri=True, timeout=30, check_same_thread=False)
        conn = sqlite3.connect(str(path), timeout=30, check_same_thread=False, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA foreign_keys=ON")
        names = conn.execute("SELECT name FROM sqlite_master WHERE type IN ('table', 'index')")
        objects = {r[0] for r in names}
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if not _SCHEMA_OBJECTS <= objects or version != SCHEMA_VERSION:
            conn.execute("BEGIN IMMEDIATE")
            for sql in schema_sql():
                conn.execute(sql)
            conn.execute("COMMIT")
        return conn
    except sqlite3.Error as exc:
        raise StoreError(f"cannot open result store {path} for writing: {exc}") from exc


class StoreConnection:
    """One store file and its connection, shared by threads under a lock.

    ``readonly=True`` opens an existing store for reading only; a missing file is then an error
    instead of a new store. A new store file is created at the first write, so a command that
    refuses its input leaves no file behind.
    """

    def __init__(self, path: str | Path | None = None, *, readonly: bool = False) -> None:
        self.path = Path(path).expanduser() if path is not None else default_store_path()
        self.readonly = readonly
        self.current_run: str | None = None
        self._lock = threading.Lock()
        self.created = False
        self._conn: sqlite3.Connection | None = None
        check_file(self.path, readonly)
        if self.path.exists():
            self._conn = connect(self.path, readonly)

    def _connection(self) -> sqlite3.Connection:
        """The connection, creating the store file first where there is none yet."""
        if self._conn is None:
            if not self.path.exists():
                self.created = create_file(self.path)
            self._conn = connect(self.path, self.readonly)
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

    def __enter__(self: _Store) -> _Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.path)!r}{', readonly=True' if self.readonly else ''})"

    # -- transactions ------------------------------------------------------------------------
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


__all__ = [
    "APPLICATION_ID",
    "DEFAULT_STORE",
    "SCHEMA_VERSION",
    "STORE_ENV",
    "StoreConnection",
    "check_file",
    "connect",
    "create_file",
    "default_store_path",
    "readonly_uri",
    "schema_sql",
]
