"""The nightly gate on synthetic histories: what it flags, and what it must not."""

from __future__ import annotations

import pytest
from _report_synth import ENV, add_run

from vqbench.reports.nightly import gate_run, nightly_summary
from vqbench.reports.statistics import noise_sigma
from vqbench.reports.steps import step_changes
from vqbench.reports.thresholds import GateConfig, load_gate_config, parse_gate_config
from vqbench.results import ResultStore

HISTORY = 8


def _history(store, n=HISTORY, noise=0.03, seed0=0, **kwargs):
    return [add_run(store, seed=seed0 + i, noise=noise, samples=False, **kwargs) for i in range(n)]


def _flagged(outcome, status=("regression", "new error")):
    checks = outcome.gate.checks
    return checks[checks["status"].isin(status)]


@pytest.fixture
def store(tmp_path):
    with ResultStore(tmp_path / "h.sqlite") as st:
        yield st


def test_a_20_percent_slowdown_in_one_quantizer_is_flagged_and_only_that_one(store):
    _history(store)
    run = add_run(store, seed=100, samples=False, slow={"vq": 1.25})  # 20% fewer vectors/s
    outcome = gate_run(store, run)
    flagged = _flagged(outcome)
    assert set(flagged["quantizer"]) == {"vq"}
    assert set(flagged["benchmark"]) == {"throughput"}
    # every one of vq's throughput figures (4 operations x 2 backends) is caught
    assert len(flagged) == 8
    assert (flagged["rel_change"] < -0.15).all()
    assert outcome.gate.regressed
    summary = nightly_summary(outcome)
    assert summary["status"] == "regression" and summary["exit_code"] == 1
    assert {r["quantizer"] for r in summary["regressions"]} == {"vq"}
    assert len(summary["history_runs"]) == HISTORY


@pytest.mark.parametrize("seed0", [0, 1000, 2000])
@pytest.mark.parametrize("noise", [0.03, 0.05])
def test_pure_noise_of_realistic_size_raises_no_alarm(store, seed0, noise):
    # Same code every night: run-to-run spread of 3-5% (what repeated runs on these machines show).
    _history(store, noise=noise, seed0=seed0)
    run = add_run(store, seed=seed0 + 500, noise=noise, samples=False)
    outcome = gate_run(store, run)
    assert _flagged(outcome).empty, _flagged(outcome)[["quantizer", "metric", "rel_change", "band"]]
    assert not outcome.gate.regressed
    assert nightly_summary(outcome)["exit_code"] == 0


def test_a_training_time_slower_under_load_is_reported_not_gated(store):
    _history(store, train_s=10.0)
    run = add_run(store, seed=100, samples=False, train_s=20.0)  # the whole machine twice as busy
    outcome = gate_run(store, run)
    assert _flagged(outcome).empty
    checks = outcome.gate.checks
    train = checks[checks["metric"] == "train_time"]
    assert len(train) and (train["status"] == "not gated").all()
    assert train["reason"].str.contains("no interleaved control").all()


def test_a_usage_drop_beyond_tolerance_is_flagged(store):
    _history(store)
    run = add_run(store, seed=100, samples=False, util_drop={"lfq": 0.05})
    flagged = _flagged(gate_run(store, run))
    util = flagged[flagged["metric"] == "utilization"]
    assert set(util["quantizer"]) == {"lfq"} and len(util) == 3  # one per codebook size
    assert (util["change"] < -0.04).all()
    assert set(flagged["quantizer"]) == {"lfq"}


def test_a_usage_drop_within_tolerance_passes(store):
    _history(store)
    run = add_run(store, seed=100, samples=False, util_drop={"lfq": 0.01})
    assert _flagged(gate_run(store, run)).empty


def test_a_speedup_is_an_improvement_not_a_regression(store):
    _history(store)
    run = add_run(store, seed=100, samples=False, slow={"fsq": 0.7})  # 43% more vectors/s
    outcome = gate_run(store, run)
    assert _flagged(outcome).empty
    better = _flagged(outcome, ("improvement",))
    assert set(better["quantizer"]) == {"fsq"} and len(better) == 8
    assert nightly_summary(outcome)["improvements"]


def test_a_cell_that_measured_before_and_fails_now_is_a_regression(store):
    _history(store)
    run = add_run(store, seed=100, samples=False, errors=("vq",))
    outcome = gate_run(store, run)
    flagged = _flagged(outcome)
    assert set(flagged["status"]) == {"new error"}
    assert set(flagged["quantizer"]) == {"vq"} and set(flagged["benchmark"]) == {"usage"}
    assert "out of memory" in flagged["reason"].iloc[0]


