"""Expand a profile into cells: quantizers x codebook sizes x datasets x backends x devices x
precisions x seeds.

Names are resolved against the quantizer and dataset registries here, before anything runs, so that
an unknown quantizer, dataset or backend is a clear error that names the profile key it came from.
"""

from __future__ import annotations

import difflib
import fnmatch
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vqbench.errors import MissingFileError, UnknownNameError, UserError
from vqbench.quantizers._registry import BASE_BACKENDS

from .cells import NO_QUANTIZER, Cell, dedupe
from .profiles import BenchmarkSpec, Profile, ProfileError

_GLOB = set("*?[")


@dataclass
class Plan:
    """The cells of a suite, in run order, with each cell's timeout in seconds."""

    suite: str
    cells: list[Cell]
    timeouts: dict[str, float] = field(default_factory=dict)
    workers: int | None = 1
    threads: int | None = None
    plugins: tuple[str, ...] = ()  # modules every process imports (see vqbench.quantizers._plugins)
    import_path: tuple[str, ...] = ()  # folders every worker appends to sys.path

    def timeout(self, cell: Cell, default: float = 600.0) -> float:
        """The per-cell timeout of ``cell``."""
        return self.timeouts.get(cell.cell_id, default)


def _split(value: str | list[str] | tuple[str, ...] | None) -> list[str] | None:
    if value is None:
        return None
    items = value.split(",") if isinstance(value, str) else list(value)
    items = [str(i).strip() for i in items if str(i).strip()]
    return items


def resolve_quantizers(patterns: list[str] | tuple[str, ...], where: str) -> list[str]:
    """Registered names (and direct references) for ``patterns``, in order, without repeats.

    ``"default"`` is the registry's default set; globs match registered names; ``file.py:Name`` and
    ``package.module:Name`` references are kept as given. Unknown names and empty globs raise.
    """
    from vqbench.quantizers import get_quantizer_spec, list_quantizers

    out: list[str] = []
    for pattern in patterns:
        if pattern == "default":
            found = list_quantizers(default_only=True)
        elif ":" in pattern:
            path = pattern.rpartition(":")[0]
            if (path.endswith(".py") or "/" in path) and not Path(path).expanduser().is_file():
                raise MissingFileError(f"{where}: quantizer reference {pattern!r}: no such file {path!r}")
            found = [pattern]
        elif _GLOB & set(pattern):
            found = list_quantizers(pattern)
            if not found:
                raise UnknownNameError(
                    f"{where}: pattern {pattern!r} matches no registered quantizer; "
                    f"registered: {', '.join(list_quantizers())}"
                )
        else:
            try:
                found = [get_quantizer_spec(pattern).name]
            except KeyError as exc:
                raise type(exc)(f"{where}: {exc}") from exc
        out.extend(n for n in found if n not in out)
    return out


def quantizer_backends(name: str) -> dict[str, tuple[str, ...] | None]:
    """The backends that ``name`` offers, with their device types: ``offered_backends`` of the registry."""
    from vqbench.quantizers import offered_backends

    try:
        return offered_backends(name)
    except Exception:  # a broken plugin fails in its cells, as an error row
        return dict.fromkeys(BASE_BACKENDS)


def quantizer_config(profile: Profile, name: str) -> dict[str, Any]:
    """Merged ``[quantizers.KEY]`` config for ``name``: glob keys in file order, then the exact key."""
    return merged_config(profile.quantizer_config, name)


def merged_config(tables: dict[str, dict[str, Any]], name: str) -> dict[str, Any]:
    """The config that ``[quantizers.KEY]`` tables give ``name``: glob keys in order, then its own."""
    config: dict[str, Any] = {}
    for key, cfg in tables.items():
        if key != name and _GLOB & set(key) and fnmatch.fnmatchcase(name, key):
            config.update(cfg)
    config.update(tables.get(name, {}))
    return config


