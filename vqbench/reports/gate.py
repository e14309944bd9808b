"""The regression gate: every figure of the current run against its history (see ``history``).

Per figure (see ``vocabulary.KEY_COLUMNS``):

- timing figures regress when the change in the bad direction is beyond ``threshold`` (relative
  to the history's median) AND beyond the history's noise band: ``noise_k`` robust sigmas on the
  log scale (timing noise is multiplicative), the sigma being the largest of 1.4826 x MAD of the
  figure's past log values, its stored IQRs / 1.349 relative to its level, and the run-to-run
  noise pooled over all timing figures of the history;
- relative times (``timing_gate``) are judged by ``timing_judge`` instead, and the other views of
  their timings are reported, not gated;
- quality figures regress when they drop by more than ``abs_tolerance`` (else ``rel_tolerance``
  of the baseline), in the metric's own direction;
- a figure that measured in the history but errors now is a regression ("new error").

Each line also carries its ``state``, one of ``STATES``: ``regression`` (confirmed, or a new
error), ``suspicious`` (a suspect that its re-measurement did not confirm), ``no regression``
(judged: ok or improvement) and ``insufficient data`` (not judged: too little history, an error,
skipped, missing, ignored or no direction), so that nothing unjudged reads as a pass.

Timing figures are gated once ``min_timing_history`` comparable past runs (default 3) tell the
run-to-run noise; before that they are reported as "not gated". Quality figures and new errors
are gated from the first comparable past run on.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from vqbench.reports.compare import CELL_COLUMNS, collapse, failed_cells
from vqbench.reports.statistics import log_noise_sigma, median, noise_sigma
from vqbench.reports.thresholds import GateConfig
from vqbench.reports.timing_judge import RelativeJudge
from vqbench.results.vocabulary import KEY_COLUMNS

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
STATES = ("regression", "suspicious", "no regression", "insufficient data")


def state_of(verdict: dict) -> str:
    """The four-state label of one verdict (see the module docstring)."""
    if verdict.get("state"):
        return verdict["state"]
    if verdict["status"] in ("regression", "new error"):
        return "regression"
    if verdict["status"] in ("ok", "improvement"):
        return "no regression"
    return "insufficient data"


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
    return median(rels) if rels else 0.0


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
            "baseline": median([v for v, _ in past]),
        }
    values = [v for v, _ in past]
    base = median(values)
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
    rel = RelativeJudge(current, history, history_runs, cur, template, confirm, cfg)
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
        line.update(verdict, state=state_of(verdict))
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


__all__ = [
    "GateResult",
    "STATES",
    "STATUSES",
    "evaluate_gate",
    "state_of",
    "pooled_relative_sigma",
]
