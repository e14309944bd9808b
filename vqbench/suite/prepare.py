"""Preparing a run before it starts: its plan, the cells still to run, executor settings, checks.

A new run expands its profile into cells and checks them (inputs, devices, sizes, and the
candidates' pre-flight in a worker-like process); a resumed run reads its plan back from the store
and keeps only the cells that have no rows yet. Nothing is run and nothing is stored here.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Any

from vqbench.errors import UserError

from .cells import Cell
from .checks import check_cells, check_devices
from .executors import ExecutorSettings
from .expand import Plan, expand_profile
from .input_checks import check_inputs
from .profiles import Profile, load_profile


def plan_of_run(info: dict[str, Any]) -> Plan:
    """The plan that a stored run was started with (its cells, timeouts, workers, plugins)."""
    config = info.get("config") or {}
    if "cells" not in config:
        raise UserError(
            f"run {info['run_id']!r} was not started by run_suite (its config lists no cells); "
            "it cannot be resumed"
        )
    cells = [Cell.from_dict(c) for c in config["cells"]]
    workers = config.get("workers")
    return Plan(
        suite=info["suite"],
        cells=cells,
        timeouts=dict(config.get("timeouts", {})),
        workers=int(workers) if workers is not None else None,
        threads=config.get("threads"),
        plugins=tuple(config.get("plugins") or ()),
        import_path=tuple(config.get("import_path") or ()),
    )


def load_plugins(plan: Plan) -> None:
    """Import ``plan``'s plugin modules here, with its import path (as its workers will)."""
    from vqbench.quantizers._plugins import import_plugins

    import_plugins(plan.plugins, plan.import_path)


def executor_settings(
    table: dict[str, Any] | None,
    executor: str | dict | ExecutorSettings | None = None,
    workers: int | None = None,
    source: str = "profile",
) -> ExecutorSettings:
    """A profile's ``[executor]`` table (or a stored run's settings), overridden by the arguments."""
    base = ExecutorSettings.from_table(dict(table or {}), f"{source}: executor")
    if isinstance(executor, ExecutorSettings):
        base = executor
    elif isinstance(executor, dict):
        base = base.merged(**executor)
    elif executor is not None:
        base = base.merged(kind=executor)
    return base.merged(workers=workers)


@dataclasses.dataclass
class PreparedRun:
    """A run before it starts: its plan, the cells still to run, the executor settings, its config.

    ``run_id`` is set when resuming a stored run; ``config`` is what a new run stores.
    """

    plan: Plan
    todo: list[Cell]
    settings: ExecutorSettings
    run_id: str | None = None
    config: dict[str, Any] = dataclasses.field(default_factory=dict)
    profile: Profile | None = None


