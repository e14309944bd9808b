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
    candidates: quantizers that join the selection and are measured wherever a selected one is,
                also in benchmarks and sweeps with their own quantizer list (``vqbench compare``).

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
        return _run(st, prepared, progress)
    finally:
        if st is not store:
            st.close()


def _run(st: Any, prepared: PreparedRun, progress: bool) -> str:
    from vqbench.results import environment_fingerprint

    plan, todo, settings = prepared.plan, prepared.todo, prepared.settings
    pool = open_executor(plan, todo, settings)
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
    with ProgressBar(len(todo), progress, plan.suite) as bar:
        loop = CellLoop(plan, st, run_id, todo, bar, pool)
        try:
            with sigterm_as_interrupt():
                loop.run()
        except KeyboardInterrupt as exc:
            st.finish_run(run_id, "interrupted")
            raise RunInterrupted(run_id, loop.done, len(todo)) from exc
        except BaseException:
            st.finish_run(run_id, "interrupted")
            raise
    st.finish_run(run_id, "finished")
    return run_id


__all__ = ["RunInterrupted", "run_suite"]
