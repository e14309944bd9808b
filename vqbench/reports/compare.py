"""Noise-aware comparison of figures: two runs, or a candidate quantizer against baselines in one run.

Each figure's change is judged in its own direction (higher or lower is better). A change counts
only when it leaves the noise band: ``noise_k`` times the mean of the two figures' stored spreads
(IQR), i.e. with ``noise_k=1`` the two interquartile ranges do not overlap. Timing figures
without a spread count any change beyond a tiny relative tolerance (``min_rel``).

One verdict per effect:
- Timing: each operation's gated figure, its ``relative_time`` (operation / interleaved control
  on elapsed time, see ``timing_gate``), gets the verdict, from the two sides' per-round ratios
  where both have them (``judge_rounds``: a one-sided Mann-Whitney test and a change beyond
  ``MIN_TIMING_CHANGE``); its other views (vectors/s, time, effective GB/s, copy
  fraction) and wall-clock times without a control (compile, training) are shown with the
  verdict "view" and not counted. Where an operation has no relative time (older runs), its
  vectors/s is the counted figure.
- Machine probes (``copy_bandwidth``) and the control workload (``control_time``) describe the
  machine, not the quantizer: they are never compared (``NOT_COMPARED``).
- Usage: utilization's verdict counts; perplexity, its ratio, entropy, dead codes and the
  quantization MSE of the same setting are its views (``EFFECTS``); PSNR counts, MSE is its view.
- Peak memory counts once per benchmark and setting (``MEMORY_OPERATIONS``).
- A quality figure without a spread on either side (one seed) is "within noise (1 seed)" unless
  the change is beyond its absolute tolerance in ``SINGLE_SEED_TOLERANCES``.
"""

from __future__ import annotations

import math
from typing import Any

from vqbench.errors import UnknownNameError
from vqbench.reports.statistics import slower_p_value
from vqbench.reports.timing_gate import ALPHA, GATED_BASE, samples_of
from vqbench.results.vocabulary import KEY_COLUMNS, parse_metric

SINGLE_SEED = "within noise (1 seed)"
#: A candidate's line against a baseline that codes at another rate (bits per token): not counted.
UNEQUAL_RATE = "unequal rate"
VERDICTS = (
    "better",
    "worse",
    "within noise",
    SINGLE_SEED,
    UNEQUAL_RATE,
    "no direction",
    "view",
    "error",
    "missing",
)
#: Figures of the machine, not of the quantizer: left out of every comparison.
NOT_COMPARED = ("copy_bandwidth", "control_time")
#: The views of one timed operation, in the order that picks the counted one where no relative
#: time exists; the relative time itself always comes first.
TIMING_VIEWS = ("vectors_per_s", "time", "effective_gbps", "copy_fraction", "cpu_relative_time")
#: Wall-clock times with no interleaved control: shown, never counted.
WALL_CLOCK = ("compile_time", "train_time")
#: Figures that measure one effect: the key's verdict counts, the others are views of it (where
#: the key figure is compared at the same setting).
EFFECTS = {
    "utilization": (
        "perplexity",
        "perplexity_ratio",
        "entropy_bits",
        "dead_codes",
        "dead_code_fraction",
        "quantization_mse",
    ),
    "psnr": ("mse",),
}
#: The order in which one peak memory per benchmark and setting is picked (at the largest size).
MEMORY_OPERATIONS = ("train", "forward", "encode", "decode")
#: The smallest relative change of a relative time that counts, however significant its test.
MIN_TIMING_CHANGE = 0.05
#: Absolute changes beyond which a one-seed quality figure counts (base metric -> tolerance, in
#: the figure's unit). About twice the seed-to-seed spread seen on the quick and standard suites;
#: figures not listed here are never judged on one seed.
SINGLE_SEED_TOLERANCES = {
    "utilization": 0.05,
    "perplexity_ratio": 0.05,
    "dead_code_fraction": 0.05,
    "entropy_bits": 0.25,
    "psnr": 1.0,
}
#: The same for counts of codes: the tolerance is this fraction of the codebook size.
SINGLE_SEED_CODEBOOK_FRACTIONS = {"dead_codes": 0.05, "perplexity": 0.05}


