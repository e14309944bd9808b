"""What the runner needs of an executor: idle workers, submit a cell, wait for events, kill, close.

An executor keeps long-lived workers (local processes, Slurm jobs, Ray actors). The runner's loop
(``vqbench.suite.runner``) knows nothing of the engine behind it: it hands a cell to an idle
worker, waits for events, enforces the per-cell timeout and writes the rows.
"""

from __future__ import annotations

import signal
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

from vqbench.errors import UserError

from ..cells import Cell

#: How long a worker may take to start (import torch and the engines) before it counts as failed.
WORKER_START_TIMEOUT_S = 300.0


@dataclass
class Done:
    """A cell finished on a worker (ok, skipped or error outcome)."""

    index: int
    outcome: dict[str, Any]
    worker: dict[str, Any]


@dataclass
class Lost:
    """The worker running cell ``index`` went away (crash, OOM kill, preempted or cancelled job)."""

    index: int
    message: str
    worker: dict[str, Any]


@dataclass
class StartFailed:
    """A worker could not start (bad environment, a job that ended before it connected)."""

    message: str


Event = Done | Lost | StartFailed


class Executor(ABC):
    """A pool of long-lived workers behind some engine. Subclasses: local, slurm, ray."""

    #: The name used by ``--executor`` and the ``[executor]`` table.
    kind: str = ""
    #: How many times a cell whose worker was lost is run again before it becomes an error row.
    lost_retries: int = 0

    @abstractmethod
    def start(self) -> None:
        """Start the workers (they become idle once ready)."""

    @abstractmethod
    def size(self) -> int:
        """How many cells run at once."""

    @abstractmethod
    def try_submit(self, index: int, cell: Cell) -> bool:
        """Hand ``cell`` to an idle worker that can run it; False when none can now."""

    @abstractmethod
    def has_idle(self) -> bool:
        """Whether some worker is ready and has no cell."""

    @abstractmethod
    def wait(self, timeout: float, more: bool = True) -> list[Event]:
        """Events within ``timeout`` seconds (possibly none); ``more``: cells still wait, so replace
        workers that ended."""

    @abstractmethod
    def kill(self, index: int) -> None:
        """Kill the worker running cell ``index`` (it overran its time); a new one replaces it."""

    @abstractmethod
    def close(self, cancel: bool = False) -> None:
        """Stop every worker; ``cancel``: the run was interrupted, cancel outstanding jobs at once."""

    def describe(self) -> str:
        """One line for the user: what runs where."""
        return f"{self.kind} executor, {self.size()} worker(s)"


def death_message(code: int | None) -> str:
    """Why a worker process ended, from its exit code."""
    if code is not None and code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"worker process died with {name} while running this cell (crash or out of memory)"
    return f"worker process exited with code {code} while running this cell"


class MissingExtraError(ImportError, UserError):
    """An executor's engine is not installed; the message names the extra that installs it."""

    def __init__(self, kind: str, package: str, extra: str) -> None:
        super().__init__(
            f"the {kind} executor needs {package}, which is not installed; "
            f"install it with: pip install 'vqbench[{extra}]'"
        )


__all__ = [
    "WORKER_START_TIMEOUT_S",
    "Done",
    "Event",
    "Executor",
    "Lost",
    "MissingExtraError",
    "StartFailed",
    "death_message",
]
