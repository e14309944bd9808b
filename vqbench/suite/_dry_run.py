"""``vqbench run --dry-run``: the cells, missing datasets, cost per benchmark and wall time, nothing run."""

from __future__ import annotations

from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def print_plan(prepared: Any, store: Any, console: Console, show_cells: bool = True) -> dict[str, Any]:
    """Print the plan of ``prepared`` (a ``prepare.PreparedRun``); return its figures (for tests)."""
    from .checks import check_devices
    from .estimate import cell_costs, missing_datasets, wall_time
    from .executors import planned_workers

    todo, settings = prepared.todo, prepared.settings
    costs = cell_costs(todo, store)
    if settings.kind == "local":
        try:
            check_devices(todo)
        except RuntimeError as exc:
            console.print(Text(f"this machine cannot run these cells locally: {exc}", style="yellow"))
    try:
        workers = planned_workers(settings, todo, prepared.plan.threads)
        worker_note = ""
    except (ValueError, RuntimeError) as exc:
        workers, worker_note = settings.workers or 1, f" ({exc})"
    if show_cells:
        cells = Table(title="cells", box=box.SIMPLE_HEAD, pad_edge=False)
        for col in ("#", "cell", "seed", "est. s", "from"):
            cells.add_column(col, justify="right" if col in ("#", "seed", "est. s") else "left")
        for i, c in enumerate(costs, 1):
            cells.add_row(str(i), Text(c.cell.label), str(c.cell.seed), f"{c.seconds:.1f}", c.source)
        console.print(cells)
    per_bench: dict[str, list] = {}
    for c in costs:
        per_bench.setdefault(c.cell.benchmark, []).append(c)
    table = Table(title="estimated cost per benchmark", box=box.SIMPLE_HEAD, pad_edge=False)
    for col in ("benchmark", "cells", "cell-seconds", "from"):
        table.add_column(col, justify="right" if col in ("cells", "cell-seconds") else "left")
    for bench, items in per_bench.items():
        sources = ", ".join(sorted({c.source for c in items}))
        table.add_row(bench, str(len(items)), _duration(sum(c.seconds for c in items)), sources)
    console.print(table)
    missing = missing_datasets(todo)
    for name, why in missing.items():
        console.print(Text(f"missing dataset {name}: {why}", style="yellow"))
    if not missing:
        console.print("every dataset is available here")
    total = sum(c.seconds for c in costs)
    wall = wall_time([c.seconds for c in costs], workers)
    where = f"{settings.kind} executor, {workers} worker(s){worker_note}"
    queue = " plus time in the Slurm queue" if settings.kind == "slurm" else ""
    console.print(
        Text(
            f"{len(todo)} cells, {_duration(total)} of cell time; estimated wall time on the {where}: "
            f"{_duration(wall)}{queue}"
        )
    )
    return {
        "cells": len(todo),
        "cell_seconds": total,
        "wall_seconds": wall,
        "workers": workers,
        "missing": missing,
        "per_benchmark": {b: sum(c.seconds for c in v) for b, v in per_bench.items()},
    }


__all__ = ["print_plan"]
