"""Reading a store: runs by id or prefix, run records, and rows as typed DataFrames.

Rows come back under today's metric names (:func:`~vqbench.results._renames.current_names`), so a
history stored before a rename compares with the runs after it.
"""

from __future__ import annotations

import json
from typing import Any

from vqbench.errors import UnknownNameError
from vqbench.results._connection import StoreConnection
from vqbench.results._frames import rows_frame, runs_frame
from vqbench.results._ownership import owner_alive
from vqbench.results._renames import current_names
from vqbench.results._schema import ROW_COLUMNS, RUN_COLUMNS

_RUN_MARKS = ("owner", "imported", "gate", "accepted")


class StoreReading(StoreConnection):
    """The read side of a store: runs and their rows."""

    def _require_run(self, run_id: str) -> None:
        if not self._read("SELECT 1 FROM runs WHERE run_id = ?", (run_id,)):
            known = [r[0] for r in self._read("SELECT run_id FROM runs ORDER BY started DESC LIMIT 5")]
            raise UnknownNameError(f"no run {run_id!r} in {self.path}; recent runs: {known or 'none'}")

    def resolve_run(self, run_id: str | None = "latest") -> str:
        """A run id as given, or the latest run's id for ``None``/"latest"; a unique prefix works too."""
        if run_id in (None, "latest"):
            found = self._read(
                "SELECT run_id FROM runs WHERE status != 'remeasure' "
                "ORDER BY started DESC, rowid DESC LIMIT 1"
            )
            if not found:
                raise UnknownNameError(f"result store {self.path} holds no runs yet; run `vqbench run` first")
            return found[0][0]
        if self._read("SELECT 1 FROM runs WHERE run_id = ?", (run_id,)):
            return run_id
        matches = [r[0] for r in self._read("SELECT run_id FROM runs WHERE run_id LIKE ? || '%'", (run_id,))]
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            raise UnknownNameError(f"run id prefix {run_id!r} is ambiguous: {matches[:5]}")
        self._require_run(run_id)
        return run_id  # pragma: no cover - _require_run raised

    def run_info(self, run_id: str) -> dict:
        """One run as a dict, with ``environment`` and ``config`` parsed."""
        self._require_run(run_id)
        row = self._read(f"SELECT {', '.join(RUN_COLUMNS)} FROM runs WHERE run_id = ?", (run_id,))[0]
        info = dict(zip(RUN_COLUMNS, row, strict=True))
        info["environment"] = json.loads(info["environment"])
        info["config"] = json.loads(info["config"])
        if info["status"] == "running" and not owner_alive(info["config"]):
            info["status"] = "died"
        return info

    def runs(self) -> Any:
        """All runs, oldest first, with row counts (``n_rows``, ``n_errors``).

        ``config`` holds only what places a run among the others (``owner``, ``imported``,
        ``gate``, ``accepted``), so that listing a large store reads little; :meth:`run_info` has
        a run's whole config."""
        marks = ", ".join(f"'{k}', json(json_extract(r.config, '$.{k}'))" for k in _RUN_MARKS)
        cols = ", ".join(f"json_object({marks})" if c == "config" else f"r.{c}" for c in RUN_COLUMNS)
        records = self._read(
            f"SELECT {cols}, COUNT(x.row_id), COALESCE(SUM(x.status = 'error'), 0) "
            "FROM runs r LEFT JOIN results x ON x.run_id = r.run_id "
            "GROUP BY r.run_id ORDER BY r.started, r.rowid"
        )
        frame = runs_frame(records, extra_columns=("n_rows", "n_errors"))
        for i in frame.index[frame["status"] == "running"]:
            if not owner_alive(json.loads(frame.at[i, "config"])):
                frame.at[i, "status"] = "died"
        return frame

    def rows(self, run_id: str | None = None) -> Any:
        """Rows of one run (or of all runs for ``None``) as a typed DataFrame, in write order,
        with renamed metrics under their new names."""
        cols = ", ".join(ROW_COLUMNS)
        if run_id is None:
            records = self._read(f"SELECT {cols} FROM results ORDER BY row_id")
        else:
            self._require_run(run_id)
            records = self._read(f"SELECT {cols} FROM results WHERE run_id = ? ORDER BY row_id", (run_id,))
        return current_names(rows_frame(records))

    def done_cells(self, run_id: str) -> set[str]:
        """Cell ids that already have rows in ``run_id`` (any status), for ``--resume``."""
        self._require_run(run_id)
        found = self._read(
            "SELECT DISTINCT cell_id FROM results WHERE run_id = ? AND cell_id != ''", (run_id,)
        )
        return {r[0] for r in found}


__all__ = ["StoreReading"]
