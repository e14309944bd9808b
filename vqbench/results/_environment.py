"""The environment fingerprint stored with every run, and the hash that groups comparable runs."""

from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

# Fields that make timings comparable. The vqbench version and git SHA are left out on purpose:
# a nightly history compares successive commits on the same machine and software stack.
HASHED_FIELDS = (
    "python",
    "machine",
    "system",
    "torch",
    "cuda",
    "cudnn",
    "gpu",
    "gpu_count",
    "driver",
    "cpu",
    "threads",
    "vector_quantize_pytorch",
)


def _git_sha() -> str | None:
    """The commit of the vqbench source tree (with ``-dirty``), or None outside a git checkout."""
    root = Path(__file__).resolve().parents[2]
    if not (root / ".git").exists():
        return None
    try:
        sha = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{sha}-dirty" if dirty else sha


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith(("model name", "hardware", "cpu model")):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def driver_version() -> str | None:
    """The NVIDIA driver's version (nvidia-smi), or None where there is none."""
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return out.strip().splitlines()[0] if out.strip() else None


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def environment_fingerprint(threads: int | None = None) -> dict:
    """What the measurements depend on: versions, git SHA, devices, CPU model and thread count.

    ``threads`` is the CPU thread count the suite fixes (default: torch's current setting).
    """
    from vqbench import __version__

    env: dict[str, Any] = {
        "vqbench": __version__,
        "git_sha": _git_sha(),
        "python": platform.python_version(),
        "implementation": sys.implementation.name,
        "system": platform.system(),
        "machine": platform.machine(),
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "vector_quantize_pytorch": _version("vector-quantize-pytorch"),
        "numpy": _version("numpy"),
        "torch": None,
        "cuda": None,
        "cudnn": None,
        "gpu": None,
        "gpu_count": 0,
        "driver": None,
        "threads": threads,
    }
    try:
        import torch
    except ImportError:
        return env
    env["torch"] = torch.__version__
    env["cuda"] = torch.version.cuda
    if threads is None:
        env["threads"] = torch.get_num_threads()
    if torch.cuda.is_available():
        count = torch.cuda.device_count()
        env["gpu_count"] = count
        env["gpu"] = ", ".join(sorted({torch.cuda.get_device_name(i) for i in range(count)}))
        env["cudnn"] = torch.backends.cudnn.version()
        env["driver"] = driver_version()
    return env


def environment_hash(environment: dict) -> str:
    """Short hash of the fields that make runs comparable (never the vqbench version or git SHA)."""
    if not isinstance(environment, dict):
        raise TypeError(f"environment must be a dict, got {type(environment).__name__}")
    picked = {k: environment.get(k) for k in HASHED_FIELDS}
    text = json.dumps(picked, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


__all__ = ["HASHED_FIELDS", "environment_fingerprint", "environment_hash"]
