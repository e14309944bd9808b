"""Pre-flight: candidate and plugin quantizers are checked before any cell runs.

Every quantizer of a plan that is not one of vqbench's built-ins (a ``file.py:Name`` or
``module:Name`` reference, an entry point, a ``@register_quantizer`` plugin) is imported, built with
each config that its cells pass (``codebook_size=``, ``dim=`` and the profile's ``[quantizers.NAME]``
settings), called once on a tiny input and decoded, through the protocol check of
``vqbench.quantizers._check``. The check runs in one spawned process that imports the plugins and
sees the import path exactly as the workers do, so what works here works in them. A failure raises
:class:`PreflightError` naming the quantizer, the arguments and what came against what was expected,
before the run is stored. ``vqbench check`` runs the same check alone.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import signal
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vqbench.errors import UserError

from .cells import NO_QUANTIZER, Cell, short_name

#: Seconds the pre-flight process may take, start (importing torch) included.
PREFLIGHT_TIMEOUT_S = 180.0


class PreflightError(UserError):
    """A candidate or plugin quantizer failed its pre-flight check; nothing ran, nothing was stored."""


@dataclass(frozen=True)
class Target:
    """One quantizer config to check: built as ``create_quantizer(quantizer, **config)``."""

    quantizer: str
    config: dict = field(default_factory=dict)
    device: str = "cpu"

    @property
    def key(self) -> str:
        return json.dumps([self.quantizer, self.config, self.device], sort_keys=True, default=repr)


@dataclass
class Outcome:
    """A target's checks (``vqbench.quantizers._check.Check`` dicts)."""

    target: Target
    checks: list[dict[str, str]]

    @property
    def ok(self) -> bool:
        return all(c["status"] != "fail" for c in self.checks)

    def failed(self) -> list[dict[str, str]]:
        return [c for c in self.checks if c["status"] == "fail"]


def is_builtin(name: str) -> bool:
    """One of vqbench's own registrations (its FSQ and the upstream baselines), as registered by
    vqbench: a plugin that took a built-in's name, or calls itself built-in, is checked like any
    other plugin."""
    from vqbench.quantizers import BUILTIN_NAMES
    from vqbench.quantizers._registry import REGISTRY

    spec = REGISTRY.specs().get(name)
    if name not in BUILTIN_NAMES or spec is None or not spec.builtin:
        return False
    target = spec.target
    module = target.partition(":")[0] if isinstance(target, str) else getattr(target, "__module__", "")
    return str(module).split(".")[0] == "vqbench"


def targets(cells: list[Cell], *, builtins: bool = False) -> list[Target]:
    """The distinct (quantizer, config) pairs of ``cells`` to check, in order; built-ins only with
    ``builtins``. A quantizer's own backend (``backend=``) is passed as its cells pass it."""
    from .expand import BASE_BACKENDS

    seen: dict[str, Target] = {}
    for cell in cells:
        if cell.quantizer == NO_QUANTIZER or (not builtins and is_builtin(cell.quantizer)):
            continue
        config = dict(cell.config)
        if cell.backend not in BASE_BACKENDS:
            config.setdefault("backend", cell.backend)
        device = "cuda" if cell.device.startswith("cuda") else "cpu"
        target = Target(cell.quantizer, config, device)
        seen.setdefault(target.key, target)
    return list(seen.values())


def import_path(cells: list[Cell], cwd: str | None = None) -> tuple[str, ...]:
    """The folders that the workers append to ``sys.path``: the current folder (for ``module:Name``
    and plugin modules beside the user), then the folder of each ``file.py:Name`` candidate."""
    out = [str(Path(cwd or os.getcwd()).resolve())]
    for cell in cells:
        module, sep, _ = cell.quantizer.rpartition(":")
        if sep and (module.endswith(".py") or "/" in module or "\\" in module):
            folder = str(Path(module).expanduser().resolve().parent)
            if folder not in out:
                out.append(folder)
    return tuple(out)


class Checking:
    """The checks of ``todo`` under way in one spawned, worker-like process (started at once, so
    that the caller's own checks run meanwhile); :meth:`result` waits for them, :meth:`cancel`
    stops them. Use as a context manager: leaving it stops the process."""

    def __init__(
        self,
        todo: list[Target],
        plugins: tuple[str, ...] = (),
        paths: tuple[str, ...] = (),
        timeout: float = PREFLIGHT_TIMEOUT_S,
    ) -> None:
        self.todo, self.timeout, self.proc, self.conn = todo, timeout, None, None
        if not todo and not plugins:
            return
        ctx = mp.get_context("spawn")
        self.conn, child = ctx.Pipe(duplex=False)
        self.proc = ctx.Process(
            target=_child,
            args=(child, tuple(plugins), tuple(paths), [(t.quantizer, t.config, t.device) for t in todo]),
            name="vqbench-preflight",
            daemon=True,
        )
        self.proc.start()
        child.close()

    def __enter__(self) -> Checking:
        return self

    def __exit__(self, *exc: object) -> None:
        self.cancel()

    def result(self) -> list[Outcome]:
        """One :class:`Outcome` per target. Raises :class:`PreflightError` when the plugins cannot be
        imported there, or the process dies or overruns the timeout (naming what it was checking)."""
        if self.proc is None:
            return []
        outcomes: list[Outcome] = []
        current = "the plugins"
        try:
            while True:
                if not self.conn.poll(self.timeout):
                    raise PreflightError(
                        f"pre-flight: checking {current} did not finish within {self.timeout:g} s; "
                        "nothing ran and nothing was stored"
                    )
                try:
                    message = self.conn.recv()
                except EOFError:
                    self.proc.join(timeout=5)
                    hint = ""
                    if current == "the plugins":  # it never got going: most often the spawn idiom
                        from .executors.local import START_FAILURE_HINT

                        hint = f". {START_FAILURE_HINT}"
                    raise PreflightError(
                        f"pre-flight: the check process {_ended(self.proc.exitcode)} while checking "
                        f"{current}; nothing ran and nothing was stored{hint}"
                    ) from None
                kind = message[0]
                if kind == "plugins":
                    raise PreflightError(f"pre-flight: {message[1]}; nothing ran and nothing was stored")
                if kind == "start":
                    t = self.todo[message[1]]
                    current = f"quantizer {short_name(t.quantizer)!r} built with ({_args(t.config)})"
                elif kind == "done":
                    outcomes.append(Outcome(self.todo[message[1]], message[2]))
                elif kind == "end":
                    return outcomes
        finally:
            self.cancel()

    def cancel(self) -> None:
        """Stop the process (if it still runs) and close the pipe."""
        if self.proc is None:
            return
        self.conn.close()
        if self.proc.is_alive():
            self.proc.kill()
        self.proc.join(timeout=5)
        self.proc = None


