"""Benchmark engines: the contract, the registry and the built-in declarations.

An engine is declared as data (:class:`EngineSpec`): its name, the module that runs a cell, whether it
needs a dataset, the figures it stores (name, unit, direction, primary or a view), how a report draws
it, the summary's columns and a cost model. The suite, the reports, the importers and the pytest
plugin ask the declaration instead of branching on an engine's name; the engine's code is imported
only where a cell runs or its parameters are checked.

The engine module (``EngineSpec.module``) defines ``measure(cell) -> list[dict]`` (one dict per figure,
see ``vqbench.suite._common.figure``) and ``PARAMS`` (each parameter's default); it may define
``PARAM_TYPES`` (the type of a parameter whose default is None) and ``check(params)`` (raises
ValueError for a value it refuses; run before any cell). Installed packages add engines through the
entry-point group ``vqbench.engines``, whose entries name an ``EngineSpec``.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from vqbench._registry import Registry, entry_point_source, load_reference
from vqbench.errors import UserError

ENTRY_POINT_GROUP = "vqbench.engines"
#: How a report draws an engine's rows: per operation and size with timing noise, training results
#: per quantizer (with convergence diagnostics), or a plain table of figures.
VIEWS = ("operations", "training", "table")


@dataclass(frozen=True)
class FigureSpec:
    """One figure an engine stores: ``name`` is the figure part of the metric name."""

    name: str
    unit: str
    higher_is_better: bool | None
    primary: bool = False  # the engine's headline figure: starred in tables, first in the summary
    description: str = ""


@dataclass(frozen=True)
class SummaryColumn:
    """A column of the summary printed after a run: a metric (a prefix ending in "@" takes the largest
    size), its short label and format ("si", "pct" or "f1")."""

    metric: str
    label: str
    style: str


@dataclass(frozen=True)
class CostModel:
    """Seconds per cell with no history, per device kind. An engine with a step cap (``step_param``)
    costs ``steps x step_seconds``, more for a quantizer whose work per token grows with its
    codebook (memory "dense" in the registry: ``dense_per_1024`` more per 1024 codes)."""

    seconds: dict[str, float] = field(default_factory=lambda: {"cpu": 10.0, "cuda": 10.0})
    step_param: str | None = None
    step_seconds: dict[str, float] = field(default_factory=dict)
    dense_per_1024: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class EngineSpec:
    """The declaration of a benchmark engine (see the module docstring)."""

    name: str
    module: str
    description: str = ""
    needs_dataset: bool = False
    view: str = "table"
    figures: tuple[FigureSpec, ...] = ()
    summary: tuple[SummaryColumn, ...] = ()
    legend: str = ""  # what the summary's columns of this engine are
    cost: CostModel = field(default_factory=CostModel)
    renamed_params: dict[str, str] = field(default_factory=dict)  # old name -> new, still read
    source: str = "vqbench"

    @property
    def primary(self) -> str | None:
        """The name of the primary figure, if the engine declares one."""
        return next((f.name for f in self.figures if f.primary), None)

    def figure(self, name: str) -> FigureSpec | None:
        """The declared figure called ``name``."""
        return next((f for f in self.figures if f.name == name), None)

    def load(self) -> ModuleType:
        """Import the engine module and check its contract."""
        try:
            module = importlib.import_module(self.module)
        except Exception as exc:  # a plugin may fail in any way; say which engine
            raise UserError(f"engine {self.name!r}: could not import {self.module!r}: {exc}") from exc
        if not callable(getattr(module, "measure", None)):
            raise UserError(f"engine {self.name!r}: module {self.module!r} has no measure(cell) function")
        if not isinstance(getattr(module, "PARAMS", None), dict):
            raise UserError(f"engine {self.name!r}: module {self.module!r} has no PARAMS dict of defaults")
        return module

    def current_params(self, params: dict[str, Any], where: str = "params") -> dict[str, Any]:
        """``params`` with parameters that an earlier vqbench named otherwise under their new name."""
        out = dict(params)
        for old, new in self.renamed_params.items():
            if old in out:
                if new in out:
                    raise UserError(f"{where}: {old!r} is the old name of {new!r}; give {new!r} only")
                out[new] = out.pop(old)
        return out

    def params(self) -> dict[str, Any]:
        """The parameters and their defaults."""
        return dict(self.load().PARAMS)

    def param_types(self) -> dict[str, str]:
        """The declared types of parameters whose default is None."""
        return dict(getattr(self.load(), "PARAM_TYPES", {}) or {})


def _check(spec: EngineSpec) -> None:
    if not isinstance(spec, EngineSpec):
        raise UserError(f"an engine is declared as a vqbench.engines.EngineSpec, got {type(spec).__name__}")
    if not isinstance(spec.module, str) or not spec.module:
        raise UserError(f"engine {spec.name!r}: module must be a module name, got {spec.module!r}")
    if spec.view not in VIEWS:
        raise UserError(f"engine {spec.name!r}: view must be one of {', '.join(VIEWS)}, got {spec.view!r}")
    if any(not isinstance(f, FigureSpec) for f in spec.figures):
        raise UserError(f"engine {spec.name!r}: figures must be FigureSpec entries")
    if sum(f.primary for f in spec.figures) > 1:
        primaries = [f.name for f in spec.figures if f.primary]
        raise UserError(f"engine {spec.name!r}: at most one primary figure, got {primaries}")
    for column in spec.summary:
        if column.style not in ("si", "pct", "f1"):
            raise UserError(f"engine {spec.name!r}: summary style is si, pct or f1, got {column.style!r}")


def _from_entry_point(ep: Any) -> EngineSpec:
    spec = load_reference(ep.value, what=f"engine {ep.name!r}", callable_only=False)
    if isinstance(spec, EngineSpec) and spec.source == "vqbench":
        spec = EngineSpec(**{**spec.__dict__, "source": entry_point_source(ep)})
    if isinstance(spec, EngineSpec) and spec.name != ep.name:
        raise UserError(f"entry point {ep.name!r} names an engine called {spec.name!r}; the names must agree")
    return spec


ENGINES: Registry[EngineSpec] = Registry(
    "benchmark engine",
    ENTRY_POINT_GROUP,
    from_entry_point=_from_entry_point,
    check=_check,
    hint=" Installed packages add engines through the entry-point group 'vqbench.engines'.",
)


def register_engine(spec: EngineSpec) -> EngineSpec:
    """Register an engine declaration; a duplicate name is an error."""
    return ENGINES.add(spec)


def get_engine(name: str) -> EngineSpec:
    """The declaration of ``name``; an unknown name raises with the close matches."""
    return ENGINES.get(name)


def engine_names() -> list[str]:
    """Registered engines, built-ins first, in registration order."""
    return list(ENGINES.specs())


def view_of(name: str) -> str:
    """How a report draws rows of engine ``name`` ("table" for one that is not registered here,
    such as a plugin engine whose package is not installed where the report is made)."""
    spec = ENGINES.specs().get(str(name))
    return spec.view if spec is not None else "table"


def with_view(view: str) -> list[str]:
    """The registered engines that a report draws as ``view``."""
    return [name for name, spec in ENGINES.specs().items() if spec.view == view]


def primary_figures() -> dict[str, str]:
    """Engine -> its primary figure, for the engines that declare one."""
    return {name: spec.primary for name, spec in ENGINES.specs().items() if spec.primary}


def engine_modules() -> dict[str, str]:
    """Each engine's module, for the workers."""
    return {name: spec.module for name, spec in ENGINES.specs().items()}


