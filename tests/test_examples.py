"""The example plugin package (examples/fsq_sigmoid): installed, found by entry point, benchmarked.

The example is built from a copy and installed into a temporary target folder that only the
subprocesses see (through PYTHONPATH), so this environment is left as it was.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "fsq_sigmoid"


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """(copy of the example, environment in which it is installed)."""
    root = tmp_path_factory.mktemp("example")
    source, target = root / "fsq_sigmoid", root / "site"
    shutil.copytree(EXAMPLE, source, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--quiet",
        "--no-deps",
        "--target",
        str(target),
        str(source),
    ]
    if importlib.util.find_spec("setuptools") is not None:
        cmd.insert(-1, "--no-build-isolation")  # build with this environment's setuptools, offline
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"pip install of the example failed:\n{done.stdout}\n{done.stderr}"
    env = dict(
        os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(target), os.environ.get("PYTHONPATH")]))
    )
    env.pop("PYTEST_ADDOPTS", None)
    return source, env


def _pytest(source: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", *args]
    return subprocess.run(cmd, cwd=source, env=env, capture_output=True, text=True, timeout=300)


def test_example_is_found_by_entry_point_only_where_installed(installed) -> None:
    _, env = installed
    code = "from vqbench.quantizers import list_quantizers; print(list_quantizers('fsq-sigmoid'))"
    inside = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert inside.stdout.strip() == "['fsq-sigmoid']"
    outside = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert outside.stdout.strip() == "[]"  # this environment is untouched


def test_example_tests_pass_in_smoke_mode(installed) -> None:
    source, env = installed
    done = _pytest(source, env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "smoke mode" in done.stdout


def test_example_benchmarks_the_variant_beside_the_baselines(installed) -> None:
    source, env = installed
    args = [
        "--benchmark",
        "-k",
        "throughput and forward",
        "--benchmark-max-time=0.01",
        "--benchmark-min-rounds=2",
    ]
    done = _pytest(source, env, *args)
    assert done.returncode == 0, done.stdout + done.stderr
    table = done.stdout[done.stdout.index("benchmark 'forward cpu") :]
    for name in ("fsq-sigmoid", "fsq", "fsq-upstream", "vq", "lfq"):
        assert f"test_throughput[{name}-forward]" in table