def prepare_run(
    st: Any,
    suite: str | Path | Profile | None = "quick",
    *,
    quantizers: Any = None,
    datasets: Any = None,
    devices: Any = None,
    backends: Any = None,
    seed: int | None = None,
    resume: str | None = None,
    timeout: float | None = None,
    executor: str | dict | ExecutorSettings | None = None,
    workers: int | None = None,
    check_devices_here: bool = True,
    plugins: Any = None,
    preflight: bool = True,
    dtypes: Any = None,
    candidates: Any = None,
) -> PreparedRun:
    """Expand and check a run (or a stored run to resume) without running anything.

    ``check_devices_here=False`` (a dry run): devices that this machine lacks are not an error.
    ``plugins``: module names (``"pkg.mod,other"`` or a list) imported here and in every worker, over
    the profile's ``[suite] plugins``. ``preflight``: check every candidate and plugin quantizer in a
    worker-like process first (``vqbench.suite.preflight``); a failure raises ``PreflightError``.
    ``candidates``: quantizers measured wherever a selected one is (``expand_profile``).
    """
    from vqbench.quantizers._plugins import add_import_path, plugin_names

    from .preflight import Checking, finish_preflight, import_path, start_preflight

    if timeout is not None and not timeout > 0:
        raise UserError(f"timeout must be a positive number of seconds, got {timeout!r}")
    extra_plugins = plugin_names(plugins)
    if resume is not None:
        given = _given(
            quantizers=quantizers,
            datasets=datasets,
            devices=devices,
            backends=backends,
            seed=seed,
            plugins=extra_plugins or None,
            dtypes=dtypes,
            candidates=candidates,
        )
        if given:
            raise UserError(f"resume runs the stored run's own cells; drop {', '.join(sorted(given))}")
        run_id = st.resolve_run(resume)
        info = st.run_info(run_id)
        if info["status"] == "running":  # its writer is alive (run_info says "died" otherwise)
            from vqbench.results import RunBusyError
            from vqbench.results._ownership import busy_message

            raise RunBusyError(busy_message(run_id, info["config"]))
        if (info.get("config") or {}).get("imported"):
            raise UserError(f"run {run_id} was imported from a file; only runs measured here can be resumed")
        plan = plan_of_run(info)
        load_plugins(plan)
        if timeout is not None:
            plan.timeouts = {c.cell_id: float(timeout) for c in plan.cells}
        settings = executor_settings(info["config"].get("executor"), executor, workers, f"run {run_id}")
        done = st.done_cells(run_id)
        todo = [c for c in plan.cells if c.cell_id not in done]
        if settings.kind == "local" and check_devices_here:
            check_devices(todo)
        if preflight:
            with start_preflight(todo, plan.plugins, plan.import_path) as checking:
                finish_preflight(checking)
        return PreparedRun(plan, todo, settings, run_id=run_id)
    profile = load_profile("quick" if suite is None else suite)
    here = import_path([])  # the current folder: `module:Name` and plugins beside the user
    add_import_path(here)
    chosen = tuple(dict.fromkeys(profile.plugins + extra_plugins))
    load_plugins(Plan(profile.name, [], plugins=chosen, import_path=here))
    plan = expand_profile(
        profile,
        quantizers=quantizers,
        datasets=datasets,
        devices=devices,
        backends=backends,
        seed=seed,
        timeout=timeout,
        dtypes=dtypes,
        candidates=candidates,
    )
    plan.plugins, plan.import_path = chosen, import_path(plan.cells)
    add_import_path(plan.import_path)
    # the candidates' pre-flight runs in its own process while the checks below run here
    checking = start_preflight(plan.cells, plan.plugins, plan.import_path) if preflight else Checking([])
    with checking:
        prepared = _prepare_new(
            profile,
            plan,
            quantizers,
            datasets,
            devices,
            backends,
            seed,
            timeout,
            executor,
            workers,
            check_devices_here,
            dtypes,
            candidates,
        )
        finish_preflight(checking)
    return prepared


def _prepare_new(
    profile: Profile,
    plan: Plan,
    quantizers: Any,
    datasets: Any,
    devices: Any,
    backends: Any,
    seed: int | None,
    timeout: float | None,
    executor: Any,
    workers: int | None,
    check_devices_here: bool,
    dtypes: Any = None,
    candidates: Any = None,
) -> PreparedRun:
    """The settings, checks and stored config of a new run of ``plan``."""
    if "workers" not in (profile.raw.get("suite") or {}):
        plan.workers = None  # the executor's default: one per GPU locally on CUDA, else one
    settings = executor_settings(profile.executor, executor, workers, profile.source)
    if settings.workers is None and plan.workers is not None:
        settings = settings.merged(workers=plan.workers)
    check_inputs(profile, plan.cells)
    check_cells(plan.cells, profile.source, local=settings.kind == "local" and check_devices_here)
    config = {
        "profile": profile.source,
        "overrides": _given(
            quantizers=quantizers,
            datasets=datasets,
            devices=devices,
            backends=backends,
            seed=seed,
            timeout=timeout,
            dtypes=dtypes,
            candidates=candidates,
        ),
        "argv": list(sys.argv),
        "workers": settings.workers,
        "threads": plan.threads,
        "timeouts": plan.timeouts,
        "executor": settings.to_dict(),
        "plugins": list(plan.plugins),
        "import_path": list(plan.import_path),
        "cells": [c.to_dict() for c in plan.cells],
    }
    return PreparedRun(plan, plan.cells, settings, config=config, profile=profile)


def _given(**overrides: Any) -> dict[str, Any]:
    """The overrides that were given (not None)."""
    return {k: v for k, v in overrides.items() if v is not None}


__all__ = ["PreparedRun", "executor_settings", "load_plugins", "plan_of_run", "prepare_run"]
