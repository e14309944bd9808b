"""History and the regression gate: the current run against a window of comparable past runs.

Comparable runs: finished runs of the same suite with the same environment fingerprint
(``env_hash``), the most recent ``window`` of them. Per figure (see ``_data.KEY_COLUMNS``):

- timing figures regress when the change in the bad direction is beyond ``threshold`` (relative
  to the history's median) AND beyond the history's noise band: ``noise_k`` robust sigmas on the
  log scale (timing noise is multiplicative), the sigma being the largest of 1.4826 x MAD of the
  figure's past log values, its stored IQRs / 1.349 relative to its level, and the run-to-run
  noise pooled over all timing figures of the history;
- quality figures regress when they drop by more than ``abs_tolerance`` (else ``rel_tolerance``
  of the baseline), in the metric's own direction;
- a figure that measured in the history but errors now is a regression ("new error").

Timing figures are gated once ``min_timing_history`` comparable past runs (default 3) tell the
run-to-run noise; before that they are reported as "not gated". Quality figures and new errors
are gated from the first comparable past run on.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from vqbench.reports._data import KEY_COLUMNS
from vqbench.reports.compare import CELL_COLUMNS, collapse, failed_cells
from vqbench.reports.thresholds import GateConfig

STATUSES = (
    "not gated",
    "regression",
    "new error",
    "improvement",
    "ok",
    "error",
    "skipped",
    "missing",
    "new",
    "no direction",
    "ignored",
)
MAD_TO_SIGMA = 1.4826
IQR_TO_SIGMA = 1 / 1.349


@dataclass
class GateResult:
    """The gate's outcome: one line per figure in ``checks`` and the runs it compared with."""

    run_id: str
    history_runs: list[str]
    checks: Any  # DataFrame
    config: GateConfig
    notes: list[str] = field(default_factory=list)
    incomplete: list[str] = field(default_factory=list)  # why the run cannot be judged whole

    @property
    def regressions(self) -> Any:
        return self.checks[self.checks["status"].isin(["regression", "new error"])]

    @property
    def improvements(self) -> Any:
        return self.checks[self.checks["status"] == "improvement"]

    @property
    def regressed(self) -> bool:
        """True when the gate fails (something regressed)."""
        return not self.regressions.empty


def run_marks(config: Any) -> dict[str, bool]:
    """What a run's stored config says about its place in the history: ``imported`` (from a file),
    ``flagged`` (a nightly found a regression in it), ``accepted`` (``vqbench nightly --accept``)."""
    import json

    if isinstance(config, str):
        try:
            config = json.loads(config)
        except ValueError:
            config = {}
    config = config if isinstance(config, dict) else {}
    gate = config.get("gate") if isinstance(config.get("gate"), dict) else {}
    accepted = config.get("accepted") if isinstance(config.get("accepted"), dict) else {}
    return {
        "imported": bool(config.get("imported")),
        "flagged": gate.get("status") == "regression",
        "accepted": bool(config.get("accepted")),
        "from": accepted.get("from"),  # an accepted new level: the history starts at this run
    }


def accepted_runs(runs: Any) -> set[str]:
    """The run ids accepted with ``vqbench nightly --accept RUN``."""
    if "config" not in runs:
        return set()
    return {r for r, c in zip(runs["run_id"], runs["config"], strict=True) if run_marks(c)["accepted"]}


def history_run_ids(
    runs: Any, run_id: str, suite: str, env_hash: str, window: int, include_imported: bool = False
) -> list[str]:
    """The ``window`` most recent finished runs before ``run_id`` with the same suite and env hash.

    Left out: runs that a nightly flagged as regressed, until accepted (``vqbench nightly --accept
    RUN``), so that a regression never becomes the baseline silently; and imported runs, unless
    ``include_imported``. An accepted run that set a new level starts the history: runs before
    the first run of that level are left out."""
    runs = runs.sort_values("started")
    if "config" in runs:
        marks = [run_marks(c) for c in runs["config"]]
        keep = [
            (not m["flagged"] or m["accepted"]) and (include_imported or not m["imported"] or m["accepted"])
            for m in marks
        ]
        runs = runs[keep]
        marks = [m for m, k in zip(marks, keep, strict=True) if k]
        ids = runs["run_id"].tolist()
        current_at = ids.index(run_id) if run_id in ids else len(ids)
        starts = [m["from"] for m in marks[:current_at] if m["from"] in ids]
        if starts:
            runs = runs.iloc[ids.index(starts[-1]) :]
    current = runs[runs["run_id"] == run_id]
    if not current.empty:
        runs = runs[runs["started"] <= current["started"].iloc[0]]
    same = runs[
        (runs["suite"] == suite)
        & (runs["env_hash"] == env_hash)
        & (runs["status"] == "finished")
        & (runs["run_id"] != run_id)
    ]
    return same["run_id"].tolist()[-window:]


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    n = len(ordered)
    mid = n // 2
    return ordered[mid] if n % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def noise_sigma(values: list[float], spreads: list[float]) -> float:
    """The history's noise, as a robust standard deviation (0 when nothing tells)."""
    sigma = 0.0
    if len(values) >= 3:
        med = _median(values)
        sigma = MAD_TO_SIGMA * _median([abs(v - med) for v in values])
    good = [s for s in spreads if s is not None and not math.isnan(s)]
    if good:
        sigma = max(sigma, _median(good) * IQR_TO_SIGMA)
    return sigma


