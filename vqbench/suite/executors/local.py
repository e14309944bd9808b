"""The local executor: long-lived worker processes on this machine (``multiprocessing``, spawn).

On CUDA there is one worker per visible GPU, each pinned to its GPU through
``CUDA_VISIBLE_DEVICES``, so that a timing cell never shares a GPU with another cell. Workers get
disjoint sets of CPU cores (``sched_setaffinity``) with as many torch threads as cores, so that CPU
timing cells never share cores either; each worker records its cores and threads with its rows.
"""

from __future__ import annotations

import contextlib
import dataclasses
import multiprocessing as mp
import os
from dataclasses import dataclass

from .. import _worker
from ..cells import Cell
from ._base import death_message
from ._connections import ConnectionPool, Slot


@dataclass(frozen=True)
class WorkerPin:
    """What one local worker owns: a GPU (or none), its CPU cores (or all), its torch threads."""

    gpu: str | None
    cpus: tuple[int, ...] | None
    threads: int | None


def visible_gpus(environ: dict[str, str] | None = None, count: int | None = None) -> list[str]:
    """The GPUs this process may use: ``CUDA_VISIBLE_DEVICES`` as listed, else ``0..count-1``.

    ``count`` defaults to ``torch.cuda.device_count()`` (only asked when the variable is unset).
    """
    env = os.environ if environ is None else environ
    listed = env.get("CUDA_VISIBLE_DEVICES")
    if listed is not None:
        return [d.strip() for d in listed.split(",") if d.strip() and d.strip() != "-1"]
    if count is None:
        import torch

        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    return [str(i) for i in range(count)]


def available_cpus() -> list[int]:
    """The cores this process may run on (its affinity), in order."""
    if hasattr(os, "sched_getaffinity"):
        return sorted(os.sched_getaffinity(0))
    return list(range(os.cpu_count() or 1))


def plan_workers(
    cells: list[Cell],
    workers: int | None,
    threads: int | None,
    cpus: list[int],
    gpus: list[str],
) -> list[WorkerPin]:
    """Pin each local worker: one GPU per worker when cells use CUDA, disjoint CPU cores always.

    ``workers`` None means one per visible GPU on CUDA, else one. ``threads`` None means the cores
    divided evenly among the workers (a single worker without ``threads`` is left unpinned).
    """
    uses_cuda = any(c.device.startswith("cuda") for c in cells)
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
        raise ValueError(f"workers must be a positive integer, got {workers!r}")
    if uses_cuda:
        if not gpus:
            raise RuntimeError("cells ask for CUDA but no GPU is visible (CUDA_VISIBLE_DEVICES, torch)")
        n = workers or len(gpus)
        if n > len(gpus):
            raise ValueError(
                f"{n} local workers on CUDA need {n} GPUs (one each, so that timings never share a "
                f"GPU), but {len(gpus)} are visible ({','.join(gpus)}); use --workers {len(gpus)}"
            )
        wanted = sorted({c.device.partition(":")[2] for c in cells if c.device.startswith("cuda:")})
        missing = [g for g in wanted if g not in gpus[:n]]
        if missing:
            raise ValueError(
                f"cells ask for cuda:{missing[0]}, but the {n} worker(s) own GPUs {','.join(gpus[:n])}"
            )
        pinned_gpus: list[str | None] = list(gpus[:n])
    else:
        n = workers or 1
        pinned_gpus = [None] * n
    if n == 1 and threads is None:
        return [WorkerPin(pinned_gpus[0], None, None)]
    per = threads or len(cpus) // n
    if per < 1 or per * n > len(cpus):
        need = f"{n} workers x {threads} threads" if threads else f"{n} workers"
        raise ValueError(
            f"{need} need {max(per, 1) * n} CPU cores so that no two workers share a core, but this "
            f"process may use {len(cpus)} ({','.join(map(str, cpus))}); lower --workers or threads"
        )
    return [
        WorkerPin(pinned_gpus[i], tuple(cpus[i * per : (i + 1) * per]), per) for i in range(n)
    ]


class LocalExecutor(ConnectionPool):
    """Worker processes on this machine, each pinned as :func:`plan_workers` says."""

    kind = "local"
    lost_retries = 0  # a worker that dies here died of its cell: running it again dies again

    def __init__(self, pins: list[WorkerPin], setup: _worker.WorkerSetup) -> None:
        super().__init__(len(pins))
        self.pins = pins
        self.setup = setup
        self.ctx = mp.get_context("spawn")

    def _setup_for(self, pin: WorkerPin) -> _worker.WorkerSetup:
        env = dict(self.setup.env)
        threads = pin.threads or self.setup.threads
        if threads:
            env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
        if pin.gpu is not None:
            env["CUDA_VISIBLE_DEVICES"] = pin.gpu
        return dataclasses.replace(
            self.setup, env=env, threads=threads, cpus=pin.cpus, pinned_gpu=pin.gpu, executor="local"
        )

    def _spawn(self, number: int) -> Slot:
        pin = self.pins[number]
        parent, child = self.ctx.Pipe()
        proc = self.ctx.Process(
            target=_worker.main,
            args=(child, os.getpid(), self._setup_for(pin)),
            name=f"vqbench-worker-{number}",
        )
        proc.start()
        child.close()
        return Slot(handle=proc, conn=parent, gpu=pin.gpu)

    def _terminate(self, slot: Slot) -> None:
        with contextlib.suppress(Exception):
            slot.handle.kill()
        slot.handle.join(timeout=10)

    def _ended(self, slot: Slot) -> str | None:
        if slot.handle.is_alive():
            return None
        code = slot.handle.exitcode
        return death_message(code) if slot.ready else f"worker exited with code {code} while starting"

    def _closed_why(self, slot: Slot) -> str:
        slot.handle.join(timeout=5)
        return self._ended(slot) or super()._closed_why(slot)

    def _waitables(self) -> list:
        return super()._waitables() + [s.handle.sentinel for s in self.slots]

    def _let_finish(self) -> None:
        for slot in self.slots:
            if slot.task is None:
                slot.handle.join(timeout=5)

    def describe(self) -> str:
        parts = []
        for i, pin in enumerate(self.pins):
            where = f"GPU {pin.gpu}" if pin.gpu is not None else "CPU"
            cores = f", cores {','.join(map(str, pin.cpus))}" if pin.cpus else ""
            parts.append(f"#{i}: {where}{cores}")
        return f"local executor, {len(self.pins)} worker(s) ({'; '.join(parts)})"


START_FAILURE_HINT = (
    "Workers are started with multiprocessing's 'spawn' method, which imports your main script "
    'again: a script that calls run_suite() must do so under `if __name__ == "__main__":`'
)

__all__ = ["LocalExecutor", "WorkerPin", "available_cpus", "plan_workers", "visible_gpus"]
