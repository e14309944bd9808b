"""The suite runner: ``run_suite`` prepares a run, runs its cells and marks how the run ended.

Preparation (expanding and checking the cells, or reading a stored run back to resume it) is
``vqbench.suite.prepare``; the loop over the cells is ``vqbench.suite.run_loop``; the rows that
each cell stores are ``vqbench.suite.rows``. Cells run in long-lived workers, and rows go to the
store as each cell ends. Where the workers live is the executor's business
(``vqbench.suite.executors``: local processes, Slurm jobs through submitit, Ray actors); the loop
is the same for all of them, and this process alone writes the store. Isolation comes from the
process boundary. An exception in a cell is an error row with its message; a dataset that is not
present is a skipped row with the reason; a worker that crashes or overruns the per-cell timeout
is killed and replaced, and its cell recorded as an error (a lost Slurm job or Ray actor first
gets its cell run once more). Every cell's rows are written in one transaction, so Ctrl-C (or
SIGTERM) keeps every finished cell, cancels the engine's outstanding work and marks the run
"interrupted"; ``resume=RUN_ID`` then runs only the cells that have no rows yet.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from .executors import ExecutorSettings
from .prepare import PreparedRun, prepare_run
from .profiles import Profile
from .progress import ProgressBar
from .run_loop import CellLoop, open_executor, sigterm_as_interrupt


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
    candidates: str | list[str] | None = None,
    environments: list[str] | None = None,
) -> Any:
    """Run a suite and store its rows; return the run id (with ``environments``, one per environment).

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
    candidates: quantizers that join the selection and are measured wherever a selected one is,
                also in benchmarks and sweeps with their own quantizer list (``vqbench compare``).
    environments: pip requirements, one string per dependency environment
                (``["vector-quantize-pytorch==1.32.0", "vector-quantize-pytorch==1.34.1"]``): each is
                built once (``vqbench.suite.environments``), every cell runs in each, alternating on
                one local worker per environment over the same cores, and each environment's rows
                form a run of their own.

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
            candidates=candidates,
        )
        if environments:
            return _run_environments(st, prepared, progress, environments)
        return _run(st, prepared, progress)
    finally:
        if st is not store:
            st.close()


def _run(st: Any, prepared: PreparedRun, progress: bool) -> str:
    from vqbench.results import environment_fingerprint

    plan, todo, settings = prepared.plan, prepared.todo, prepared.settings
    if prepared.run_id is not None:
        # claim the run first, then take the cells still missing: another resume may have
        # stored some of them since this one was prepared
        run_id = prepared.run_id
        info = st.run_info(run_id)
        st.start_run(info["suite"], info["environment"], run_id=run_id)
        done = st.done_cells(run_id)
        todo = [c for c in todo if c.cell_id not in done]
        try:
            pool = open_executor(plan, todo, settings)
        except BaseException:
            st.finish_run(run_id, "interrupted")
            raise
    else:
        assert prepared.profile is not None
        pool = open_executor(plan, todo, settings)
        try:
            environment = environment_fingerprint(threads=plan.threads)
            run_id = st.start_run(prepared.profile.name, environment, config=prepared.config)
        except BaseException:
            pool.close(cancel=True)  # nothing started; its cores are free again
            raise
    _loop(st, dataclasses.replace(prepared, todo=todo), progress, pool, run_id, {})
    return run_id


def _run_environments(st: Any, prepared: PreparedRun, progress: bool, specs: list[str]) -> list[str]:
    """Every cell in each dependency environment, alternating; one run per environment."""
    from vqbench.errors import UserError

    from .environments import build_environment, fingerprint, requirements

    if prepared.run_id is not None:
        raise UserError("a run in dependency environments cannot be resumed; start it again")
    if prepared.settings.kind != "local":
        raise UserError(
            f"dependency environments run on the local executor, got --executor {prepared.settings.kind}"
        )
    for spec in specs:
        requirements(spec)
    if len(set(specs)) != len(specs):
        raise UserError(f"each environment must differ from the others, got {specs}")
    assert prepared.profile is not None
    root = Path(st.path).parent / "envs"
    envs = [build_environment(spec, root) for spec in specs]
    todo = [dataclasses.replace(c, environment=e.spec) for c in prepared.todo for e in envs]
    run = dataclasses.replace(prepared, todo=todo)
    pool = open_executor(run.plan, todo, run.settings, {e.spec: e.python for e in envs})
    try:
        runs = {
            e.spec: st.start_run(
                prepared.profile.name,
                fingerprint(e, run.plan.threads),
                config={**prepared.config, "environment": e.spec},
            )
            for e in envs
        }
    except BaseException:
        pool.close(cancel=True)
        raise
    first = runs[envs[0].spec]
    _loop(st, run, progress, pool, first, runs)
    return list(runs.values())


def _loop(st: Any, prepared: PreparedRun, progress: bool, pool: Any, run_id: str, runs: dict) -> None:
    """Run the cells; every run this writes is marked finished, or interrupted on any exception."""
    todo = prepared.todo
    ids = list(runs.values()) or [run_id]
    with ProgressBar(len(todo), progress, prepared.plan.suite) as bar:
        loop = CellLoop(prepared.plan, st, run_id, todo, bar, pool, runs)
        try:
            with sigterm_as_interrupt():
                loop.run()
        except KeyboardInterrupt as exc:
            for rid in ids:
                st.finish_run(rid, "interrupted")
            raise RunInterrupted(run_id, loop.done, len(todo)) from exc
        except BaseException:
            for rid in ids:
                st.finish_run(rid, "interrupted")
            raise
    for rid in ids:
        st.finish_run(rid, "finished")


__all__ = ["RunInterrupted", "run_suite"]
