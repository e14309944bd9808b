"""Noise-aware comparison of figures: two runs, or a candidate quantizer against baselines in one run.

Each figure's change is judged in its own direction (higher or lower is better). A change counts
only when it leaves the noise band: ``noise_k`` times the mean of the two figures' stored spreads
(IQR), i.e. with ``noise_k=1`` the two interquartile ranges do not overlap. Figures without a
spread (deterministic ones) count any change beyond a tiny relative tolerance (``min_rel``).
"""

from __future__ import annotations

import math
from typing import Any

from vqbench.reports._data import KEY_COLUMNS

VERDICTS = ("better", "worse", "within noise", "no direction", "error", "missing")
MATCH_COLUMNS = ("benchmark", "backend", "device", "dataset", "metric", "variant")
# A cell: what one error row stands for (the runner records one row, metric "error", for a failed cell).
CELL_COLUMNS = ("benchmark", "quantizer", "config_hash", "backend", "device", "dataset")


def failed_cells(collapsed: Any) -> dict[tuple, tuple[str, str]]:
    """Cells (``CELL_COLUMNS``) of a collapsed frame whose rows failed: cell -> (status, message)."""
    out: dict[tuple, tuple[str, str]] = {}
    if collapsed.empty:
        return out
    bad = collapsed[collapsed["status"] != "ok"]
    for rec in bad.to_dict("records"):
        out.setdefault(tuple(rec[k] for k in CELL_COLUMNS), (rec["status"], rec["message"]))
    return out


def _fill_failed(merged: Any, failed: dict, side: str) -> Any:
    """Figures absent on one side whose cell failed there take that failure's status and message."""
    for i, rec in merged.iterrows():
        if rec[f"status_{side}"] != "missing":
            continue
        hit = failed.get(tuple(rec[k] for k in CELL_COLUMNS))
        if hit is not None:
            merged.at[i, f"status_{side}"] = hit[0]
            merged.at[i, f"message_{side}"] = hit[1]
    return merged


_CARRIED = (
    "unit",
    "direction",
    "timing",
    "codebook_size",
    "base_metric",
    "config_label",
    "status",
    "message",
)


def collapse(frame: Any, keys: tuple[str, ...] = KEY_COLUMNS) -> Any:
    """One line per figure key: the median value over repeats/seeds and a spread that covers them.

    Columns: the keys, ``unit``, ``direction``, ``timing``, ``codebook_size``, ``base_metric``,
    ``config_label``, ``value``, ``spread`` (the median stored IQR, widened to the IQR of the values
    when there are several), ``n`` (ok rows), ``status`` ("ok" when any row measured, else the status
    of the first failing row) and ``message``.
    """
    import numpy as np
    import pandas as pd

    keys = list(keys)
    columns = [*keys, *_CARRIED, "value", "spread", "n"]
    if frame.empty:
        return pd.DataFrame(columns=columns)
    work = frame[[*keys, *_CARRIED, "value", "spread"]].copy()
    for key in keys:
        work[key] = work[key].astype(object).where(work[key].notna(), "")
    work["_ok"] = work["status"] == "ok"
    # the first row of each key carries the descriptive columns (an ok row where there is one)
    firsts = work.sort_values("_ok", ascending=False, kind="stable").drop_duplicates(keys)
    order = work.drop_duplicates(keys)[keys]
    ok = work[work["_ok"]]
    grouped = ok.groupby(keys, sort=False)
    stats = pd.DataFrame(
        {
            "value": grouped["value"].median(),
            "n": grouped["value"].size(),
            "stored": grouped["spread"].median(),
            "q1": grouped["value"].quantile(0.25),
            "q3": grouped["value"].quantile(0.75),
        }
    ).reset_index()
    stats["spread"] = np.where(
        stats["n"] > 1,
        np.fmax(stats["stored"].to_numpy(float), (stats["q3"] - stats["q1"]).to_numpy(float)),
        stats["stored"],
    )
    out = order.merge(firsts.drop(columns=["value", "spread", "_ok"]), on=keys, how="left")
    out = out.merge(stats[[*keys, "value", "spread", "n"]], on=keys, how="left")
    out["n"] = out["n"].fillna(0).astype(int)
    measured = out["n"] > 0
    out.loc[measured, "status"] = "ok"
    out.loc[measured, "message"] = ""
    out["timing"] = out["timing"].astype(bool)
    out["direction"] = [None if (d is None or d != d) else bool(d) for d in out["direction"]]
    out["codebook_size"] = [None if (c is None or c != c) else float(c) for c in out["codebook_size"]]
    return out[columns].reset_index(drop=True)


def judge(
    a: float,
    b: float,
    spread_a: float,
    spread_b: float,
    direction: bool | None,
    noise_k: float = 1.0,
    min_rel: float = 1e-9,
) -> str:
    """ "better", "worse" or "within noise" for a change from ``a`` to ``b`` (or "no direction")."""
    if direction is None:
        return "no direction"
    sa = 0.0 if spread_a is None or math.isnan(spread_a) else float(spread_a)
    sb = 0.0 if spread_b is None or math.isnan(spread_b) else float(spread_b)
    delta = b - a
    band = noise_k * (sa + sb) / 2.0
    floor = min_rel * max(abs(a), abs(b))
    if abs(delta) <= max(band, floor):
        return "within noise"
    improved = delta > 0 if direction else delta < 0
    return "better" if improved else "worse"


