"""The gate's judge of relative times: it applies ``timing_gate`` to prepared rows.

Per figure key it gathers the relative time's past values and per-round samples, judges tonight's
value, and confirms a suspect with the re-measured cell. The other views of a timed operation
(vectors/s, time, GB/s, copy fraction, the control, the copy-bandwidth probe) and wall-clock
training times are marked "not gated"; every other figure is left to the general rules.
"""

from __future__ import annotations

import math
from typing import Any

from vqbench.engines import view_of
from vqbench.reports import timing_gate as tg
from vqbench.reports.compare import collapse
from vqbench.reports.thresholds import GateConfig
from vqbench.results.vocabulary import KEY_COLUMNS


class RelativeJudge:
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
        self.cfg = cfg
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
        target = tg.relative_metric(metric)
        if target is None and metric == "copy_bandwidth":
            same = [k for k in self.keys if k[:i] == key[:i]]
            return same[0] if same else None
        if target is None:
            return None
        sib = (*key[:i], target, *key[i + 1 :])
        return sib if sib in self.keys else None

    @staticmethod
    def _training_time(key: tuple, now: Any, base: dict) -> dict | None:
        """Wall-clock times of training cells (usage, reconstruction): reported, not gated."""
        if (
            view_of(key[KEY_COLUMNS.index("benchmark")]) == "operations"
            or now is None
            or not now.get("timing")
        ):
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
        verdict = tg.judge(
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
        second = tg.judge(
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
            "state": "suspicious",
            "reason": f"suspect on first measurement ({verdict['rel_change'] * 100:+.1f}%) "
            "but not confirmed "
            f"when re-measured: {second['reason']}",
        }


__all__ = ["RelativeJudge"]
