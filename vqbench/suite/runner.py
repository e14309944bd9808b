"""The suite runner: cells run in long-lived worker processes, rows go to the store as each cell ends.

Isolation comes from the process boundary. An exception in a cell is an error row with its message;
a dataset that is not present is a skipped row with the reason; a worker that crashes or overruns the
per-cell timeout is killed and replaced, and its cell recorded as an error. Every cell's rows are
written in one transaction, so Ctrl-C (or SIGTERM) keeps every finished cell and marks the run
"interrupted"; ``resume=RUN_ID`` then runs only the cells that have no rows yet.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from multiprocessing.connection import wait
from pathlib import Path
from typing import Any

from . import _worker
from .cells import BENCHMARK_MODULES, Cell
from .checks import check_cells, check_devices
from .expand import Plan, expand_profile
from .input_checks import check_inputs
from .profiles import Profile, load_profile

#: How long a worker may take to start (import torch and the engines) before it counts as failed.
WORKER_START_TIMEOUT_S = 300.0
#: Consecutive worker start failures after which the run stops.
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


# -- workers -------------------------------------------------------------------------------------
@dataclass
class _Slot:
    proc: Any
    conn: Any
    spawned: float
    ready: bool = False
    task: tuple[int, Cell] | None = None
    started: float = 0.0


@dataclass
class _Pool:
    """Long-lived worker processes (spawn context) and their replacement when one dies or overruns."""

    size: int
    engines: dict[str, str] = field(default_factory=lambda: dict(BENCHMARK_MODULES))
    env: dict[str, str] = field(default_factory=dict)
    threads: int | None = None
    slots: list[_Slot] = field(default_factory=list)
    start_failures: int = 0

    def __post_init__(self) -> None:
        self.ctx = mp.get_context("spawn")

    def spawn(self) -> _Slot:
        parent, child = self.ctx.Pipe()
        proc = self.ctx.Process(
            target=_worker.main,
            args=(child, os.getpid(), self.env, self.engines, self.threads),
            name="vqbench-worker",
        )
        proc.start()
        child.close()
        slot = _Slot(proc, parent, time.monotonic())
        self.slots.append(slot)
        return slot

    def kill(self, slot: _Slot) -> None:
        with contextlib.suppress(Exception):
            slot.proc.kill()
        slot.proc.join(timeout=10)
        with contextlib.suppress(Exception):
            slot.conn.close()
        if slot in self.slots:
            self.slots.remove(slot)

    def close(self) -> None:
        for slot in list(self.slots):
            if slot.ready and slot.task is None and slot.proc.is_alive():
                with contextlib.suppress(Exception):
                    slot.conn.send(None)
                slot.proc.join(timeout=5)
            self.kill(slot)


# -- the run loop --------------------------------------------------------------------------------
class _Runner:
    def __init__(
        self,
        plan: Plan,
        store: Any,
        run_id: str,
        todo: list[Cell],
        progress: Any,
        workers: int,
    ) -> None:
        self.plan, self.store, self.run_id = plan, store, run_id
        self.todo = todo
        self.progress = progress
        env = (
            {"OMP_NUM_THREADS": str(plan.threads), "MKL_NUM_THREADS": str(plan.threads)}
            if plan.threads
            else {}
        )
        self.pool = _Pool(
            size=max(1, min(workers, len(todo) or 1)),
            env=env,
            threads=plan.threads,
        )
        self.done = 0

    def _record(self, cell: Cell, outcome: dict[str, Any]) -> None:
        self.store.write_rows(rows_for(cell, self.run_id, outcome))
        self.done += 1
        self.progress.advance(cell, outcome.get("status"))

    def run(self) -> None:
        pending: deque[tuple[int, Cell]] = deque(enumerate(self.todo))
        pool = self.pool
        try:
            while pending or any(s.task for s in pool.slots):
                while len(pool.slots) < pool.size and pending:
                    pool.spawn()
                for slot in list(pool.slots):
                    if slot.ready and slot.task is None and pending:
                        task = pending.popleft()
                        try:
                            slot.conn.send(task)
                        except (OSError, ValueError):  # the worker died while idle: replace it
                            pending.appendleft(task)
                            pool.kill(slot)
                            continue
                        slot.task, slot.started = task, time.monotonic()
                        self.progress.start(task[1])
                waitables = [s.conn for s in pool.slots] + [s.proc.sentinel for s in pool.slots]
                wait(waitables, timeout=self._wait_time())
                for slot in list(pool.slots):
                    self._service(slot, pending)
        finally:
            pool.close()

    def _wait_time(self) -> float:
        now = time.monotonic()
        limits = [0.5]
        for s in self.pool.slots:
            if s.task is not None:
                limits.append(s.started + self.plan.timeout(s.task[1]) - now)
        return max(0.0, min(limits))

    def _service(self, slot: _Slot, pending: deque) -> None:
        pool = self.pool
        try:
            while slot.conn.poll():
                message = slot.conn.recv()
                if message[0] == "ready":
                    slot.ready = True
                    pool.start_failures = 0
                elif message[0] == "result":
                    _, index, outcome = message
                    if slot.task is not None and slot.task[0] == index:
                        cell = slot.task[1]
                        slot.task = None
                        self._record(cell, outcome)
                elif message[0] == "fatal":
                    self._start_failed(slot, message[1])
                    return
        except (EOFError, OSError):
            pass
        now = time.monotonic()
        if not slot.proc.is_alive():
            code = slot.proc.exitcode
            if not slot.ready:
                self._start_failed(slot, f"worker exited with code {code} while starting")
                return
            if slot.task is not None:
                cell = slot.task[1]
                slot.task = None
                self._record(cell, {"status": "error", "message": _death_message(code)})
            pool.kill(slot)
        elif slot.task is not None and now - slot.started > self.plan.timeout(slot.task[1]):
            cell = slot.task[1]
            limit = self.plan.timeout(cell)
            pool.kill(slot)
            self._record(
                cell,
                {
                    "status": "error",
                    "message": f"timed out: the cell ran past its {limit:g} s limit and its "
                    "worker was killed",
                },
            )
        elif not slot.ready and now - slot.spawned > WORKER_START_TIMEOUT_S:
            self._start_failed(slot, f"worker did not start within {WORKER_START_TIMEOUT_S:g} s")

    def _start_failed(self, slot: _Slot, why: str) -> None:
        self.pool.kill(slot)
        self.pool.start_failures += 1
        if self.pool.start_failures >= MAX_START_FAILURES:
            raise RuntimeError(
                f"vqbench worker processes fail to start: {why}. Workers are started with "
                "multiprocessing's 'spawn' method, which imports your main script again: a script "
                "that calls run_suite() must do so under `if __name__ == \"__main__\":`"
            )


def _death_message(code: int | None) -> str:
    if code is not None and code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"worker process died with {name} while running this cell (crash or out of memory)"
    return f"worker process exited with code {code} while running this cell"


# -- progress ------------------------------------------------------------------------------------
class _Progress:
    """A rich progress bar with ETA on stderr (or nothing, when disabled)."""

    def __init__(self, total: int, enabled: bool, title: str) -> None:
        self.bar = None
        self.counts = {"err": 0, "skip": 0}
        if enabled and total:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )
            from rich.table import Column

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
                console=Console(stderr=True),
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
        raise ValueError(
            f"run {info['run_id']!r} was not started by run_suite (its config lists no cells); "
            "it cannot be resumed"
        )
    cells = [Cell.from_dict(c) for c in config["cells"]]
    return Plan(
        suite=info["suite"],
        cells=cells,
        timeouts=dict(config.get("timeouts", {})),
        workers=int(config.get("workers", 1)),
        threads=config.get("threads"),
    )


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
                no rows yet, with the run's own settings (no other overrides allowed).
    timeout:    seconds per cell, replacing the profile's.
    progress:   show a progress bar with ETA on stderr.

    Bad input (unknown names, a malformed profile, a corrupt or unwritable store, a missing device,
    sizes that do not fit) raises before anything runs. Ctrl-C or SIGTERM keeps every finished cell,
    marks the run "interrupted" and raises :class:`RunInterrupted` (a ``KeyboardInterrupt``).
    """
    from vqbench.results import open_store

    st = open_store(store)
    try:
        return _run(
            st,
            suite,
            quantizers=quantizers,
            datasets=datasets,
            devices=devices,
            backends=backends,
            seed=seed,
            resume=resume,
            timeout=timeout,
            progress=progress,
        )
    finally:
        if st is not store:
            st.close()