def test_only_runs_of_the_same_suite_and_environment_are_history(store):
    other_env = {**ENV, "cpu": "Another CPU"}
    _history(store, n=4, env=other_env, slow={"vq": 2.0})
    add_run(store, suite="quick", seed=50, slow={"vq": 2.0}, samples=False)
    first = add_run(store, seed=60, samples=False)
    outcome = gate_run(store, first)
    assert outcome.gate.history_runs == []
    assert not outcome.gate.regressed
    assert nightly_summary(outcome)["status"] == "no-history"
    second = add_run(store, seed=61, samples=False, slow={"vq": 1.25}, util_drop={"lfq": 0.1})
    outcome = gate_run(store, second)
    assert outcome.gate.history_runs == [first]  # the second run compares with the first
    # quality figures gate from one past run; timing waits for 3 (the run-to-run noise is unknown)
    assert set(_flagged(outcome)["quantizer"]) == {"lfq"}
    not_gated = outcome.gate.checks[outcome.gate.checks["status"] == "not gated"]
    assert set(not_gated["benchmark"]) >= {"throughput"} and not not_gated["timing"].eq(False).any()
    assert nightly_summary(outcome)["status"] == "regression"


def test_the_summary_says_when_timing_is_not_gated_yet(store):
    first = add_run(store, seed=70, samples=False)
    second = add_run(store, seed=71, samples=False)
    outcome = gate_run(store, second)
    assert outcome.gate.history_runs == [first] and not outcome.gate.regressed
    assert nightly_summary(outcome)["status"] == "timing-not-gated"
    _history(store, seed0=80)
    outcome = gate_run(store, add_run(store, seed=90, samples=False))
    assert len(outcome.gate.history_runs) >= outcome.gate.config.min_timing_history
    assert nightly_summary(outcome)["status"] == "ok"


def test_window_limits_the_history(store):
    runs = _history(store, n=5)
    run = add_run(store, seed=100, samples=False)
    outcome = gate_run(store, run, GateConfig(window=3))
    assert outcome.gate.history_runs == runs[-3:]


def test_rules_set_thresholds_per_metric_and_quantizer_pattern(store):
    _history(store)
    run = add_run(store, seed=100, samples=False, slow={"vq": 1.25, "lfq": 1.25})
    cfg = parse_gate_config(
        {
            "rule": [
                {"quantizer": "v*", "metric": "vectors_per_s", "threshold": 0.5},
                {"quantizer": "lfq", "benchmark": "throughput", "ignore": True},
            ]
        },
        "test.toml",
    )
    outcome = gate_run(store, run, cfg)
    assert _flagged(outcome).empty
    ignored = outcome.gate.checks[outcome.gate.checks["status"] == "ignored"]
    assert set(ignored["quantizer"]) == {"lfq"}


def test_gate_config_file_errors_name_the_file_and_key(tmp_path):
    path = tmp_path / "gate.toml"
    path.write_text('window = 5\nthreshold = 0.2\n[[rule]]\nmetric = "psnr"\nabs_tolerance = 1.0\n')
    cfg = load_gate_config(path)
    assert cfg.window == 5 and cfg.threshold == 0.2
    assert cfg.settings_for({"metric": "psnr", "quantizer": "fsq"}).abs_tolerance == 1.0
    assert cfg.settings_for({"metric": "utilization"}).abs_tolerance == 0.02
    for text, match in (
        ("windw = 5\n", r"gate.toml: unknown key\(s\) \['windw'\]"),
        ("threshold = -1\n", "gate.toml: threshold must be a number >= 0"),
        ("[[rule]]\nmetric = 3\n", "gate.toml: rule #1: metric must be a non-empty glob"),
        ("[[rule]]\nmetrc = 'x'\n", r"rule #1: unknown key\(s\) \['metrc'\]"),
        ("window = [\n", "not valid TOML"),
    ):
        path.write_text(text)
        with pytest.raises(ValueError, match=match):
            load_gate_config(path)
    with pytest.raises(FileNotFoundError, match="no gate config file"):
        load_gate_config(tmp_path / "missing.toml")


def test_noise_sigma_uses_history_spread_and_stored_iqr():
    assert noise_sigma([100, 100, 100], []) == 0
    assert noise_sigma([100, 100, 100], [13.49]) == pytest.approx(10.0)
    assert noise_sigma([90, 100, 110, 100, 95], []) == pytest.approx(1.4826 * 5)


