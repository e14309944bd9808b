"""The timing gate: one relative figure per operation, judged against the control, re-measured."""

from __future__ import annotations

import math
import random

import pandas as pd

from vqbench.reports._data import prepare
from vqbench.reports.gate import evaluate_gate
from vqbench.reports.statistics import slower_p_value
from vqbench.reports.timing_gate import judge, relative_metric
from vqbench.results import ResultStore

QUANTIZERS = ("fsq", "vq")
BASE_REL = {"fsq": 0.05, "vq": 12.0}


def _rows(seed: int, machine: float = 1.0, slow: dict | None = None, run_id: str = "r") -> pd.DataFrame:
    """Throughput rows of one night: ``machine`` scales every time (a loaded box), ``slow`` scales one
    quantizer's forward relative to the control (a real regression)."""
    rnd = random.Random(seed)
    slow = slow or {}
    rows = []
    for q in QUANTIZERS:
        for op in ("forward", "decode"):
            factor = slow.get(q, 1.0) if op == "forward" else 1.0
            ratios = [BASE_REL[q] * factor * math.exp(rnd.gauss(0, 0.04)) for _ in range(9)]
            control = 1e-3 * machine
            rel = sorted(ratios)[4]
            extra = {"operation": op, "size": 4096}
            common = {
                "benchmark": "throughput",
                "quantizer": q,
                "config": {"codebook_size": 256},
                "backend": "eager",
                "device": "cpu",
                "dataset": None,
                "seed": 0,
                "cell_id": f"t-{q}",
                "run_id": run_id,
                "status": "ok",
            }
            rows += [
                {
                    **common,
                    "metric": f"{op}.vectors_per_s@4096",
                    "value": 4096 / (rel * control),
                    "unit": "vectors/s",
                    "higher_is_better": True,
                    "spread": 0.0,
                    "n": 9,
                    "extra": extra,
                },
                {
                    **common,
                    "metric": f"{op}.time@4096",
                    "value": rel * control,
                    "unit": "s",
                    "higher_is_better": False,
                    "spread": 0.0,
                    "n": 9,
                    "extra": extra,
                },
                {
                    **common,
                    "metric": f"{op}.relative_time@4096",
                    "value": rel,
                    "unit": "x control",
                    "higher_is_better": False,
                    "spread": 0.0,
                    "n": 9,
                    "extra": {**extra, "samples": ratios},
                },
                {
                    **common,
                    "metric": f"{op}.control_time@4096",
                    "value": control,
                    "unit": "s",
                    "higher_is_better": False,
                    "spread": 0.0,
                    "n": 9,
                    "extra": extra,
                },
            ]
    return rows


def _prepared(tmp_path, nights: list[list[dict]]) -> list[pd.DataFrame]:
    out = []
    tmp_path.mkdir(parents=True, exist_ok=True)
    with ResultStore(tmp_path / "s.sqlite") as st:
        for i, rows in enumerate(nights):
            rid = st.start_run("t", {"x": 1}, run_id=f"run{i:02d}")
            st.write_rows([{**r, "run_id": rid} for r in rows])
            st.finish_run(rid)
            out.append(prepare(st.rows(rid)))
    return out


def _gate(tmp_path, tonight: list[dict], confirm: list[dict] | None = None, history: int = 6):
    nights = [_rows(seed=s, machine=1.0 + 0.8 * (s % 2)) for s in range(history)] + [tonight]
    if confirm is not None:
        nights.append(confirm)
    frames = _prepared(tmp_path, nights)
    hist = pd.concat(frames[:history], ignore_index=True)
    ids = [f"run{i:02d}" for i in range(history)]
    return evaluate_gate(
        frames[history], hist, f"run{history:02d}", ids, confirm=frames[history + 1] if confirm else None
    ).checks


def test_relative_metric_names_the_gated_figure():
    assert relative_metric("forward.vectors_per_s@4096") == "forward.relative_time@4096"
    assert relative_metric("train.copy_fraction@65536") == "train.relative_time@65536"
    assert relative_metric("utilization") is None


def test_a_machine_slower_for_everyone_raises_nothing(tmp_path):
    checks = _gate(tmp_path, _rows(seed=99, machine=3.0))
    assert not checks["status"].isin(["regression", "improvement"]).any(), checks[["metric", "status"]]
    views = checks[
        checks["metric"].str.contains("vectors_per_s|time@|control_time")
        & ~checks["metric"].str.contains("relative")
    ]
    assert set(views["status"]) == {"not gated"}
    assert all("the gate judges" in r for r in views["reason"])
    rel = checks[checks["metric"].str.contains("relative_time")]
    assert set(rel["status"]) == {"ok"} and all("Mann-Whitney" in r for r in rel["reason"])


