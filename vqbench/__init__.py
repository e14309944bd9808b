"""vqbench: a benchmark suite for the discrete bottlenecks of tokenizers and VQ-VAEs."""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# Public API, imported on first use so that `import vqbench` stays cheap.
_LAZY = {
    "FSQ": "vqbench.quantizers.fsq",
    "list_quantizers": "vqbench.quantizers",
    "create_quantizer": "vqbench.quantizers",
    "register_quantizer": "vqbench.quantizers",
    "QuantizerOutput": "vqbench.quantizers",
    "Quantizer": "vqbench.quantizers",
    "run_suite": "vqbench.suite",
    "load_results": "vqbench.results",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'vqbench' has no attribute {name!r}")
