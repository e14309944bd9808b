"""The Ray executor: long-lived workers as Ray actors, each holding ``num_cpus`` and ``num_gpus``.

By default a local Ray cluster is started for the run (and stopped after it); ``address`` joins an
existing one (``"auto"``, or ``ray://head:10001``). An actor imports torch and the engines once, then
runs cells; its results come back as Ray objects to the coordinator, which alone writes the store.
A dead actor (its node lost, killed, out of memory) takes its cell with it: the cell runs once more
on another actor, then is recorded as an error; a new actor replaces the dead one.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from typing import Any

from .. import _worker
from ..cells import Cell
from ._base import Done, Event, Executor, Lost, MissingExtraError, StartFailed


def _ray() -> Any:
    try:
        import ray
    except ImportError as exc:
        raise MissingExtraError("ray", "ray", "ray") from exc
    return ray


class RayWorker:
    """The actor: prepares once (torch, engines, threads), then runs cells."""

    def __init__(self, setup: _worker.WorkerSetup) -> None:
        self.setup = setup
        self.engines, self.info = _worker.prepare(setup)
        with contextlib.suppress(Exception):
            import ray

            self.info["ray_node"] = ray.get_runtime_context().get_node_id()

    def ready(self) -> dict[str, Any]:
        return self.info

    def run(self, index: int, cell: Cell) -> tuple[int, dict[str, Any]]:
        return index, _worker.run_cell(cell, self.engines, self.setup)


@dataclasses.dataclass
class _Actor:
    handle: Any
    ready_ref: Any
    spawned: float
    ready: bool = False
    info: dict = dataclasses.field(default_factory=dict)
    task: tuple[int, Cell] | None = None
    ref: Any = None


class RayExecutor(Executor):
    """Ray actors, ``num_cpus``/``num_gpus`` each, on a local or an existing cluster."""

    kind = "ray"
    lost_retries = 1

    def __init__(
        self, settings: Any, setup: _worker.WorkerSetup, workers: int | None, uses_cuda: bool, cells: int
    ) -> None:
        self.ray = _ray()
        self.settings = settings
        self.cells = max(1, cells)
        self.workers = min(workers, self.cells) if workers else 1  # unset: sized by the cluster
        self.num_gpus = settings.num_gpus if settings.num_gpus is not None else (1 if uses_cuda else 0)
        self.num_cpus = settings.num_cpus or setup.threads or 1
        env = dict(setup.env)
        threads = setup.threads or max(1, int(self.num_cpus))
        env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
        self.setup = dataclasses.replace(setup, env=env, threads=threads, executor="ray")
        self.actors: list[_Actor] = []
        self.owns_cluster = False
        self.actor_class: Any = None

    def size(self) -> int:
        return self.workers

    def start(self) -> None:
        ray = self.ray
        if not ray.is_initialized():
            before = _sigterm_handler()
            kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
            if self.settings.address:
                kwargs["address"] = self.settings.address
            elif self.settings.workers:  # a local cluster just big enough; else Ray counts the machine
                kwargs["num_cpus"] = max(int(self.num_cpus * self.workers), 1)
                if self.num_gpus:
                    kwargs["num_gpus"] = int(self.num_gpus * self.workers)
            ray.init(**kwargs)
            self.owns_cluster = True
            _keep_sigterm(before)
        if not self.settings.workers:  # as many actors as the cluster holds (never more than cells)
            have = ray.cluster_resources()
            fit = have.get("GPU", 0) / self.num_gpus if self.num_gpus else have.get("CPU", 1) / self.num_cpus
            self.workers = max(1, min(int(fit), self.cells))
        self.actor_class = ray.remote(RayWorker).options(
            num_cpus=self.num_cpus, num_gpus=self.num_gpus, max_restarts=0, max_task_retries=0
        )
        self._fill()

    def _fill(self) -> None:
        while len(self.actors) < self.workers:
            handle = self.actor_class.remote(self.setup)
            self.actors.append(_Actor(handle, handle.ready.remote(), time.monotonic()))

    def has_idle(self) -> bool:
        return any(a.ready and a.task is None for a in self.actors)

    def try_submit(self, index: int, cell: Cell) -> bool:
        for actor in self.actors:
            if actor.ready and actor.task is None:
                actor.task, actor.ref = (index, cell), actor.handle.run.remote(index, cell)
                return True
        return False

    def wait(self, timeout: float, more: bool = True) -> list[Event]:
        ray = self.ray
        if more:
            self._fill()
        refs = [a.ready_ref for a in self.actors if not a.ready] + [a.ref for a in self.actors if a.task]
        if not refs:
            time.sleep(min(timeout, 0.2))
            return []
        done, _ = ray.wait(refs, num_returns=1, timeout=timeout)
        if done:
            done, _ = ray.wait(refs, num_returns=len(refs), timeout=0)
        done_ids = {id(r) for r in done}
        events: list[Event] = []
        for actor in list(self.actors):
            if not actor.ready and id(actor.ready_ref) in done_ids:
                try:
                    actor.info, actor.ready = dict(ray.get(actor.ready_ref)), True
                except Exception as exc:
                    self._drop(actor)
                    events.append(StartFailed(f"Ray actor failed to start: {_reason(exc)}"))
            elif actor.task is not None and id(actor.ref) in done_ids:
                index = actor.task[0]
                try:
                    _, outcome = ray.get(actor.ref)
                except Exception as exc:
                    self._drop(actor)
                    events.append(Lost(index, f"Ray actor lost: {_reason(exc)}", actor.info))
                    continue
                actor.task, actor.ref = None, None
                events.append(Done(index, outcome, actor.info))
            elif not actor.ready and time.monotonic() - actor.spawned > self.settings.start_timeout:
                self._drop(actor)
                events.append(
                    StartFailed(
                        f"no Ray actor started within {self.settings.start_timeout:g} s (the cluster lacks "
                        f"num_cpus={self.num_cpus}, num_gpus={self.num_gpus} per worker?)"
                    )
                )
        return events

    def _drop(self, actor: _Actor) -> None:
        with contextlib.suppress(Exception):
            self.ray.kill(actor.handle, no_restart=True)
        if actor in self.actors:
            self.actors.remove(actor)

    def kill(self, index: int) -> None:
        for actor in list(self.actors):
            if actor.task is not None and actor.task[0] == index:
                self._drop(actor)

    def close(self, cancel: bool = False) -> None:
        for actor in list(self.actors):  # killing an actor ends its running cell too
            self._drop(actor)
        if self.owns_cluster:
            with contextlib.suppress(Exception):
                self.ray.shutdown()
            self.owns_cluster = False

    def describe(self) -> str:
        where = self.settings.address or "a local Ray cluster"
        return (
            f"ray executor, {self.workers} actor(s) with num_cpus={self.num_cpus}, "
            f"num_gpus={self.num_gpus}, on {where}"
        )


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:500]


def _sigterm_handler() -> Any:
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return None
    return signal.getsignal(signal.SIGTERM)


def _keep_sigterm(before: Any) -> None:
    """``ray.init`` installs its own SIGTERM handler (it exits with a stack trace); the run's
    handler, which stops the run the way Ctrl-C does (exit 130), is put back."""
    import signal

    if before is not None and signal.getsignal(signal.SIGTERM) is not before:
        signal.signal(signal.SIGTERM, before)


def require() -> None:
    """Fail early, naming the extra to install, when Ray is missing."""
    _ray()


def build(settings: Any, setup: Any, cells: list, *, workers: int | None, threads: int | None):
    """Ray actors on a local or remote cluster."""
    uses_cuda = any(c.device.startswith("cuda") for c in cells)
    return RayExecutor(settings, setup, workers, uses_cuda, max(1, len(cells)))


__all__ = ["RayExecutor", "RayWorker", "build", "require"]
