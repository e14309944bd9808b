"""The worker process: imports torch and the engines once, then runs cells sent by the coordinator.

Protocol over a ``multiprocessing`` connection (a pipe for local workers, a TCP socket for workers
that run as cluster jobs), in JSON messages that ``suite._wire`` checks (never pickles). Worker
to coordinator: ``ready`` with ``info`` once started (the worker's fingerprint: host, GPU, driver,
CPUs), then one ``result`` with ``index`` and ``outcome`` per cell, where ``outcome`` is
``{"status": "ok", "figures": [...], "seconds": s}``, ``{"status": "skipped", "message": reason}``
or ``{"status": "error", "message": text, "traceback": tb}``; or ``fatal`` with a ``message`` when
it cannot start. Coordinator to worker: ``cell`` with ``index`` and the cell's dict, or ``stop``.

Workers never open the result store: their rows travel back to the coordinator.
"""

from __future__ import annotations

import dataclasses
import importlib
import os
import signal
import socket
import sys
import threading
import time
import traceback
import warnings
from dataclasses import dataclass, field
from typing import Any

from vqbench.engines import engine_modules

from ._allocator import keep_freed_memory
from .cells import Cell

_PARENT_POLL_S = 1.0


@dataclass(frozen=True)
class WorkerSetup:
    """How a worker prepares itself: environment, engines, torch threads, CPU and GPU pinning.

    ``cpus``: the cores this worker may use (``os.sched_setaffinity``), so that timing cells of
    different workers never share a core. ``pinned_gpu``: the physical GPU this worker sees through
    ``CUDA_VISIBLE_DEVICES`` (local executor); a worker that sees one GPU runs every CUDA cell on it.
    """

    env: dict[str, str] = field(default_factory=dict)
    engines: dict[str, str] = field(default_factory=engine_modules)
    threads: int | None = None
    cpus: tuple[int, ...] | None = None
    pinned_gpu: str | None = None
    executor: str = "local"
    shared_cpus: tuple[int, ...] | None = None  # cores another run on this machine holds too
    plugins: tuple[str, ...] = ()  # modules imported before the first cell (their registrations)
    import_path: tuple[str, ...] = ()  # folders appended to sys.path first (cwd, candidates' folders)
    interpreters: dict[str, str] = field(default_factory=dict)  # environment spec -> its python (local)


def _watch_parent(parent_pid: int) -> None:
    """Exit when the coordinator is gone (killed with SIGKILL, say), even in the middle of a cell."""
    while True:
        time.sleep(_PARENT_POLL_S)
        if os.getppid() != parent_pid:
            os._exit(3)


def _engines(names: dict[str, str]) -> dict[str, Any]:
    """Import every engine once; a module that fails to import is reported by the cells that need it."""
    modules: dict[str, Any] = {}
    for kind, name in names.items():
        try:
            modules[kind] = importlib.import_module(name)
        except Exception as exc:  # reported per cell
            modules[kind] = exc
    return modules


def worker_fingerprint(setup: WorkerSetup | None = None) -> dict[str, Any]:
    """Where this worker runs: host, GPU and driver, CPUs it is pinned to, threads, job ids, and the
    vector-quantize-pytorch release it imports."""
    import torch

    from vqbench.results._environment import _cpu_model, _version, driver_version

    info: dict[str, Any] = {
        "host": socket.gethostname(),
        "vector_quantize_pytorch": _version("vector-quantize-pytorch"),  # what built the baselines
        "pid": os.getpid(),
        "executor": setup.executor if setup else "local",
        "threads": torch.get_num_threads(),
        "cpu": _cpu_model(),
        "gpu": None,
        "driver": None,
    }
    if hasattr(os, "sched_getaffinity"):
        info["cpus"] = sorted(os.sched_getaffinity(0))
    if setup is not None and setup.shared_cpus:
        info["shared_cpus"] = list(setup.shared_cpus)
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        info["cuda_visible_devices"] = visible
    for key, env in (("slurm_job_id", "SLURM_JOB_ID"), ("slurm_node", "SLURMD_NODENAME")):
        if os.environ.get(env):
            info[key] = os.environ[env]
    if torch.cuda.is_available():
        info["gpu"] = ", ".join(
            sorted({torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())})
        )
        info["driver"] = driver_version()
    return info


def prepare(setup: WorkerSetup) -> tuple[dict[str, Any], dict[str, Any]]:
    """Apply ``setup`` in this process; return the loaded engines and this worker's fingerprint."""
    os.environ.update(setup.env)
    keep_freed_memory()
    if setup.cpus and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, setup.cpus)
    import torch  # the expensive import, once per worker

    if setup.threads:
        torch.set_num_threads(setup.threads)
    import_plugins(setup)
    return _engines(setup.engines), worker_fingerprint(setup)


def import_plugins(setup: WorkerSetup) -> None:
    """The suite's import path and plugin modules, as every worker (and the pre-flight) sees them."""
    from vqbench.quantizers._plugins import import_plugins as _import

    _import(setup.plugins, setup.import_path)


def _on_this_worker(cell: Cell, setup: WorkerSetup | None) -> Cell:
    """A worker pinned to one GPU (it sees it as ``cuda:0``) runs ``cuda:N`` cells there."""
    if setup is None or not cell.device.startswith("cuda:"):
        return cell
    if setup.pinned_gpu is not None or setup.executor != "local":
        return dataclasses.replace(cell, device="cuda")
    return cell


