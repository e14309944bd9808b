"""A dataset and a benchmark engine from an installed package run through ``vqbench run``.

The package (tests/plugin_package) is installed with pip into a folder of its own; it declares the
``toy-rings`` dataset (entry-point group ``vqbench.datasets``) and the ``toy-distortion`` engine
(``vqbench.engines``). Outside that folder neither name exists.
"""

from __future__ import annotations

import math
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from vqbench.results import ResultStore

PACKAGE = Path(__file__).resolve().parent / "plugin_package"
PROFILE = """
[suite]
quantizers = ["fsq", "vq"]
devices = ["cpu"]
backends = ["eager"]
seeds = [0]
codebook_sizes = [256]
workers = 1
threads = 1

[benchmarks.toy]
kind = "toy-distortion"
datasets = ["toy-rings"]
eval_vectors = 128
"""


def _cli(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "vqbench.cli", *args]
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory, pip_install) -> tuple[Path, dict[str, str]]:
    """(a working folder with the profile, an environment in which the package is installed)."""
    root = tmp_path_factory.mktemp("plugin")
    env = pip_install(PACKAGE, root)
    (root / "toy.toml").write_text(PROFILE)
    return root, env


def test_plugin_dataset_and_engine_run_and_are_stored(installed):
    root, env = installed
    done = _cli("run", "--suite", "toy.toml", "--store", "s.sqlite", "--no-progress", cwd=root, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "toy mse" in done.stdout  # the engine's own summary column
    with ResultStore(root / "s.sqlite") as store:
        rows = store.rows(store.resolve_run("latest"))
    assert set(rows["benchmark"]) == {"toy-distortion"}
    assert set(rows["dataset"]) == {"toy-rings"}
    assert set(rows["status"]) == {"ok"}
    got = {(q, m): v for q, m, v in zip(rows["quantizer"], rows["metric"], rows["value"], strict=True)}
    assert set(got) == {(q, m) for q in ("fsq", "vq") for m in ("distortion", "codes_used")}
    assert all(math.isfinite(v) and v >= 0 for v in got.values())
    assert 1 <= got["fsq", "codes_used"] <= 256


def test_plugin_names_are_listed_and_reported(installed):
    root, env = installed
    listing = _cli("datasets", cwd=root, env=env)
    assert listing.returncode == 0 and "toy-rings" in listing.stdout and "vqbench-toy-bench" in listing.stdout
    if not (root / "s.sqlite").exists():
        _cli("run", "--suite", "toy.toml", "--store", "s.sqlite", "--no-progress", cwd=root, env=env)
    report = _cli("report", "--store", "s.sqlite", "--out", "rep", cwd=root, env=env)
    assert report.returncode == 0, report.stdout + report.stderr
    text = next((root / "rep").rglob("report.md")).read_text()
    assert "toy-distortion" in text and "distortion" in text


def test_without_the_package_the_engine_is_unknown(installed, tmp_path):
    root, _ = installed
    shutil.copy(root / "toy.toml", tmp_path / "toy.toml")
    done = _cli("run", "--suite", "toy.toml", "--store", "s.sqlite", "--no-progress", cwd=tmp_path)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "toy-distortion" in done.stderr and "Traceback" not in done.stderr