def _run(
    st: Any,
    suite: str | Path | Profile | None,
    *,
    quantizers: Any,
    datasets: Any,
    devices: Any,
    backends: Any,
    seed: int | None,
    resume: str | None,
    timeout: float | None,
    progress: bool,
) -> str:
    from vqbench.results import environment_fingerprint

    if resume is not None:
        given = {
            k: v
            for k, v in dict(
                quantizers=quantizers, datasets=datasets, devices=devices, backends=backends, seed=seed
            ).items()
            if v is not None
        }
        if given:
            raise ValueError(f"resume runs the stored run's own cells; drop {', '.join(sorted(given))}")
        run_id = st.resolve_run(resume)
        info = st.run_info(run_id)
        plan = _plan_from_run(info)
        if timeout is not None:
            if not timeout > 0:
                raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
            plan.timeouts = {c.cell_id: float(timeout) for c in plan.cells}
        done = st.done_cells(run_id)
        todo = [c for c in plan.cells if c.cell_id not in done]
        check_devices(todo)
        st.start_run(info["suite"], info["environment"], run_id=run_id)
    else:
        profile = load_profile("quick" if suite is None else suite)
        plan = expand_profile(
            profile,
            quantizers=quantizers,
            datasets=datasets,
            devices=devices,
            backends=backends,
            seed=seed,
            timeout=timeout,
        )
        check_inputs(profile, plan.cells)
        check_cells(plan.cells, profile.source)
        todo = plan.cells
        config = {
            "profile": profile.source,
            "overrides": {
                k: v
                for k, v in dict(
                    quantizers=quantizers,
                    datasets=datasets,
                    devices=devices,
                    backends=backends,
                    seed=seed,
                    timeout=timeout,
                ).items()
                if v is not None
            },
            "argv": list(sys.argv),
            "workers": plan.workers,
            "threads": plan.threads,
            "timeouts": plan.timeouts,
            "cells": [c.to_dict() for c in plan.cells],
        }
        run_id = st.start_run(profile.name, environment_fingerprint(threads=plan.threads), config=config)
    with _Progress(len(todo), progress, plan.suite) as bar:
        runner = _Runner(plan, st, run_id, todo, bar, workers=plan.workers)
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


__all__ = ["RunInterrupted", "rows_for", "run_suite"]