def test_step_changes_mark_level_shifts_not_noise():
    flat = [100, 101, 99, 100, 102, 98, 100, 101]
    assert step_changes(flat) == []
    assert step_changes([100, 101, 99, 100, 80, 81, 79, 80]) == [4]
    assert step_changes([100, 101, 99, 100, 102, 98, 100, 75]) == [7]  # tonight's step shows
    assert step_changes([1.0, 1.0]) == []


# Six runs of the same code, recorded one after another on this project's shared 2-core CPU (quick
# profile throughput at 4096 vectors, one thread): value and IQR of vectors/s per run. The machine
# is shared, so the spread is large (up to 8x between runs) and heavy-tailed.
RECORDED = {
    "fsq:forward": [
        (95.74e6, 5.30e6),
        (95.45e6, 7.38e6),
        (97.69e6, 11.5e6),
        (96.10e6, 4.94e6),
        (102.5e6, 5.85e6),
        (103.1e6, 4.90e6),
    ],
    "fsq:train": [
        (6.689e6, 13.2e6),
        (17.09e6, 10.5e6),
        (19.27e6, 7.95e6),
        (3.943e6, 8.76e6),
        (6.264e6, 7.30e6),
        (19.94e6, 6.71e6),
    ],
    "fsq:encode": [
        (48.80e6, 0.630e6),
        (62.42e6, 46.4e6),
        (98.77e6, 4.71e6),
        (32.73e6, 0.0692e6),
        (31.07e6, 7.74e6),
        (19.85e6, 0.0),
    ],
    "fsq:decode": [
        (10.70e6, 17.3e6),
        (22.92e6, 1.85e6),
        (23.92e6, 9.27e6),
        (6.914e6, 18.5e6),
        (2.935e6, 11.2e6),
        (26.58e6, 20.0e6),
    ],
    "lfq:forward": [
        (8.577e6, 1.94e6),
        (9.443e6, 0.898e6),
        (8.707e6, 1.91e6),
        (3.919e6, 0.769e6),
        (4.936e6, 3.83e6),
        (3.125e6, 0.136e6),
    ],
    "lfq:train": [
        (10230.0, 0.0),
        (13380.0, 0.0),
        (15260.0, 0.0),
        (6615.0, 0.0),
        (5685.0, 0.0),
        (5934.0, 0.0),
    ],
    "lfq:encode": [
        (8.886e6, 2.00e6),
        (9.701e6, 0.749e6),
        (9.011e6, 1.83e6),
        (8.485e6, 2.34e6),
        (1.433e6, 0.0),
        (9.089e6, 3.40e6),
    ],
    "lfq:decode": [
        (29.20e6, 22.0e6),
        (33.28e6, 7.23e6),
        (29.72e6, 5.36e6),
        (32.62e6, 24.0e6),
        (34.30e6, 2.87e6),
        (33.74e6, 2.60e6),
    ],
}


def _recorded_run(store, i, slow=1.0):
    run = store.start_run("quick", ENV)
    rows = []
    for key, values in RECORDED.items():
        quantizer, op = key.split(":")
        value, spread = values[i]
        factor = slow if quantizer == "lfq" else 1.0
        rows.append(
            {
                "benchmark": "throughput",
                "quantizer": quantizer,
                "config": {"codebook_size": 1024},
                "metric": f"{op}.vectors_per_s@4096",
                "value": value / factor,
                "spread": spread / factor,
                "unit": "vectors/s",
                "higher_is_better": True,
                "cell_id": quantizer,
                "extra": {"operation": op, "size": 4096},
            }
        )
    store.write_rows(rows)
    store.finish_run(run)
    return run


def test_the_recorded_noise_of_this_machine_raises_no_alarm(store):
    # in the order they were recorded: the sixth run gated against the five before it
    runs = [_recorded_run(store, i) for i in range(6)]
    outcome = gate_run(store, runs[-1])
    assert outcome.gate.history_runs == runs[:-1]
    assert _flagged(outcome).empty
    assert (outcome.gate.checks["status"] == "ok").all()
    assert any("run-to-run noise" in n for n in outcome.gate.notes)


def test_on_the_recorded_noisy_history_only_a_slowdown_far_beyond_the_noise_is_flagged(store):
    runs = [_recorded_run(store, i) for i in range(5)]
    tonight = _recorded_run(store, 5, slow=4.0)  # every lfq figure 4x slower
    outcome = gate_run(store, tonight)
    assert outcome.gate.history_runs == runs
    flagged = _flagged(outcome)
    assert not flagged.empty and set(flagged["quantizer"]) == {"lfq"}
