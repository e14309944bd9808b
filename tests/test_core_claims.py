"""Two runs at once on one machine take disjoint cores, or say that they share."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from vqbench.results import ResultStore

ROOT = Path(__file__).resolve().parents[1]
PROFILE = ROOT / "tests" / "plugins" / "escape_profile.toml"

pytestmark = pytest.mark.skipif(
    not hasattr(os, "sched_setaffinity") or len(os.sched_getaffinity(0)) < 2,
    reason="needs two cores and CPU affinity",
)

_HOLDER = textwrap.dedent(
    """
    import json, sys
    from vqbench.suite.cells import Cell
    from vqbench.suite.executors import ExecutorSettings, make_executor
    cells = [Cell(suite="t", benchmark="usage", quantizer="fsq", dataset="gaussian")]
    pool = make_executor(ExecutorSettings(), cells, workers=1, threads=int(sys.argv[1]))
    print(json.dumps([list(p.cpus) for p in pool.pins]), flush=True)
    sys.stdin.readline()  # hold the cores until told
    pool.close()
    """
)


def _env(tmp_path: Path) -> dict:
    """The test's own lock folder (``$TMPDIR``): other vqbench runs on this machine claim no core here."""
    return {**os.environ, "PYTHONPATH": str(ROOT), "TMPDIR": str(tmp_path)}


def _hold(tmp_path: Path, threads: int) -> tuple[subprocess.Popen, list[int]]:
    script = tmp_path / "holder.py"
    script.write_text(_HOLDER)
    proc = subprocess.Popen(
        [sys.executable, str(script), str(threads)],
        env=_env(tmp_path),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    cores = [c for pin in json.loads(proc.stdout.readline()) for c in pin]
    return proc, cores


def _run_cores(tmp_path: Path) -> list[dict]:
    store = tmp_path / "s.sqlite"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "vqbench.cli",
            "run",
            "--store",
            str(store),
            "--no-progress",
            "--suite",
            str(PROFILE),
        ],
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    with ResultStore(store, readonly=True) as st:
        extra = json.loads(st.rows(st.resolve_run("latest"))["extra"].iloc[0])
    return extra["worker"]


def test_a_second_run_takes_the_core_the_first_does_not_hold(tmp_path):
    holder, held = _hold(tmp_path, threads=1)
    try:
        worker = _run_cores(tmp_path)
    finally:
        holder.communicate("\n", timeout=60)
    assert len(held) == 1
    assert not set(worker["cpus"]) & set(held), (worker["cpus"], held)
    assert "shared_cpus" not in worker


def test_a_run_that_finds_no_free_core_says_it_shares(tmp_path):
    all_cores = len(os.sched_getaffinity(0))
    holder, held = _hold(tmp_path, threads=all_cores)
    try:
        worker = _run_cores(tmp_path)
    finally:
        holder.communicate("\n", timeout=60)
    assert len(held) == all_cores
    assert worker["shared_cpus"] == worker["cpus"]