def run_checks(
    todo: list[Target],
    plugins: tuple[str, ...] = (),
    paths: tuple[str, ...] = (),
    timeout: float = PREFLIGHT_TIMEOUT_S,
) -> list[Outcome]:
    """Check ``todo`` in one spawned, worker-like process and wait: see :class:`Checking`."""
    with Checking(todo, plugins, paths, timeout) as checking:
        return checking.result()


def start_preflight(
    cells: list[Cell], plugins: tuple[str, ...] = (), paths: tuple[str, ...] = ()
) -> Checking:
    """Start checking every candidate and plugin quantizer of ``cells``; :func:`finish_preflight`
    waits for the result."""
    return Checking(targets(cells), plugins, paths)


def finish_preflight(checking: Checking) -> list[Outcome]:
    """The outcomes of ``checking``; raise :class:`PreflightError` on a failure, with what is wrong and
    how to check it alone."""
    outcomes = checking.result()
    failed = [o for o in outcomes if not o.ok]
    if failed:
        raise PreflightError(failure_message(failed))
    return outcomes


def preflight(cells: list[Cell], plugins: tuple[str, ...] = (), paths: tuple[str, ...] = ()) -> list[Outcome]:
    """Check every candidate and plugin quantizer of ``cells`` and wait (see :func:`finish_preflight`)."""
    with start_preflight(cells, plugins, paths) as checking:
        return finish_preflight(checking)


def failure_message(failed: list[Outcome]) -> str:
    """One paragraph per failing quantizer (its first failing config), the way to check it alone."""
    lines = ["pre-flight check failed before any cell ran (nothing was stored):"]
    seen: set[str] = set()
    for outcome in failed:
        name = outcome.target.quantizer
        if name in seen:
            continue
        seen.add(name)
        more = sum(1 for o in failed if o.target.quantizer == name) - 1
        lines.append(
            f"  quantizer {short_name(name)!r}, built with ({_args(outcome.target.config)}) "
            f"on {outcome.target.device}" + (f" (and {more} more config(s))" if more else "") + ":"
        )
        for check in outcome.failed():
            lines.append(f"    {check['step']}: {check['detail']}")
    import shlex

    for name in dict.fromkeys(o.target.quantizer for o in failed):
        lines.append(f"Check it alone: vqbench check {shlex.quote(name)}")
    return "\n".join(lines)


def _ended(code: int | None) -> str:
    if code is not None and code < 0:
        try:
            return f"died with {signal.Signals(-code).name}"
        except ValueError:
            return f"died with signal {-code}"
    return f"exited with code {code}"


def _args(config: dict[str, Any]) -> str:
    from vqbench.quantizers._check import call_args

    return call_args(config) or "no arguments"


def _child(conn: Any, plugins: tuple[str, ...], paths: tuple[str, ...], todo: list[tuple]) -> None:
    """The pre-flight process: the workers' imports, then each target's checks, sent back."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the coordinator's
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    from ._worker import WorkerSetup, import_plugins

    try:
        import torch

        torch.set_num_threads(1)
        import_plugins(WorkerSetup(plugins=plugins, import_path=paths))
    except Exception as exc:
        conn.send(
            ("plugins", f"{type(exc).__name__}: {exc}" if not str(exc).startswith("plugin") else str(exc))
        )
        return
    from vqbench.quantizers._check import check_quantizer

    for i, (name, config, device) in enumerate(todo):
        conn.send(("start", i))
        if device == "cuda" and not torch.cuda.is_available():
            device = "cpu"  # planned for a GPU this machine lacks: the protocol is the same
        try:
            checks = [c.as_dict() for c in check_quantizer(name, config, device)]
        except Exception as exc:  # the checker itself must not hide a fault
            checks = [{"step": "check", "status": "fail", "detail": f"{type(exc).__name__}: {exc}"}]
        conn.send(("done", i, checks))
    conn.send(("end",))


__all__ = [
    "Checking",
    "finish_preflight",
    "start_preflight",
    "PREFLIGHT_TIMEOUT_S",
    "Outcome",
    "PreflightError",
    "Target",
    "failure_message",
    "import_path",
    "is_builtin",
    "preflight",
    "run_checks",
    "targets",
]