def single_seed_tolerance(base_metric: str, codebook_size: Any) -> float | None:
    """The absolute change beyond which a one-seed quality figure counts (None: it never does)."""
    if base_metric in SINGLE_SEED_TOLERANCES:
        return SINGLE_SEED_TOLERANCES[base_metric]
    fraction = SINGLE_SEED_CODEBOOK_FRACTIONS.get(base_metric)
    if fraction is None or codebook_size is None or codebook_size != codebook_size:
        return None
    return fraction * float(codebook_size)


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
        return pd.DataFrame(columns=[*columns, "samples"])
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
    samples = samples_of(frame) if "ext" in frame and tuple(keys) == KEY_COLUMNS else {}
    out["samples"] = [tuple(samples.get(tuple(rec), ())) for rec in out[keys].itertuples(index=False)]
    return out[[*columns, "samples"]].reset_index(drop=True)


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


def judge_rounds(a: float, b: float, rounds_a: tuple[float, ...], rounds_b: tuple[float, ...]) -> str:
    """The verdict on a relative time (lower is better) from A's and B's per-round ratios: "worse"
    when B's rounds are slower by a one-sided Mann-Whitney test (p < ``ALPHA``) and B's estimate
    is above A's by more than ``MIN_TIMING_CHANGE``; "better" the other way; else "within noise"."""
    if b > a * (1 + MIN_TIMING_CHANGE) and slower_p_value(list(rounds_b), list(rounds_a)) < ALPHA:
        return "worse"
    if a > b * (1 + MIN_TIMING_CHANGE) and slower_p_value(list(rounds_a), list(rounds_b)) < ALPHA:
        return "better"
    return "within noise"


