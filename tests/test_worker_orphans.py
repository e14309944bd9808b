"""A local worker goes with its coordinator, even when it is stuck in C with the GIL held."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from _runner_profile import PLUG, profile

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_kill_9_of_the_coordinator_takes_a_worker_stuck_in_c_with_it(tmp_path):
    pid_file = tmp_path / "worker.pid"
    env = {
        **os.environ,
        "VQBENCH_TEST_PID_FILE": str(pid_file),
        "VQBENCH_TEST_SLOW_S": "120",
        "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests")]),
    }
    path = profile(tmp_path, [f"{PLUG}:StuckInC"], timeout=600)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "vqbench.cli",
            "run",
            "--suite",
            str(path),
            "--store",
            str(tmp_path / "r.sqlite"),
            "--no-progress",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        end = time.monotonic() + 300
        while not (pid_file.exists() and pid_file.read_text().strip()):
            assert proc.poll() is None and time.monotonic() < end, "the worker never started its cell"
            time.sleep(0.2)
        worker = int(pid_file.read_text())
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        end = time.monotonic() + 20
        while time.monotonic() < end:
            try:
                os.kill(worker, 0)
            except ProcessLookupError:
                return
            time.sleep(0.2)
        os.kill(worker, signal.SIGKILL)
        pytest.fail("the worker outlived its coordinator's kill -9")
    finally:
        if proc.poll() is None:
            proc.kill()
