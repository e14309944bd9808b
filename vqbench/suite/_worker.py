"""The worker process: imports torch and the engines once, then runs cells sent by the runner.

Protocol over a ``multiprocessing`` pipe. Worker to runner: ``("ready", info)`` once started, then
one ``("result", index, outcome)`` per cell, where ``outcome`` is ``{"status": "ok", "figures":
[...], "seconds": s}``, ``{"status": "skipped", "message": reason}`` or ``{"status": "error",
"message": text, "traceback": tb}``. Runner to worker: ``(index, cell)`` or ``None`` to stop.
"""

from __future__ import annotations

import importlib
import os
import signal
import threading
import time
import traceback
import warnings
from typing import Any

from .cells import BENCHMARK_MODULES, Cell

_PARENT_POLL_S = 1.0


def _watch_parent(parent_pid: int) -> None:
    """Exit when the runner is gone (killed with SIGKILL, say), even in the middle of a cell."""
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


def run_cell(cell: Cell, engines: dict[str, Any]) -> dict[str, Any]:
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
            figures = engine.measure(cell)
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


def main(
    conn: Any,
    parent_pid: int,
    env: dict[str, str],
    engines: dict[str, str] | None = None,
    threads: int | None = None,
) -> None:
    """Worker entry point (spawned): serve cells until told to stop or the pipe closes.

    ``engines`` maps benchmark kinds to engine modules (default ``BENCHMARK_MODULES``); ``threads``
    fixes torch's intra-op thread count for every cell.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the runner's to handle
    os.environ.update(env)
    threading.Thread(target=_watch_parent, args=(parent_pid,), daemon=True).start()
    try:
        import torch  # the expensive import, once per worker

        if threads:
            torch.set_num_threads(threads)
        loaded = _engines(engines or BENCHMARK_MODULES)
    except BaseException as exc:
        conn.send(("fatal", f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}"))
        return
    conn.send(("ready", {"pid": os.getpid()}))
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return
        if message is None:
            return
        index, cell = message
        outcome = run_cell(cell, loaded)
        try:
            conn.send(("result", index, outcome))
        except Exception as exc:  # figures that do not pickle
            conn.send(
                (
                    "result",
                    index,
                    {
                        "status": "error",
                        "traceback": "",
                        "message": f"engine result could not be sent: {exc}",
                    },
                )
            )
