"""What the reports need to know about rows: directions, kinds, labels and the key of a figure.

Two rows of different runs measure "the same figure" when they share the figure key: benchmark,
quantizer, config, backend, device, dataset, metric and the variant (``extra["variant"]``, else
the operation and size keys of ``extra``). Reports read rows only; they import no quantizer code.
"""

from __future__ import annotations

import json
import math
from typing import Any

from vqbench.engines import view_of
from vqbench.results.vocabulary import KEY_COLUMNS, parse_metric

OPERATIONS = ("forward", "train", "train_step", "encode", "decode")
# extra keys that tell rows of one cell and metric apart (an operation, a size, a codebook).
VARIANT_KEYS = ("operation", "size", "batch_size", "num_vectors", "codebook", "level", "precision")

# Direction of known metrics where a row does not say (True: higher is better).
_KNOWN_DIRECTIONS = {
    "utilization": True,
    "perplexity": True,
    "perplexity_ratio": True,
    "entropy_bits": True,
    "entropy": True,
    "psnr": True,
    "dead_codes": False,
    "dead_code_fraction": False,
    "mse": False,
    "time_s": False,
    "vectors_per_s": True,
    "gb_per_s": True,
    "gbps": True,
    "copy_fraction": True,
    "peak_memory_bytes": False,
    "train_time_s": False,
    "compile_time_s": False,
}
TIMING_UNITS = {
    "s",
    "ms",
    "us",
    "µs",
    "ns",
    "vectors/s",
    "tokens/s",
    "samples/s",
    "items/s",
    "GB/s",
    "B/s",
    "it/s",
    "x",
}


def loads(text: Any) -> dict:
    """A JSON column value as a dict ({} for missing or invalid)."""
    if isinstance(text, dict):
        return text
    if not isinstance(text, str) or not text:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


def direction(metric: str, higher_is_better: Any) -> bool | None:
    """True when higher is better, False when lower is, None when unknown."""
    if higher_is_better is not None and not _missing(higher_is_better):
        return bool(higher_is_better)
    name = str(metric).lower()
    if name in _KNOWN_DIRECTIONS:
        return _KNOWN_DIRECTIONS[name]
    for suffix, value in (
        ("_per_s", True),
        ("_time_s", False),
        ("time", False),
        ("psnr", True),
        ("mse", False),
        ("utilization", True),
        ("perplexity", True),
    ):
        if name.endswith(suffix):
            return value
    return None


def is_timing(benchmark: str, metric: str, unit: str) -> bool:
    """Timing-like figures (noisy; relative thresholds) versus quality figures (absolute tolerances)."""
    name = str(metric).lower()
    return (
        view_of(benchmark) == "operations"
        or str(unit) in TIMING_UNITS
        or "time" in name
        or name.endswith("_per_s")
        or "bandwidth" in name
    )


def _missing(value: Any) -> bool:
    if value is None:
        return True
    try:
        return bool(value != value)
    except (TypeError, ValueError):
        return True


def variant_of(extra: dict) -> str:
    """The part of ``extra`` that tells rows of one cell and metric apart, as short text."""
    if extra.get("variant") not in (None, ""):
        return str(extra["variant"])
    parts = [f"{k}={extra[k]}" for k in VARIANT_KEYS if extra.get(k) not in (None, "")]
    return " ".join(parts)


def operation_of(metric: str, extra: dict) -> str:
    """The throughput operation of a row: ``extra["operation"]``, else a known metric prefix."""
    if extra.get("operation"):
        return str(extra["operation"])
    operation = parse_metric(metric).operation
    if operation in OPERATIONS:
        return operation
    name = str(metric)
    for op in OPERATIONS:
        if name.startswith(op + "/"):  # names of imported files: "forward/time"
            return op
    return ""


def codebook_size_of(config: dict, extra: dict) -> float | None:
    """The codebook size (per codebook) from the row's config, else its extra."""
    for source in (config, extra):
        value = source.get("codebook_size")
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
            return float(value)
    levels = config.get("levels")
    if isinstance(levels, list) and levels and all(isinstance(v, int) and v > 0 for v in levels):
        return float(math.prod(levels))
    return None


def _size_text(size: float) -> str:
    n = int(size)
    if n > 0 and n & (n - 1) == 0 and n >= 16:
        return f"2^{n.bit_length() - 1}"
    return str(n)


