"""Re-measure some cells of a stored run, to confirm a suspect before the gate reports it.

The cells run again, with the run's own settings, into a new run of status "remeasure" that
points back at the original (``config["remeasure_of"]``). Such runs never enter a gate's history.
"""

from __future__ import annotations

from typing import Any

from .runner import _make_pool, _plan_from_run, _Progress, _Runner, executor_settings, load_plugins


def remeasure_cells(store: Any, run_id: str, cell_ids: list[str], *, progress: bool = False) -> str:
    """Run ``cell_ids`` of ``run_id`` again into a new "remeasure" run of ``store``; returns its id."""
    info = store.run_info(store.resolve_run(run_id))
    plan = _plan_from_run(info)
    load_plugins(plan)
    wanted = set(cell_ids)
    cells = [c for c in plan.cells if c.cell_id in wanted]
    unknown = sorted(wanted - {c.cell_id for c in cells})
    if unknown:
        raise KeyError(f"run {info['run_id']} has no cell(s) {unknown}")
    config = {**info["config"], "remeasure_of": info["run_id"], "cells": [c.to_dict() for c in cells]}
    new_id = store.start_run(info["suite"], info["environment"], config=config)
    with _Progress(len(cells), progress, f"re-measure {plan.suite}") as bar:
        try:
            pool = _make_pool(plan, cells, executor_settings(None, "local", 1))  # here, one worker
            _Runner(plan, store, new_id, cells, bar, pool).run()
        except BaseException:
            store.finish_run(new_id, "interrupted")
            raise
    store.finish_run(new_id, "remeasure")
    return new_id


__all__ = ["remeasure_cells"]
