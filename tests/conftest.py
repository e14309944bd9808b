"""Fixtures shared by the tests: one torch thread, the toy plugin distribution, pip installs."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from _plugin_helpers import isolated_registry, make_site


@pytest.fixture(scope="module")
def one_thread():
    """One torch thread: the engines' results do not depend on it, and shared CPUs stay responsive.
    A module uses it with ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def toy_site(tmp_path, monkeypatch):
    """The toy distribution on sys.path, its entry points read, the registry restored afterwards."""
    site = make_site(tmp_path, extra_entry_points="vq = vqbench_toy_plugin:SignQuantizer\n")
    monkeypatch.syspath_prepend(str(site))
    with isolated_registry(reload_entry_points=True) as registry:
        yield registry


@pytest.fixture(scope="session")
def pip_install() -> Callable[[Path, Path], dict[str, str]]:
    """``pip_install(package, folder)``: install a copy of ``package`` into ``folder`` with pip (no
    dependencies, offline) and return an environment in which it is installed (this one is not)."""

    def install(package: Path, folder: Path) -> dict[str, str]:
        source, target = folder / "source", folder / "site"
        shutil.copytree(package, source, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
        cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(target)]
        if importlib.util.find_spec("setuptools") is not None:
            cmd.append("--no-build-isolation")  # build with this environment's setuptools, offline
        done = subprocess.run([*cmd, str(source)], capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, f"pip install of {package.name} failed:\n{done.stdout}\n{done.stderr}"
        path = os.pathsep.join(filter(None, [str(target), os.environ.get("PYTHONPATH")]))
        env = {**os.environ, "PYTHONPATH": path}
        env.pop("PYTEST_ADDOPTS", None)
        return env

    return install