def _delta_columns(out: Any, noise_k: float, min_rel: float) -> Any:
    deltas, rels, verdicts = [], [], []
    for rec in out.itertuples(index=False):
        a, b = rec.value_a, rec.value_b
        if rec.status_a != "ok" or rec.status_b != "ok":
            missing = "missing" in (rec.status_a, rec.status_b)
            deltas.append(math.nan)
            rels.append(math.nan)
            verdicts.append("missing" if missing else "error")
            continue
        delta = b - a
        deltas.append(delta)
        rels.append(delta / abs(a) if a != 0 else math.nan)
        verdicts.append(judge(a, b, rec.spread_a, rec.spread_b, rec.direction, noise_k, min_rel))
    out = out.copy()
    out["delta"] = deltas
    out["rel_delta"] = rels
    out["verdict"] = verdicts
    return out


def compare_rows(rows_a: Any, rows_b: Any, noise_k: float = 1.0, min_rel: float = 1e-9) -> Any:
    """Figures of run A against run B (prepared rows), matched on the figure key.

    Returns one line per key with ``value_a``, ``spread_a``, ``status_a`` (and ``_b``), ``delta``
    (B - A), ``rel_delta`` (delta / |A|), and ``verdict`` in the metric's own direction: "better"
    means B is better than A. Keys present in one run only get the verdict "missing".
    """
    ca, cb = collapse(rows_a), collapse(rows_b)
    shared = ["unit", "direction", "timing", "codebook_size", "config_label", "base_metric"]
    merged = ca.merge(cb, on=list(KEY_COLUMNS), how="outer", suffixes=("_a", "_b"), sort=False)
    for col in shared:
        merged[col] = merged[f"{col}_a"].where(merged[f"{col}_a"].notna(), merged[f"{col}_b"])
        merged = merged.drop(columns=[f"{col}_a", f"{col}_b"])
    for side in ("a", "b"):
        merged[f"status_{side}"] = merged[f"status_{side}"].astype(object).fillna("missing")
        merged[f"message_{side}"] = merged[f"message_{side}"].astype(object).fillna("")
    merged = _fill_failed(merged, failed_cells(ca), "a")
    merged = _fill_failed(merged, failed_cells(cb), "b")
    merged["direction"] = [None if (d is None or d != d) else bool(d) for d in merged["direction"]]
    return _delta_columns(merged, noise_k, min_rel)


def compare_candidate(
    rows: Any, candidate: str, baselines: list[str], noise_k: float = 1.0, min_rel: float = 1e-9
) -> Any:
    """Within one run, the candidate quantizer's figures against each baseline's at the same setting.

    Settings match on benchmark, backend, device, dataset, metric and variant, and on the codebook
    size where both rows have one. Columns as ``compare_rows``, plus ``baseline``; "better" means
    the candidate is better than that baseline.
    """
    import pandas as pd

    known = set(rows["quantizer"])
    if candidate not in known:
        raise KeyError(
            f"candidate {candidate!r} has no rows in this run; quantizers present: {sorted(known)}"
        )
    flat = collapse(rows)
    cand = flat[flat["quantizer"] == candidate]
    parts = []
    for base in baselines:
        if base == candidate:
            continue
        other = flat[flat["quantizer"] == base]
        if other.empty:
            continue
        merged = cand.merge(other, on=list(MATCH_COLUMNS), how="inner", suffixes=("_b", "_a"))
        same_size = (
            (merged["codebook_size_a"] == merged["codebook_size_b"])
            | merged["codebook_size_a"].isna()
            | merged["codebook_size_b"].isna()
        )
        merged = merged[same_size].copy()
        if merged.empty:
            continue
        merged["baseline"] = base
        merged["quantizer"] = candidate
        merged["direction"] = [None if (d is None or d != d) else bool(d) for d in merged["direction_b"]]
        merged["unit"] = merged["unit_b"]
        merged["timing"] = merged["timing_b"]
        merged["codebook_size"] = merged["codebook_size_b"]
        merged["config_label"] = merged["config_label_b"]
        merged["base_metric"] = merged["base_metric_b"]
        merged["config_label_baseline"] = merged["config_label_a"]
        parts.append(_delta_columns(merged, noise_k, min_rel))
    if not parts:
        raise KeyError(
            f"no figures of {candidate!r} match any baseline of {baselines} at the same setting "
            f"(benchmark, backend, device, dataset, metric, codebook size)"
        )
    return pd.concat(parts, ignore_index=True)


def verdict_counts(frame: Any) -> dict[str, int]:
    """How many lines got each verdict."""
    counts = frame["verdict"].value_counts().to_dict()
    return {v: int(counts.get(v, 0)) for v in VERDICTS if counts.get(v, 0)}


__all__ = [
    "CELL_COLUMNS",
    "failed_cells",
    "MATCH_COLUMNS",
    "VERDICTS",
    "collapse",
    "compare_candidate",
    "compare_rows",
    "judge",
    "verdict_counts",
]