def log_noise_sigma(values: list[float], spreads: list[float], level: float) -> float:
    """Relative noise (sigma of log values) of positive figures: the larger of 1.4826 x MAD of the
    log values and the median stored IQR / 1.349 relative to ``level``."""
    sigma = 0.0
    if len(values) >= 3:
        logs = [math.log(v) for v in values]
        med = _median(logs)
        sigma = MAD_TO_SIGMA * _median([abs(v - med) for v in logs])
    good = [s for s in spreads if s is not None and not math.isnan(s)]
    if good and level > 0:
        sigma = max(sigma, _median(good) * IQR_TO_SIGMA / level)
    return sigma


def pooled_relative_sigma(
    past_values: dict[tuple, list[tuple[float, float]]], timing: dict[tuple, bool]
) -> float:
    """The typical run-to-run noise of timing figures (sigma of log values): the median over
    positive figures with 3+ past values of 1.4826 x MAD of their logs. One figure's MAD over a
    handful of runs is a noisy estimate; this pooled one keeps a lucky quiet history from
    narrowing the band."""
    rels = []
    for key, past in past_values.items():
        values = [v for v, _ in past]
        if not timing.get(key) or len(values) < 3 or min(values) <= 0:
            continue
        rels.append(log_noise_sigma(values, [], 0.0))
    return _median(rels) if rels else 0.0


def _check(
    cur: Any,
    past: list[tuple[float, float]],
    past_errors: int,
    settings: Any,
    cfg: GateConfig,
    pooled: float = 0.0,
) -> dict:
    out: dict[str, Any] = {
        "baseline": math.nan,
        "band": math.nan,
        "change": math.nan,
        "rel_change": math.nan,
        "limit": math.nan,
        "history_n": len(past),
        "reason": "",
    }
    if settings.ignore:
        return {**out, "status": "ignored", "reason": "ignored by a gate rule"}
    if cur is None:
        return {**out, "status": "missing", "reason": "measured in the history, absent from this run"}
    if cur["status"] != "ok":
        if cur["status"] == "error" and past:
            return {**out, "status": "new error", "reason": f"measured before, fails now: {cur['message']}"}
        return {**out, "status": cur["status"], "reason": cur["message"]}
    if len(past) < cfg.min_history:
        return {
            **out,
            "status": "new",
            "reason": f"{len(past)} comparable past value(s); "
            f"the gate needs {cfg.min_history}" + (f" ({past_errors} past error(s))" if past_errors else ""),
        }
    if cur["direction"] is None:
        return {**out, "status": "no direction", "reason": "the metric's direction is unknown"}
    if cur["timing"] and len(past) < cfg.min_timing_history:
        return {
            **out,
            "status": "not gated",
            "reason": f"timing figures need {cfg.min_timing_history} comparable past runs to know the "
            f"run-to-run noise; {len(past)} so far",
            "baseline": _median([v for v, _ in past]),
        }
    values = [v for v, _ in past]
    base = _median(values)
    value = float(cur["value"])
    change = value - base
    rel = change / abs(base) if base != 0 else math.nan
    worse_by = -change if cur["direction"] else change  # > 0: moved the bad way
    out.update(baseline=base, change=change, rel_change=rel)
    if cur["timing"]:
        spreads = [s for _, s in past] + [float(cur["spread"])]
        rel_worse = worse_by / abs(base) if base != 0 else math.inf * (1 if worse_by > 0 else -1)
        out.update(limit=settings.threshold)
        if base > 0 and value > 0 and min(values) > 0:
            # multiplicative noise: compare on the log scale, so that a rate and its time agree
            sigma = max(log_noise_sigma(values, spreads, base), pooled)
            out.update(band=base * math.expm1(settings.noise_k * sigma))
            beyond_band = abs(math.log(value / base)) > settings.noise_k * sigma
        else:
            sigma = noise_sigma(values, spreads)
            out.update(band=settings.noise_k * sigma)
            beyond_band = abs(change) > settings.noise_k * sigma
        if rel_worse > settings.threshold and beyond_band:
            return {
                **out,
                "status": "regression",
                "reason": f"{abs(rel) * 100:.1f}% worse than the history median, beyond the "
                f"{settings.threshold * 100:.0f}% threshold and the noise band",
            }
        if -rel_worse > settings.threshold and beyond_band:
            return {
                **out,
                "status": "improvement",
                "reason": f"{abs(rel) * 100:.1f}% better than the history",
            }
        why = "within the threshold" if abs(rel_worse) <= settings.threshold else "within the noise band"
        return {**out, "status": "ok", "reason": why}
    size = cur.get("codebook_size")
    if settings.abs_tolerance is not None:
        tol = settings.abs_tolerance
    elif settings.codebook_fraction is not None and size is not None and size == size:
        tol = settings.codebook_fraction * float(size)
    else:
        tol = settings.rel_tolerance * abs(base)
    out.update(limit=tol)
    if worse_by > tol:
        return {**out, "status": "regression", "reason": f"worse by {abs(change):.4g} (tolerance {tol:.4g})"}
    if -worse_by > tol:
        return {
            **out,
            "status": "improvement",
            "reason": f"better by {abs(change):.4g} (tolerance {tol:.4g})",
        }
    return {**out, "status": "ok", "reason": "within tolerance"}


