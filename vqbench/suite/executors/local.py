"""The local executor: long-lived worker processes on this machine (``multiprocessing``, spawn).

On CUDA there is one worker per visible GPU, each pinned to its GPU through
``CUDA_VISIBLE_DEVICES``, so that a timing cell never shares a GPU with another cell. Workers get
disjoint sets of CPU cores (``sched_setaffinity``) with as many torch threads as cores, so that CPU
timing cells never share cores either; each worker records its cores and threads with its rows.

Runs at once on one machine take disjoint cores too: a run claims its workers' cores with an
advisory lock per core (``flock`` on files in ``$TMPDIR/vqbench-cores-<uid>``, released when the
run ends or dies; a folder there that this user does not own alone is not trusted, and the next
of ``vqbench-cores-<uid>-1``, ``-2``, ... that it owns is used), and takes cores no other run holds
first. Where too few are free, it shares,
and says so: the executor's description names the shared cores and the rows record them
(``shared_cpus`` in the worker's fingerprint).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import multiprocessing as mp
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
    return [WorkerPin(pinned_gpus[i], tuple(cpus[i * per : (i + 1) * per]), per) for i in range(n)]


class CoreClaims:
    """Advisory locks on CPU cores, one file per core, held while a run uses them."""

    def __init__(self, folder: Path | None = None) -> None:
        self.folder = folder or Path(tempfile.gettempdir()) / f"vqbench-cores-{os.getuid()}"
        self.held: dict[int, int] = {}  # core -> open file descriptor

    def grab_free(self, cpus: list[int]) -> list[int]:
        """Lock every core of ``cpus`` that no other run holds; returns those."""
        import fcntl

        folder = self._own_folder()
        if folder is None:
            return []
        for cpu in cpus:
            if cpu in self.held:
                continue
            try:
                fd = os.open(folder / f"core-{cpu}.lock", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
            except OSError:
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(fd)
                continue
            self.held[cpu] = fd
        return [c for c in cpus if c in self.held]

    def _own_folder(self) -> Path | None:
        """The lock folder, made if missing; one that another user made or can write (or a link)
        is not trusted, and the first of ``<folder>-1``, ``<folder>-2``, ... that this user owns
        alone is used instead, so that this user's runs still find each other's locks."""
        import stat

        for i in range(8):
            folder = self.folder if i == 0 else self.folder.with_name(f"{self.folder.name}-{i}")
            try:
                folder.mkdir(mode=0o700, exist_ok=True)
                info = os.lstat(folder)
            except OSError:
                continue
            if stat.S_ISDIR(info.st_mode) and info.st_uid == os.getuid() and not info.st_mode & 0o022:
                return folder
        return None

    def keep(self, cpus: set[int]) -> None:
        """Release every held core not in ``cpus``."""
        for cpu in [c for c in self.held if c not in cpus]:
            self.release_one(cpu)

    def release_one(self, cpu: int) -> None:
        fd = self.held.pop(cpu, None)
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)  # closing drops the lock

    def release(self) -> None:
        for cpu in list(self.held):
            self.release_one(cpu)


def claim_and_plan(
    cells: list[Cell],
    workers: int | None,
    threads: int | None,
    cpus: list[int],
    gpus: list[str],
    claims: CoreClaims | None = None,
) -> tuple[list[WorkerPin], CoreClaims, list[int]]:
    """:func:`plan_workers` over the cores other runs do not hold first; returns the pins, the
    claims that hold their cores, and the cores shared with another run."""
    claims = claims or CoreClaims()
    free = claims.grab_free(cpus) if hasattr(os, "sched_setaffinity") else []
    order = free + [c for c in cpus if c not in free]
    try:
        pins = plan_workers(cells, workers, threads, order, gpus)
    except BaseException:
        claims.release()
        raise
    used = {c for pin in pins for c in (pin.cpus or ())}
    claims.keep(used)
    shared = sorted(used - set(free))
    return pins, claims, shared


class LocalExecutor(ConnectionPool):
    """Worker processes on this machine, each pinned as :func:`plan_workers` says."""

    kind = "local"
    lost_retries = 0  # a worker that dies here died of its cell: running it again dies again

    def __init__(
        self,
        pins: list[WorkerPin],
        setup: _worker.WorkerSetup,
        claims: CoreClaims | None = None,
        shared: list[int] | None = None,
        environments: list[str | None] | None = None,
    ) -> None:
        super().__init__(len(pins))
        self.pins = pins
        self.environments = environments or [None] * len(pins)
        self._paths: dict[str, list[str]] = {}
        self.alternate = False  # dependency environments: one cell at a time, over the same cores
        self.setup = setup
        self.ctx = mp.get_context("spawn")
        self.claims = claims
        self.shared = list(shared or [])

    def has_idle(self) -> bool:
        return super().has_idle() and not (self.alternate and any(s.task for s in self.slots))

    def _setup_for(self, pin: WorkerPin) -> _worker.WorkerSetup:
        env = dict(self.setup.env)
        threads = pin.threads or self.setup.threads
        if threads:
            env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
        if pin.gpu is not None:
            env["CUDA_VISIBLE_DEVICES"] = pin.gpu
        shared = tuple(c for c in (pin.cpus or ()) if c in self.shared) or None
        return dataclasses.replace(
            self.setup,
            env=env,
            threads=threads,
            cpus=pin.cpus,
            pinned_gpu=pin.gpu,
            executor="local",
            shared_cpus=shared,
        )

    def _spawn(self, number: int) -> Slot:
        pin, environment = self.pins[number], self.environments[number]
        parent, child = self.ctx.Pipe()
        proc = self.ctx.Process(
            target=_worker.main,
            args=(child, os.getpid(), self._setup_for(pin)),
            name=f"vqbench-worker-{number}",
        )
        if environment is None:
            proc.start()
        else:  # the environment's interpreter and import path (spawn sends this one's), for this start
            python = self.setup.interpreters[environment]
            if python not in self._paths:
                self._paths[python] = interpreter_path(python)
            saved = list(sys.path)
            self.ctx.set_executable(python)
            sys.path[:] = self._paths[python]
            try:
                proc.start()
            finally:
                self.ctx.set_executable(sys.executable)
                sys.path[:] = saved
        child.close()
        return Slot(handle=proc, conn=parent, gpu=pin.gpu, environment=environment)

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

    def close(self, cancel: bool = False) -> None:
        try:
            super().close(cancel)
        finally:
            if self.claims is not None:
                self.claims.release()

    def describe(self) -> str:
        parts = []
        for i, pin in enumerate(self.pins):
            where = f"GPU {pin.gpu}" if pin.gpu is not None else "CPU"
            cores = f", cores {','.join(map(str, pin.cpus))}" if pin.cpus else ""
            parts.append(f"#{i}: {where}{cores}")
        text = f"local executor, {len(self.pins)} worker(s) ({'; '.join(parts)})"
        if self.shared:
            text += (
                f"; cores {','.join(map(str, self.shared))} are shared with another vqbench run on this "
                "machine (too few free cores): its timings and these may disturb each other"
            )
        return text


def interpreter_path(python: str) -> list[str]:
    """``sys.path`` as another interpreter (a dependency environment's) starts with it."""
    code = "import json, sys; print(json.dumps(sys.path))"
    done = subprocess.run([python, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    return json.loads(done.stdout)


START_FAILURE_HINT = (
    "Workers are started with multiprocessing's 'spawn' method, which imports your main script "
    'again: a script that calls run_suite() must do so under `if __name__ == "__main__":`'
)


def build(settings: Any, setup: Any, cells: list[Cell], *, workers: int | None, threads: int | None):
    """The local executor for ``cells``: pinned worker processes on this machine's claimed cores."""
    uses_cuda = any(c.device.startswith("cuda") for c in cells)
    gpus = visible_gpus() if uses_cuda else []
    environments = list(dict.fromkeys(c.environment for c in cells)) or [None]
    alternate = environments != [None]
    pins, claims, shared = claim_and_plan(cells, 1 if alternate else workers, threads, available_cpus(), gpus)
    pins = pins[: max(1, len(cells))]
    claims.keep({c for pin in pins for c in (pin.cpus or ())})
    used = {c for pin in pins for c in (pin.cpus or ())}
    if alternate:  # a worker per environment on the same cores, one cell at a time: A, B, A, B, ...
        pins = [pins[0]] * len(environments)
    on = environments if alternate else [None] * len(pins)
    executor = LocalExecutor(pins, setup, claims, [c for c in shared if c in used], on)
    executor.alternate = alternate
    return executor


def planned(settings: Any, cells: list[Cell], threads: int | None) -> int:
    """How many workers :func:`build` would start for ``cells``."""
    uses_cuda = any(c.device.startswith("cuda") for c in cells)
    gpus = visible_gpus() if uses_cuda else []
    return min(
        len(plan_workers(cells, settings.workers, threads, available_cpus(), gpus)), max(1, len(cells))
    )


__all__ = [
    "CoreClaims",
    "build",
    "planned",
    "LocalExecutor",
    "WorkerPin",
    "available_cpus",
    "claim_and_plan",
    "plan_workers",
    "visible_gpus",
]
