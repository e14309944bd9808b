"""Stored rows under today's metric names: figures renamed since they were written are read as new."""

from __future__ import annotations

from typing import Any

from vqbench.results.vocabulary import RENAMED_METRICS, current_metric

_SEP = "\x1f"  # joins benchmark and metric into one key; neither name holds it


def current_names(frame: Any) -> Any:
    """``frame`` (typed rows) with each renamed metric under its new name (see ``RENAMED_METRICS``).

    Only the benchmark and the figure part of a name decide; its operation, variant and size stay.
    Names are mapped once per distinct (benchmark, metric) pair, so a large frame costs a few
    vectorised passes. The frame is returned as given when nothing in it was renamed.
    """
    if not RENAMED_METRICS or len(frame) == 0:
        return frame
    benchmarks = {benchmark for benchmark, _ in RENAMED_METRICS}
    candidates = frame["benchmark"].isin(benchmarks).to_numpy(dtype=bool, na_value=False)
    if not candidates.any():
        return frame
    pairs = frame.loc[candidates, ["benchmark", "metric"]].drop_duplicates()
    renames = {
        f"{benchmark}{_SEP}{metric}": new
        for benchmark, metric in pairs.itertuples(index=False)
        if isinstance(metric, str) and (new := current_metric(benchmark, metric)) != metric
    }
    if not renames:
        return frame
    keys = frame.loc[candidates, "benchmark"] + _SEP + frame.loc[candidates, "metric"]
    new_names = keys.map(renames)
    hit = new_names.notna()
    out = frame.copy()
    out.loc[new_names.index[hit], "metric"] = new_names[hit].astype(out["metric"].dtype)
    return out


__all__ = ["current_names"]
