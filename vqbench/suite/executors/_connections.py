"""Workers that speak the worker protocol over a ``multiprocessing`` connection (local and Slurm).

Messages are schema-checked JSON (``_wire``), never pickles: a worker that sends anything else is
dropped, and its cell recorded as an error.

A slot is one worker: its handle (a process or a job), its connection once it has one, and the
cell it runs. Subclasses say how a worker is started, killed and found dead.
"""

from __future__ import annotations

import time
from abc import abstractmethod
from dataclasses import dataclass, field
from multiprocessing.connection import wait
from typing import Any

from .. import _wire
from ..cells import Cell
from ._base import WORKER_START_TIMEOUT_S, Done, Event, Executor, Lost, StartFailed


@dataclass
class Slot:
    """One worker: handle, connection, readiness, the cell it runs and its fingerprint."""

    handle: Any
    conn: Any = None
    spawned: float = field(default_factory=time.monotonic)
    ready: bool = False
    task: tuple[int, Cell] | None = None
    info: dict[str, Any] = field(default_factory=dict)
    gpu: str | None = None  # the physical GPU a local worker is pinned to
    checked: float = 0.0  # when the engine was last asked about this worker's state
    number: int = 0  # which of the pool's workers this is (its replacements keep the number)
    environment: str | None = None  # the dependency environment whose interpreter runs this worker

    def accepts(self, cell: Cell) -> bool:
        """A worker pinned to GPU N takes ``cuda:N`` cells; ``cpu`` and ``cuda`` cells go anywhere;
        a cell of a dependency environment goes to that environment's workers only."""
        if cell.environment != self.environment:
            return False
        head, _, index = cell.device.partition(":")
        return not (head == "cuda" and index and self.gpu is not None and index != self.gpu)


class ConnectionPool(Executor):
    """The worker protocol over connections; subclasses spawn, kill and watch the workers."""

    def __init__(self, workers: int, start_timeout: float = WORKER_START_TIMEOUT_S) -> None:
        self.workers = max(1, int(workers))
        self.start_timeout = start_timeout
        self.slots: list[Slot] = []

    # -- for subclasses ------------------------------------------------------------------------
    @abstractmethod
    def _spawn(self, number: int) -> Slot:
        """Start worker ``number`` (0 .. size-1, reused for its replacements)."""

    @abstractmethod
    def _terminate(self, slot: Slot) -> None:
        """Kill a worker at once."""

    @abstractmethod
    def _ended(self, slot: Slot) -> str | None:
        """None while the worker lives; else why it ended."""

    def _closed_why(self, slot: Slot) -> str:
        """Why a worker's connection closed (its process or job ended, as far as is known)."""
        return "the worker's connection closed (its process or job ended)"

    def _start_overdue(self, slot: Slot, now: float) -> bool:
        """Whether a worker that is not ready yet has taken too long to start."""
        return now - slot.spawned > self.start_timeout

    def _waitables(self) -> list[Any]:
        return [s.conn for s in self.slots if s.conn is not None]

    def _poll_new(self) -> None:
        """Attach connections that arrived since the last call (TCP workers)."""

    # -- the pool ------------------------------------------------------------------------------
    def size(self) -> int:
        return self.workers

    def start(self) -> None:
        self._fill()

    def _fill(self) -> None:
        used = {s.number for s in self.slots}
        for number in range(self.workers):
            if number not in used:
                slot = self._spawn(number)
                slot.number = number
                self.slots.append(slot)

    def has_idle(self) -> bool:
        return any(s.ready and s.task is None for s in self.slots)

    def try_submit(self, index: int, cell: Cell) -> bool:
        for slot in self.slots:
            if slot.ready and slot.task is None and slot.accepts(cell):
                try:
                    _wire.send(slot.conn, {"type": "cell", "index": index, "cell": cell.to_dict()})
                except (OSError, ValueError, EOFError):  # died while idle: replace it
                    self._drop(slot)
                    continue
                slot.task = (index, cell)
                return True
        return False

    def wait(self, timeout: float, more: bool = True) -> list[Event]:
        if more:
            self._fill()
        self._poll_new()
        waitables = self._waitables()
        if waitables:
            wait(waitables, timeout=timeout)
        elif timeout > 0:
            time.sleep(min(timeout, 0.2))
        self._poll_new()
        events: list[Event] = []
        for slot in list(self.slots):
            events.extend(self._service(slot))
        return events

    def _service(self, slot: Slot) -> list[Event]:
        events: list[Event] = []
        if slot.conn is not None:
            try:
                while slot.conn.poll():
                    message = _wire.receive(slot.conn)
                    if message["type"] == "ready":
                        slot.ready, slot.info = True, dict(message["info"])
                    elif message["type"] == "result":
                        index, outcome = message["index"], message["outcome"]
                        if slot.task is not None and slot.task[0] == index:
                            slot.task = None
                            events.append(Done(index, outcome, slot.info))
                    else:  # fatal
                        self._drop(slot)
                        return [*events, StartFailed(message["message"])]
            except _wire.ProtocolError as exc:
                why = f"the worker sent a message outside the protocol and was dropped: {exc}"
                if not slot.ready:
                    self._drop(slot)
                    return [*events, StartFailed(why)]
                return [*events, *self._lose(slot, why)]
            except (EOFError, OSError):
                slot.conn = _closed(slot.conn)
                if slot.ready or slot.task is not None:
                    return [*events, *self._lose(slot, self._closed_why(slot))]
        why = self._ended(slot)
        if why is not None:
            if not slot.ready:
                self._drop(slot)
                return [*events, StartFailed(why)]
            return [*events, *self._lose(slot, why)]
        if not slot.ready and self._start_overdue(slot, time.monotonic()):
            self._drop(slot)
            return [*events, StartFailed(f"worker did not start within {self.start_timeout:g} s")]
        return events

    def _lose(self, slot: Slot, why: str) -> list[Event]:
        task = slot.task
        self._drop(slot)
        return [Lost(task[0], why, slot.info)] if task is not None else []

    def _drop(self, slot: Slot) -> None:
        self._terminate(slot)
        if slot.conn is not None:
            slot.conn = _closed(slot.conn)
        if slot in self.slots:
            self.slots.remove(slot)

    def kill(self, index: int) -> None:
        for slot in list(self.slots):
            if slot.task is not None and slot.task[0] == index:
                slot.task = None
                self._drop(slot)

    def close(self, cancel: bool = False) -> None:
        for slot in list(self.slots):
            if not cancel and slot.ready and slot.task is None and slot.conn is not None:
                try:
                    _wire.send(slot.conn, {"type": "stop"})
                except (OSError, ValueError, EOFError):
                    pass
        if not cancel:
            self._let_finish()
        for slot in list(self.slots):
            self._drop(slot)

    def _let_finish(self) -> None:
        """Give workers told to stop a moment to exit on their own."""


def _closed(conn: Any) -> None:
    try:
        conn.close()
    except Exception:
        pass
    return None


__all__ = ["ConnectionPool", "Slot"]
