"""The suite runner: cells run in long-lived workers, rows go to the store as each cell ends.

Where the workers live is the executor's business (``vqbench.suite.executors``: local processes,
Slurm jobs through submitit, Ray actors); the loop here is the same for all of them, and this
process alone writes the store. Isolation comes from the process boundary. An exception in a cell
is an error row with its message; a dataset that is not present is a skipped row with the reason;
a worker that crashes or overruns the per-cell timeout is killed and replaced, and its cell
recorded as an error (a lost Slurm job or Ray actor first gets its cell run once more). Every
cell's rows are written in one transaction, so Ctrl-C (or SIGTERM) keeps every finished cell,
cancels the engine's outstanding work and marks the run "interrupted"; ``resume=RUN_ID`` then runs
only the cells that have no rows yet.
"""

from __future__ import annotations

import contextlib
import dataclasses
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from vqbench.errors import UserError

from .cells import Cell
from .checks import check_cells, check_devices
from .executors import Done, ExecutorSettings, Lost, StartFailed, make_executor, require_engine
from .executors.local import START_FAILURE_HINT
from .expand import Plan, expand_profile
from .input_checks import check_inputs
from .profiles import Profile, load_profile

#: Consecutive worker start failures (at least one per worker) after which the run stops.
MAX_START_FAILURES = 2
_IDENTITY = (
    "run_id",
    "suite",
    "benchmark",
    "quantizer",
    "config",
    "config_hash",
    "backend",
    "device",
    "dataset",
    "seed",
    "cell_id",
)
_FIGURE_KEYS = ("metric", "value", "unit", "higher_is_better", "spread", "n", "dataset_checksum", "time")


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM stopped a run; finished cells are stored and the run is marked interrupted."""

    def __init__(self, run_id: str, done: int, total: int) -> None:
        super().__init__(
            f"run {run_id} interrupted after {done} of {total} cells; "
            f"resume with `vqbench run --resume {run_id}`"
        )
        self.run_id = run_id
        self.done = done
        self.total = total

    def __str__(self) -> str:
        return str(self.args[0])


# -- rows ----------------------------------------------------------------------------------------
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
                    if k not in _FIGURE_KEYS and k != "extra" and k not in _IDENTITY
                }
            )
            row = {**base, **{k: fig[k] for k in _FIGURE_KEYS if k in fig}, "extra": extra, "status": "ok"}
            rows.append(row)
        return rows
    extra = _cell_extra(cell, outcome)
    if outcome.get("traceback"):
        extra["traceback"] = outcome["traceback"][-4000:]
    status = "skipped" if status == "skipped" else "error"
    return [
        {
            **base,
            "metric": status,
            "value": None,
            "unit": "",
            "status": status,
            "message": str(outcome.get("message", ""))[:2000],
            "extra": extra,
        }
    ]


# -- the run loop --------------------------------------------------------------------------------
class _Runner:
    """The engine-agnostic loop: hand cells to idle workers, record events, enforce timeouts.

    A cell whose worker is lost (crash, preempted or cancelled job, dead actor) runs again up to the
    executor's ``lost_retries`` times, then is recorded as an error.
    """

    def __init__(self, plan: Plan, store: Any, run_id: str, todo: list[Cell], progress: Any, executor: Any):
        self.plan, self.store, self.run_id = plan, store, run_id
        self.todo = todo
        self.progress = progress
        self.executor = executor
        self.done = 0
        self.start_failures = 0
        self.running: dict[int, tuple[Cell, float]] = {}
        self.attempts: dict[int, int] = {}

    def _record(self, cell: Cell, outcome: dict[str, Any], index: int, worker: dict | None = None) -> None:
        outcome = dict(outcome)
        if worker:
            outcome["worker"] = worker
        if self.attempts.get(index, 1) > 1:
            outcome["attempts"] = self.attempts[index]
        self.store.write_rows(rows_for(cell, self.run_id, outcome))
        self.done += 1
        self.progress.advance(cell, outcome.get("status"))

    def run(self) -> None:
        pending: deque[tuple[int, Cell]] = deque(enumerate(self.todo))
        executor = self.executor
        interrupted = True
        try:
            executor.start()
            self.progress.note(f"{len(self.todo)} cells on the {executor.describe()}")
            while pending or self.running:
                if pending and executor.has_idle():
                    for task in list(pending):
                        if not executor.has_idle():
                            break
                        if executor.try_submit(*task):
                            pending.remove(task)
                            self.running[task[0]] = (task[1], time.monotonic())
                            self.attempts[task[0]] = self.attempts.get(task[0], 0) + 1
                            self.progress.start(task[1])
                for event in executor.wait(self._wait_time(), more=bool(pending)):
                    self._handle(event, pending)
                self._check_timeouts()
            interrupted = False
        finally:
            executor.close(cancel=interrupted)

    def _handle(self, event: Any, pending: deque) -> None:
        if isinstance(event, Done):
            self.start_failures = 0
            if event.index in self.running:
                cell, _ = self.running.pop(event.index)
                self._record(cell, event.outcome, event.index, event.worker)
        elif isinstance(event, Lost):
            if event.index not in self.running:
                return
            cell, _ = self.running.pop(event.index)
            if self.attempts[event.index] <= self.executor.lost_retries:
                pending.appendleft((event.index, cell))  # once more, on another worker
                return
            tries = self.attempts[event.index]
            message = event.message if tries == 1 else f"{event.message} (lost {tries} times)"
            self._record(cell, {"status": "error", "message": message}, event.index, event.worker)
        elif isinstance(event, StartFailed):
            self.start_failures += 1
            if self.start_failures >= max(MAX_START_FAILURES, self.executor.size()):
                hint = f" {START_FAILURE_HINT}" if self.executor.kind == "local" else ""
                raise RuntimeError(
                    f"vqbench workers fail to start on the {self.executor.kind} executor: "
                    f"{event.message.strip()}.{hint}"
                )

    def _wait_time(self) -> float:
        now = time.monotonic()
        limits = [0.5]
        for cell, started in self.running.values():
            limits.append(started + self.plan.timeout(cell) - now)
        return max(0.0, min(limits))

    def _check_timeouts(self) -> None:
        now = time.monotonic()
        for index, (cell, started) in list(self.running.items()):
            limit = self.plan.timeout(cell)
            if now - started > limit:
                self.executor.kill(index)
                del self.running[index]
                self._record(
                    cell,
                    {
                        "status": "error",
                        "message": f"timed out: the cell ran past its {limit:g} s limit and its "
                        "worker was killed",
                    },
                    index,
                )


# -- progress ------------------------------------------------------------------------------------
class _Progress:
    """A rich progress bar with ETA on stderr (or nothing, when disabled)."""

    def __init__(self, total: int, enabled: bool, title: str) -> None:
        self.bar = None
        self.counts = {"err": 0, "skip": 0}
        if enabled and total:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )
            from rich.table import Column

            from vqbench._console import safe_console_class

            self.bar = Progress(
                TextColumn("[bold]{task.fields[title]}"),
                BarColumn(bar_width=16),
                MofNCompleteColumn(),
                TextColumn("{task.fields[problems]}"),
                TimeElapsedColumn(),
                TextColumn("ETA"),
                TimeRemainingColumn(),
                TextColumn(
                    "{task.description}",
                    table_column=Column(ratio=1, no_wrap=True, overflow="ellipsis", min_width=10),
                ),
                console=safe_console_class()(stderr=True),
                expand=True,
            )
            self.task = self.bar.add_task("", total=total, title=title, problems="")

    def __enter__(self) -> _Progress:
        if self.bar is not None:
            self.bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.stop()

    def note(self, text: str) -> None:
        """A line above the bar (plain text, never markup)."""
        if self.bar is not None:
            from rich.text import Text

            self.bar.console.print(Text(text))

    def start(self, cell: Cell) -> None:
        if self.bar is not None:
            self.bar.update(self.task, description=cell.label)

    def advance(self, cell: Cell, status: str | None) -> None:
        if status != "ok":
            self.counts["skip" if status == "skipped" else "err"] += 1
        if self.bar is not None:
            problems = []
            if self.counts["err"]:
                problems.append(f"[red]{self.counts['err']} err[/]")
            if self.counts["skip"]:
                problems.append(f"[yellow]{self.counts['skip']} skip[/]")
            self.bar.update(self.task, advance=1, problems=" ".join(problems))


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """Within the run, SIGTERM stops the run the way Ctrl-C does (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    old = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


# -- public API ----------------------------------------------------------------------------------
def _plan_from_run(info: dict[str, Any]) -> Plan:
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
class Prepared:
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
) -> Prepared:
    """Expand and check a run (or a stored run to resume) without running anything.

    ``check_devices_here=False`` (a dry run): devices that this machine lacks are not an error.
    ``plugins``: module names (``"pkg.mod,other"`` or a list) imported here and in every worker, over
    the profile's ``[suite] plugins``. ``preflight``: check every candidate and plugin quantizer in a
    worker-like process first (``vqbench.suite.preflight``); a failure raises ``PreflightError``.
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
        )
        if given:
            raise UserError(f"resume runs the stored run's own cells; drop {', '.join(sorted(given))}")
        run_id = st.resolve_run(resume)
        info = st.run_info(run_id)
        if info["status"] == "running":  # its writer is alive (run_info says "died" otherwise)
            from vqbench.results._store import RunBusyError, _busy_message

            raise RunBusyError(_busy_message(run_id, info["config"]))
        if (info.get("config") or {}).get("imported"):
            raise UserError(f"run {run_id} was imported from a file; only runs measured here can be resumed")
        plan = _plan_from_run(info)
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
        return Prepared(plan, todo, settings, run_id=run_id)
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
) -> Prepared:
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
    return Prepared(plan, plan.cells, settings, config=config, profile=profile)


def run_suite(
    suite: str | Path | Profile | None = "quick",
    *,
    quantizers: str | list[str] | None = None,
    datasets: str | list[str] | None = None,
    devices: str | list[str] | None = None,
    backends: str | list[str] | None = None,
    store: Any = None,
    seed: int | None = None,
    resume: str | None = None,
    timeout: float | None = None,
    progress: bool = True,
    executor: str | dict | ExecutorSettings | None = None,
    workers: int | None = None,
    plugins: str | list[str] | None = None,
    preflight: bool = True,
    dtypes: str | list[str] | None = None,
) -> str:
    """Run a suite and store its rows; return the run id.

    suite:      a built-in profile (``"quick"``, ``"standard"``, ``"full"``), a TOML path, or a Profile.
    quantizers: patterns (``"fsq*,vq"``, a list, ``"default"``, ``"path/file.py:Name"``) that replace
                the profile's selection; sweeps keep only these.
    datasets:   names that replace the datasets of every benchmark that uses one.
    devices, backends: replace those axes everywhere (``"cuda"``; ``"eager,compile"``).
    store:      a ``ResultStore`` or a path (default ``.vqbench/results.sqlite`` or ``$VQBENCH_STORE``).
    seed:       replaces the profile's seeds.
    resume:     the id of a stored run (or a unique prefix, or "latest"): run only its cells that have
                no rows yet, with the run's own settings (no other overrides allowed but the
                executor, its workers and the timeout).
    timeout:    seconds per cell, replacing the profile's.
    progress:   show a progress bar with ETA on stderr.
    executor:   ``"local"``, ``"slurm"``, ``"ray"``, a dict of settings over the profile's
                ``[executor]`` table, or an :class:`ExecutorSettings` (see ``vqbench.suite.executors``).
    workers:    worker processes, Slurm jobs or Ray actors (default: the executor's and profile's).
    plugins:    modules (``"my_pkg.quantizers"``, comma-separated or a list) imported here and in every
                worker before anything runs, beside the profile's ``[suite] plugins``: their
                ``@register_quantizer`` names can be selected. Recorded in the run's config.
    preflight:  first check every candidate and plugin quantizer (import, build with the cells'
                arguments, one call on a tiny input, protocol) in a worker-like process; a failure
                raises :class:`~vqbench.suite.preflight.PreflightError` before anything is stored.
    dtypes:     precisions (``"float32,bfloat16"``, ``vqbench.suite.precision``) that replace the
                profile's precision axis everywhere.

    Bad input (unknown names, a malformed profile, a corrupt or unwritable store, a missing device,
    sizes that do not fit, a missing engine) raises before anything runs. Ctrl-C or SIGTERM keeps every
    finished cell, cancels the engine's outstanding jobs, marks the run "interrupted" and raises
    :class:`RunInterrupted` (a ``KeyboardInterrupt``).
    """
    from vqbench.results import open_store

    st = open_store(store)
    try:
        prepared = prepare_run(
            st,
            suite,
            quantizers=quantizers,
            datasets=datasets,
            devices=devices,
            backends=backends,
            seed=seed,
            resume=resume,
            timeout=timeout,
            executor=executor,
            workers=workers,
            plugins=plugins,
            preflight=preflight,
            dtypes=dtypes,
        )
        return _run(st, prepared, progress)
    finally:
        if st is not store:
            st.close()


def _given(**overrides: Any) -> dict[str, Any]:
    """The overrides that were given (not None)."""
    return {k: v for k, v in overrides.items() if v is not None}


def _make_pool(plan: Plan, todo: list[Cell], settings: ExecutorSettings) -> Any:
    """The executor for ``todo``, its workers set to the plan's thread count."""
    require_engine(settings.kind)
    env = {"OMP_NUM_THREADS": str(plan.threads), "MKL_NUM_THREADS": str(plan.threads)} if plan.threads else {}
    return make_executor(
        settings,
        todo,
        workers=settings.workers,
        threads=plan.threads,
        env=env,
        plugins=plan.plugins,
        import_path=plan.import_path,
    )


