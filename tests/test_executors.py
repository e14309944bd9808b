"""Executors without an engine run: GPU and core pinning (with fake device lists), settings from the
profile and the command line, missing extras, the dry run, and what reports make of several hosts
and seeds. The engines themselves: tests/test_executors_engines.py."""

from __future__ import annotations

import json
import sys

import pytest
from _report_synth import run_rows
from _runner_profile import PLUG, profile

from vqbench.cli import main
from vqbench.results import ResultStore
from vqbench.suite import Cell
from vqbench.suite._worker import WorkerSetup, _on_this_worker
from vqbench.suite.estimate import cell_costs, wall_time
from vqbench.suite.executors import ExecutorSettings, MissingExtraError, parse_sbatch, require_engine
from vqbench.suite.executors._connections import Slot
from vqbench.suite.executors.local import LocalExecutor, plan_workers, visible_gpus
from vqbench.suite.prepare import executor_settings
from vqbench.suite.profiles import ProfileError, parse_profile
from vqbench.suite.rows import rows_for


def _cell(device: str = "cpu", quantizer: str = "fsq", benchmark: str = "usage") -> Cell:
    return Cell(suite="t", benchmark=benchmark, quantizer=quantizer, device=device, dataset="gaussian")


# -- GPU and core pinning ------------------------------------------------------------------------
def test_one_worker_per_visible_gpu_each_pinned_with_its_own_cores():
    gpus = visible_gpus({"CUDA_VISIBLE_DEVICES": "3,5,6"})
    assert gpus == ["3", "5", "6"]
    assert visible_gpus({}, count=2) == ["0", "1"]
    assert visible_gpus({"CUDA_VISIBLE_DEVICES": ""}, count=4) == []
    pins = plan_workers([_cell("cuda")] * 5, None, None, list(range(12)), gpus)
    assert [p.gpu for p in pins] == ["3", "5", "6"]
    assert [p.cpus for p in pins] == [(0, 1, 2, 3), (4, 5, 6, 7), (8, 9, 10, 11)]
    assert {p.threads for p in pins} == {4}
    # each worker's environment shows it its own GPU only
    setup = WorkerSetup(threads=None)
    envs = [LocalExecutor(pins, setup)._setup_for(p) for p in pins]
    assert [e.env["CUDA_VISIBLE_DEVICES"] for e in envs] == ["3", "5", "6"]
    assert [e.pinned_gpu for e in envs] == ["3", "5", "6"] and envs[0].env["OMP_NUM_THREADS"] == "4"


def test_gpu_pinning_refuses_shared_gpus_and_routes_indexed_cells():
    with pytest.raises(ValueError, match="need 3 GPUs .* 2 are visible"):
        plan_workers([_cell("cuda")], 3, None, [0, 1, 2, 3], ["0", "1"])
    with pytest.raises(RuntimeError, match="no GPU is visible"):
        plan_workers([_cell("cuda")], None, None, [0, 1], [])
    with pytest.raises(ValueError, match="cuda:7"):
        plan_workers([_cell("cuda:7")], None, None, [0, 1], ["0", "1"])
    pins = plan_workers([_cell("cuda:1"), _cell("cuda")], None, 1, [0, 1, 2, 3], ["0", "1"])
    slots = [Slot(handle=None, gpu=p.gpu) for p in pins]
    assert [s.accepts(_cell("cuda:1")) for s in slots] == [False, True]
    assert [s.accepts(_cell("cuda")) for s in slots] == [True, True]
    assert [s.accepts(_cell("cpu")) for s in slots] == [True, True]
    # inside a pinned worker its GPU is cuda:0, so cuda:N cells run on "cuda"
    assert _on_this_worker(_cell("cuda:1"), WorkerSetup(pinned_gpu="1")).device == "cuda"
    assert _on_this_worker(_cell("cuda:1"), WorkerSetup()).device == "cuda:1"
    assert _on_this_worker(_cell("cuda:1"), WorkerSetup(executor="slurm")).device == "cuda"


