"""Dependency environments: a suite under two package sets, compared; the nightly across an upgrade."""

from __future__ import annotations

import json
import subprocess
import sys

import pandas as pd
import pytest

from vqbench.errors import UserError
from vqbench.reports.history import upgrade_history
from vqbench.suite.cells import Cell
from vqbench.suite.environments import requirements

OLD, NEW = "vector-quantize-pytorch==1.32.0", "vector-quantize-pytorch==1.34.1"


def test_a_cell_of_this_environment_keeps_its_id():
    cell = Cell(suite="quick", benchmark="usage", quantizer="fsq", config={"codebook_size": 256})
    assert "environment" not in cell.to_dict()
    moved = Cell(**{**cell.to_dict(), "environment": OLD})
    assert moved.to_dict()["environment"] == OLD and moved.cell_id != cell.cell_id
    assert Cell.from_dict(moved.to_dict()) == moved


@pytest.mark.parametrize("spec", ["", "  ", "--index-url x pkg", "'unclosed"])
def test_an_environment_spec_must_be_requirements(spec):
    with pytest.raises(UserError, match="--env expects pip requirements"):
        requirements(spec)
    assert requirements("a==1 b>=2") == ["a==1", "b>=2"]


def _runs(*envs: dict) -> pd.DataFrame:
    rows = []
    for i, env in enumerate(envs):
        rows.append(
            {
                "run_id": f"r{i}",
                "started": f"2026-01-0{i + 1}T00:00:00",
                "suite": "quick",
                "status": "finished",
                "environment": json.dumps(env),
                "env_hash": json.dumps(env, sort_keys=True),
                "config": "{}",
            }
        )
    return pd.DataFrame(rows)


def test_the_nightly_judges_an_upgrade_against_the_runs_before_it():
    old = {"cpu": "EPYC", "torch": "2.13.0", "vector_quantize_pytorch": "1.32.0"}
    new = {**old, "vector_quantize_pytorch": "1.34.1"}
    runs = _runs(old, old, new)
    ids, changed = upgrade_history(runs, "r2", "quick", new, window=10)
    assert ids == ["r0", "r1"]
    assert changed == {"vector_quantize_pytorch": ["1.32.0", "1.34.1"]}
    other_machine = {**new, "cpu": "Xeon"}
    assert upgrade_history(_runs(old, old, other_machine), "r2", "quick", other_machine, 10) == ([], {})
    assert upgrade_history(_runs(new), "r0", "quick", new, 10) == ([], {})  # nothing before it


@pytest.mark.integration
def test_compare_two_dependency_sets_runs_each_in_its_environment(tmp_path):
    """Builds two environments with pip (the older upstream release needs the network or a cache)."""
    profile = tmp_path / "tiny.toml"
    profile.write_text(
        "[suite]\nquantizers = ['vq', 'fsq']\ncodebook_sizes = [256]\nthreads = 1\ntimeout = 300\n"
        "registered_settings = true\n\n"
        "[datasets.gaussian-mixture]\ndim = 16\nn_train = 2048\nn_eval = 4096\n\n"
        "[benchmarks.usage]\ndatasets = ['gaussian-mixture']\ntrain_steps = 30\nbatch = 128\n"
    )
    store = tmp_path / "s.sqlite"
    cmd = [sys.executable, "-m", "vqbench.cli", "compare", "--env", OLD, "--env", NEW]
    cmd += ["--suite", str(profile), "--store", str(store), "--no-progress", "--out", str(tmp_path / "out")]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "utilization" in done.stdout and "vector_quantize_pytorch: 1.32.0" in done.stdout

    from vqbench.results import open_store

    with open_store(store, readonly=True) as st:
        runs = st.runs()
        assert len(runs) == 2
        built = {}
        for run_id, environment in zip(runs["run_id"], runs["environment"], strict=True):
            rows = st.rows(run_id)
            assert len(rows) and (rows["status"] == "ok").all()
            workers = {
                (e if isinstance(e, dict) else json.loads(e))["worker"]["vector_quantize_pytorch"]
                for e in rows["extra"]
            }
            built[json.loads(environment)["vector_quantize_pytorch"]] = workers
    assert built == {"1.32.0": {"1.32.0"}, "1.34.1": {"1.34.1"}}  # each run's rows from its own release
    assert len(list((tmp_path / "envs").glob("*/bin/python"))) == 2  # cached beside the store
