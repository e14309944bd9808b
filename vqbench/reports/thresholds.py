"""Settings of the nightly gate: the history window, noise band and per-metric thresholds (TOML).

Example ``thresholds.toml``::

    window = 10          # recent runs with the same suite and environment fingerprint
    min_history = 1      # fewer comparable runs: report, but gate nothing
    min_timing_history = 3   # timing figures: past runs needed to know the run-to-run noise
    threshold = 0.10     # timing figures: relative change beyond which a change may count
    noise_k = 3.5        # ... and it must also leave the history's noise band (k robust sigmas)

    [[rule]]             # later rules override earlier ones; every key but the patterns is optional
    metric = "utilization*"
    abs_tolerance = 0.02 # quality figures: an absolute drop beyond this is a regression

    [[rule]]
    quantizer = "vq*"    # glob patterns: quantizer, metric, benchmark, backend, device
    metric = "vectors_per_s"
    threshold = 0.20

    [[rule]]
    metric = "compile_time_s"
    ignore = true

Timing figures (throughput benchmark, time and rate units) use ``threshold`` and the noise band;
quality figures (usage, PSNR, MSE, ...) use ``abs_tolerance``, or ``codebook_fraction`` times the
codebook size for counts of codes (dead codes, perplexity); a quality metric with neither uses
``rel_tolerance`` (default 5%) of its baseline.
"""

from __future__ import annotations

import fnmatch
import math
import sys
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from vqbench.errors import MissingFileError
from vqbench.reports.timing_gate import ALPHA, GATED_BASE
from vqbench.results.vocabulary import metric_name

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

PATTERN_KEYS = ("quantizer", "metric", "benchmark", "backend", "device")
SETTING_KEYS = ("threshold", "abs_tolerance", "codebook_fraction", "rel_tolerance", "noise_k", "ignore")


@dataclass
class Rule:
    """Settings for the figures whose names match every pattern (globs, "*" by default)."""

    quantizer: str = "*"
    metric: str = "*"
    benchmark: str = "*"
    backend: str = "*"
    device: str = "*"
    threshold: float | None = None
    abs_tolerance: float | None = None
    codebook_fraction: float | None = None
    rel_tolerance: float | None = None
    noise_k: float | None = None
    ignore: bool | None = None

    def matches(self, row: dict) -> bool:
        """True when every pattern matches; ``metric`` may match the full or the base metric name."""
        for key in PATTERN_KEYS:
            pattern = getattr(self, key)
            names = [row.get(key, "")] + ([row.get("base_metric", "")] if key == "metric" else [])
            if not any(fnmatch.fnmatchcase(str(n or ""), pattern) for n in names):
                return False
        return True


# Built-in tolerances for the quality figures the suite reports; user rules come after these.
# Relative times (operation / control) get a 25% threshold: on a shared 2-core machine, other jobs
# moved them by 20-35% for minutes at a time (cache and core contention that CPU time does not
# remove), while the slowdowns worth a nightly alarm (1.5x) move them by 50% or more.
DEFAULT_RULES = (
    Rule(metric="relative_time*", threshold=0.25),
    Rule(metric="utilization*", abs_tolerance=0.02),
    Rule(metric="perplexity", codebook_fraction=0.02),
    Rule(metric="dead_codes", codebook_fraction=0.02),
    Rule(metric="perplexity_ratio*", abs_tolerance=0.02),
    Rule(metric="dead_code_fraction*", abs_tolerance=0.02),
    Rule(metric="entropy_bits*", abs_tolerance=0.1),
    Rule(metric="psnr*", abs_tolerance=0.5),
    Rule(metric="mse*", abs_tolerance=1e-3),
)


@dataclass
class FigureThresholds:
    """The resolved settings for one figure."""

    threshold: float
    abs_tolerance: float | None
    codebook_fraction: float | None
    rel_tolerance: float
    noise_k: float
    ignore: bool


@dataclass
class GateConfig:
    """The gate's configuration: defaults plus ordered rules (the last matching rule wins per key)."""

    window: int = 10
    min_history: int = 1
    min_timing_history: int = 3
    threshold: float = 0.10
    noise_k: float = 3.5
    rel_tolerance: float = 0.05
    rules: list[Rule] = field(default_factory=lambda: list(DEFAULT_RULES))
    source: str = "defaults"

    def settings_for(self, row: dict) -> FigureThresholds:
        """The settings that apply to a figure described by ``row`` (quantizer, metric, ...)."""
        s = FigureThresholds(self.threshold, None, None, self.rel_tolerance, self.noise_k, False)
        for rule in self.rules:
            if not rule.matches(row):
                continue
            for key in SETTING_KEYS:
                value = getattr(rule, key)
                if value is not None:
                    setattr(s, key, value)
            # a rule's own kind of tolerance replaces the other kind set by earlier rules
            if rule.abs_tolerance is not None and rule.codebook_fraction is None:
                s.codebook_fraction = None
            if rule.codebook_fraction is not None and rule.abs_tolerance is None:
                s.abs_tolerance = None
        return s


