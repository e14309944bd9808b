"""FSQ speed benchmark: vqbench's FSQ against ``vector_quantize_pytorch.FSQ``, eager and compiled.

``python -m vqbench.suite.fsq_speed`` measures, in one process and interleaved in rounds so that a
busy machine slows every contender alike, each operation through the public classes:

- ``inference``: forward without grad, float32, on 1M vectors for levels [8,5,5,5], [8,8,8,6,5]
  and [8,8,8,5,5,5] (every vqbench path), and a size sweep for [8,5,5,5];
- ``encode``: indices only (upstream's forward indices, compiled on their own so that the
  compiler may drop the codes; vqbench's ``FSQ.encode``, whose kernels write no codes);
- ``decode``: ``indices_to_codes`` at 1M and 4096 indices;
- ``training``: forward + backward through the straight-through estimator;
- ``model``: a small model (linear -> FSQ -> linear) compiled whole with ``torch.compile``, with
  vqbench's FSQ and with upstream's, forward and training step;
- peak memory of inference against the bytes of its outputs;
- on a GPU (``--device cuda``): the fused kernel's effective bandwidth against a device copy
  measured in the same process, at 16M vectors, and the host time per forward call.

The anchor is upstream under ``torch.compile`` (default mode, one compiled callable per
operation, levels and size, so every shape is compiled static); its compile time (the first call)
is reported apart. Each figure carries its ratio against eager upstream (``ratio``) and against
compiled upstream (``ratio_compiled``), and a goals table prints each ratio against its goal.
CPU times come from ``torch.utils.benchmark`` with the thread count fixed and printed; GPU times
from CUDA events after warm-up (``vqbench.suite.timing``). ``--json PATH`` writes every figure.
"""

from __future__ import annotations

from .cli import main
from .common import (
    COMPILED,
    DECODE_SMALL,
    GOALS,
    PER_CALL_SIZES,
    PRESETS,
    SECTIONS,
    UPSTREAM,
    Figure,
)
from .run import run
from .sections import bench, bench_inference

__all__ = [
    "COMPILED",
    "DECODE_SMALL",
    "GOALS",
    "PER_CALL_SIZES",
    "PRESETS",
    "SECTIONS",
    "UPSTREAM",
    "Figure",
    "bench",
    "bench_inference",
    "main",
    "run",
]
