"""The suite runner: isolation of failing cells, interrupts, resume, and bad input before anything runs."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from vqbench.cli import main
from vqbench.results import ResultStore, StoreError
from vqbench.suite import RunInterrupted, run_suite  # noqa: F401  (public API)

ROOT = Path(__file__).resolve().parents[1]
PLUG = Path(__file__).parent / "plugins" / "runner_plugins.py"


def profile(tmp_path: Path, quantizers: list[str], extra: str = "", timeout: float = 60) -> Path:
    """A tiny profile: codebook usage on 256 Gaussian vectors, two training steps."""
    names = ", ".join(f'"{q}"' for q in quantizers)
    path = tmp_path / "tiny.toml"
    path.write_text(f"""
[suite]
name = "tiny"
quantizers = [{names}]
threads = 1
timeout = {timeout}

[datasets.gaussian]
dim = 4
n_train = 256
n_eval = 256

[benchmarks.usage]
datasets = ["gaussian"]
train_steps = 2
batch = 32
{extra}
""")
    return path


def rows_of(store_path: Path, run_id: str):
    with ResultStore(store_path, readonly=True) as st:
        return st.rows(run_id), st.run_info(run_id)


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
    assert main(["run", "--suite", str(path), "--store", str(store), "--no-progress"]) == 0
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


def _start(args: list[str], env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "vqbench.cli", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _wait_for(path: Path, proc: subprocess.Popen, limit: float = 120) -> int:
    """The pid that the Slow plugin writes once its cell runs."""
    end = time.monotonic() + limit
    while time.monotonic() < end:
        if path.exists() and path.read_text().strip():
            return int(path.read_text())
        if proc.poll() is not None:
            raise AssertionError(f"the run ended early: {proc.stdout.read()}")
        time.sleep(0.2)
    raise AssertionError("the slow cell never started")


def _gone(pid: int, limit: float = 15) -> bool:
    end = time.monotonic() + limit
    while time.monotonic() < end:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.2)
    return False


def test_interrupts_keep_finished_rows_and_resume_runs_only_missing_cells(tmp_path, monkeypatch):
    path = profile(tmp_path, ["fsq", f"{PLUG}:Slow", "vq"])
    store = tmp_path / "r.sqlite"
    pid_file = tmp_path / "worker.pid"
    env = {**os.environ, "VQBENCH_TEST_SLOW_S": "120", "VQBENCH_TEST_PID_FILE": str(pid_file)}

    # Ctrl-C while the second cell runs: the first cell's rows stay, the run is "interrupted".
    proc = _start(["run", "--suite", str(path), "--store", str(store), "--no-progress"], env)
    worker = _wait_for(pid_file, proc)
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130, out
    assert "interrupted after 1 of 3 cells" in out and "--resume" in out
    assert _gone(worker), "the worker outlived the interrupted run"
    with ResultStore(store, readonly=True) as st:
        run_id = st.resolve_run("latest")
    rows, info = rows_of(store, run_id)
    assert info["status"] == "interrupted"
    assert set(rows["quantizer"]) == {"fsq"} and set(rows["status"]) == {"ok"}
    first_rows = len(rows)

    # SIGTERM on a resumed run: the same.
    pid_file.unlink()
    proc = _start(["run", "--resume", run_id, "--store", str(store), "--no-progress"], env)
    worker = _wait_for(pid_file, proc)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130, out
    assert "interrupted after 0 of 2 cells" in out
    assert _gone(worker)

    # SIGKILL of the runner: its worker exits too, whole rows only, the run stays "running".
    pid_file.unlink()
    proc = _start(["run", "--resume", run_id, "--store", str(store), "--no-progress"], env)
    worker = _wait_for(pid_file, proc)
    proc.kill()
    proc.communicate(timeout=30)
    assert _gone(worker), "the worker outlived its killed runner"
    rows, info = rows_of(store, run_id)
    assert info["status"] == "running" and len(rows) == first_rows

    # Resume runs only the two missing cells, in the same run.
    with pytest.raises(ValueError, match="drop quantizers"):
        run_suite(store=store, resume=run_id, quantizers="fsq")
    monkeypatch.setenv("VQBENCH_TEST_SLOW_S", "0")
    assert run_suite(store=store, resume=run_id[:12], progress=False) == run_id
    rows, info = rows_of(store, run_id)
    assert info["status"] == "finished"
    assert set(rows["status"]) == {"ok"}
    per_cell = rows.groupby("cell_id").size()
    assert len(per_cell) == 3 and per_cell.nunique() == 1  # no cell measured twice
    assert (rows["quantizer"] == "fsq").sum() == first_rows


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
        with pytest.raises(RuntimeError, match="CUDA is not available"):
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
    bad = tmp_path / "bad.toml"
    bad.write_text("[suite]\ntimeout = 'soon'\n[benchmarks.usage]\n")
    assert main(["run", "--suite", str(bad), "--store", str(store)]) == 2
    err = capsys.readouterr().err
    assert str(bad) in err and "'suite.timeout'" in err
