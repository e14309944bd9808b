"""Settings of the pytest integration: the mode, the quantizer selection and what the suite runs.

The suite comes from the suite's profiles (``vqbench.suite.profiles``): the throughput benchmark's
sizes, devices and codebook sizes, the ``[quantizers.*]`` configs, and the usage and reconstruction
benchmarks' parameters and datasets. Checking a suite name imports no torch; reading the details
happens on first use.
"""

from __future__ import annotations

import difflib
import fnmatch
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

DEFAULT_SUITE = "quick"
SMOKE_VECTORS = 64
SMOKE_TOKENS = 256
#: Engine parameters shrunk in smoke mode, where the engine has them.
SMOKE_PARAMS = {
    "train_steps": 2,
    "batch": 16,
    "eval_batch": 256,
    "min_tokens_per_code": 0,
    "reconstructions": 0,
}

# Used only where a suite has no profile file: the sizes the pytest benchmarks run.
_FALLBACK = {
    "quick": {"sizes": (4096, 65536), "codebook_size": 2**10},
    "standard": {"sizes": (4096, 65536, 2**20), "codebook_size": 2**12},
    "full": {"sizes": (65536, 2**20, 2**22), "codebook_size": 2**14},
}


@dataclass(frozen=True)
class BenchSpec:
    """A usage or reconstruction benchmark of the suite: engine parameters and its dataset."""

    params: dict[str, Any] = field(default_factory=dict)
    dataset: str | None = None
    dataset_options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class PytestSuite:
    """What the pytest benchmarks run for one suite."""

    name: str
    sizes: tuple[int, ...]
    codebook_size: int | None
    operations: tuple[str, ...] = ("forward", "train", "encode", "decode")
    devices: tuple[str, ...] = ("cpu",)
    threads: int | None = None  # torch threads, as the suite's runner sets them (recorded)
    quantizers: tuple[str, ...] = ("default",)
    configs: dict[str, dict[str, Any]] = field(default_factory=dict)
    usage: BenchSpec = field(default_factory=BenchSpec)
    reconstruction: BenchSpec = field(default_factory=BenchSpec)

    def config_for(self, name: str) -> dict[str, Any]:
        """The suite's config for ``name``: glob tables, then its own table, at the suite's codebook size."""
        from vqbench.suite.expand import merged_config

        config = merged_config(self.configs, name)
        if self.codebook_size is not None:
            config.setdefault("codebook_size", self.codebook_size)
        return config


def _profiles():
    try:
        from vqbench.suite import profiles
    except ImportError:  # the suite package without profiles: fall back to built-in sizes
        return None
    return profiles


