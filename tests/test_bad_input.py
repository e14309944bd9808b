"""Bad input is stopped before anything runs, with the file and key named; exit codes tell outcomes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from _runner_profile import profile

from vqbench.cli import main
from vqbench.results import ResultStore, StoreError

ROOT = Path(__file__).resolve().parents[1]
BAD = Path(__file__).parent / "plugins" / "bad_plugins.py"


def _run(*args: str) -> int:
    return main(["run", "--no-progress", *args])


@pytest.mark.parametrize(
    ("table", "key", "value", "expected"),
    [
        ("benchmarks.usage", "batch", '"many"', "non-negative integer"),
        ("datasets.gaussian", "n_eval", '"many"', "non-negative integer"),
        ("benchmarks.usage", "lr", "-1.0", "non-negative number"),
        ("benchmarks.usage", "standardize", '"yes"', "true or false"),
        ("benchmarks.usage", "lr_decay", "1.5", "between 0 and 1"),
        ("benchmarks.usage", "lr_cuts", "-1", "non-negative integer"),
    ],
)
def test_profile_values_are_checked_before_anything_runs(tmp_path, capsys, table, key, value, expected):
    path = profile(tmp_path, ["fsq"])
    text = path.read_text().replace(f"[{table}]\n", f"[{table}]\n{key} = {value}\n", 1)
    text = text.replace(f"\n{key} = ", f"\n# {key} = ", 2).replace(
        f"# {key} = {value}", f"{key} = {value}", 1
    )
    path.write_text(text)
    store = tmp_path / "s.sqlite"
    assert _run("--suite", str(path), "--store", str(store)) == 2
    err = capsys.readouterr().err
    assert str(path) in err and f"{table}.{key}" in err and expected in err
    assert not store.exists(), "a command that refused to run left a store behind"


def test_throughput_sizes_must_be_integers(tmp_path, capsys):
    path = profile(tmp_path, ["fsq"], extra='[benchmarks.throughput]\nsizes = "big"\n')
    assert _run("--suite", str(path), "--store", str(tmp_path / "s.sqlite")) == 2
    err = capsys.readouterr().err
    assert "benchmarks.throughput.sizes" in err and "'big'" in err


def test_a_parameter_whose_default_is_none_is_checked_by_its_declared_type(tmp_path, capsys):
    extra = '[benchmarks.rd]\nkind = "reconstruction"\ndatasets = ["digits"]\nceiling_steps = "long"\n'
    path = profile(tmp_path, ["fsq"], extra=extra)
    assert _run("--suite", str(path), "--store", str(tmp_path / "s.sqlite")) == 2
    err = capsys.readouterr().err
    assert "benchmarks.rd.ceiling_steps" in err and "non-negative integer" in err and "'long'" in err


@pytest.mark.parametrize("how", ["name", "option"])
def test_a_missing_latents_file_is_an_error_not_a_skip(tmp_path, capsys, how):
    missing = tmp_path / "nowhere" / "z.npy"
    extra = (
        f'[benchmarks.usage_latents]\nkind = "usage"\ndatasets = ["{missing}"]\n'
        if how == "name"
        else f'[benchmarks.usage_latents]\nkind = "usage"\ndatasets = ["latents"]\n'
        f'[datasets.latents]\npath = "{missing}"\n'
    )
    path = profile(tmp_path, ["fsq"], extra=extra)
    assert _run("--suite", str(path), "--store", str(tmp_path / "s.sqlite")) == 2
    assert f"dataset file '{missing}'" in capsys.readouterr().err


def test_a_store_in_a_missing_folder_is_an_error(tmp_path):
    with pytest.raises(StoreError, match="does not exist"):
        ResultStore(tmp_path / "no" / "such" / "dir" / "r.sqlite")
    assert not (tmp_path / "no").exists()


def test_nightly_that_refuses_to_run_creates_no_store(tmp_path, capsys):
    store = tmp_path / "n.sqlite"
    path = (
        profile(tmp_path, ["fsq"], extra="")
        .read_text()
        .replace("threads = 1", 'threads = 1\ndevices = ["cuda:7"]')
    )
    (tmp_path / "gpu.toml").write_text(path)
    code = main(["nightly", "--suite", str(tmp_path / "gpu.toml"), "--store", str(store), "--no-progress"])
    assert code == 2 and "cuda" in capsys.readouterr().err.lower()
    assert not store.exists()


def test_exit_codes_some_failed_and_nothing_measured(tmp_path, capsys):
    store = tmp_path / "s.sqlite"
    path = profile(tmp_path, ["fsq", f"{BAD}:Marked"])
    assert _run("--suite", str(path), "--store", str(store)) == 1
    out = capsys.readouterr().out
    assert "[/x]" in out and "[bold]not bold[/bold]" in out  # printed as written, not parsed
    only_bad = profile(tmp_path, [f"{BAD}:Marked"])
    assert _run("--suite", str(only_bad), "--store", str(store)) == 3
    assert "nothing was measured" in capsys.readouterr().out


def test_non_finite_codes_are_the_quantizers_fault(tmp_path, capsys):
    store = tmp_path / "s.sqlite"
    path = profile(
        tmp_path, [f"{BAD}:NaNCodes"], extra="[benchmarks.throughput]\nsizes = [256]\nmin_run_time = 0.01\n"
    )
    assert _run("--suite", str(path), "--store", str(store)) == 3
    with ResultStore(store, readonly=True) as st:
        rows = st.rows()
    assert set(rows["benchmark"]) == {"usage", "throughput"} and set(rows["status"]) == {"error"}
    for message in rows["message"]:
        assert "bad_plugins.py:NaNCodes" in message and "non-finite codes" in message, message
        assert "expected finite input to FSQ" not in message


def test_run_error_text_with_markup_through_a_pipe(tmp_path):
    """`vqbench run` piped: error texts that look like markup are printed whole, exit 1, no traceback."""
    store = tmp_path / "s.sqlite"
    path = profile(tmp_path, ["fsq", f"{BAD}:Marked"])
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "vqbench.cli",
            "run",
            "--suite",
            str(path),
            "--store",
            str(store),
            "--no-progress",
        ],
        cwd=tmp_path,
        env={**os.environ, "COLUMNS": "80"},
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr and "MarkupError" not in proc.stderr
    assert "ValueError: closing tag [/x] and [bold]not bold[/bold] in an error" in proc.stdout
    run_id = next(ln.split()[-1] for ln in proc.stdout.splitlines() if ln.startswith("run id:"))
    assert f"`vqbench results {run_id}`, `vqbench report {run_id}`" in proc.stdout