def _check_quantizer_keys(profile: Profile) -> None:
    from vqbench.quantizers import list_quantizers

    registered = list_quantizers()
    for key in profile.quantizer_config:
        if ":" in key or key in registered or (_GLOB & set(key) and list_quantizers(key)):
            continue
        close = difflib.get_close_matches(key, registered, n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
        raise profile.error(f"quantizers.{key}", f"no registered quantizer matches {key!r}{hint}")


def _check_datasets(
    profile: Profile, names: list[str], where: str, bench: BenchmarkSpec | None = None
) -> None:
    from vqbench import datasets as ds

    known = ds.list_datasets()
    for name in names:
        if name in known or name.lower().endswith((".npy", ".pt", ".pth")):
            continue
        close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
        raise UnknownNameError(f"{where}: unknown dataset {name!r}{hint} Registered: {', '.join(known)}")
    spec_of = getattr(ds, "get_dataset_spec", None)
    for name in names:
        opts = dataset_options(profile, bench, name)
        if not opts or spec_of is None or name not in known:
            continue
        try:
            accepted = spec_of(name).options()
        except Exception:  # the loader fails when used, as a skipped/error row
            continue
        unknown = sorted(set(opts) - set(accepted))
        if unknown and "kwargs" not in accepted:
            in_bench = bench is not None and unknown[0] in bench.dataset_options.get(name, {})
            where_key = f"benchmarks.{bench.label}.dataset_options" if in_bench else "datasets"
            raise profile.error(
                f"{where_key}.{name}.{unknown[0]}",
                f"not an option of dataset {name!r}; accepted: {', '.join(accepted) or 'none'}",
            )


def dataset_options(profile: Profile, bench: BenchmarkSpec | None, name: str) -> dict[str, Any]:
    """Options of dataset ``name``: ``[datasets.NAME]``, then the benchmark's own ``dataset_options``."""
    opts = dict(profile.datasets.get(name, {}))
    if bench is not None:
        opts.update(bench.dataset_options.get(name, {}))
    return opts


def _check_params(profile: Profile, bench: BenchmarkSpec) -> None:
    """Engine parameters: when an engine declares ``PARAMS`` (name -> default), other keys are errors."""
    from vqbench.engines import get_engine

    known = get_engine(bench.kind).params()
    for key in bench.params:
        if key not in known:
            close = difflib.get_close_matches(key, list(known), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise profile.error(
                f"benchmarks.{bench.label}.{key}",
                f"not a parameter of the {bench.kind} engine{hint}; expected one of {sorted(known)}",
            )


def expand_profile(
    profile: Profile,
    *,
    quantizers: str | list[str] | None = None,
    datasets: str | list[str] | None = None,
    devices: str | list[str] | None = None,
    backends: str | list[str] | None = None,
    seed: int | None = None,
    timeout: float | None = None,
    dtypes: str | list[str] | None = None,
    candidates: str | list[str] | None = None,
) -> Plan:
    """The cells of ``profile``, with the overrides of ``vqbench run`` applied.

    ``quantizers`` (patterns) replaces the suite's selection and limits every benchmark and sweep to
    it; ``datasets`` replaces the datasets of every benchmark that uses one; ``devices``,
    ``backends`` and ``seed`` replace those axes everywhere; ``timeout`` replaces every per-cell
    timeout; ``dtypes`` (precisions, ``vqbench.suite.precision``) replaces the precision axis
    everywhere: each engine gets the precisions it takes (a cell's ``params["dtype"]``, left out
    for float32 so that float32 cells keep their ids). A backend that a quantizer does not accept
    is left out for that quantizer. Every
    reconstruction benchmark swept over codebook sizes also gets ``NO_QUANTIZER`` cells (eager):
    the same autoencoder with an identity bottleneck, the ceiling of its rate-distortion figure.
    ``candidates`` (patterns, ``vqbench compare --candidate``) join the selection and are measured
    wherever a selected quantizer is: a benchmark or sweep with its own quantizer list gets them
    added when it keeps any name of ``quantizers``.
    """
    src = profile.source
    _check_quantizer_keys(profile)
    only = resolve_quantizers(_split(quantizers), "--quantizers") if quantizers is not None else None
    if only == []:
        raise UserError("--quantizers: expected at least one name or pattern, got none")
    extra = resolve_quantizers(_split(candidates), "--candidate") if candidates is not None else []
    if extra and only is not None:
        only = [*only, *(n for n in extra if n not in only)]
    ds_override = _split(datasets)
    if ds_override is not None:
        if not ds_override:
            raise UserError("--datasets: expected at least one dataset name, got none")
        for bench in profile.benchmarks.values():
            if bench.datasets:
                _check_datasets(profile, ds_override, "--datasets", bench)
    dev_override = _split(devices)
    be_override = _split(backends)
    dtype_override = None
    if dtypes is not None:
        from ._precision_names import check_precisions

        dtype_override = check_precisions(dtypes, "--dtype")
    if timeout is not None and not timeout > 0:
        raise UserError(f"timeout must be a positive number of seconds, got {timeout!r}")

    def select(patterns: tuple[str, ...], where: str) -> list[str]:
        names = resolve_quantizers(patterns, f"{src}: key '{where}'")
        kept = [n for n in names if n in only] if only is not None else names
        if extra and any(n not in extra for n in kept):
            kept += [n for n in extra if n not in kept]
        return kept

    base = only if only is not None else select(profile.quantizers, "suite.quantizers")
    backend_cache: dict[str, dict[str, tuple[str, ...] | None]] = {}

    def accepts(q: str) -> dict[str, tuple[str, ...] | None]:
        if q not in backend_cache:
            backend_cache[q] = quantizer_backends(q)
        return backend_cache[q]

    def runs(q: str, backend: str, device: str) -> bool:
        from vqbench.quantizers import backend_unavailable

        return q == NO_QUANTIZER or not backend_unavailable(accepts(q), backend, device)

    cells: list[Cell] = []
    timeouts: dict[str, float] = {}

    def add(
        bench: BenchmarkSpec,
        names: list[str],
        sizes: tuple[int | None, ...],
        backends: list[str] | None = None,
        params: dict | None = None,
        float32_only: bool = False,
    ) -> list[Cell]:
        devs = dev_override or list(bench.devices or profile.devices)
        base_params = dict(bench.params) if params is None else dict(params)
        precs = cell_precisions(bench, profile, dtype_override, base_params, float32_only)
        bes = backends or be_override or list(bench.backends or profile.backends)
        seeds = [seed] if seed is not None else list(bench.seeds or profile.seeds)
        dsets: list[str | None] = list(bench.datasets) or [None]
        if ds_override is not None and bench.datasets:
            dsets = list(ds_override)
        limit = timeout or bench.timeout or profile.timeout
        added: list[Cell] = []
        for q in names:
            cfg = {} if q == NO_QUANTIZER else quantizer_config(profile, q)
            for size in sizes:
                config = dict(cfg) if size is None else {**cfg, "codebook_size": size}
                for d in dsets:
                    for dev in devs:
                        for be in bes:
                            if not runs(q, be, dev):
                                continue
                            for s, prec in ((s, p) for p in precs for s in seeds):
                                cell = Cell(
                                    suite=profile.name,
                                    benchmark=bench.kind,
                                    quantizer=q,
                                    config=config,
                                    dataset=d,
                                    dataset_options=dataset_options(profile, bench, d) if d else {},
                                    backend=be,
                                    device=dev,
                                    params=_with_precision(base_params, prec),
                                    seed=s,
                                )
                                cells.append(cell)
                                added.append(cell)
                                timeouts.setdefault(cell.cell_id, limit)
        return added

    swept = {label for label, b in profile.benchmarks.items() if len(b.codebook_sizes or ()) > 1}
    swept |= {label for sweep in profile.sweeps for label in sweep.benchmarks}
    by_label: dict[str, list[Cell]] = {}
    ceilings: list[str] = []
    for label, bench in profile.benchmarks.items():
        _check_params(profile, bench)
        if bench.datasets and ds_override is None:
            _check_datasets(profile, list(bench.datasets), f"{src}: key 'benchmarks.{label}.datasets'", bench)
        names = select(bench.quantizers, f"benchmarks.{label}.quantizers") if bench.quantizers else base
        sizes = bench.codebook_sizes if bench.codebook_sizes is not None else profile.codebook_sizes
        by_label.setdefault(label, []).extend(add(bench, names, tuple(sizes) or (None,)))
        has_float32 = None in cell_precisions(bench, profile, dtype_override, dict(bench.params))
        if label in swept and bench.kind == "reconstruction" and names and has_float32:
            ceilings.append(label)  # (a benchmark of autocast cells only compares with float32 ones)
    for i, sweep in enumerate(profile.sweeps):
        names = [n for n in select(sweep.quantizers, f"sweep[{i}].quantizers") if only is None or n in base]
        for label in sweep.benchmarks:
            by_label.setdefault(label, []).extend(add(profile.benchmarks[label], names, sweep.codebook_sizes))
    for label in ceilings:
        # the sweep's ceiling: the same autoencoder with no quantizer (an identity bottleneck), at the
        # widest latent width of the sweep's quantizers
        bench = profile.benchmarks[label]
        add(
            bench,
            [NO_QUANTIZER],
            (None,),
            backends=["eager"],
            float32_only=True,
            params={**bench.params, **ceiling_width(by_label.get(label, []), bench.params)},
        )
    if be_override:
        selected = {c.quantizer for c in cells if c.quantizer != NO_QUANTIZER} or set(base)
        for be in be_override:
            if not any(be in accepts(q) for q in selected):
                raise UserError(
                    f"--backend: no selected quantizer accepts backend {be!r}; "
                    f"expected one of {sorted({b for q in selected for b in accepts(q)})}"
                )
    cells = dedupe(cells)
    if not cells:
        raise ProfileError(
            f"{src}: the suite expands to no cells with these options (check --quantizers; an agreement "
            "benchmark has cells only for precisions other than float32 in dtypes or --dtype)"
        )
    return Plan(
        suite=profile.name, cells=cells, timeouts=timeouts, workers=profile.workers, threads=profile.threads
    )


def _with_precision(params: dict, precision: str | None) -> dict:
    """``params`` with ``dtype`` set to ``precision`` (removed for None: float32)."""
    out = {k: v for k, v in params.items() if k != "dtype"}
    return out if precision is None else {**out, "dtype": precision}


def cell_precisions(
    bench: BenchmarkSpec,
    profile: Profile,
    override: tuple[str, ...] | None,
    params: dict,
    float32_only: bool = False,
) -> list[str | None]:
    """The precisions of a benchmark's cells: each a ``params["dtype"]`` value, None for float32
    with no key. The axis (``--dtype``, else the benchmark's ``dtypes``, else the suite's), kept to
    the precisions its engine takes; a ``dtype`` engine parameter of the profile, with no axis given
    for the benchmark, is kept as written."""
    from .precision import KIND_PRECISIONS, REFERENCE

    if float32_only:
        return [None]
    if override is None and bench.dtypes is None and "dtype" in params:
        return [params["dtype"]]
    axis = override or bench.dtypes or profile.dtypes
    taken = KIND_PRECISIONS.get(bench.kind, (REFERENCE,))
    return [None if p == REFERENCE else p for p in axis if p in taken]


def ceiling_width(cells: list[Cell], params: dict) -> dict:
    """The ceiling's width params: a shared ``latent_dim`` where the benchmark sets one, else the widest
    native width among ``cells`` (with a note naming the quantizer it comes from)."""
    if params.get("latent_dim") is not None or not cells:
        return {}
    from .reconstruction import native_width

    widths: dict[tuple[str, int | None], int] = {}
    for cell in cells:
        key = (cell.quantizer, cell.config.get("codebook_size"))
        if key not in widths:
            try:
                widths[key] = (
                    int(cell.config["dim"])
                    if "dim" in cell.config
                    else native_width(cell.quantizer, cell.config)
                )
            except Exception:  # noqa: BLE001 - a quantizer that cannot be built is its own cell's error
                continue
    if not widths:
        return {}
    (name, size), width = max(widths.items(), key=lambda kv: kv[1])
    where = name if size is None else f"{name} at {size} codes"
    return {
        "latent_dim": width,
        "ceiling_width_note": f"widest width of the sweep: {width} ({where}); no projection",
    }


__all__ = [
    "BASE_BACKENDS",
    "ceiling_width",
    "cell_precisions",
    "Plan",
    "dataset_options",
    "expand_profile",
    "quantizer_backends",
    "merged_config",
    "quantizer_config",
    "resolve_quantizers",
]