def test_cpu_workers_never_share_cores():
    pins = plan_workers([_cell()] * 4, 2, 1, [4, 5, 6], [])
    assert [p.cpus for p in pins] == [(4,), (5,)] and [p.gpu for p in pins] == [None, None]
    assert plan_workers([_cell()], None, None, [0, 1], []) == plan_workers([_cell()], 1, None, [0, 1], [])
    assert plan_workers([_cell()], None, None, [0, 1], [])[0].cpus is None  # one worker: torch decides
    with pytest.raises(ValueError, match="3 workers x 1 threads need 3 CPU cores .* may use 2"):
        plan_workers([_cell()], 3, 1, [0, 1], [])
    with pytest.raises(ValueError, match="positive integer"):
        plan_workers([_cell()], 0, None, [0, 1], [])


def test_two_local_cpu_workers_record_disjoint_cores(tmp_path):
    path = profile(tmp_path, ["fsq", "vq", f"{PLUG}:Exploding"])
    store = tmp_path / "r.sqlite"
    from vqbench.suite import run_suite

    run_id = run_suite(path, store=store, progress=False, workers=2)
    with ResultStore(store, readonly=True) as st:
        rows = st.rows(run_id)
        config = st.run_info(run_id)["config"]
    workers = {w["pid"]: tuple(w["cpus"]) for w in (json.loads(e)["worker"] for e in rows["extra"])}
    assert config["executor"]["kind"] == "local" and config["workers"] == 2
    assert all(len(c) == 1 for c in workers.values())
    assert len(set(workers.values())) == len(workers)  # no two workers on one core
    assert {json.loads(e)["worker"]["threads"] for e in rows["extra"]} == {1}


# -- settings --------------------------------------------------------------------------------------
def test_executor_table_in_a_profile_and_command_line_overrides():
    base = {"benchmarks": {"usage": {"datasets": ["gaussian"]}}}
    table = {"kind": "slurm", "partition": "gpu", "gpus_per_job": 1, "sbatch": {"qos": "hi"}}
    prof = parse_profile({**base, "executor": table}, source="p.toml")
    settings = executor_settings(prof.executor, {"account": "vision", "sbatch": {"constraint": "h100"}}, 8)
    assert (settings.kind, settings.partition, settings.account) == ("slurm", "gpu", "vision")
    assert settings.workers == 8 and settings.gpus_per_job == 1
    assert settings.sbatch == {"qos": "hi", "constraint": "h100"}
    other = executor_settings(prof.executor, "ray")  # another engine: the Slurm keys no longer apply
    assert other.kind == "ray" and other.partition is None
    with pytest.raises(ProfileError, match=r"p.toml: key 'executor.partiton'.*did you mean 'partition'"):
        parse_profile({**base, "executor": {"partiton": "gpu"}}, source="p.toml")
    with pytest.raises(ProfileError, match="executor must be one of local, slurm, ray, got 'k8s'"):
        parse_profile({**base, "executor": {"kind": "k8s"}}, source="p.toml")
    with pytest.raises(ValueError, match="gpus_per_job must be a positive integer"):
        ExecutorSettings(kind="slurm", gpus_per_job=0)
    assert parse_sbatch(["qos=high", "--mem-per-gpu=40G"]) == {"qos": "high", "mem_per_gpu": "40G"}
    with pytest.raises(ValueError, match="KEY=VALUE"):
        parse_sbatch(["qos"])


def test_a_missing_engine_names_its_extra(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)
    monkeypatch.setitem(sys.modules, "submitit", None)
    with pytest.raises(MissingExtraError, match=r"pip install 'vqbench\[ray\]'"):
        require_engine("ray")
    with pytest.raises(MissingExtraError, match=r"pip install 'vqbench\[slurm\]'"):
        require_engine("slurm")
    require_engine("local")
    path = profile(tmp_path, ["fsq"])
    store = tmp_path / "r.sqlite"
    args = ["run", "--suite", str(path), "--store", str(store), "--no-progress"]
    assert main([*args, "--executor", "ray"]) == 2
    assert "vqbench[ray]" in capsys.readouterr().err
    assert not store.exists()  # nothing started, and a refusing command creates no store


