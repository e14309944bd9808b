"""Reports take metric names apart with ``vocabulary.parse_metric``: on every name a real run stores,
the answers equal those of the string slicing it replaced (kept here as the reference)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from vqbench.reports._data import OPERATIONS, base_metric_of, operation_of
from vqbench.reports.compare import _operation_of
from vqbench.reports.precision import _operation_at_size
from vqbench.reports.timing_gate import GATED_BASE, VIEW_BASES, is_relative, relative_metric

QUICK_RUN = Path(__file__).parent / "data" / "quick_run.json.gz"
NAMES = (
    "forward.vectors_per_s@4096",
    "train.relative_time@65536",
    "train_step.time@65536",
    "encode.vectors_per_s",
    "utilization",
    "inference.ratio.vqbench[8x5x5x5]@65536",
    "train_time",
    "fit_time",
    "copy_bandwidth",
    "vectors_per_s@4096",
    "forward/time@4096",
)


def _stored_names() -> list[str]:
    export = json.loads(gzip.decompress(QUICK_RUN.read_bytes()))
    return sorted({row["metric"] for row in export["rows"]} | set(NAMES))


def _old_relative_metric(metric):
    op, dot, rest = str(metric).partition(".")
    if not dot:
        return None
    base, at, size = rest.partition("@")
    if base not in VIEW_BASES:
        return None
    return f"{op}.{GATED_BASE}{at}{size}"


def _old_is_relative(metric):
    _, dot, rest = str(metric).partition(".")
    return bool(dot) and rest.partition("@")[0] == GATED_BASE


def _old_operation_and_size(metric):
    name = str(metric)
    op, dot, rest = name.partition(".")
    if not dot:
        op, rest = "", name
    _, at, size = rest.partition("@")
    return op, at + size


def _old_operation_of(metric):
    name = str(metric)
    for op in OPERATIONS:
        if name.startswith(op + "/") or name.startswith(op + "."):
            return op
    return ""


def _old_base_metric_of(metric, operation):
    name = str(metric).split("@", 1)[0]
    if operation:
        for sep in (".", "/"):
            if name.startswith(operation + sep):
                return name[len(operation) + 1 :]
    return name


@pytest.mark.parametrize("name", _stored_names())
def test_parsed_metric_names_agree_with_the_old_slicing(name):
    assert relative_metric(name) == _old_relative_metric(name)
    assert is_relative(name) == _old_is_relative(name)
    assert _operation_of(name) == _old_operation_and_size(name)
    assert operation_of(name, {}) == _old_operation_of(name)
    for operation in {"", operation_of(name, {}), name.partition(".")[0], "forward", "inference"}:
        assert base_metric_of(name, operation) == _old_base_metric_of(name, operation), operation
    if "vectors_per_s" in name:
        assert _operation_at_size(name) == name.replace(".vectors_per_s", "")


def test_the_names_of_a_relative_time_and_its_views():
    assert relative_metric("forward.vectors_per_s@4096") == "forward.relative_time@4096"
    assert relative_metric("train.relative_time@65536") is None
    assert is_relative("train.relative_time@65536") and not is_relative("utilization")
    assert base_metric_of("inference.ratio.vqbench[8x5x5x5]@65536", "inference") == "ratio.vqbench[8x5x5x5]"
    assert _operation_at_size("forward.vectors_per_s@4096") == "forward@4096"