def _short(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
    return text if len(text) <= 24 else text[:21] + "..."


def config_label(config: dict, keys: Any = None, codebook_size: float | None = None) -> str:
    """A short label for a config: ``K=2^10`` (the codebook size), then ``keys`` (default: all others)."""
    parts = []
    size = codebook_size if codebook_size is not None else codebook_size_of(config, {})
    if size is not None and size == size:
        parts.append(f"K={_size_text(size)}")
    chosen = sorted(k for k in (config if keys is None else keys) if k in config and k != "codebook_size")
    parts += [f"{k}={_short(config[k])}" for k in chosen]
    return " ".join(parts)


def varying_keys(frame: Any) -> dict[str, set[str]]:
    """Per quantizer, the config keys (other than codebook_size) whose values differ between its rows."""
    out: dict[str, set[str]] = {}
    for quantizer, configs in frame.groupby("quantizer", sort=False)["config"]:
        parsed = [loads(c) for c in dict.fromkeys(configs)]
        keys = set().union(*parsed) if parsed else set()
        out[quantizer] = {k for k in keys if len({json.dumps(p.get(k), sort_keys=True) for p in parsed}) > 1}
    return out


def prepare(rows: Any) -> Any:
    """Rows with helper columns: ``cfg``/``ext`` (parsed), ``variant``, ``operation``,
    ``codebook_size``, ``config_label``, ``direction`` and ``timing``; string columns filled with "".

    ``row_variant`` is the variant without the operation (tables put operations in columns);
    ``base_metric`` is the metric without operation prefix and ``@size`` suffix."""
    frame = rows.copy()
    for col in ("dataset", "dataset_checksum", "message", "unit", "backend", "device", "cell_id"):
        if col in frame:
            frame[col] = frame[col].astype("object").where(frame[col].notna(), "").astype(str)
    frame["cfg"] = [loads(v) for v in frame["config"]]
    frame["ext"] = [loads(v) for v in frame["extra"]]
    frame["variant"] = [variant_of(e) for e in frame["ext"]]
    frame["row_variant"] = [
        variant_of({k: v for k, v in e.items() if k != "operation"}) for e in frame["ext"]
    ]
    frame["operation"] = [operation_of(m, e) for m, e in zip(frame["metric"], frame["ext"], strict=True)]
    frame["base_metric"] = [
        base_metric_of(m, o) for m, o in zip(frame["metric"], frame["operation"], strict=True)
    ]
    frame["codebook_size"] = [codebook_size_of(c, e) for c, e in zip(frame["cfg"], frame["ext"], strict=True)]
    vary = varying_keys(frame) if len(frame) else {}
    frame["config_label"] = [
        config_label(c, vary.get(q, set()), k)
        for c, q, k in zip(frame["cfg"], frame["quantizer"], frame["codebook_size"], strict=True)
    ]
    hib = frame["higher_is_better"].astype("object")
    frame["direction"] = [
        direction(m, None if _missing(h) else h) for m, h in zip(frame["base_metric"], hib, strict=True)
    ]
    frame["timing"] = [
        is_timing(b, m, u) for b, m, u in zip(frame["benchmark"], frame["metric"], frame["unit"], strict=True)
    ]
    return frame


def base_metric_of(metric: str, operation: str) -> str:
    """The metric without its operation prefix and ``@size`` suffix: ``forward.time@4096`` -> ``time``."""
    parsed = parse_metric(metric)
    if operation and parsed.operation == operation:
        return ".".join(p for p in (parsed.figure, parsed.variant) if p)
    name = ".".join(p for p in (parsed.operation, parsed.figure, parsed.variant) if p)
    if operation and name.startswith(operation + "/"):  # names of imported files: "forward/time"
        return name[len(operation) + 1 :]
    return name


def metric_label(metric: str, unit: str) -> str:
    """``metric [unit]`` (just the metric when it has no unit)."""
    return f"{metric} [{unit}]" if unit else str(metric)


__all__ = [
    "KEY_COLUMNS",
    "OPERATIONS",
    "base_metric_of",
    "codebook_size_of",
    "config_label",
    "direction",
    "is_timing",
    "loads",
    "metric_label",
    "operation_of",
    "prepare",
    "variant_of",
]
