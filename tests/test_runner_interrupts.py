"""The suite runner under Ctrl-C, SIGTERM and SIGKILL: finished rows stay, resume runs the rest."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from _runner_profile import PLUG, profile, rows_of

from vqbench.results import ResultStore
from vqbench.suite import run_suite

ROOT = Path(__file__).resolve().parents[1]


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

    # SIGKILL of the runner: its worker exits too, whole rows only, the run shows as "died".
    pid_file.unlink()
    proc = _start(["run", "--resume", run_id, "--store", str(store), "--no-progress"], env)
    worker = _wait_for(pid_file, proc)
    proc.kill()
    proc.communicate(timeout=30)
    assert _gone(worker), "the worker outlived its killed runner"
    rows, info = rows_of(store, run_id)
    assert info["status"] == "died" and len(rows) == first_rows
    listed = subprocess.run(
        [sys.executable, "-m", "vqbench.cli", "results", "--store", str(store)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    line = next(ln for ln in listed.splitlines() if run_id in ln)
    assert "died" in line and f"vqbench run --resume {run_id}" in listed

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
