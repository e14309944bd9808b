"""Re-measure some cells of a stored run, to confirm a suspect before the gate reports it.

The cells run again, with the run's own settings, into a new run of status "remeasure" that
points back at the original (``config["remeasure_of"]``). Such runs never enter a gate's history.
"""

from __future__ import annotations

from typing import Any

from vqbench.errors import UnknownNameError

from .prepare import executor_settings, load_plugins, plan_of_run
from .progress import ProgressBar
from .run_loop import CellLoop, open_executor


def remeasure_cells(store: Any, run_id: str, cell_ids: list[str], *, progress: bool = False) -> str:
    """Run ``cell_ids`` of ``run_id`` again into a new "remeasure" run of ``store``; returns its id."""
    info = store.run_info(store.resolve_run(run_id))
    plan = plan_of_run(info)
    load_plugins(plan)
    wanted = set(cell_ids)
    cells = [c for c in plan.cells if c.cell_id in wanted]
    unknown = sorted(wanted - {c.cell_id for c in cells})
    if unknown:
        raise UnknownNameError(f"run {info['run_id']} has no cell(s) {unknown}")
    config = {**info["config"], "remeasure_of": info["run_id"], "cells": [c.to_dict() for c in cells]}
    new_id = store.start_run(info["suite"], info["environment"], config=config)
    with ProgressBar(len(cells), progress, f"re-measure {plan.suite}") as bar:
        try:
            pool = open_executor(plan, cells, executor_settings(None, "local", 1))  # here, one worker
            CellLoop(plan, store, new_id, cells, bar, pool).run()
        except BaseException:
            store.finish_run(new_id, "interrupted")
            raise
    store.finish_run(new_id, "remeasure")
    return new_id


__all__ = ["remeasure_cells"]
