"""The loop over a run's cells: hand cells to idle workers, store each cell's rows, enforce timeouts.

The loop is the same for every executor (``vqbench.suite.executors``) and is the only writer of
the store. A cell's rows are written in one transaction as the cell ends. A cell whose worker is
lost (crash, preempted or cancelled job, dead actor) runs again up to the executor's
``lost_retries`` times, then is recorded as an error; a cell past its timeout has its worker
killed and is recorded as an error.
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from collections import deque
from collections.abc import Iterator
from typing import Any

from vqbench.results._errors import StoreError

from .cells import Cell
from .executors import Done, ExecutorSettings, Lost, StartFailed, make_executor, require_engine
from .executors.local import START_FAILURE_HINT
from .expand import Plan
from .progress import ProgressBar
from .rows import rows_for

#: Consecutive worker start failures (at least one per worker) after which the run stops.
MAX_START_FAILURES = 2


class CellLoop:
    """Runs ``todo`` on ``executor`` into run ``run_id`` of ``store``, advancing ``progress``.

    ``done`` counts the cells whose rows are stored.
    """

    def __init__(
        self,
        plan: Plan,
        store: Any,
        run_id: str,
        todo: list[Cell],
        progress: ProgressBar,
        executor: Any,
        environment_runs: dict[str, str] | None = None,
    ):
        self.plan, self.store, self.run_id = plan, store, run_id
        self.environment_runs = environment_runs or {}  # a dependency environment's cells: its own run
        self.todo = todo
        self.progress = progress
        self.executor = executor
        self.done = 0
        self.start_failures = 0
        self.running: dict[int, tuple[Cell, float]] = {}
        self.attempts: dict[int, int] = {}
        self.load = 1.0  # timeouts scale with the machine's load (``timing.load_factor``, at start)

    def limit(self, cell: Cell) -> float:
        """The cell's timeout in seconds, stretched by the load measured when the run started."""
        return self.plan.timeout(cell) * self.load

    def _record(self, cell: Cell, outcome: dict[str, Any], index: int, worker: dict | None = None) -> None:
        outcome = dict(outcome)
        if worker:
            outcome["worker"] = worker
        if self.attempts.get(index, 1) > 1:
            outcome["attempts"] = self.attempts[index]
        run_id = self.environment_runs.get(cell.environment, self.run_id)
        try:
            self.store.write_rows(rows_for(cell, run_id, outcome))
        except StoreError:
            raise
        except (TypeError, ValueError, KeyError, AttributeError) as exc:  # a malformed figure
            outcome = {
                **{k: v for k, v in outcome.items() if k not in ("figures", "message")},
                "status": "error",
                "message": f"the cell's figures could not be stored: {exc}",
            }
            self.store.write_rows(rows_for(cell, run_id, outcome))
        self.done += 1
        self.progress.advance(cell, outcome.get("status"))

    def run(self) -> None:
        """Run every cell; on any exception the executor cancels its outstanding work."""
        pending: deque[tuple[int, Cell]] = deque(enumerate(self.todo))
        executor = self.executor
        interrupted = True
        try:
            from .timing import load_factor

            self.load = load_factor() if getattr(executor, "kind", "local") == "local" else 1.0
            executor.start()
            self.progress.note(f"{len(self.todo)} cells on the {executor.describe()}")
            while pending or self.running:
                if pending and executor.has_idle():
                    for task in list(pending):
                        if not executor.has_idle():
                            break
                        if executor.try_submit(*task):
                            pending.remove(task)
                            self.running[task[0]] = (task[1], time.monotonic())
                            self.attempts[task[0]] = self.attempts.get(task[0], 0) + 1
                            self.progress.start(task[1])
                for event in executor.wait(self._wait_time(), more=bool(pending)):
                    self._handle(event, pending)
                self._check_timeouts()
            interrupted = False
        finally:
            executor.close(cancel=interrupted)

    def _handle(self, event: Any, pending: deque) -> None:
        if isinstance(event, Done):
            self.start_failures = 0
            if event.index in self.running:
                cell, _ = self.running.pop(event.index)
                self._record(cell, event.outcome, event.index, event.worker)
        elif isinstance(event, Lost):
            if event.index not in self.running:
                return
            cell, _ = self.running.pop(event.index)
            if self.attempts[event.index] <= self.executor.lost_retries:
                pending.appendleft((event.index, cell))  # once more, on another worker
                return
            tries = self.attempts[event.index]
            message = event.message if tries == 1 else f"{event.message} (lost {tries} times)"
            self._record(cell, {"status": "error", "message": message}, event.index, event.worker)
        elif isinstance(event, StartFailed):
            self.start_failures += 1
            if self.start_failures >= max(MAX_START_FAILURES, self.executor.size()):
                hint = f" {START_FAILURE_HINT}" if self.executor.kind == "local" else ""
                raise RuntimeError(
                    f"vqbench workers fail to start on the {self.executor.kind} executor: "
                    f"{event.message.strip()}.{hint}"
                )

    def _wait_time(self) -> float:
        now = time.monotonic()
        limits = [0.5]
        for cell, started in self.running.values():
            limits.append(started + self.limit(cell) - now)
        return max(0.0, min(limits))

    def _check_timeouts(self) -> None:
        now = time.monotonic()
        for index, (cell, started) in list(self.running.items()):
            limit = self.limit(cell)
            if now - started > limit:
                self.executor.kill(index)
                del self.running[index]
                self._record(
                    cell,
                    {
                        "status": "error",
                        "message": f"timed out: the cell ran past its {limit:.4g} s limit "
                        f"({self.plan.timeout(cell):g} s x {self.load:.2f}, the machine's load factor) "
                        "and its worker was killed",
                    },
                    index,
                )


def open_executor(
    plan: Plan, todo: list[Cell], settings: ExecutorSettings, interpreters: dict[str, str] | None = None
) -> Any:
    """The executor for ``todo``, its workers set to the plan's thread count (nothing started yet);
    ``interpreters``: the python of each dependency environment that cells name."""
    require_engine(settings.kind)
    env = {"OMP_NUM_THREADS": str(plan.threads), "MKL_NUM_THREADS": str(plan.threads)} if plan.threads else {}
    return make_executor(
        settings,
        todo,
        workers=settings.workers,
        threads=plan.threads,
        env=env,
        plugins=plan.plugins,
        import_path=plan.import_path,
        interpreters=interpreters,
    )


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Within the block, SIGTERM stops the run the way Ctrl-C does (main thread only)."""
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


__all__ = ["MAX_START_FAILURES", "CellLoop", "open_executor", "sigterm_as_interrupt"]
