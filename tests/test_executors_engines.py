"""A tiny suite through each executor: submitit's local executor, a local Ray cluster, and a real
one-node Slurm (tests/slurm_cluster.py; needs root and Debian's slurm-wlm and munge, as in CI).

Each executor stores the same figures as the local one; a cell that raises is an error row; a
worker killed mid-cell has its cell run once more (then, if lost again, an error row); Ctrl-C
cancels the engine's jobs and keeps finished rows; resume runs only the rest, writing nothing twice.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from pathlib import Path

import pytest
from _runner_profile import PLUG, profile, rows_of
from slurm_cluster import LocalSlurm, unavailable_reason

from vqbench.results import ResultStore
from vqbench.suite import RunInterrupted, run_suite

pytestmark = pytest.mark.executors
ENGINES = ("submitit-local", "ray", "slurm")


@pytest.fixture(scope="module")
def slurm_cluster(tmp_path_factory):
    """A real Slurm on this machine for the module's tests (SLURM_CONF points the clients at it)."""
    why = unavailable_reason()
    if why:
        pytest.skip(why)
    cluster = LocalSlurm(tmp_path_factory.mktemp("slurm")).start()
    old = os.environ.get("SLURM_CONF")
    os.environ["SLURM_CONF"] = str(cluster.conf)
    try:
        yield cluster
    finally:
        cluster.stop()
        if old is None:
            os.environ.pop("SLURM_CONF", None)
        else:
            os.environ["SLURM_CONF"] = old


@pytest.fixture(params=ENGINES)
def engine(request, tmp_path):
    """Executor settings for one engine (a dict of ``run_suite(executor=...)`` settings)."""
    kind = request.param
    if kind == "ray":
        pytest.importorskip("ray", reason="the ray executor needs: pip install 'vqbench[ray]'")
        return {"kind": "ray"}
    pytest.importorskip("submitit", reason="the slurm executor needs: pip install 'vqbench[slurm]'")
    settings = {"kind": "slurm", "folder": str(tmp_path / "jobs"), "time_limit": 10}
    if kind == "submitit-local":
        return {**settings, "cluster": "local"}
    request.getfixturevalue("slurm_cluster")
    return {**settings, "cluster": "slurm"}


def _figures(rows) -> set[tuple]:
    ok = rows[rows["status"] == "ok"]
    return set(zip(ok["benchmark"], ok["quantizer"], ok["dataset"], ok["metric"], strict=True))


def test_each_executor_stores_the_same_figures_as_local(engine, tmp_path):
    path = profile(tmp_path, ["fsq", "vq"])
    store = tmp_path / "r.sqlite"
    local = run_suite(path, store=store, progress=False)
    other = run_suite(path, store=store, progress=False, executor=engine, workers=2)
    rows_local, _ = rows_of(store, local)
    rows_other, info = rows_of(store, other)
    assert info["status"] == "finished" and info["config"]["executor"]["kind"] == engine["kind"]
    assert _figures(rows_other) == _figures(rows_local) and len(_figures(rows_local)) >= 8
    assert len(rows_other) == len(rows_local)
    workers = [json.loads(e)["worker"] for e in rows_other["extra"]]
    assert {w["executor"] for w in workers} == {engine["kind"]}
    assert all(w["host"] and w["pid"] != os.getpid() for w in workers)
    if engine.get("cluster") == "slurm":
        assert all(w.get("slurm_job_id") for w in workers)  # the cells ran inside Slurm jobs
    if engine.get("folder"):
        assert any(Path(engine["folder"]).glob("*/*.pkl")), "no submitit job folders with pickles"


