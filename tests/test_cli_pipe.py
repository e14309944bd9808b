"""The command's output read through a pipe (as in a CI log): values whole, user text never parsed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from _report_synth import ENV, run_rows

from vqbench.results import ResultStore

ROOT = Path(__file__).resolve().parents[1]
LONG_ID = "20261126-120000-" + "a-very-long-run-identifier-that-must-never-be-cut" * 2
MATH = "math$\\frac{$"
ERROR = "RuntimeError: closing tag [/x] and [bold]not bold[/bold] at the very end of a long message: END"


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": "80"}  # what a CI runner often says; the pipe must not obey it
    env.pop("FORCE_COLOR", None)
    return subprocess.run(
        [sys.executable, "-m", "vqbench.cli", *args], cwd=cwd, env=env, capture_output=True, text=True
    )


def _rows(seed: int, slow: float = 1.0) -> list[dict]:
    rows = run_rows(
        seed=seed, quantizers=("fsq", "vq"), backends=("eager",), slow={"vq": slow}, samples=False
    )
    for r in rows:
        if r["quantizer"] == "vq":
            r["quantizer"] = MATH
    rows.append(
        {
            "benchmark": "usage",
            "quantizer": MATH,
            "config": {"codebook_size": 64},
            "dataset": "gaussian",
            "metric": "error",
            "value": None,
            "unit": "",
            "status": "error",
            "message": ERROR,
            "cell_id": "u-bad",
        }
    )
    return rows


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("pipe") / "r.sqlite"
    with ResultStore(path) as st:
        for i in range(4):
            run = st.start_run("full", ENV, run_id=None if i < 3 else LONG_ID)
            st.write_rows([{**r, "run_id": run} for r in _rows(i, slow=1.0 if i < 3 else 3.0)])
            st.finish_run(run)
    return path


def test_results_list_keeps_run_ids_whole(store, tmp_path):
    proc = _cli("results", "--store", str(store), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert LONG_ID in proc.stdout
    assert "…" not in proc.stdout


def test_results_of_a_run_show_messages_and_names_as_written(store, tmp_path):
    proc = _cli("results", LONG_ID, "--store", str(store), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert ERROR in proc.stdout and MATH in proc.stdout
    assert "forward.vectors_per_s@65536" in proc.stdout  # metric names never broken mid-word


def test_nightly_tables_and_report_with_math_and_markup_names(store, tmp_path):
    proc = _cli(
        "nightly", "--run", LONG_ID, "--store", str(store), "--out", str(tmp_path / "n"), cwd=tmp_path
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    lines = [ln for ln in proc.stdout.splitlines() if MATH in ln and "regression" in ln]
    assert lines and all("vectors_per_s" in ln for ln in lines), proc.stdout
    assert "Traceback" not in proc.stderr
    report = _cli("report", LONG_ID, "--store", str(store), "--out", str(tmp_path / "r"), cwd=tmp_path)
    assert report.returncode == 0, report.stderr
    assert "ParseSyntaxException" not in report.stderr
    assert MATH.replace("\\", "\\\\") in (tmp_path / "r" / "report.md").read_text()  # Markdown-escaped
    assert MATH in (tmp_path / "r" / "report.html").read_text()
    assert list((tmp_path / "r" / "report-figures").glob("*.png")), "the figures were not drawn"


def test_list_is_as_wide_as_its_content_when_piped(tmp_path):
    plugin = tmp_path / ("a_plugin_file_with_a_rather_long_name_" * 2 + ".py")
    plugin.write_text((ROOT / "tests" / "plugins" / "bad_plugins.py").read_text())
    proc = _cli("list", "fsq", "--no-measure", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    width = max(len(ln) for ln in proc.stdout.splitlines())
    assert width < 180, f"piped `vqbench list` forced {width} columns"
    assert "fsq" in proc.stdout
