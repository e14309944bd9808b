"""A run's plan and cost before it runs (``vqbench run --dry-run``).

Each cell's cost comes from the store's history of cell times (``cell_seconds`` of earlier rows):
the same cell (same id) if it ran before, else the median of cells of the same benchmark, quantizer,
device and config that had the same parameters (step cap, sizes, ...), dataset and dataset options,
else of the benchmark and device with those same parameters, dataset and codebook size; with no such
history, the engine's declared cost model (a quick run's 200-step cells never stand in for a
6,000-step cell of another profile).
The wall time on an executor is the cells spread over its workers, longest first.
"""

from __future__ import annotations

import heapq
import json
import statistics
from dataclasses import dataclass
from typing import Any

from vqbench.engines import get_engine

from .cells import NO_QUANTIZER, Cell

#: Seconds a worker takes to start (import torch and the engines), on top of its cells.
WORKER_START_S = 10.0


@dataclass
class CellCost:
    """One cell's estimated seconds and where the figure came from."""

    cell: Cell
    seconds: float
    source: str  # "this cell", "history", "known cost"


def _history(store: Any) -> list[dict[str, Any]]:
    """(cell id, benchmark, quantizer, device, seconds) of every stored measured cell."""
    if store is None:
        return []
    rows = store.rows(None)
    if not len(rows):
        return []
    rows = rows[rows["status"] == "ok"].drop_duplicates(["run_id", "cell_id"])
    out = []
    columns = ["cell_id", "benchmark", "quantizer", "device", "dataset", "config", "extra"]
    for rec in rows[columns].itertuples(index=False):
        try:
            extra = json.loads(rec.extra or "{}")
            config = json.loads(rec.config or "{}") if isinstance(rec.config, str) else dict(rec.config or {})
        except (TypeError, ValueError):
            continue
        seconds = extra.get("cell_seconds")
        if isinstance(seconds, (int, float)) and isinstance(extra.get("params"), dict):
            out.append(
                {
                    "cell_id": rec.cell_id,
                    "benchmark": rec.benchmark,
                    "quantizer": rec.quantizer,
                    "device": _kind(rec.device),
                    "work": _work(
                        _current(rec.benchmark, extra["params"]),
                        rec.dataset,
                        extra.get("dataset_options") or {},
                    ),
                    "config": _json(config),
                    "size": config.get("codebook_size"),
                    "seconds": float(seconds),
                }
            )
    return out


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=repr)


def _current(benchmark: str, params: dict) -> dict:
    """Parameters under their current names (a run stored by an earlier vqbench may use old ones)."""
    from vqbench.engines import ENGINES

    try:
        return ENGINES.get(benchmark).current_params(params) if benchmark in ENGINES else dict(params)
    except ValueError:
        return dict(params)


def _work(params: dict, dataset: Any, options: dict) -> str:
    """What a cell's time depends on besides its quantizer: its parameters, dataset and options."""
    return _json([params, dataset if isinstance(dataset, str) and dataset else None, options])


def _kind(device: str) -> str:
    return "cuda" if str(device).startswith("cuda") else "cpu"


def cell_costs(cells: list[Cell], store: Any = None) -> list[CellCost]:
    """The estimated cost of each cell, from the store's history or the known costs."""
    history = _history(store)
    by: dict[tuple, list[float]] = {}
    for h in history:
        for key in (
            ("cell", h["cell_id"]),
            ("q", h["benchmark"], h["quantizer"], h["device"], h["config"], h["work"]),
            ("b", h["benchmark"], h["device"], h["size"], h["work"]),
        ):
            by.setdefault(key, []).append(h["seconds"])
    costs = []
    for cell in cells:
        dev = _kind(cell.device)
        work = _work(_current(cell.benchmark, cell.params), cell.dataset, cell.dataset_options)
        for key, source in (
            (("cell", cell.cell_id), "this cell"),
            (("q", cell.benchmark, cell.quantizer, dev, _json(cell.config), work), "history"),
            (("b", cell.benchmark, dev, cell.config.get("codebook_size"), work), "history"),
        ):
            if key in by:
                costs.append(CellCost(cell, statistics.median(by[key]), source))
                break
        else:
            costs.append(CellCost(cell, _known_seconds(cell, dev), "known cost"))
    return costs


def _known_seconds(cell: Cell, device: str) -> float:
    """A cell's rough cost with no history: its step cap times a per-step cost, else a flat figure."""
    cost = get_engine(cell.benchmark).cost
    steps = _current(cell.benchmark, cell.params).get(cost.step_param) if cost.step_param else None
    if not isinstance(steps, int) or device not in cost.step_seconds:
        return cost.seconds.get(device, 10.0)
    per_step = cost.step_seconds[device]
    size = cell.config.get("codebook_size")
    if _dense(cell.quantizer) and isinstance(size, int):
        per_step *= 1 + cost.dense_per_1024.get(device, 0.0) * size / 1024
    return steps * per_step


def _dense(quantizer: str) -> bool:
    """Whether the quantizer's step cost grows with its codebook size (its registered memory model)."""
    if quantizer == NO_QUANTIZER:
        return False
    from vqbench.quantizers import get_quantizer_spec

    try:
        return get_quantizer_spec(quantizer).memory == "dense"
    except (KeyError, TypeError):  # not registered here: priced like a quantizer of flat cost
        return False


def wall_time(seconds: list[float], workers: int, start: float = WORKER_START_S) -> float:
    """Seconds to run cells of these costs on ``workers`` workers, longest first (LPT)."""
    workers = max(1, min(workers, len(seconds) or 1))
    loads = [start] * workers
    heapq.heapify(loads)
    for s in sorted(seconds, reverse=True):
        heapq.heappush(loads, heapq.heappop(loads) + s)
    return max(loads) if seconds else 0.0


def missing_datasets(cells: list[Cell]) -> dict[str, str]:
    """Datasets of ``cells`` that are not available here, with the reason (how to get them)."""
    from vqbench.datasets import DatasetUnavailableError, load_dataset

    missing: dict[str, str] = {}
    seen: set[str] = set()
    for cell in cells:
        if not cell.dataset:
            continue
        key = json.dumps([cell.dataset, cell.dataset_options], sort_keys=True, default=repr)
        if key in seen:
            continue
        seen.add(key)
        try:
            load_dataset(cell.dataset, seed=cell.seed, **cell.dataset_options)
        except DatasetUnavailableError as exc:
            missing[cell.dataset] = str(exc)
        except Exception as exc:  # a broken file or option: its cells would fail the same way
            missing[cell.dataset] = f"{type(exc).__name__}: {exc}"
    return missing


__all__ = ["CellCost", "cell_costs", "missing_datasets", "wall_time"]