def _figures(primary: str, *declared: tuple[str, str, bool | None]) -> tuple[FigureSpec, ...]:
    """Figure specs from (name, unit, higher_is_better) triples; ``primary`` names the headline."""
    return tuple(FigureSpec(n, u, h, primary=n == primary) for n, u, h in declared)


_USAGE = (
    ("utilization", "ratio", True),
    ("perplexity", "codes", True),
    ("perplexity_ratio", "ratio", True),
    ("entropy_bits", "bits", True),
    ("dead_codes", "codes", False),
    ("tokens", "tokens", None),
    ("tokens_per_code", "ratio", None),
    ("utilization_token_gain", "ratio", None),
    ("train_time", "s", False),
    ("train_steps", "steps", None),
)

for _spec in (
    EngineSpec(
        "throughput",
        "vqbench.suite.throughput",
        "forward, training step, encode and decode per call size",
        view="operations",
        figures=_figures(
            "vectors_per_s",
            ("vectors_per_s", "vectors/s", True),
            ("time", "s", False),
            ("effective_gbps", "GB/s", True),
            ("relative_time", "x control", False),
            ("cpu_relative_time", "x control", False),
            ("control_time", "s", False),
            ("copy_bandwidth", "GB/s", None),
            ("copy_fraction", "ratio", True),
            ("peak_memory", "MiB", False),
            ("compile_time", "s", False),
        ),
        summary=(
            SummaryColumn("forward.vectors_per_s@", "fwd/s", "si"),
            SummaryColumn("train.vectors_per_s@", "train/s", "si"),
        ),
        legend="fwd/s, train/s: throughput",
        cost=CostModel({"cpu": 5.0, "cuda": 10.0}),
    ),
    EngineSpec(
        "usage",
        "vqbench.suite.usage",
        "codebook usage after fitting the quantizer on a dataset",
        needs_dataset=True,
        view="training",
        figures=_figures("utilization", *_USAGE, ("quantization_mse", "mse", False)),
        summary=(
            SummaryColumn("utilization", "usage", "pct"),
            SummaryColumn("perplexity_ratio", "ppl/K", "pct"),
        ),
        legend="usage, ppl/K: codebook usage",
        cost=CostModel({"cpu": 5.0, "cuda": 8.0}),
    ),
    EngineSpec(
        "reconstruction",
        "vqbench.suite.reconstruction",
        "a fixed small autoencoder per data kind with the quantizer as its bottleneck",
        needs_dataset=True,
        view="training",
        figures=_figures(
            "psnr",
            ("psnr", "dB", True),
            ("mse", "mse", False),
            ("mse_untrained", "mse", None),
            *_USAGE,
            ("bits_per_token", "bits", None),
            ("bits_per_sample", "bits", None),
            ("bit_balance", "ratio", True),
            ("levels_used", "ratio", True),
            ("levels_entropy_bits", "bits", True),
            ("live_bits", "bits", True),
            ("reachable_share", "ratio", True),
            ("input_effective_rank", "dims", True),
            ("input_participation_ratio", "dims", True),
            ("token_bits_unigram", "bits", False),
            ("token_bits_previous", "bits", False),
            ("token_bits_neighbours", "bits", False),
            ("token_bits_per_sample", "bits", False),
            ("token_bits_prior", "bits", False),
            ("prior_bits_per_sample", "bits", False),
            ("corrupt_psnr_drop", "dB", False),
            ("bitflip_psnr_drop", "dB", False),
            ("noise_psnr_drop", "dB", False),
            ("noise_index_change", "ratio", False),
        ),
        summary=(
            SummaryColumn("psnr", "AE PSNR", "f1"),
            SummaryColumn("utilization", "AE usage", "pct"),
        ),
        legend="AE: reconstruction autoencoder",
        renamed_params={"steps": "train_steps"},
        # the step cap bounds a cell: about 15 ms of CPU a step with FSQ, more with a learned codebook
        cost=CostModel(
            {"cpu": 15.0, "cuda": 35.0},
            step_param="train_steps",
            step_seconds={"cpu": 0.016, "cuda": 0.0026},
            dense_per_1024={"cpu": 0.6, "cuda": 0.04},
        ),
    ),
    EngineSpec(
        "fsq_speed",
        "vqbench.suite.fsq_speed.cell",
        "vqbench's FSQ paths against upstream FSQ",
        figures=(
            FigureSpec("vectors_per_s", "vectors/s", True),
            FigureSpec("ratio", "x upstream", True, primary=True),
            FigureSpec("ratio_compiled", "x upstream compiled", True),
            FigureSpec("compile_time", "s", False),
        ),
        cost=CostModel({"cpu": 30.0, "cuda": 30.0}),
    ),
    EngineSpec(
        "agreement",
        "vqbench.suite.agreement",
        "indices and codes in a precision against float32",
        figures=_figures(
            "index_change_share",
            ("index_change_share", "ratio", False),
            ("code_error_max", "abs", False),
            ("code_error_mean", "abs", False),
            ("requested_dtype_share", "ratio", None),
        ),
        cost=CostModel({"cpu": 5.0, "cuda": 2.0}),
    ),
):
    register_engine(_spec)


__all__ = [
    "ENGINES",
    "ENTRY_POINT_GROUP",
    "VIEWS",
    "CostModel",
    "EngineSpec",
    "FigureSpec",
    "SummaryColumn",
    "engine_modules",
    "engine_names",
    "get_engine",
    "primary_figures",
    "register_engine",
    "view_of",
    "with_view",
]