def test_failing_and_killed_cells_on_each_executor(engine, tmp_path, monkeypatch):
    """A raising cell is an error row; a worker killed once is replaced and its cell runs again; a
    worker killed every time gives an error row after the retry; a hanging cell times out."""
    monkeypatch.setenv("VQBENCH_TEST_CRASH_MARK", str(tmp_path / "crashed-once"))
    hanging = f"""
[benchmarks.usage_hanging]
kind = "usage"
quantizers = ["{PLUG}:Hanging"]
datasets = ["gaussian"]
timeout = 3
"""
    names = ["fsq", f"{PLUG}:Exploding", f"{PLUG}:CrashingOnce", f"{PLUG}:Crashing"]
    path = profile(tmp_path, names, hanging)
    store = tmp_path / "r.sqlite"
    run_id = run_suite(path, store=store, progress=False, executor=engine, workers=1)
    rows, info = rows_of(store, run_id)
    assert info["status"] == "finished"
    by_q = {q.rpartition(":")[2]: g for q, g in rows.groupby("quantizer")}
    assert set(by_q["fsq"]["status"]) == {"ok"}
    exploding = by_q["Exploding"]
    assert list(exploding["status"]) == ["error"]
    assert "boom: this quantizer always fails" in exploding["message"].item()
    assert "Traceback" in json.loads(exploding["extra"].item())["traceback"]
    once = by_q["CrashingOnce"]
    assert set(once["status"]) == {"ok"} and (tmp_path / "crashed-once").exists()
    assert {json.loads(e)["attempts"] for e in once["extra"]} == {2}
    crashing = by_q["Crashing"]
    assert list(crashing["status"]) == ["error"]
    assert "lost 2 times" in crashing["message"].item()
    assert "timed out" in by_q["Hanging"]["message"].item()  # the per-cell timeout, on every engine
    assert rows.groupby("cell_id").size().max() == len(by_q["fsq"])  # nothing written twice


def _interrupt_when(path: Path, limit: float = 180) -> threading.Thread:
    """Send this process SIGINT (Ctrl-C) once the slow cell has written its worker's pid."""

    def watch() -> None:
        end = time.monotonic() + limit
        while time.monotonic() < end:
            if path.exists() and path.read_text().strip():
                os.kill(os.getpid(), signal.SIGINT)
                return
            time.sleep(0.2)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def _gone(pid: int, limit: float = 30) -> bool:
    end = time.monotonic() + limit
    while time.monotonic() < end:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.2)
    return False


def test_ctrl_c_cancels_the_jobs_and_resume_writes_nothing_twice(engine, tmp_path, monkeypatch):
    pid_file = tmp_path / "worker.pid"
    monkeypatch.setenv("VQBENCH_TEST_PID_FILE", str(pid_file))
    monkeypatch.setenv("VQBENCH_TEST_SLOW_S", "300")
    path = profile(tmp_path, ["fsq", f"{PLUG}:Slow", "vq"])
    store = tmp_path / "r.sqlite"
    watcher = _interrupt_when(pid_file)
    with pytest.raises(RunInterrupted, match="interrupted after 1 of 3 cells") as caught:
        run_suite(path, store=store, progress=False, executor=engine, workers=1)
    watcher.join(timeout=5)
    run_id = caught.value.run_id
    assert _gone(int(pid_file.read_text())), "the worker job outlived the interrupted run"
    rows, info = rows_of(store, run_id)
    assert info["status"] == "interrupted"
    assert set(rows["quantizer"]) == {"fsq"} and set(rows["status"]) == {"ok"}
    first = rows.copy()

    monkeypatch.setenv("VQBENCH_TEST_SLOW_S", "0")
    assert run_suite(store=store, resume=run_id, progress=False, executor=engine) == run_id
    rows, info = rows_of(store, run_id)
    assert info["status"] == "finished" and set(rows["status"]) == {"ok"}
    per_cell = rows.groupby("cell_id").size()
    assert len(per_cell) == 3 and per_cell.nunique() == 1  # no cell measured twice
    kept = rows[rows["quantizer"] == "fsq"]
    assert (
        kept[["metric", "value", "time"]]
        .reset_index(drop=True)
        .equals(first[["metric", "value", "time"]].reset_index(drop=True))
    )  # the finished cell's rows are untouched
    with ResultStore(store, readonly=True) as st:
        assert st.run_info(run_id)["config"]["executor"]["kind"] == engine["kind"]