def evaluate_gate(
    current: Any,
    history: Any,
    run_id: str,
    history_runs: list[str],
    config: GateConfig | None = None,
    confirm: Any = None,
    accepted: set[str] | frozenset[str] = frozenset(),
) -> GateResult:
    """Check every figure of ``current`` (prepared rows of one run) against ``history`` (prepared rows
    of ``history_runs``); returns a ``GateResult`` whose ``checks`` has one line per figure.

    Timing figures with a relative time (see ``timing_gate``) are judged through it alone; a suspect
    is a regression only when ``confirm`` (prepared rows of its cell re-measured) confirms it. Without
    ``confirm`` a suspect counts as a regression and its line has ``suspect`` = True."""
    import pandas as pd

    cfg = config or GateConfig()
    current_flat = collapse(current)
    cur = {tuple(r[k] for k in KEY_COLUMNS): r for r in current_flat.to_dict("records")}
    failed = failed_cells(current_flat)
    past_values: dict[tuple, list[tuple[float, float]]] = {}
    past_errors: dict[tuple, int] = {}
    template: dict[tuple, dict] = {}
    if history is not None and not history.empty:
        for rid in history_runs:
            runs_rows = history[history["run_id"] == rid]
            if runs_rows.empty:
                continue
            for rec in collapse(runs_rows).to_dict("records"):
                key = tuple(rec[k] for k in KEY_COLUMNS)
                template.setdefault(key, rec)
                if rec["status"] == "ok":
                    past_values.setdefault(key, []).append((float(rec["value"]), float(rec["spread"])))
                else:
                    past_errors[key] = past_errors.get(key, 0) + 1
    timing = {k: bool(r["timing"]) for k, r in {**template, **cur}.items()}
    pooled = pooled_relative_sigma(past_values, timing)
    rel = _RelativeJudge(current, history, history_runs, cur, template, confirm, cfg)
    rel.accepted = set(accepted)
    lines = []
    for key in list(cur) + [k for k in template if k not in cur]:
        ref = cur.get(key) or template[key]
        settings = cfg.settings_for(ref)
        line = dict(zip(KEY_COLUMNS, key, strict=True))
        line.update(
            unit=ref["unit"],
            config_label=ref["config_label"],
            timing=bool(ref["timing"]),
            direction=ref["direction"],
            value=(cur[key]["value"] if key in cur else math.nan),
            spread=(cur[key]["spread"] if key in cur else math.nan),
        )
        now = cur.get(key)
        if now is None:  # the figure is absent: did its whole cell fail tonight?
            hit = failed.get(tuple(ref[k] for k in CELL_COLUMNS))
            if hit is not None:
                now = {**ref, "status": hit[0], "message": hit[1]}
        verdict = rel.check(key, now, settings)
        if verdict is None:
            verdict = _check(now, past_values.get(key, []), past_errors.get(key, 0), settings, cfg, pooled)
        line.update(verdict)
        lines.append(line)
    checks = pd.DataFrame.from_records(lines)
    notes = []
    if not history_runs:
        notes.append(
            "No comparable past runs (same suite and environment fingerprint): nothing is gated yet; "
            "this run starts the history."
        )
    if rel.keys:
        notes.append(
            "Timing: one figure per operation is gated, its time relative to a fixed control workload "
            "timed in the same moments (relative_time); vectors/s, time, GB/s and copy fraction are "
            "its views and are reported, not gated. A suspect is re-measured before it is reported."
        )
        if rel.pooled:
            notes.append(
                f"Typical night-to-night noise of relative times in this history: {rel.pooled * 100:.1f}%."
            )
    elif pooled:
        notes.append(f"Typical run-to-run noise of timing figures in this history: {pooled * 100:.1f}%.")
    return GateResult(run_id=run_id, history_runs=list(history_runs), checks=checks, config=cfg, notes=notes)