def run_cell(cell: Cell, engines: dict[str, Any], setup: WorkerSetup | None = None) -> dict[str, Any]:
    """Run one cell and describe the outcome; exceptions become error or skipped outcomes."""
    engine = engines.get(cell.benchmark)
    if engine is None or isinstance(engine, Exception):
        return {
            "status": "error",
            "message": f"benchmark engine {cell.benchmark!r} could not be imported: "
            f"{type(engine).__name__}: {engine}",
            "traceback": "",
        }
    start = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")
        try:
            figures = engine.measure(_on_this_worker(cell, setup))
        except Exception as exc:
            return {**_failure(exc, cell), **_warnings(caught)}
    seconds = time.perf_counter() - start
    if not isinstance(figures, list) or not figures or not all(isinstance(f, dict) for f in figures):
        return {
            "status": "error",
            "traceback": "",
            "message": f"engine {cell.benchmark!r} returned {type(figures).__name__} {figures!r:.200}, "
            "expected a non-empty list of figure dicts",
        }
    return {"status": "ok", "figures": figures, "seconds": seconds, **_warnings(caught)}


def _warnings(caught: list[warnings.WarningMessage]) -> dict[str, Any]:
    """The distinct warnings of a cell (kept off the terminal, stored with its rows)."""
    seen = list(dict.fromkeys(f"{w.category.__name__}: {w.message}" for w in caught))
    return {"warnings": seen[:10]} if seen else {}


def _failure(exc: Exception, cell: Cell) -> dict[str, Any]:
    try:
        from vqbench.datasets import DatasetUnavailableError
    except ImportError:  # pragma: no cover - datasets always importable in a full install
        DatasetUnavailableError = ()  # noqa: N806
    if DatasetUnavailableError and isinstance(exc, DatasetUnavailableError):
        return {"status": "skipped", "message": f"dataset {cell.dataset!r} unavailable: {exc}"}
    message = f"{type(exc).__name__}: {exc}"
    try:
        import torch

        if isinstance(exc, torch.cuda.OutOfMemoryError):
            message = f"CUDA out of memory: {exc}"
            torch.cuda.empty_cache()
    except Exception:  # pragma: no cover - torch always present
        pass
    return {"status": "error", "message": message, "traceback": traceback.format_exc(limit=20)}


def serve(conn: Any, setup: WorkerSetup) -> None:
    """Prepare, say ready, then serve cells over ``conn`` until told to stop or it closes."""
    from . import _wire

    try:
        loaded, info = prepare(setup)
    except BaseException as exc:
        message = f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}"
        _wire.send(conn, {"type": "fatal", "message": message})
        return
    _wire.send(conn, {"type": "ready", "info": info})
    while True:
        try:
            message = _wire.receive(conn, sender="coordinator")
        except (EOFError, OSError, _wire.ProtocolError):
            return
        if message["type"] == "stop":
            return
        index = message["index"]
        try:
            cell = Cell.from_dict(message["cell"])
        except (TypeError, ValueError) as exc:
            outcome = {"status": "error", "traceback": "", "message": f"the cell could not be read: {exc}"}
        else:
            outcome = run_cell(cell, loaded, setup)
        try:
            data = _wire.encode({"type": "result", "index": index, "outcome": outcome})
        except (TypeError, ValueError) as exc:  # figures that are not plain data
            data = _wire.encode(
                {
                    "type": "result",
                    "index": index,
                    "outcome": {
                        "status": "error",
                        "traceback": "",
                        "message": f"engine result could not be sent: {exc}",
                    },
                }
            )
        try:
            conn.send_bytes(data)
        except (EOFError, OSError):
            return


def _pin_to_parent() -> None:
    """Have the kernel kill this process when its parent ends (Linux ``PR_SET_PDEATHSIG``): a
    worker stuck in C code that holds the GIL then still goes with its coordinator."""
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def main(conn: Any, parent_pid: int, setup: WorkerSetup) -> None:
    """Local worker entry point (spawned by the local executor)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the coordinator's to handle
    _pin_to_parent()
    if os.getppid() != parent_pid:  # the parent went before the pin took
        os._exit(3)
    threading.Thread(target=_watch_parent, args=(parent_pid,), daemon=True).start()
    serve(conn, setup)


def connect_and_serve(address: tuple[str, int], key_file: str, token: str, setup: WorkerSetup) -> str:
    """Cluster job entry point: connect back to the coordinator over TCP and serve cells.

    ``key_file`` is the run's key, in a file only the user can read (never in the job's pickle);
    both sides prove that they hold it before any message. ``token`` tells the coordinator which
    of its jobs this is. Returns when the coordinator says stop or goes away (the job then ends).
    """
    from . import _wire

    key = _wire.read_key(key_file)
    sock = socket.create_connection(tuple(address), timeout=_wire.HANDSHAKE_TIMEOUT_S)
    try:
        _wire.client_handshake(sock, key, token)
    except BaseException:
        sock.close()
        raise
    conn = _wire.connection(sock)
    try:
        serve(conn, setup)
    finally:
        conn.close()
    return "done"


__all__ = [
    "WorkerSetup",
    "connect_and_serve",
    "import_plugins",
    "main",
    "prepare",
    "run_cell",
    "serve",
    "worker_fingerprint",
]
