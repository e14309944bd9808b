"""Nothing lost, nothing forged: overlapping resumes, imports, dead runs, removed runs, the gate.

Each test reproduces a defect the way a user meets it, on a real store.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from _runner_profile import profile

from vqbench.cli import main
from vqbench.results import ResultStore
from vqbench.suite import run_suite
from vqbench.suite.prepare import prepare_run
from vqbench.suite.runner import _run

ENV = {"torch": "2.13.0", "cpu": "test cpu", "threads": 2, "git_sha": "abc"}


def _row(**kw):
    row = {
        "benchmark": "usage",
        "quantizer": "fsq",
        "metric": "utilization",
        "value": 0.5,
        "unit": "",
        "higher_is_better": True,
        "cell_id": "c0",
    }
    row.update(kw)
    return row


def test_two_overlapping_resumes_store_each_missing_cell_once(tmp_path):
    store = tmp_path / "r.sqlite"
    run_id = run_suite(profile(tmp_path, ["fsq", "vq"]), store=store, progress=False)
    with ResultStore(store) as st:
        first = st.rows(run_id)
    # the run died with its vq cell unmeasured
    with sqlite3.connect(store) as conn:
        conn.execute("DELETE FROM results WHERE run_id = ? AND quantizer = 'vq'", (run_id,))
        conn.execute("UPDATE runs SET status = 'interrupted' WHERE run_id = ?", (run_id,))
    with ResultStore(store) as st:
        late = prepare_run(st, resume=run_id, preflight=False)  # worked out its cells first
        assert [c.quantizer for c in late.todo] == ["vq"]
        # meanwhile another resume of the same run measured the missing cell and finished
        assert run_suite(store=store, resume=run_id, progress=False) == run_id
        _run(st, late, progress=False)
        rows = st.rows(run_id)
        assert st.run_info(run_id)["status"] == "finished"
    assert len(rows) == len(first)
    assert rows.groupby("cell_id").size().nunique() == 1  # no cell measured twice