def test_a_cancelled_slurm_job_has_its_cell_run_again_on_a_new_job(slurm_cluster, tmp_path, monkeypatch):
    """scancel (what preemption or a lost node look like to the run) on the job running a cell."""
    import subprocess

    mark = tmp_path / "slow-once"
    monkeypatch.setenv("VQBENCH_TEST_SLOW_MARK", str(mark))
    path = profile(tmp_path, [f"{PLUG}:SlowOnce", "fsq"])
    cancelled: list[str] = []

    def cancel() -> None:
        end = time.monotonic() + 180
        while time.monotonic() < end and not mark.exists():
            time.sleep(0.2)
        job = mark.read_text().split()[1]
        cancelled.append(job)
        subprocess.run(["scancel", job], env=slurm_cluster.env, check=True)

    thread = threading.Thread(target=cancel, daemon=True)
    thread.start()
    settings = {"kind": "slurm", "folder": str(tmp_path / "jobs"), "time_limit": 10}
    run_id = run_suite(path, store=tmp_path / "r.sqlite", progress=False, executor=settings, workers=1)
    thread.join(timeout=5)
    rows, info = rows_of(tmp_path / "r.sqlite", run_id)
    assert info["status"] == "finished" and set(rows["status"]) == {"ok"} and cancelled
    slow = rows[rows["quantizer"].str.endswith(":SlowOnce")]
    extras = [json.loads(e) for e in slow["extra"]]
    assert {e["attempts"] for e in extras} == {2}
    assert {e["worker"]["slurm_job_id"] for e in extras} != {cancelled[0]}  # ran on a new job


def test_sigterm_on_a_ray_run_exits_130_like_the_others(tmp_path):
    pytest.importorskip("ray", reason="the ray executor needs: pip install 'vqbench[ray]'")
    import subprocess
    import sys

    pid_file = tmp_path / "worker.pid"
    path = profile(tmp_path, ["fsq", f"{PLUG}:Slow"])
    store = tmp_path / "r.sqlite"
    root = Path(__file__).resolve().parents[1]
    env = {
        **os.environ,
        "VQBENCH_TEST_PID_FILE": str(pid_file),
        "VQBENCH_TEST_SLOW_S": "300",
        "PYTHONPATH": os.pathsep.join([str(root), str(root / "tests")]),
    }
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "vqbench.cli",
            "run",
            "--suite",
            str(path),
            "--store",
            str(store),
            "--executor",
            "ray",
            "--workers",
            "1",
            "--no-progress",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    end = time.monotonic() + 300
    while not (pid_file.exists() and pid_file.read_text().strip()) and time.monotonic() < end:
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=180)
    assert proc.returncode == 130, out + err
    assert "Traceback" not in err and "interrupted after" in out


def test_plugins_and_a_candidate_files_neighbours_reach_each_executors_workers(engine, tmp_path, monkeypatch):
    """``plugins`` modules are imported in every job or actor, with the current folder and a
    candidate file's folder on its import path: a decorator-registered name and a file that imports
    a module beside it both measure there."""
    from _plugin_helpers import isolated_registry

    plugins = Path(__file__).parent / "plugins"
    monkeypatch.chdir(plugins)  # registered_plugin.py is beside the user, not installed
    names = ["test-registered", f"{plugins}/beside/uses_helper.py:Beside"]
    store = tmp_path / "r.sqlite"
    monkeypatch.delitem(sys.modules, "registered_plugin", raising=False)  # imported afresh, registers
    with isolated_registry():
        run_id = run_suite(
            profile(tmp_path, names),
            store=store,
            progress=False,
            executor=engine,
            workers=1,
            plugins="registered_plugin",
        )
    rows, info = rows_of(store, run_id)
    assert set(rows["status"]) == {"ok"} and set(rows["quantizer"]) == set(names)
    assert {json.loads(e)["worker"]["executor"] for e in rows["extra"]} == {engine["kind"]}
    assert info["config"]["plugins"] == ["registered_plugin"]