# -- plan and cost -------------------------------------------------------------------------------
def test_dry_run_prints_cells_missing_data_cost_and_wall_time(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "250")
    missing = tmp_path / "no-fmnist"
    missing.mkdir()
    extra = f"""
[benchmarks.fm]
kind = "usage"
datasets = ["fashion-mnist"]

[datasets.fashion-mnist]
path = "{missing}"
"""
    path = profile(tmp_path, ["fsq", "vq"], extra)
    store = tmp_path / "r.sqlite"
    args = ["run", "--suite", str(path), "--store", str(store), "--dry-run"]
    assert main([*args, "--executor", "slurm", "--workers", "9"]) == 0
    out = capsys.readouterr().out
    assert "4 cells" in out and "known cost" in out and "missing dataset fashion-mnist" in out
    assert "slurm executor, 4 worker(s)" in out and "Slurm queue" in out  # never more jobs than cells
    assert not store.exists()  # a dry run writes nothing
    # with history: the same cells' stored times
    from vqbench.suite.expand import expand_profile
    from vqbench.suite.profiles import load_profile

    cells = expand_profile(load_profile(path)).cells
    with ResultStore(store) as st:
        run = st.start_run("tiny", {"threads": 1})
        for i, cell in enumerate(cells):
            outcome = {"status": "ok", "seconds": 100.0 * (i + 1), "figures": [{"metric": "m", "value": 1.0}]}
            st.write_rows(rows_for(cell, run, outcome))
        st.finish_run(run)
        costs = cell_costs(cells, st)
    assert [c.seconds for c in costs] == [100.0, 200.0, 300.0, 400.0]
    assert {c.source for c in costs} == {"this cell"}
    assert main([*args, "--workers", "1"]) == 0
    out = capsys.readouterr().out
    assert "this cell" in out and "16.8 min" in out  # 1000 s of cells + a worker start


def test_known_cost_of_a_training_cell_follows_its_step_cap_and_codebook():
    def cell(quantizer, size, steps):
        config = {"codebook_size": size} if size else {}
        return Cell("s", "reconstruction", quantizer, config, "digits", params={"train_steps": steps})

    fsq, vq_small, vq_large, fsq_long = (
        c.seconds
        for c in cell_costs(
            [cell("fsq", 4096, 1000), cell("vq", 256, 1000), cell("vq", 4096, 1000), cell("fsq", 4096, 4000)]
        )
    )
    assert fsq_long == pytest.approx(4 * fsq)
    assert fsq < vq_small < vq_large

    def gpu(quantizer):  # measured H100 costs: 5000 steps at 2^16 codes, FSQ 13 s, VQ 36 s, LFQ 49 s
        return Cell(
            "s",
            "reconstruction",
            quantizer,
            {"codebook_size": 2**16},
            "digits",
            device="cuda",
            params={"train_steps": 5000},
        )

    fsq_gpu, vq_gpu = (c.seconds for c in cell_costs([gpu("fsq"), gpu("vq")]))
    assert fsq_gpu == pytest.approx(13, rel=0.2) and vq_gpu == pytest.approx(42, rel=0.25)


def test_wall_time_spreads_cells_longest_first():
    assert wall_time([10, 10, 10, 10], 2, start=0) == 20
    assert wall_time([30, 10, 10, 10], 2, start=0) == 30
    assert wall_time([5], 8, start=1) == 6
    assert wall_time([], 3) == 0


