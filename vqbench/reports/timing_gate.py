"""The gate's judgement of timing figures: one figure per operation, relative to a control.

The throughput engine times each operation interleaved with a fixed control workload and stores
``{operation}.relative_time@{size}`` (operation time / control time, with the per-round ratios in
``extra["samples"]``). That is the one timing figure the gate judges per operation; its other views
(vectors/s, time, effective GB/s, copy fraction) and the control's own time are reported, not gated:
they move with the machine's load, the relative time does not.

A relative time is a *suspect* when, against the comparable history after its last step change:
1. it is worse than the history median by more than ``threshold``;
2. it is beyond ``noise_k`` robust sigmas of the night-to-night noise (log scale, pooled over the
   history's relative figures); and
3. a one-sided Mann-Whitney U test of tonight's per-round samples against the history's says
   "slower" with p < ``alpha``.
A suspect becomes a regression only when its cell, re-measured (again interleaved with the
control), is a suspect too (asv ``continuous`` re-runs before it reports).
"""

from __future__ import annotations

import math
from typing import Any

from vqbench.reports.statistics import log_mad_sigma, median, slower_p_value
from vqbench.reports.steps import lasting_steps
from vqbench.results.vocabulary import KEY_COLUMNS, metric_name, parse_metric

GATED_BASE = "relative_time"
VIEW_BASES = ("vectors_per_s", "time", "effective_gbps", "copy_fraction", "control_time", "cpu_relative_time")
ALPHA = 0.01


def relative_metric(metric: str) -> str | None:
    """``forward.relative_time@4096`` for any timing view ``forward.<view>@4096`` (else None)."""
    parsed = parse_metric(metric)
    if not parsed.operation or parsed.variant or parsed.figure not in VIEW_BASES:
        return None
    return metric_name(GATED_BASE, operation=parsed.operation, size=parsed.size)


def is_relative(metric: str) -> bool:
    """True for the gated figure ``<op>.relative_time[@size]``."""
    parsed = parse_metric(metric)
    return bool(parsed.operation) and not parsed.variant and parsed.figure == GATED_BASE


def samples_of(rows: Any) -> dict[tuple, list[float]]:
    """Per figure key, the per-round samples stored with the relative times of prepared ``rows``."""
    out: dict[tuple, list[float]] = {}
    if rows is None or len(rows) == 0:
        return out
    for rec in rows[rows["status"] == "ok"].to_dict("records"):
        if not is_relative(rec["metric"]):
            continue
        samples = rec["ext"].get("samples") or []
        key = tuple("" if rec[k] is None else rec[k] for k in KEY_COLUMNS)
        out.setdefault(key, []).extend(float(s) for s in samples if s is not None and s > 0)
    return out


def judge(
    value: float,
    samples: list[float],
    past: list[tuple[str, float, list[float]]],
    *,
    threshold: float,
    noise_k: float,
    pooled_sigma: float,
    min_history: int,
    alpha: float = ALPHA,
    accepted: frozenset[str] | set[str] = frozenset(),
) -> dict:
    """The verdict on one relative time: ``status`` (ok / suspect / improvement / not gated),
    ``baseline``, ``rel_change``, ``band``, ``resolution`` (the smallest slowdown the gate can see
    in this history) and a ``reason`` that says which test decided. Where tonight's per-round
    samples are significantly slower than the history's (Mann-Whitney, ``alpha``), the noise band
    is capped at the threshold: a history made noisy by load cannot hide a significant slowdown.

    ``past`` holds (run id, value, samples) of the comparable history, oldest first. A step
    change to a faster level becomes the baseline once enough runs tell the new level; a step to
    a slower one only once a run at or after it was accepted (``accepted``: run ids, from
    ``vqbench nightly --accept RUN``): until then the history before the step stays the baseline.
    """
    values = [v for _, v, _ in past]
    # a step counts once enough runs after it tell the new level (a lone point is not a step)
    steps = lasting_steps(values, threshold, noise_k, min_history)
    since, until, held = 0, len(past), None
    for i, step in enumerate(steps):
        end = steps[i + 1] if i + 1 < len(steps) else len(past)
        slower = median(values[step:end]) > median(values[since:step])
        if slower and not any(rid in accepted for rid, _, _ in past[step:]):
            until, held = step, past[step][0]
            break
        since = step
    segment = past[since:until]
    note = f" (history since the step change at run {past[since][0]})" if since else ""
    if held is not None:
        note += (
            f" (the slower level since run {held} is not the baseline until a run is accepted: "
            "`vqbench nightly --accept RUN`)"
        )
    out: dict[str, Any] = {
        "baseline": math.nan,
        "rel_change": math.nan,
        "band": math.nan,
        "p_value": math.nan,
    }
    if len(segment) < min_history:
        return {
            **out,
            "status": "not gated",
            "reason": f"{len(segment)} comparable past run(s){note}; the timing gate needs {min_history}",
        }
    seg_values = [v for _, v, _ in segment]
    base = median(seg_values)
    sigma = max(log_mad_sigma(seg_values), pooled_sigma)
    rel = value / base - 1
    log_change = math.log(value / base)
    band = math.expm1(noise_k * sigma)
    hist_samples = [s for _, _, ss in segment for s in ss]
    out.update(baseline=base, rel_change=rel, band=base * band)
    if rel < -threshold and -log_change > noise_k * sigma:
        return {
            **out,
            "status": "improvement",
            "reason": f"{-rel * 100:.1f}% faster relative to the control{note}",
        }
    beyond_threshold = rel > threshold
    p = slower_p_value(samples, hist_samples)
    out["p_value"] = p
    if p < alpha and band > threshold:
        # the per-round samples are significantly slower: a noisy history's band may not hide it
        band = threshold
        out["band"] = base * band
    beyond_band = log_change > math.log1p(band)
    out["resolution"] = max(threshold, band)  # the smallest slowdown this history lets the gate see
    tests = (
        f"change {rel * 100:+.1f}% vs threshold {threshold * 100:.0f}%, "
        f"noise band ±{band * 100:.1f}%, Mann-Whitney p={p:.2g} vs {alpha:g}; "
        f"cannot see changes below {out['resolution'] * 100:.0f}%"
    )
    if beyond_threshold and beyond_band and p < alpha:
        return {**out, "status": "suspect", "reason": f"slower relative to the control: {tests}{note}"}
    failed = [
        what
        for what, ok in (
            ("within the threshold", not beyond_threshold),
            ("within the noise band", not beyond_band),
            ("samples not significantly slower", p >= alpha),
        )
        if ok
    ]
    return {**out, "status": "ok", "reason": f"{'; '.join(failed)} ({tests}){note}"}


def pooled_sigma(past_by_key: dict[tuple, list[tuple[str, float, list[float]]]]) -> float:
    """The typical night-to-night noise of relative times: the median of their log-MAD sigmas."""
    sigmas = [log_mad_sigma([v for _, v, _ in past]) for past in past_by_key.values() if len(past) >= 3]
    return median(sigmas) if sigmas else 0.0


__all__ = [
    "ALPHA",
    "GATED_BASE",
    "VIEW_BASES",
    "is_relative",
    "judge",
    "pooled_sigma",
    "relative_metric",
    "samples_of",
]
