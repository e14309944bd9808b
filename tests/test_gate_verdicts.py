"""The nightly gate passes only what it saw: unfinished runs, missing figures, lasting slowdowns.

Driven through ``vqbench nightly --run RUN`` on a store with a synthetic history, as a team's
nightly job would call it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from _report_synth import ENV, QUANTIZERS, add_run, run_rows

from vqbench.cli import main
from vqbench.reports.nightly import EXIT_INCOMPLETE
from vqbench.results import ResultStore

ROOT = Path(__file__).resolve().parents[1]


def _nightly(store: Path, out: Path, *extra: str) -> int:
    return main(["nightly", "--store", str(store), "--out", str(out), "--baseline", "none", *extra])


@pytest.fixture
def history(tmp_path):
    path = tmp_path / "h.sqlite"
    with ResultStore(path) as st:
        for i in range(6):
            add_run(st, seed=i, samples=False)
    return path


_DYING_RUN = textwrap.dedent(
    """
    import json, os, signal, sys
    from vqbench.results import ResultStore
    st = ResultStore(sys.argv[1])
    rows = json.loads(open(sys.argv[2]).read())
    run = st.start_run("full", json.loads(sys.argv[3]), {"argv": ["synthetic"]})
    st.write_rows(rows)  # the first cell, then the process dies
    print(run, flush=True)
    os.kill(os.getpid(), signal.SIGKILL)
    """
)


def test_a_run_that_died_part_way_fails_the_gate_with_its_own_code(history, tmp_path, capsys):
    script = tmp_path / "dying.py"
    script.write_text(_DYING_RUN)
    rows = [r for r in run_rows(seed=50, samples=False) if r["quantizer"] == QUANTIZERS[0]]
    (tmp_path / "rows.json").write_text(json.dumps(rows))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, str(script), str(history), str(tmp_path / "rows.json"), json.dumps(ENV)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == -signal.SIGKILL
    run_id = proc.stdout.strip()
    code = _nightly(history, tmp_path / "out", "--run", "latest")
    out = capsys.readouterr().out
    assert code == EXIT_INCOMPLETE == 4
    assert f"run {run_id} is died, not finished" in out and "missing" in out
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["status"] == "incomplete" and summary["exit_code"] == 4


def test_a_finished_run_lacking_figures_of_its_history_fails_the_gate(history, tmp_path, capsys):
    with ResultStore(history) as st:
        run = add_run(st, seed=60, samples=False, quantizers=QUANTIZERS[:-1])
    assert _nightly(history, tmp_path / "out", "--run", run) == 4
    assert "figure(s) that the history measured are missing" in capsys.readouterr().out
    # the same run whole passes
    with ResultStore(history) as st:
        whole = add_run(st, seed=61, samples=False)
    assert _nightly(history, tmp_path / "out2", "--run", whole) == 0


def test_a_lasting_slowdown_stays_flagged_until_accepted(history, tmp_path, capsys):
    codes = []
    for night in range(6):
        with ResultStore(history) as st:
            run = add_run(st, seed=100 + night, samples=False, slow={"vq": 1.5})
        codes.append(_nightly(history, tmp_path / f"n{night}", "--run", run))
        summary = json.loads((tmp_path / f"n{night}" / "summary.json").read_text())
        assert {r["quantizer"] for r in summary["regressions"]} == {"vq"}, night
    assert codes == [1] * 6  # nights 4-6 too: the slow nights never became the baseline
    assert "--accept" in capsys.readouterr().out
    assert main(["nightly", "--store", str(history), "--accept", run]) == 0
    with ResultStore(history) as st:
        assert "accepted" in st.run_info(run)["config"]
        after = add_run(st, seed=200, samples=False, slow={"vq": 1.5})
    assert _nightly(history, tmp_path / "after", "--run", after) == 0


def test_imported_runs_join_the_history_only_when_asked(history, tmp_path):
    other = tmp_path / "other.sqlite"
    with ResultStore(other) as st:  # doctored nights elsewhere, slow like tonight
        runs = [add_run(st, seed=300 + i, samples=False, slow={"vq": 1.5}) for i in range(8)]
        for i, run in enumerate(runs):
            st.export(run, tmp_path / f"imp{i}.json")
    for i in range(8):
        assert main(["results", "--store", str(history), "--import", str(tmp_path / f"imp{i}.json")]) == 0
    with ResultStore(history) as st:
        tonight = add_run(st, seed=400, samples=False, slow={"vq": 1.5})
    assert _nightly(history, tmp_path / "a", "--run", tonight) == 1  # the imports hide nothing
    summary = json.loads((tmp_path / "a" / "summary.json").read_text())
    assert not set(summary["history_runs"]) & set(runs)
    assert _nightly(history, tmp_path / "b", "--run", tonight, "--include-imported") == 0
