"""The suite: profiles, cells, the benchmark engines and the runner.

``run_suite("quick")`` expands a profile into cells (quantizer config x dataset x benchmark x
backend x device), runs them in worker processes and stores one row per figure; it returns the run
id. ``vqbench run`` is its command line.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "run_suite": "vqbench.suite.runner",
    "RunInterrupted": "vqbench.suite.runner",
    "ExecutorSettings": "vqbench.suite.executors",
    "Cell": "vqbench.suite.cells",
    "Plan": "vqbench.suite.expand",
    "expand_profile": "vqbench.suite.expand",
    "Profile": "vqbench.suite.profiles",
    "ProfileError": "vqbench.suite.profiles",
    "BUILTIN_PROFILES": "vqbench.suite.profiles",
    "load_profile": "vqbench.suite.profiles",
    "PreflightError": "vqbench.suite.preflight",
}

__all__ = list(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'vqbench.suite' has no attribute {name!r}")