def _run(st: Any, prepared: Prepared, progress: bool) -> str:
    from vqbench.results import environment_fingerprint

    plan, todo, settings = prepared.plan, prepared.todo, prepared.settings
    pool = _make_pool(plan, todo, settings)
    try:
        if prepared.run_id is not None:
            run_id = prepared.run_id
            info = st.run_info(run_id)
            st.start_run(info["suite"], info["environment"], run_id=run_id)
        else:
            assert prepared.profile is not None
            environment = environment_fingerprint(threads=plan.threads)
            run_id = st.start_run(prepared.profile.name, environment, config=prepared.config)
    except BaseException:
        pool.close(cancel=True)  # nothing started; its cores are free again
        raise
    with _Progress(len(todo), progress, plan.suite) as bar:
        runner = _Runner(plan, st, run_id, todo, bar, pool)
        try:
            with _sigterm_as_interrupt():
                runner.run()
        except KeyboardInterrupt as exc:
            st.finish_run(run_id, "interrupted")
            raise RunInterrupted(run_id, runner.done, len(todo)) from exc
        except BaseException:
            st.finish_run(run_id, "interrupted")
            raise
    st.finish_run(run_id, "finished")
    return run_id


__all__ = [
    "Prepared",
    "RunInterrupted",
    "executor_settings",
    "load_plugins",
    "prepare_run",
    "rows_for",
    "run_suite",
]