def _missing_spread(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _operation_of(metric: str) -> tuple[str, str]:
    """(operation, "@size") of a per-operation metric name (empty strings without them)."""
    parsed = parse_metric(metric)
    return parsed.operation, "" if parsed.size is None else f"@{parsed.size}"


def counted_mask(frame: Any, group_columns: list[str]) -> list[bool]:
    """Per line: whether its verdict counts (one per effect; see the module docstring).

    ``group_columns`` name one setting (everything but the metric); lines of one setting and
    operation share an effect, so do a usage figure and its views (``EFFECTS``), and the peak
    memories of one setting (one counts: the largest size, ``MEMORY_OPERATIONS`` order)."""
    bases = list(frame["base_metric"])
    timing = list(frame["timing"].astype(bool))
    groups: dict[tuple, list[int]] = {}
    for i, rec in enumerate(frame[[*group_columns, "metric"]].itertuples(index=False)):
        *setting, metric = rec
        if timing[i] and (bases[i] == GATED_BASE or bases[i] in TIMING_VIEWS):
            groups.setdefault((*setting, *_operation_of(metric)), []).append(i)
    counted = [not (t and b in WALL_CLOCK) for t, b in zip(timing, bases, strict=True)]
    order = (GATED_BASE, *TIMING_VIEWS)
    for members in groups.values():
        primary = min(members, key=lambda i: order.index(bases[i]))
        for i in members:
            counted[i] = i == primary
    settings = [tuple(rec) for rec in frame[group_columns].itertuples(index=False)]
    metrics = list(frame["metric"])
    for key, views in EFFECTS.items():
        keyed = {settings[i] for i, b in enumerate(bases) if b == key}
        for i, b in enumerate(bases):
            if b in views and settings[i] in keyed:
                counted[i] = False
    memory: dict[tuple, list[int]] = {}
    where = group_columns.index("variant") if "variant" in group_columns else None
    for i, b in enumerate(bases):
        if b == "peak_memory":
            setting = list(settings[i])
            if where is not None:  # the operation and size are what the one memory is picked from
                words = str(setting[where]).split()
                setting[where] = " ".join(w for w in words if not w.startswith(("operation=", "size=")))
            memory.setdefault(tuple(setting), []).append(i)
    for members in memory.values():

        def rank(i: int) -> tuple:
            op, size = _operation_of(metrics[i])
            known = MEMORY_OPERATIONS.index(op) if op in MEMORY_OPERATIONS else len(MEMORY_OPERATIONS)
            return (-int(size[1:] or 0), known, metrics[i])

        primary = min(members, key=rank)
        for i in members:
            counted[i] = i == primary
    return counted


def _delta_columns(out: Any, noise_k: float, min_rel: float, group_columns: list[str]) -> Any:
    out = out[~out["base_metric"].isin(NOT_COMPARED)].reset_index(drop=True)
    counted = counted_mask(out, group_columns) if len(out) else []
    deltas, rels, verdicts = [], [], []
    for i, rec in enumerate(out.itertuples(index=False)):
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
        if not counted[i]:
            verdicts.append("view")
            continue
        verdict = judge(a, b, rec.spread_a, rec.spread_b, rec.direction, noise_k, min_rel)
        paired = (getattr(rec, "samples_a", ()), getattr(rec, "samples_b", ()))
        if rec.base_metric == GATED_BASE and all(isinstance(p, tuple) and len(p) >= 3 for p in paired):
            verdict = judge_rounds(a, b, *paired)
        one_seed = _missing_spread(rec.spread_a) and _missing_spread(rec.spread_b)
        if verdict in ("better", "worse") and one_seed and not rec.timing:
            tolerance = single_seed_tolerance(str(rec.base_metric), rec.codebook_size)
            if tolerance is None or abs(delta) <= tolerance:
                verdict = SINGLE_SEED
        elif verdict == "within noise" and one_seed and not rec.timing:
            verdict = SINGLE_SEED
        verdicts.append(verdict)
    out = out.copy()
    out["delta"] = deltas
    out["rel_delta"] = rels
    out["verdict"] = verdicts
    out["counted"] = counted
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
    group = [k for k in KEY_COLUMNS if k != "metric"]
    return _delta_columns(merged, noise_k, min_rel, group)


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
        raise UnknownNameError(
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
        group = [k for k in MATCH_COLUMNS if k != "metric"] + ["config_hash_a", "config_hash_b"]
        judged = _delta_columns(merged, noise_k, min_rel, group)
        unequal = rate_mismatches(rows, candidate, base)
        if unequal:
            at = judged["codebook_size"].isin(list(unequal)) & judged["verdict"].isin(
                ["better", "worse", "within noise", SINGLE_SEED, "view"]
            )
            judged.loc[at, "verdict"] = UNEQUAL_RATE
            judged.loc[at, "counted"] = False
        parts.append(judged)
    if not parts:
        raise UnknownNameError(
            f"no figures of {candidate!r} match any baseline of {baselines} at the same setting "
            f"(benchmark, backend, device, dataset, metric, codebook size)"
        )
    return pd.concat(parts, ignore_index=True)


def verdict_counts(frame: Any) -> dict[str, int]:
    """How many counted lines (one per effect) got each verdict; views are left out."""
    if "counted" in frame:
        frame = frame[frame["counted"].astype(bool)]
    counts = frame["verdict"].value_counts().to_dict()
    return {v: int(counts.get(v, 0)) for v in VERDICTS if counts.get(v, 0)}


def built_codebook_sizes(rows: Any, quantizer: str) -> dict[float, set[int]]:
    """Per codebook size asked for, the sizes ``quantizer`` actually built (its rows' ``extra``)."""
    import json

    out: dict[float, set[int]] = {}
    sub = rows[(rows["quantizer"] == quantizer) & rows["codebook_size"].notna()]
    for asked, extra in zip(sub["codebook_size"], sub["extra"], strict=True):
        built = (json.loads(extra) if isinstance(extra, str) and extra else extra or {}).get("codebook_size")
        if isinstance(built, int) and not isinstance(built, bool):
            out.setdefault(float(asked), set()).add(built)
    return out


def codebook_mismatches(rows: Any, candidate: str, baseline: str) -> list[tuple[int, list[int], list[int]]]:
    """``(asked, candidate's built sizes, baseline's)`` wherever the two built different codebooks
    for the same codebook size asked: there, counts such as dead codes and perplexity differ by
    construction."""
    cand, base = built_codebook_sizes(rows, candidate), built_codebook_sizes(rows, baseline)
    return [
        (int(asked), sorted(cand[asked]), sorted(base[asked]))
        for asked in sorted(set(cand) & set(base))
        if cand[asked] != base[asked]
    ]


def bits_per_token(rows: Any, quantizer: str) -> dict[float, set[float]]:
    """Per codebook size asked for, the bits per token that ``quantizer`` coded at in prepared
    ``rows``: its ``bits_per_token`` figures, else ``num_codebooks x log2(codebook_size)`` of the
    codebooks it built (its rows' ``extra``)."""
    import json

    out: dict[float, set[float]] = {}
    sub = rows[(rows["quantizer"] == quantizer) & rows["codebook_size"].notna() & (rows["status"] == "ok")]
    for asked, metric, value, extra in zip(
        sub["codebook_size"], sub["metric"], sub["value"], sub["extra"], strict=True
    ):
        if metric == "bits_per_token":
            out.setdefault(float(asked), set()).add(round(float(value), 3))
            continue
        ext = json.loads(extra) if isinstance(extra, str) and extra else extra or {}
        size, books = ext.get("codebook_size"), ext.get("num_codebooks")
        if isinstance(size, int) and isinstance(books, int) and size > 1 and books > 0:
            out.setdefault(float(asked), set()).add(round(books * math.log2(size), 3))
    return out


def rate_mismatches(rows: Any, candidate: str, baseline: str) -> dict[float, tuple[list[float], list[float]]]:
    """Codebook sizes asked where the candidate and the baseline coded at different bits per
    token: size -> (candidate's bits, baseline's). There, quality and usage figures are not
    comparable as equals."""
    cand, base = bits_per_token(rows, candidate), bits_per_token(rows, baseline)
    return {
        asked: (sorted(cand[asked]), sorted(base[asked]))
        for asked in sorted(set(cand) & set(base))
        if cand[asked] != base[asked]
    }


def candidate_failures(rows: Any, candidate: str) -> Any:
    """The candidate's failed cells in prepared ``rows``: one line per cell with its quantizer,
    benchmark, a readable cell label (config, backend, device, dataset, cell id) and the error."""
    import pandas as pd

    bad = rows[(rows["quantizer"] == candidate) & rows["status"].eq("error")]
    bad = bad.drop_duplicates(["cell_id", "message"]) if "cell_id" in bad else bad
    lines = []
    for rec in bad.to_dict("records"):
        parts = [rec.get("config_label"), rec.get("backend"), rec.get("device"), rec.get("dataset")]
        cell = " · ".join(str(p) for p in parts if p)
        if rec.get("cell_id"):
            cell = f"{cell} (cell {rec['cell_id']})" if cell else f"cell {rec['cell_id']}"
        lines.append(
            {
                "quantizer": rec["quantizer"],
                "benchmark": rec["benchmark"],
                "cell": cell,
                "error": rec.get("message") or "(no message)",
            }
        )
    return pd.DataFrame(lines, columns=["quantizer", "benchmark", "cell", "error"])


__all__ = [
    "CELL_COLUMNS",
    "NOT_COMPARED",
    "SINGLE_SEED",
    "SINGLE_SEED_CODEBOOK_FRACTIONS",
    "SINGLE_SEED_TOLERANCES",
    "TIMING_VIEWS",
    "WALL_CLOCK",
    "UNEQUAL_RATE",
    "bits_per_token",
    "built_codebook_sizes",
    "rate_mismatches",
    "candidate_failures",
    "codebook_mismatches",
    "counted_mask",
    "single_seed_tolerance",
    "failed_cells",
    "MATCH_COLUMNS",
    "VERDICTS",
    "collapse",
    "compare_candidate",
    "compare_rows",
    "judge",
    "verdict_counts",
]
