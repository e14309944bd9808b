"""Executors: where a suite's cells run. ``local`` (default), ``slurm`` (submitit), ``ray``.

Chosen by ``vqbench run --executor`` or a profile's ``[executor]`` table::

    [executor]
    kind = "slurm"          # local | slurm | ray
    workers = 16            # worker processes, Slurm jobs or Ray actors
    partition = "gpu"       # slurm: partition, account, time_limit (minutes), gpus_per_job,
    account = "vision"      #        cpus_per_job, sbatch (extra #SBATCH options), folder (job logs)
    time_limit = 240
    gpus_per_job = 1
    sbatch = { qos = "high", constraint = "h100" }
    # ray: address ("auto", "ray://head:10001"; default: a local cluster), num_cpus, num_gpus

The command line overrides the table. Every executor gives the same rows for the same cells; only
the coordinator writes the store.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from vqbench._registry import Registry, load_reference
from vqbench.engines import engine_modules
from vqbench.errors import UserError

from ..cells import Cell
from ._base import Done, Event, Executor, Lost, MissingExtraError, StartFailed

ENTRY_POINT_GROUP = "vqbench.executors"


@dataclass(frozen=True)
class ExecutorSpec:
    """An executor: its name and the module that builds it.

    The module defines ``build(settings, setup, cells, *, workers, threads) -> Executor`` and may
    define ``require()`` (raises MissingExtraError when a package it needs is not installed) and
    ``planned(settings, cells, threads) -> int`` (the workers it would start)."""

    name: str
    module: str
    description: str = ""
    source: str = "vqbench"

    def load(self) -> Any:
        """Import the module and check its contract."""
        import importlib

        module = importlib.import_module(self.module)
        if not callable(getattr(module, "build", None)):
            raise UserError(f"executor {self.name!r}: module {self.module!r} has no build() function")
        return module


def _from_entry_point(ep: Any) -> ExecutorSpec:
    spec = load_reference(ep.value, what=f"executor {ep.name!r}", callable_only=False)
    if not isinstance(spec, ExecutorSpec) or spec.name != ep.name:
        raise UserError(f"entry point {ep.name!r} must name an ExecutorSpec called {ep.name!r}, got {spec!r}")
    return spec


def _check(spec: ExecutorSpec) -> None:
    if not isinstance(spec, ExecutorSpec) or not isinstance(spec.module, str) or not spec.module:
        raise UserError(f"an executor is declared as an ExecutorSpec with a module name, got {spec!r}")


EXECUTOR_REGISTRY: Registry[ExecutorSpec] = Registry(
    "executor", ENTRY_POINT_GROUP, from_entry_point=_from_entry_point, check=_check
)
for _spec in (
    ExecutorSpec("local", "vqbench.suite.executors.local", "worker processes on this machine"),
    ExecutorSpec("slurm", "vqbench.suite.executors.slurm", "Slurm jobs through submitit"),
    ExecutorSpec("ray", "vqbench.suite.executors.ray", "Ray actors"),
):
    EXECUTOR_REGISTRY.add(_spec)
#: The built-in executors (the registry may hold more, from installed packages).
EXECUTORS = tuple(EXECUTOR_REGISTRY.specs())


def get_executor(name: str) -> ExecutorSpec:
    """The executor called ``name``; an unknown name raises with the close matches."""
    return EXECUTOR_REGISTRY.get(name)


@dataclass
class ExecutorSettings:
    """The ``[executor]`` table and ``vqbench run``'s executor options, merged and checked."""

    kind: str = "local"
    workers: int | None = None
    # slurm
    partition: str | None = None
    account: str | None = None
    time_limit: int = 240
    gpus_per_job: int | None = None
    cpus_per_job: int | None = None
    sbatch: dict[str, Any] = field(default_factory=dict)
    folder: str | None = None
    cluster: str | None = None  # submitit's cluster: "slurm" (default) or "local" (tests, no Slurm)
    host: str | None = None  # the coordinator's address as jobs reach it (default: its hostname)
    bind: str | None = None  # the interface to listen on (default: the address ``host`` resolves to)
    start_timeout: float = 600.0  # seconds a running job may take to connect (queue time not counted)
    # ray
    address: str | None = None
    num_cpus: float | None = None
    num_gpus: float | None = None

    def __post_init__(self) -> None:
        if self.kind not in EXECUTOR_REGISTRY:
            names = ", ".join(EXECUTOR_REGISTRY.specs())
            raise UserError(f"executor must be one of {names}, got {self.kind!r}")
        for name in ("workers", "gpus_per_job", "cpus_per_job", "time_limit"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise UserError(f"executor {name} must be a positive integer, got {value!r}")
        for name in ("num_cpus", "num_gpus"):
            value = getattr(self, name)
            bad = isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0
            if value is not None and bad:
                raise UserError(f"executor {name} must be a number >= 0, got {value!r}")
        if not isinstance(self.sbatch, dict):
            raise UserError(f"executor sbatch must be a table of sbatch options, got {self.sbatch!r}")
        if self.cluster not in (None, "slurm", "local", "debug"):
            raise UserError(f"executor cluster must be 'slurm' or 'local', got {self.cluster!r}")

    @classmethod
    def from_table(cls, table: dict[str, Any], where: str = "executor") -> ExecutorSettings:
        """Settings from a profile's ``[executor]`` table; unknown keys are errors naming the key."""
        names = [f.name for f in dataclasses.fields(cls)]
        for key in table:
            if key not in names:
                import difflib

                close = difflib.get_close_matches(key, names, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise UserError(f"{where}.{key}: unknown key{hint}; expected one of {sorted(names)}")
        try:
            return cls(**table)
        except ValueError as exc:
            raise UserError(f"{where}: {exc}") from exc

    def merged(self, **overrides: Any) -> ExecutorSettings:
        """These settings with the options that were given (not None) replacing them."""
        given = {k: v for k, v in overrides.items() if v is not None}
        if "sbatch" in given:
            given["sbatch"] = {**self.sbatch, **given["sbatch"]}
        if "kind" in given and given["kind"] != self.kind:
            base = ExecutorSettings(kind=given["kind"])  # another engine: the table's keys don't apply
            return dataclasses.replace(base, **given)
        return dataclasses.replace(self, **given)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly, for the run's stored config."""
        return dataclasses.asdict(self)


def parse_sbatch(options: list[str] | None) -> dict[str, str] | None:
    """``--sbatch KEY=VALUE`` options as a dict (``qos=high`` → ``{"qos": "high"}``)."""
    if not options:
        return None
    out: dict[str, str] = {}
    for item in options:
        key, sep, value = item.partition("=")
        key = key.strip().lstrip("-")
        if not sep or not key:
            raise UserError(f"--sbatch expects KEY=VALUE (e.g. qos=high), got {item!r}")
        out[key.replace("-", "_")] = value.strip()
    return out


def default_workers(settings: ExecutorSettings, profile_workers: int | None) -> int | None:
    """The worker count: the executor's own, else the profile's ``[suite] workers``, else None."""
    return settings.workers if settings.workers is not None else profile_workers


def make_executor(
    settings: ExecutorSettings,
    cells: list[Cell],
    *,
    workers: int | None,
    threads: int | None,
    env: dict[str, str] | None = None,
    engines: dict[str, str] | None = None,
    plugins: tuple[str, ...] = (),
    import_path: tuple[str, ...] = (),
    interpreters: dict[str, str] | None = None,
) -> Executor:
    """The executor for ``settings``, sized for ``cells`` (never more workers than cells).

    ``plugins`` (module names) are imported in every worker before its first cell, after
    ``import_path`` (folders) joined its ``sys.path``: the same on every engine."""
    from .._worker import WorkerSetup

    setup = WorkerSetup(
        env=dict(env or {}),
        engines=dict(engines or engine_modules()),
        threads=threads,
        plugins=tuple(plugins),
        import_path=tuple(import_path),
        interpreters=dict(interpreters or {}),
    )
    return get_executor(settings.kind).load().build(settings, setup, cells, workers=workers, threads=threads)


def planned_workers(settings: ExecutorSettings, cells: list[Cell], threads: int | None) -> int:
    """How many workers ``make_executor`` would start for ``cells`` (for estimates); an executor that
    cannot know before it runs (a Ray cluster's own size) counts its ``workers`` setting, else one."""
    module = get_executor(settings.kind).load()
    planned = getattr(module, "planned", None)
    if callable(planned):
        return planned(settings, cells, threads)
    return min(settings.workers or 1, max(1, len(cells)))


def require_engine(kind: str) -> None:
    """Fail early, naming the extra to install, when ``kind``'s engine is missing."""
    require = getattr(get_executor(kind).load(), "require", None)
    if callable(require):
        require()


__all__ = [
    "EXECUTORS",
    "EXECUTOR_REGISTRY",
    "ExecutorSpec",
    "get_executor",
    "Done",
    "Event",
    "Executor",
    "ExecutorSettings",
    "Lost",
    "MissingExtraError",
    "StartFailed",
    "default_workers",
    "make_executor",
    "parse_sbatch",
    "planned_workers",
    "require_engine",
]
