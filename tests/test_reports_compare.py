"""Comparisons: deltas in each metric's own direction, noise-aware verdicts, failed cells."""

from __future__ import annotations

import math

import pandas as pd
import pytest
from _report_synth import ENV, add_run

from vqbench.reports._data import prepare
from vqbench.reports.compare import collapse, compare_candidate, compare_rows, judge
from vqbench.reports.compare_report import candidate_document, compare_runs_document
from vqbench.results import ResultStore


def _rows(*figures, run="r"):
    """Prepared rows from (quantizer, metric, value, spread, higher_is_better[, status]) tuples."""
    records = []
    for fig in figures:
        quantizer, metric, value, spread, hib, *rest = fig
        status = rest[0] if rest else "ok"
        records.append(
            {
                "run_id": run,
                "time": "2026-01-01T00:00:00+00:00",
                "suite": "s",
                "benchmark": "throughput",
                "quantizer": quantizer,
                "config": '{"codebook_size":1024}',
                "config_hash": "h",
                "backend": "eager",
                "device": "cpu",
                "dataset": None,
                "dataset_checksum": None,
                "metric": metric,
                "value": math.nan if value is None else value,
                "unit": "s" if "time" in metric else "",
                "higher_is_better": hib,
                "spread": spread,
                "n": 5,
                "seed": 0,
                "cell_id": quantizer,
                "status": status,
                "message": "boom" if status == "error" else "",
                "extra": "{}",
            }
        )
    from vqbench.results._frames import type_rows

    return prepare(type_rows(pd.DataFrame.from_records(records)))


def _verdicts(result):
    return dict(zip(result["metric"], result["verdict"], strict=True))


def test_deltas_keep_each_metrics_direction():
    a = _rows(
        ("fsq", "time", 1.0, 0.01, False),
        ("fsq", "vectors_per_s", 100.0, 1.0, True),
        ("fsq", "mse", 0.010, None, False),
        ("fsq", "psnr", 20.0, None, True),
        ("fsq", "bits_per_token", 10.0, None, None),
    )
    b = _rows(
        ("fsq", "time", 1.2, 0.01, False),
        ("fsq", "vectors_per_s", 120.0, 1.0, True),
        ("fsq", "mse", 0.008, None, False),
        ("fsq", "psnr", 19.0, None, True),
        ("fsq", "bits_per_token", 11.0, None, None),
    )
    result = compare_rows(a, b)
    verdicts = _verdicts(result)
    assert verdicts == {
        "time": "view",  # a view of the same operation as vectors/s: shown, not counted
        "vectors_per_s": "better",
        "mse": "view",  # the same effect as PSNR, which gets the verdict: one verdict per effect
        "psnr": "worse",
        "bits_per_token": "no direction",
    }
    by = result.set_index("metric")
    assert by.loc["time", "delta"] == pytest.approx(0.2)
    assert by.loc["time", "rel_delta"] == pytest.approx(0.2)
    assert by.loc["mse", "rel_delta"] == pytest.approx(-0.2)
    # the same change read the other way round flips every verdict
    assert _verdicts(compare_rows(b, a))["vectors_per_s"] == "worse"
    assert _verdicts(compare_rows(b, a))["psnr"] == "better"
    # without a PSNR, MSE is the counted figure, judged lower-is-better
    a_mse, b_mse = (x[x["metric"] != "psnr"] for x in (a, b))
    assert _verdicts(compare_rows(a_mse, b_mse))["mse"] == "better"


def test_changes_inside_the_stored_spread_are_within_noise():
    a = _rows(("fsq", "time", 1.00, 0.10, False), ("vq", "time", 1.00, 0.01, False))
    b = _rows(("fsq", "time", 1.05, 0.10, False), ("vq", "time", 1.05, 0.01, False))
    verdicts = dict(zip(compare_rows(a, b)["quantizer"], compare_rows(a, b)["verdict"], strict=True))
    assert verdicts == {"fsq": "within noise", "vq": "worse"}
    assert judge(1.0, 1.05, 0.1, 0.1, False, noise_k=0.4) == "worse"
    assert judge(1.0, 1.0, None, None, True) == "within noise"


def test_failed_and_missing_figures_are_named_not_compared():
    a = _rows(
        ("fsq", "time", 1.0, 0.01, False), ("vq", "time", 2.0, 0.01, False), ("lfq", "time", 3.0, 0.01, False)
    )
    b = _rows(("fsq", "time", 1.0, 0.01, False), ("vq", "error", None, None, None, "error"))
    result = compare_rows(a, b).set_index(["quantizer", "metric"])
    assert result.loc[("vq", "time"), "verdict"] == "error"
    assert result.loc[("vq", "time"), "status_b"] == "error"
    assert result.loc[("vq", "time"), "message_b"] == "boom"
    assert math.isnan(result.loc[("vq", "time"), "delta"])
    assert result.loc[("lfq", "time"), "verdict"] == "missing"


def test_collapse_takes_medians_and_widens_the_spread_over_repeats():
    rows = _rows(
        ("fsq", "time", 1.0, 0.01, False),
        ("fsq", "time", 1.2, 0.01, False),
        ("fsq", "time", 1.1, 0.01, False),
    )
    flat = collapse(rows)
    assert len(flat) == 1
    assert flat.loc[0, "value"] == pytest.approx(1.1)
    assert flat.loc[0, "spread"] == pytest.approx(0.1)
    assert flat.loc[0, "n"] == 3 and flat.loc[0, "status"] == "ok"


def test_candidate_is_compared_with_each_baseline_at_the_same_setting(tmp_path):
    with ResultStore(tmp_path / "s.sqlite") as store:
        run = add_run(store, suite="quick", samples=False)
        rows = prepare(store.rows(run))
        result = compare_candidate(rows, "lfq", ["fsq", "vq"])
        assert set(result["baseline"]) == {"fsq", "vq"}
        thr = result[(result["benchmark"] == "throughput") & (result["baseline"] == "fsq")]
        assert (thr["verdict"] == "worse").all()  # lfq is slower than fsq in the synthetic run
        thr_vq = result[(result["benchmark"] == "throughput") & (result["baseline"] == "vq")]
        assert (thr_vq["verdict"] == "better").all()
        usage = result[(result["metric"] == "utilization") & (result["benchmark"] == "usage")]
        # matched at equal codebook sizes only: 3 sizes x 2 baselines
        assert len(usage) == 6
        with pytest.raises(KeyError, match="candidate 'nope' has no rows"):
            compare_candidate(rows, "nope", ["fsq"])
        doc, _ = candidate_document(store, run, "lfq", ["fsq", "vq"])
        assert doc.sections[0].title == "lfq against the baselines"
        assert any(t.title.startswith("throughput") for t in doc.tables())


def test_compare_runs_document_warns_about_different_environments(tmp_path):
    with ResultStore(tmp_path / "s.sqlite") as store:
        a = add_run(store, samples=False)
        b = add_run(store, samples=False, env={**ENV, "cpu": "Other CPU"}, slow={"vq": 1.5})
        doc, result = compare_runs_document(store, a, b)
        texts = [getattr(b, "text", "") for b in doc.sections[0].blocks]
        assert any("different environments" in t for t in texts)
        worse = result[result["verdict"] == "worse"]
        assert set(worse.loc[worse["benchmark"] == "throughput", "quantizer"]) == {"vq"}
        table = doc.tables()[0]
        assert table.rows[0][-1].text == "worse"  # worst first
