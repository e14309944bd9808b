"""The example plugin package (examples/fsq_sigmoid): installed, found by entry point, benchmarked.

The example is built from a copy and installed into a temporary target folder that only the
subprocesses see (through PYTHONPATH), so this environment is left as it was.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "fsq_sigmoid"


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory, pip_install) -> tuple[Path, dict[str, str]]:
    """(copy of the example, environment in which it is installed)."""
    root = tmp_path_factory.mktemp("example")
    env = pip_install(EXAMPLE, root)
    return root / "source", env


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