# -- reports: several hosts and seeds ------------------------------------------------------------
def test_report_says_when_cells_came_from_several_hosts_and_shows_mean_and_sd_over_seeds(tmp_path):
    store = tmp_path / "r.sqlite"
    with ResultStore(store) as st:
        run = st.start_run("full", {"threads": 1}, {"executor": {"kind": "slurm"}})
        rows = []
        for seed in (0, 1, 2):
            for row in run_rows(seed=seed, quantizers=("fsq", "vq"), samples=False, backends=("eager",)):
                row["seed"] = seed
                row["cell_id"] = f"{row['cell_id']}-s{seed}"
                row["extra"] = {**row.get("extra", {}), "worker": {"host": f"node{seed % 2}"}}
                rows.append(row)
        st.write_rows(rows)
        st.finish_run(run)
    out = tmp_path / "rep"
    args = ["report", run, "--store", str(store), "--format", "md", "--no-figures"]
    assert main([*args, "--out", str(out)]) == 0
    text = (out / "report.md").read_text()
    assert "cells came from 2 hosts (slurm executor)" in text
    assert "mean ± sd over 3 seeds" in text
    assert " ± " in text.split("mean ± sd over 3 seeds", 1)[1]  # values carry their spread over seeds


def test_seeds_fan_out_like_any_other_axis(tmp_path):
    from vqbench.suite.expand import expand_profile
    from vqbench.suite.profiles import load_profile

    one = expand_profile(load_profile(profile(tmp_path, ["fsq", "vq"]))).cells
    many = expand_profile(load_profile(profile(tmp_path, ["fsq", "vq"], "seeds = [0, 1, 2]"))).cells
    assert len(many) == 3 * len(one) and len({c.cell_id for c in many}) == len(many)
    assert sorted(c.seed for c in many) == [0, 0, 1, 1, 2, 2]
    again = expand_profile(load_profile(profile(tmp_path, ["fsq", "vq"])), seed=7).cells
    assert {c.seed for c in again} == {7}


def test_workers_that_cannot_start_stop_the_run_with_their_reason():
    from vqbench.suite.executors.local import WorkerPin
    from vqbench.suite.expand import Plan
    from vqbench.suite.progress import ProgressBar
    from vqbench.suite.run_loop import CellLoop

    cells = [_cell()]
    bad = LocalExecutor([WorkerPin(None, (4096,), 1)], WorkerSetup(threads=1))  # no such core

    class Store:
        def write_rows(self, rows):
            raise AssertionError("nothing may be written")

    runner = CellLoop(Plan("t", cells), Store(), "run", cells, ProgressBar(1, False, "t"), bad)
    why = r"(?s)fail to start on the local executor: OSError.*sched_setaffinity.*main__"
    with pytest.raises(RuntimeError, match=why):
        runner.run()
    assert bad.slots == []


def test_reports_read_stored_rows_only():
    """Layering: no module of vqbench.reports imports the suite, the quantizers or the datasets;
    commands that run a suite and then report live at the face (vqbench/_commands)."""
    import ast
    from pathlib import Path

    import vqbench.reports

    for path in Path(vqbench.reports.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                assert not name.startswith(("vqbench.suite", "vqbench.quantizers", "vqbench.datasets")), (
                    f"{path.name} imports {name}"
                )


def test_slurm_queue_time_does_not_count_as_a_failed_start(tmp_path):
    pytest.importorskip("submitit")
    import time

    from vqbench.suite.executors.slurm import SlurmExecutor

    settings = ExecutorSettings(kind="slurm", cluster="local", folder=str(tmp_path), start_timeout=1)
    executor = SlurmExecutor(settings, WorkerSetup(), 1)

    class Job:
        def __init__(self, state: str) -> None:
            self.state = state

    now = time.monotonic()
    waiting = Slot(handle=Job("PENDING"), spawned=now - 5)
    assert not executor._start_overdue(waiting, now) and waiting.spawned == now
    assert executor._start_overdue(Slot(handle=Job("RUNNING"), spawned=now - 5), now)
    assert not executor._start_overdue(Slot(handle=Job("RUNNING"), spawned=now), now)
