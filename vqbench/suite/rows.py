"""Store rows from a cell's outcome: one row per figure, or one error or skipped row."""

from __future__ import annotations

from typing import Any

from vqbench.results.vocabulary import IDENTITY_COLUMNS

from .cells import Cell

#: The keys of an engine's figure dict that become columns of its row (the rest goes to ``extra``).
_FIGURE_KEYS = ("metric", "value", "unit", "higher_is_better", "spread", "n", "dataset_checksum", "time")


def _base_row(cell: Cell, run_id: str) -> dict[str, Any]:
    return {
        "run_id": run_id,
        "suite": cell.suite,
        "benchmark": cell.benchmark,
        "quantizer": cell.quantizer,
        "config": cell.config,
        "backend": cell.backend,
        "device": cell.device,
        "dataset": cell.dataset,
        "seed": cell.seed,
        "cell_id": cell.cell_id,
    }


def _cell_extra(cell: Cell, outcome: dict[str, Any]) -> dict[str, Any]:
    """What every row of a cell carries in ``extra``: its parameters, run time and warnings."""
    extra: dict[str, Any] = {"params": cell.params}
    if cell.dataset_options:
        extra["dataset_options"] = cell.dataset_options
    if outcome.get("seconds") is not None:
        extra["cell_seconds"] = round(float(outcome["seconds"]), 3)
    if outcome.get("warnings"):
        extra["warnings"] = list(outcome["warnings"])
    if outcome.get("worker"):
        extra["worker"] = dict(outcome["worker"])  # host, GPU, driver, cores of the worker
    if outcome.get("attempts"):
        extra["attempts"] = int(outcome["attempts"])
    return extra


def rows_for(cell: Cell, run_id: str, outcome: dict[str, Any]) -> list[dict[str, Any]]:
    """The store rows for one cell's ``outcome`` (see ``vqbench.suite._worker``)."""
    base = _base_row(cell, run_id)
    status = outcome.get("status")
    if status == "ok":
        rows = []
        for fig in outcome["figures"]:
            extra = {**_cell_extra(cell, outcome), **(fig.get("extra") or {})}
            extra.update(
                {
                    k: v
                    for k, v in fig.items()
                    if k not in _FIGURE_KEYS and k != "extra" and k not in IDENTITY_COLUMNS
                }
            )
            row = {**base, **{k: fig[k] for k in _FIGURE_KEYS if k in fig}, "extra": extra, "status": "ok"}
            rows.append(row)
        return rows
    extra = _cell_extra(cell, outcome)
    if outcome.get("traceback"):
        extra["traceback"] = outcome["traceback"][-4000:]
    status = "skipped" if status == "skipped" else "error"
    message = str(outcome.get("message", ""))
    precision = cell.params.get("dtype")
    if precision:  # a precision's cell (float32 cells carry no dtype): say which one failed
        extra["precision"] = str(precision)
        if not message.startswith(f"{precision}: "):
            message = f"{precision}: {message}"
    return [
        {
            **base,
            "metric": status,
            "value": None,
            "unit": "",
            "status": status,
            "message": message[:2000],
            "extra": extra,
        }
    ]


__all__ = ["rows_for"]