def check_suite(name: str) -> str:
    """``name`` stripped, or ValueError when it is neither a known suite nor a profile file."""
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"--benchmark-suite expects a suite name or a .toml profile, got {name!r}")
    name = name.strip()
    profiles = _profiles()
    if profiles is not None:
        try:
            profiles.load_profile(name)
            return name
        except FileNotFoundError:
            if name not in _FALLBACK:
                raise
            return name
    if name in _FALLBACK:
        return name
    close = difflib.get_close_matches(name, list(_FALLBACK), n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    raise ValueError(f"unknown suite {name!r}{hint} Suites: {', '.join(_FALLBACK)}, or a .toml profile path")


def load_suite(name: str) -> PytestSuite:
    """Read what the pytest benchmarks run from the suite's profile (or the built-in sizes)."""
    profiles = _profiles()
    profile = None
    if profiles is not None:
        try:
            profile = profiles.load_profile(name)
        except FileNotFoundError:
            if name not in _FALLBACK:
                raise
    if profile is None:
        base = _FALLBACK[name]
        return PytestSuite(name=name, sizes=base["sizes"], codebook_size=base["codebook_size"])
    return _from_profile(profile)


def _from_profile(profile: Any) -> PytestSuite:
    specs = {
        kind: [b for b in profile.benchmarks.values() if b.kind == kind]
        for kind in ("throughput", "usage", "reconstruction")
    }
    tp = specs["throughput"][0] if specs["throughput"] else None
    if tp is not None and "sizes" in tp.params:
        sizes = tp.params["sizes"]
        sizes = (sizes,) if isinstance(sizes, int) else tuple(sizes)
    else:
        from vqbench.suite import throughput

        sizes = tuple(throughput.PARAMS["sizes"])
    codebook_sizes = (
        tp.codebook_sizes if tp is not None and tp.codebook_sizes is not None else profile.codebook_sizes
    )
    devices = (tp.devices if tp is not None and tp.devices else None) or profile.devices
    operations = tp.params.get("operations") if tp is not None else None
    operations = (operations,) if isinstance(operations, str) else tuple(operations or PytestSuite.operations)
    quantizers = (tp.quantizers if tp is not None and tp.quantizers else None) or profile.quantizers

    def bench(kind: str) -> BenchSpec:
        if not specs[kind]:
            return BenchSpec()
        spec = specs[kind][0]
        dataset = spec.datasets[0] if spec.datasets else None
        options = dict(profile.datasets.get(dataset, {})) if dataset else {}
        return BenchSpec(params=dict(spec.params), dataset=dataset, dataset_options=options)

    return PytestSuite(
        name=profile.name,
        sizes=sizes,
        codebook_size=codebook_sizes[0] if codebook_sizes else None,
        operations=operations,
        devices=tuple(devices),
        threads=profile.threads,
        quantizers=tuple(quantizers),
        configs={k: dict(v) for k, v in profile.quantizer_config.items()},
        usage=bench("usage"),
        reconstruction=bench("reconstruction"),
    )


class PytestSettings:
    """The vqbench options of one pytest session."""

    def __init__(self, enabled: bool, patterns: tuple[str, ...] | None, suite: str = DEFAULT_SUITE) -> None:
        self.enabled = enabled  # --benchmark: real sizes through pytest-benchmark; else smoke mode
        self.patterns = patterns  # --benchmark-quantizers, split on commas
        self.suite = suite  # --benchmark-suite

    @property
    def mode(self) -> str:
        """``"benchmark"`` with ``--benchmark``, else ``"smoke"``."""
        return "benchmark" if self.enabled else "smoke"

    @cached_property
    def suite_info(self) -> PytestSuite:
        """The suite's sizes, configs and benchmarks (read on first use)."""
        return load_suite(self.suite)

    @property
    def sizes(self) -> tuple[int, ...]:
        """Vectors per call: the suite's sizes, or one tiny size in smoke mode."""
        return self.suite_info.sizes if self.enabled else (SMOKE_VECTORS,)

    def devices(self) -> list[str]:
        """The suite's devices that exist here (CUDA only where available)."""
        import torch

        found = [d for d in self.suite_info.devices if not d.startswith("cuda") or torch.cuda.is_available()]
        return found or ["cpu"]

    def engine_params(self, spec: BenchSpec, defaults: dict[str, Any]) -> dict[str, Any]:
        """The suite's parameters for an engine; in smoke mode shrunk where the engine has them."""
        params = dict(spec.params)
        if not self.enabled:
            params.update({k: v for k, v in SMOKE_PARAMS.items() if k in defaults})
        return params

    def __repr__(self) -> str:
        return f"PytestSettings(mode={self.mode!r}, patterns={self.patterns!r}, suite={self.suite!r})"


def split_patterns(text: str | None) -> tuple[str, ...] | None:
    """``"fsq*, vq"`` -> ``("fsq*", "vq")``; None stays None; an empty list is an error."""
    if text is None:
        return None
    patterns = tuple(p.strip() for p in text.split(",") if p.strip())
    if not patterns:
        raise ValueError(f"--benchmark-quantizers expects comma-separated names or globs, got {text!r}")
    return patterns


def expand_patterns(patterns: tuple[str, ...], what: str = "--benchmark-quantizers") -> list[str]:
    """Registered names matching each pattern (``default``: the default set; references kept).

    Raises ValueError for a pattern that matches nothing, with close matches and the registered names.
    """
    from vqbench.quantizers import get_quantizer_spec, list_quantizers

    registered = list_quantizers()
    names: list[str] = []
    for pattern in patterns:
        if pattern == "default":
            matched = list_quantizers(default_only=True)
        elif ":" in pattern:
            get_quantizer_spec(pattern).load()  # fails now, with the plugin's own message
            matched = [pattern]
        else:
            matched = [n for n in registered if fnmatch.fnmatchcase(n, pattern)]
        if not matched:
            close = difflib.get_close_matches(pattern, registered, n=3, cutoff=0.5)
            hint = f" (did you mean {', '.join(repr(c) for c in close)}?)" if close else ""
            raise ValueError(
                f"{what}: pattern {pattern!r} matches no registered quantizer{hint}. "
                f"Registered: {', '.join(registered)}"
            )
        names.extend(n for n in matched if n not in names)
    return names


def select_quantizers(marker_patterns: tuple[str, ...], settings: PytestSettings) -> list[str]:
    """The quantizers a test runs over.

    Without marker patterns: those ``--benchmark-quantizers`` names, else the suite's selection
    (the default set). With marker patterns (a test's own candidates and baselines): those,
    filtered by ``--benchmark-quantizers`` when it is given.
    """
    option = settings.patterns
    if not marker_patterns:
        if option is not None:
            return expand_patterns(option)
        return expand_patterns(settings.suite_info.quantizers, what=f"suite {settings.suite!r}")
    names = expand_patterns(marker_patterns, what="vqbench_quantizers marker")
    if option is None:
        return names
    return [n for n in names if any(n == p or fnmatch.fnmatchcase(n, p) for p in option)]


__all__ = [
    "DEFAULT_SUITE",
    "SMOKE_VECTORS",
    "BenchSpec",
    "PytestSuite",
    "PytestSettings",
    "check_suite",
    "expand_patterns",
    "load_suite",
    "select_quantizers",
    "split_patterns",
]