class _RelativeJudge:
    """Judges relative times (``timing_gate``) and marks the other views of their timings."""

    def __init__(
        self,
        current: Any,
        history: Any,
        history_runs: list[str],
        cur: dict,
        template: dict,
        confirm: Any,
        cfg: GateConfig,
    ) -> None:
        from vqbench.reports import timing_gate as tg

        self.tg, self.cfg = tg, cfg
        self.accepted: set[str] = set()
        self.keys = {k for k in {**template, **cur} if tg.is_relative(k[KEY_COLUMNS.index("metric")])}
        self.samples = tg.samples_of(current)
        self.past: dict[tuple, list[tuple[str, float, list[float]]]] = {}
        if history is not None and not history.empty:
            for rid in history_runs:
                rows = history[history["run_id"] == rid]
                samples = tg.samples_of(rows)
                for rec in collapse(rows).to_dict("records"):
                    key = tuple(rec[k] for k in KEY_COLUMNS)
                    if key in self.keys and rec["status"] == "ok" and rec["value"] > 0:
                        self.past.setdefault(key, []).append((rid, float(rec["value"]), samples.get(key, [])))
        self.pooled = tg.pooled_sigma(self.past)
        self.confirm: dict[tuple, dict] = {}
        self.confirm_samples: dict[tuple, list[float]] = {}
        if confirm is not None and len(confirm):
            self.confirm = {tuple(r[k] for k in KEY_COLUMNS): r for r in collapse(confirm).to_dict("records")}
            self.confirm_samples = tg.samples_of(confirm)

    def _sibling(self, key: tuple) -> tuple | None:
        i = KEY_COLUMNS.index("metric")
        metric = key[i]
        target = self.tg.relative_metric(metric)
        if target is None and metric == "copy_bandwidth":
            same = [k for k in self.keys if k[:i] == key[:i]]
            return same[0] if same else None
        if target is None:
            return None
        sib = (*key[:i], target, *key[i + 1 :])
        return sib if sib in self.keys else None

    @staticmethod
    def _training_time(key: tuple, now: Any, base: dict) -> dict | None:
        """Wall-clock training times of usage and reconstruction cells: reported, not gated."""
        if key[KEY_COLUMNS.index("benchmark")] == "throughput" or now is None or not now.get("timing"):
            return None
        return {
            **base,
            "status": "not gated",
            "reason": "a wall-clock training time with no interleaved "
            "control moves with the machine's load; a training step's speed is gated as the throughput "
            "benchmark's train.relative_time",
        }

    def check(self, key: tuple, now: Any, settings: Any) -> dict | None:
        """A verdict for relative times and their views; None for every other figure."""
        base = {
            "baseline": math.nan,
            "band": math.nan,
            "change": math.nan,
            "rel_change": math.nan,
            "limit": math.nan,
            "history_n": len(self.past.get(key, [])),
        }
        if settings.ignore:
            return None
        if key not in self.keys:
            sib = self._sibling(key)
            if sib is None:
                return self._training_time(key, now, base)
            what = sib[KEY_COLUMNS.index("metric")]
            why = (
                "a probe of the machine's copy bandwidth, not a property of the quantizer"
                if key[KEY_COLUMNS.index("metric")] == "copy_bandwidth"
                else f"a view of {what}"
            )
            return {
                **base,
                "status": "not gated",
                "reason": f"{why}; the gate judges {what}, "
                "the operation's time relative to the interleaved control",
            }
        if now is None or now["status"] != "ok" or now["direction"] is None:
            return None  # missing, failed or undirected: the general rules apply
        past = self.past.get(key, [])
        value = float(now["value"])
        verdict = self.tg.judge(
            value,
            self.samples.get(key, []),
            past,
            threshold=settings.threshold,
            noise_k=settings.noise_k,
            pooled_sigma=self.pooled,
            min_history=self.cfg.min_timing_history,
            accepted=self.accepted,
        )
        out = {**base, **verdict, "limit": settings.threshold}
        if verdict["baseline"] == verdict["baseline"]:
            out["change"] = value - verdict["baseline"]
        if verdict["status"] != "suspect":
            return out
        again = self.confirm.get(key)
        if not self.confirm:
            return {
                **out,
                "status": "regression",
                "suspect": True,
                "reason": verdict["reason"] + " (not re-measured)",
            }
        if again is None or again["status"] != "ok":
            why = verdict["reason"] + "; its re-measurement failed"
            return {**out, "status": "regression", "reason": why}
        second = self.tg.judge(
            float(again["value"]),
            self.confirm_samples.get(key, []),
            past,
            threshold=settings.threshold,
            noise_k=settings.noise_k,
            pooled_sigma=self.pooled,
            min_history=self.cfg.min_timing_history,
            accepted=self.accepted,
        )
        if second["status"] == "suspect":
            return {
                **out,
                "status": "regression",
                "reason": f"{verdict['reason']}; confirmed when re-measured "
                f"({second['rel_change'] * 100:+.1f}%, "
                f"p={second['p_value']:.2g})",
            }
        return {
            **out,
            "status": "ok",
            "reason": f"suspect on first measurement ({verdict['rel_change'] * 100:+.1f}%) "
            "but not confirmed "
            f"when re-measured: {second['reason']}",
        }