def relative_time_threshold(config: GateConfig | None = None, quantizer: str = "*") -> float:
    """The threshold the gate applies to relative times (the gated timing figure), as configured."""
    cfg = config or GateConfig()
    row = {
        "quantizer": quantizer,
        "benchmark": "throughput",
        "metric": metric_name(GATED_BASE, operation="forward"),
        "base_metric": GATED_BASE,
    }
    return cfg.settings_for(row).threshold


def gate_text(config: GateConfig | None = None) -> str:
    """One sentence with the thresholds the gate applies, read from its settings (never restated)."""
    cfg = config or GateConfig()
    relative = relative_time_threshold(cfg)
    return (
        f"A timing figure (each operation's relative time: operation / interleaved control) regresses "
        f"when it is slower than the history median by more than {relative * 100:.0f}% AND beyond "
        f"{cfg.noise_k:g} robust sigmas of the history's noise AND its samples are slower by a "
        f"Mann-Whitney test (p < {ALPHA:g}), once {cfg.min_timing_history} comparable past runs tell that "
        f"noise; other timing figures (compile time, peak memory, operations timed without a control) "
        f"beyond {cfg.threshold * 100:.0f}% and the noise band; quality figures beyond their absolute "
        "tolerance"
    )


def _number(value: Any, where: str, *, integer: bool = False, low: float = 0.0) -> Any:
    ok = isinstance(value, int if integer else (int, float)) and not isinstance(value, bool)
    if not ok or not math.isfinite(value) or value < low:
        kind = "an integer" if integer else "a number"
        raise ValueError(f"{where} must be {kind} >= {low:g}, got {value!r}")
    return value


def parse_gate_config(data: dict, source: str = "<dict>") -> GateConfig:
    """A ``GateConfig`` from parsed TOML; unknown keys and bad values name the file and the key."""
    top = {"window", "min_history", "min_timing_history", "threshold", "noise_k", "rel_tolerance", "rule"}
    unknown = sorted(set(data) - top)
    if unknown:
        raise ValueError(f"{source}: unknown key(s) {unknown}; expected some of {sorted(top)}")
    cfg = GateConfig(source=source)
    if "window" in data:
        cfg.window = _number(data["window"], f"{source}: window", integer=True, low=1)
    for key in ("min_history", "min_timing_history"):
        if key in data:
            setattr(cfg, key, _number(data[key], f"{source}: {key}", integer=True, low=1))
    for key in ("threshold", "noise_k", "rel_tolerance"):
        if key in data:
            setattr(cfg, key, float(_number(data[key], f"{source}: {key}")))
    rules = data.get("rule", [])
    if not isinstance(rules, list):
        raise ValueError(
            f"{source}: 'rule' must be an array of tables ([[rule]]), got {type(rules).__name__}"
        )
    names = {f.name for f in fields(Rule)}
    for i, raw in enumerate(rules):
        where = f"{source}: rule #{i + 1}"
        if not isinstance(raw, dict):
            raise ValueError(f"{where} must be a table, got {raw!r}")
        bad = sorted(set(raw) - names)
        if bad:
            raise ValueError(f"{where}: unknown key(s) {bad}; expected some of {sorted(names)}")
        kwargs: dict[str, Any] = {}
        for key, value in raw.items():
            if key in PATTERN_KEYS:
                if not isinstance(value, str) or not value:
                    raise ValueError(f"{where}: {key} must be a non-empty glob string, got {value!r}")
            elif key == "ignore":
                if not isinstance(value, bool):
                    raise ValueError(f"{where}: ignore must be true or false, got {value!r}")
            else:
                value = float(_number(value, f"{where}: {key}"))
            kwargs[key] = value
        cfg.rules.append(Rule(**kwargs))
    return cfg


def load_gate_config(path: str | Path | None = None) -> GateConfig:
    """The gate settings from a TOML file, or the defaults for ``None``."""
    if path is None:
        return GateConfig()
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"no gate config file at {path}")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{path}: not valid TOML: {exc}") from exc
    return parse_gate_config(data, str(path))


__all__ = [
    "DEFAULT_RULES",
    "GateConfig",
    "Rule",
    "FigureThresholds",
    "gate_text",
    "load_gate_config",
    "parse_gate_config",
    "relative_time_threshold",
]