def test_a_real_slowdown_is_a_suspect_then_confirmed_or_cleared(tmp_path):
    slow = _rows(seed=99, slow={"vq": 1.5})
    unconfirmed = _gate(tmp_path / "a", slow)
    flagged = unconfirmed[unconfirmed["status"] == "regression"]
    assert list(flagged["metric"]) == ["forward.relative_time@4096"] and list(flagged["quantizer"]) == ["vq"]
    assert bool(flagged["suspect"].iloc[0]) and "not re-measured" in flagged["reason"].iloc[0]

    confirmed = _gate(tmp_path / "b", slow, confirm=_rows(seed=7, slow={"vq": 1.5}))
    hit = confirmed[confirmed["status"] == "regression"]
    assert list(hit["quantizer"]) == ["vq"] and "confirmed when re-measured" in hit["reason"].iloc[0]

    cleared = _gate(tmp_path / "c", slow, confirm=_rows(seed=7))
    assert not cleared["status"].eq("regression").any()
    line = cleared[(cleared["quantizer"] == "vq") & (cleared["metric"] == "forward.relative_time@4096")]
    assert "not confirmed" in line["reason"].iloc[0]


def test_four_states_come_from_the_gate_verdicts(tmp_path):
    slow = _rows(seed=99, slow={"vq": 1.5})
    fwd = lambda c, q: c[(c["quantizer"] == q) & (c["metric"] == "forward.relative_time@4096")]  # noqa: E731
    confirmed = _gate(tmp_path / "a", slow, confirm=_rows(seed=7, slow={"vq": 1.5}))
    assert fwd(confirmed, "vq")["state"].item() == "regression"
    assert fwd(confirmed, "fsq")["state"].item() == "no regression"
    cleared = _gate(tmp_path / "b", slow, confirm=_rows(seed=7))
    assert fwd(cleared, "vq")["state"].item() == "suspicious"
    views = cleared[cleared["status"] == "not gated"]
    assert len(views) and set(views["state"]) == {"insufficient data"}
    young = _gate(tmp_path / "c", _rows(seed=99), history=1)
    assert set(young["state"]) == {"insufficient data"}


def test_judge_needs_all_three_tests_and_uses_the_history_after_a_step():
    past = [(f"r{i}", 1.0 * (1.3 if i >= 4 else 1.0), [1.0 * (1.3 if i >= 4 else 1.0)] * 5) for i in range(8)]
    # a step to slower stays flagged until a run at or after it is accepted
    held = judge(1.32, [1.32] * 9, past, threshold=0.1, noise_k=3.5, pooled_sigma=0.02, min_history=3)
    assert held["status"] == "suspect" and "nightly --accept" in held["reason"]
    assert abs(held["baseline"] - 1.0) < 1e-9
    verdict = judge(
        1.32, [1.32] * 9, past, threshold=0.1, noise_k=3.5, pooled_sigma=0.02, min_history=3, accepted={"r5"}
    )
    assert verdict["status"] == "ok" and "step change at run r4" in verdict["reason"]
    assert abs(verdict["baseline"] - 1.3) < 1e-9
    # a step to faster becomes the baseline by itself
    faster = [(rid, 1 / v, [1 / s for s in ss]) for rid, v, ss in past]
    quick = judge(0.77, [0.77] * 9, faster, threshold=0.1, noise_k=3.5, pooled_sigma=0.02, min_history=3)
    assert quick["status"] == "ok" and abs(quick["baseline"] - 1 / 1.3) < 1e-9
    small = judge(1.08, [1.08] * 9, past[:4], threshold=0.1, noise_k=3.5, pooled_sigma=0.0, min_history=3)
    assert small["status"] == "ok" and "within the threshold" in small["reason"]
    assert slower_p_value([2.0] * 9, [1.0] * 9) < 0.01 and slower_p_value([1.0] * 9, [1.0] * 9) > 0.5


def test_a_noisy_history_cannot_hide_a_significant_2x_slowdown():
    # five clean nights whose values scatter widely (load): a band of hundreds of percent
    values = [0.8, 1.4, 0.9, 1.3, 1.0]
    past = [(f"r{i}", v, [v * f for f in (0.95, 1.0, 1.05, 0.9, 1.1)]) for i, v in enumerate(values)]
    kwargs = {"threshold": 0.25, "noise_k": 3.5, "pooled_sigma": 0.4, "min_history": 3}
    slow = judge(2.1, [2.0, 2.1, 2.2, 2.05, 2.15, 1.95, 2.3, 2.1, 2.0], past, **kwargs)
    assert slow["status"] == "suspect"
    assert slow["band"] == slow["baseline"] * 0.25 and slow["resolution"] == 0.25
    assert "cannot see changes below 25%" in slow["reason"]
    # without a significant per-round test the wide band stands, and says what it hides
    same = judge(1.2, [0.8, 1.4, 0.9, 1.3, 1.0, 1.2, 1.1, 0.95, 1.05], past, **kwargs)
    assert same["status"] == "ok" and same["resolution"] > 1.0
    assert f"cannot see changes below {same['resolution'] * 100:.0f}%" in same["reason"]