def step_changes(
    values: list[float], threshold: float = 0.10, noise_k: float = 3.0, min_size: int = 2, max_depth: int = 3
) -> list[int]:
    """Indices where a series steps to a new level (binary segmentation on medians).

    Each segment's best split is the one with the least absolute deviation from the two sides'
    medians; it counts when those medians differ by more than ``threshold`` (relative) and
    ``noise_k`` robust sigmas of the residuals. The last point may form a segment alone, so
    that tonight's step shows.
    """
    vals = [float(v) for v in values if v is not None and not math.isnan(v)]
    if len(vals) != len(values) or len(vals) < 3:
        return []

    def best_split(lo: int, hi: int) -> int | None:
        """The split with the least absolute deviation from the segments' medians, if significant."""
        seg = vals[lo:hi]
        best: tuple[float, int] | None = None
        for i in range(1, len(seg)):
            left, right = seg[:i], seg[i:]
            if len(left) < min_size or (len(right) < min_size and hi != len(vals)):
                continue
            ml, mr = _median(left), _median(right)
            cost = sum(abs(v - ml) for v in left) + sum(abs(v - mr) for v in right)
            if best is None or cost < best[0]:
                best = (cost, i)
        if best is None:
            return None
        i = best[1]
        left, right = seg[:i], seg[i:]
        ml, mr = _median(left), _median(right)
        sigma = MAD_TO_SIGMA * _median([abs(v - ml) for v in left] + [abs(v - mr) for v in right])
        diff = abs(mr - ml)
        if diff > threshold * max(abs(ml), 1e-30) and diff > noise_k * sigma:
            return lo + i
        return None

    found: list[int] = []

    def recurse(lo: int, hi: int, depth: int) -> None:
        if depth > max_depth or hi - lo < 2:
            return
        split = best_split(lo, hi)
        if split is None:
            return
        found.append(split)
        recurse(lo, split, depth + 1)
        recurse(split, hi, depth + 1)

    recurse(0, len(vals), 1)
    return sorted(found)


__all__ = [
    "GateResult",
    "accepted_runs",
    "run_marks",
    "STATUSES",
    "evaluate_gate",
    "history_run_ids",
    "log_noise_sigma",
    "noise_sigma",
    "pooled_relative_sigma",
    "step_changes",
]
