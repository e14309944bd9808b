"""The suite runner: failing cells are isolated, bad input fails before anything runs.

Interrupts and resume: tests/test_runner_interrupts.py.
"""

from __future__ import annotations

import json
import sqlite3

import pytest
from _runner_profile import PLUG, profile, rows_of

from vqbench.cli import main
from vqbench.errors import UserError
from vqbench.results import ResultStore, StoreError
from vqbench.suite import run_suite


def test_failing_cells_become_error_rows_and_the_rest_goes_on(tmp_path, capsys):
    """Raising, hanging past the timeout and crashing plugins; a missing dataset is a skipped row."""
    missing = tmp_path / "no-fashion-mnist"
    missing.mkdir()
    quantizers = ["fsq", f"{PLUG}:Exploding", "vq"]
    # The crashing and hanging cells come last, so that only one worker has to be replaced.
    extra = f"""
[benchmarks.usage_missing]
kind = "usage"
quantizers = ["fsq"]
datasets = ["fashion-mnist"]

[benchmarks.usage_bad]
kind = "usage"
quantizers = ["{PLUG}:Crashing", "{PLUG}:Hanging"]
datasets = ["gaussian"]
timeout = 3

[datasets.fashion-mnist]
path = "{missing}"
"""
    path = profile(tmp_path, quantizers, extra)
    store = tmp_path / "r.sqlite"
    assert main(["run", "--suite", str(path), "--store", str(store), "--no-progress"]) == 1  # cells failed
    out = capsys.readouterr().out
    assert "run id:" in out and str(store) in out
    with ResultStore(store, readonly=True) as st:
        run_id = st.resolve_run("latest")
    rows, info = rows_of(store, run_id)
    assert info["status"] == "finished"
    by_q = {q: g for q, g in rows[rows["dataset"] == "gaussian"].groupby("quantizer")}
    for q in ("fsq", "vq"):
        ok = by_q[q]
        assert set(ok["status"]) == {"ok"}
        assert 0 < ok.loc[ok["metric"] == "utilization", "value"].item() <= 1
    exploding = by_q[f"{PLUG}:Exploding"]
    assert list(exploding["status"]) == ["error"]
    assert "boom: this quantizer always fails" in exploding["message"].item()
    assert "Traceback" in json.loads(exploding["extra"].item())["traceback"]
    assert "timed out" in by_q[f"{PLUG}:Hanging"]["message"].item()
    assert "died with SIGKILL" in by_q[f"{PLUG}:Crashing"]["message"].item()
    skipped = rows[rows["dataset"] == "fashion-mnist"]
    assert list(skipped["status"]) == ["skipped"]
    assert "unavailable" in skipped["message"].item() and "dataset-fashion-mnist" in skipped["message"].item()
    assert "Exploding" in out and "skipped" in out  # the summary lists cells that were not measured


def test_bad_input_fails_before_anything_runs_and_loses_nothing(tmp_path):
    path = profile(tmp_path, ["fsq"])
    store = tmp_path / "r.sqlite"
    with ResultStore(store) as st:
        old = st.start_run("earlier", {"threads": 1})
        st.write_rows([{"benchmark": "usage", "quantizer": "fsq", "metric": "utilization", "value": 0.5}])
        st.finish_run(old)
    before = store.read_bytes()

    def runs() -> int:
        with ResultStore(store, readonly=True) as st:
            return len(st.runs())

    with pytest.raises(KeyError, match="unknown quantizer 'fsqq'"):
        run_suite(path, quantizers="fsqq", store=store)
    with pytest.raises(KeyError, match="unknown dataset 'gausian'"):
        run_suite(path, datasets="gausian", store=store)
    with pytest.raises(ValueError, match="unknown suite 'quik'"):
        run_suite("quik", store=store)
    bad_config = profile(tmp_path, ["vq"], "\n[quantizers.vq]\nno_such_option = 1\n")
    with pytest.raises(ValueError, match="quantizer 'vq' rejects config"):
        run_suite(bad_config, store=store)
    huge = profile(tmp_path, ["vq"], "\n[benchmarks.throughput]\nsizes = [68719476736]\n")
    with pytest.raises(ValueError, match="GiB"):
        run_suite(huge, store=store)
    with pytest.raises(KeyError, match="no run 'nope'"):
        run_suite(store=store, resume="nope")
    import torch

    if not torch.cuda.is_available():
        with pytest.raises(UserError, match="CUDA is not available"):
            run_suite(path, devices="cuda", store=store)
    assert runs() == 1
    with sqlite3.connect(store) as conn:
        assert conn.execute("SELECT COUNT(*) FROM results").fetchone()[0] == 1
    assert store.read_bytes() == before or runs() == 1

    corrupt = tmp_path / "corrupt.sqlite"
    corrupt.write_bytes(b"not a database" * 100)
    with pytest.raises(StoreError, match="not an SQLite database"):
        run_suite(path, store=corrupt)
    assert corrupt.read_bytes() == b"not a database" * 100
    assert main(["run", "--suite", str(path), "--store", str(corrupt)]) == 2


def test_cli_reports_bad_names_with_exit_code_2(tmp_path, capsys):
    path = profile(tmp_path, ["fsq"])
    store = tmp_path / "r.sqlite"
    assert main(["run", "--suite", str(path), "--store", str(store), "--quantizers", "fsq*,nope"]) == 2
    assert "vqbench run: error:" in capsys.readouterr().err
    assert main(["run", "--suite", str(path), "--resume", "latest", "--store", str(store)]) == 2
    assert "drop --suite" in capsys.readouterr().err
    bad = tmp_path / "bad.toml"
    bad.write_text("[suite]\ntimeout = 'soon'\n[benchmarks.usage]\n")
    assert main(["run", "--suite", str(bad), "--store", str(store)]) == 2
    err = capsys.readouterr().err
    assert str(bad) in err and "'suite.timeout'" in err
