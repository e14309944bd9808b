"""Writing a store: runs started, claimed on resume, added whole, finished; rows in batches."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from vqbench.errors import UserError
from vqbench.results._environment import environment_hash
from vqbench.results._errors import RunBusyError
from vqbench.results._ownership import busy_message, check_run_id, new_run_id, owner, owner_alive
from vqbench.results._reading import StoreReading
from vqbench.results._schema import (
    ROW_COLUMNS,
    RUN_COLUMNS,
    RUN_STATUSES,
    canonical_json,
    normalize_row,
    run_time,
    utc_now,
)

_INSERT_RUN = f"INSERT INTO runs ({', '.join(RUN_COLUMNS)}) VALUES ({', '.join('?' for _ in RUN_COLUMNS)})"
_INSERT_ROW = f"INSERT INTO results ({', '.join(ROW_COLUMNS)}) VALUES ({', '.join('?' for _ in ROW_COLUMNS)})"


class StoreWriting(StoreReading):
    """The write side of a store; each call is one transaction."""

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
            raise UserError(f"suite must be a non-empty string, got {suite!r}")
        if not isinstance(environment, dict):
            raise TypeError(f"environment must be a dict, got {type(environment).__name__}")
        env_json = canonical_json(environment, "run environment")
        config = {**(config or {}), "owner": owner()}
        config_json = canonical_json(config, "run config")
        if run_id is not None and (not isinstance(run_id, str) or not run_id.strip()):
            raise UserError(f"run_id must be a non-empty string, got {run_id!r}")

        def claim(conn: sqlite3.Connection) -> bool:
            """Reopen the existing run (checked and taken in one transaction), or False."""
            sql = "SELECT suite, status, config FROM runs WHERE run_id = ?"
            found = conn.execute(sql, (run_id,)).fetchall()
            if not found:
                return False
            old_suite, status, old_config = found[0]
            if old_suite != suite:
                raise UserError(f"run {run_id!r} exists with suite {old_suite!r}, not {suite!r}")
            old = json.loads(old_config)
            if status == "running" and owner_alive(old):
                raise RunBusyError(busy_message(run_id, old))
            owned = canonical_json({**old, "owner": owner()}, "run config")
            conn.execute(
                "UPDATE runs SET status = 'running', finished = NULL, config = ? WHERE run_id = ?",
                (owned, run_id),
            )
            return True

        if run_id is not None and self._transaction(claim):
            self.current_run = run_id
            return run_id
        run_id = run_id or new_run_id()
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
        self._write([(_INSERT_RUN, values)])
        self.current_run = run_id
        return run_id

    def add_run(self, run: dict, rows: list[dict]) -> str:
        """Store a whole run at once (an import): its record and every row in one transaction, so
        a file that fails half-way leaves nothing. ``run`` holds ``run_id``, ``suite``,
        ``environment``, ``config``, ``status`` and optionally ``started``/``finished``. An
        existing run id is refused."""
        run_id = check_run_id(run.get("run_id"))
        suite = run.get("suite")
        if not isinstance(suite, str) or not suite:
            raise UserError(f"suite must be a non-empty string, got {suite!r}")
        environment = run.get("environment") or {}
        if not isinstance(environment, dict):
            raise TypeError(f"environment must be a dict, got {type(environment).__name__}")
        status = run.get("status", "finished")
        if status not in ("finished", "interrupted"):
            raise UserError(f"an added run's status must be finished or interrupted, got {status!r}")
        started = run_time(run.get("started"), "started")
        values = (
            run_id,
            started,
            max(run_time(run.get("finished"), "finished"), started),
            suite,
            status,
            canonical_json(environment, "run environment"),
            environment_hash(environment),
            canonical_json(run.get("config") or {}, "run config"),
        )
        normalized = []
        for i, row in enumerate(rows):
            try:
                normalized.append(normalize_row({**row, "run_id": run_id}, run_id=run_id, suite=suite))
            except (TypeError, ValueError) as exc:
                raise UserError(f"row #{i} of run {run_id} cannot be stored: {exc}") from exc

        def work(conn: sqlite3.Connection) -> None:
            if conn.execute("SELECT 1 FROM runs WHERE run_id = ?", (run_id,)).fetchall():
                raise UserError(f"run {run_id} already exists in {self.path}")
            conn.execute(_INSERT_RUN, values)
            conn.executemany(_INSERT_ROW, normalized)

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
            raise UserError(f"run status must be one of {RUN_STATUSES}, got {status!r}")
        self._require_run(run_id)
        finished = None if status == "running" else utc_now()
        self._write(
            [("UPDATE runs SET status = ?, finished = ? WHERE run_id = ?", (status, finished, run_id))]
        )

    def declare_died(self, run_id: str) -> None:
        """Mark a "running" run whose process is gone but cannot be seen from here (it ran under
        another host name, a container) as "interrupted", so that it can be resumed or gated.
        A run whose process is known to live on this host is refused (:class:`RunBusyError`)."""

        def work(conn: sqlite3.Connection) -> None:
            status, config = self._run_record(conn, run_id)
            if status != "running":
                raise UserError(f"run {run_id} is {status}, not running: there is nothing to declare")
            old = json.loads(config)
            if owner_alive(old) and (old.get("owner") or {}).get("host") == owner()["host"]:
                raise RunBusyError(busy_message(run_id, old))
            conn.execute(
                "UPDATE runs SET status = 'interrupted', finished = ? WHERE run_id = ?", (utc_now(), run_id)
            )

        self._transaction(work)

    def remove_run(self, run_id: str) -> int:
        """Remove a run and all its rows in one transaction; returns the number of rows removed.
        A run still being written by a live process is refused (:class:`RunBusyError`)."""

        def work(conn: sqlite3.Connection) -> int:
            status, config = self._run_record(conn, run_id)
            old = json.loads(config)
            if status == "running" and owner_alive(old):
                raise RunBusyError(
                    busy_message(run_id, old) + "; if its process is gone (another host), "
                    f"`vqbench results {run_id} --declare-died` first"
                )
            removed = conn.execute("DELETE FROM results WHERE run_id = ?", (run_id,)).rowcount
            conn.execute("DELETE FROM runs WHERE run_id = ?", (run_id,))
            return removed

        return self._transaction(work)

    def _run_record(self, conn: sqlite3.Connection, run_id: str) -> tuple[str, str]:
        """The status and config of ``run_id`` (its exact id), read inside a transaction."""
        found = conn.execute("SELECT status, config FROM runs WHERE run_id = ?", (run_id,)).fetchall()
        if not found:
            from vqbench.errors import UnknownNameError

            raise UnknownNameError(f"no run {run_id!r} in {self.path} (give its whole id)")
        return found[0]

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
        self._write([(_INSERT_ROW, values)], many=True)


__all__ = ["StoreWriting"]
