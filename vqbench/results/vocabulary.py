"""The words that rows are made of, said once: metric names, figure keys and reserved names.

A metric name is ``[operation.]figure[.variant][@size]``: ``forward.vectors_per_s@4096``,
``utilization``, ``inference.ratio.vqbench[8x5x5x5]@65536``. Suite engines build names with
:func:`metric_name`; reports take them apart with :func:`parse_metric`.
"""

from __future__ import annotations

from dataclasses import dataclass

#: The columns that say which figure a row measures; two runs' rows with equal keys compare.
KEY_COLUMNS = ("benchmark", "quantizer", "config_hash", "backend", "device", "dataset", "metric", "variant")

#: The columns of a row that come from its cell and run, never from a figure.
IDENTITY_COLUMNS = (
    "run_id",
    "suite",
    "benchmark",
    "quantizer",
    "config",
    "config_hash",
    "backend",
    "device",
    "dataset",
    "seed",
    "cell_id",
)

#: The quantizer name of the reconstruction ceiling (the same autoencoder with no quantizer).
#: Reserved: never registered.
NO_QUANTIZER = "no-quantizer"

#: Metrics that an earlier vqbench stored under another name: (benchmark, old name) -> new name.
#: The store renames them as it reads, so that history compares across the rename.
RENAMED_METRICS: dict[tuple[str, str], str] = {("usage", "fit_time"): "train_time"}


@dataclass(frozen=True)
class MetricName:
    """The parts of a metric name; empty strings and None where a part is absent."""

    figure: str
    operation: str = ""
    variant: str = ""
    size: int | None = None

    def __str__(self) -> str:
        return metric_name(self.figure, operation=self.operation, variant=self.variant, size=self.size)


def metric_name(figure: str, *, operation: str = "", variant: str = "", size: int | None = None) -> str:
    """``operation.figure.variant@size``, each part only where given."""
    if not figure or any(c in figure for c in ".@"):
        raise ValueError(f"a figure name is a non-empty word without '.' or '@', got {figure!r}")
    name = f"{operation}.{figure}" if operation else figure
    if variant:
        name += f".{variant}"
    if size is not None:
        name += f"@{int(size)}"
    return name


def parse_metric(name: str) -> MetricName:
    """The inverse of :func:`metric_name`; a name with one part is a bare figure."""
    text = str(name)
    head, at, size_text = text.rpartition("@")
    size = int(size_text) if at and size_text.isdigit() else None
    if size is None:
        head = text
    parts = head.split(".", 2)
    if len(parts) == 1:
        return MetricName(parts[0], size=size)
    return MetricName(parts[1], operation=parts[0], variant=parts[2] if len(parts) > 2 else "", size=size)


def current_metric(benchmark: str, metric: str) -> str:
    """The name that ``metric`` of ``benchmark`` has now (renamed ones mapped from their old name)."""
    parsed = parse_metric(metric)
    new = RENAMED_METRICS.get((benchmark, parsed.figure))
    if new is None:
        return metric
    return metric_name(new, operation=parsed.operation, variant=parsed.variant, size=parsed.size)
