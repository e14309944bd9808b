"""What every part of the FSQ speed benchmark shares: presets, sections, goals, names, the figure record."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

#: The first line of the package docstring: the command line's description.
DESCRIPTION = (
    "FSQ speed benchmark: vqbench's FSQ against ``vector_quantize_pytorch.FSQ``, eager and compiled."
)

PRESETS = ([8, 5, 5, 5], [8, 8, 8, 6, 5], [8, 8, 8, 5, 5, 5])
SECTIONS = ("inference", "encode", "decode", "training", "model", "per-call")
#: The per-call section: sizes where a tokenizer calls FSQ once per step (16: the fixed cost alone).
PER_CALL_SIZES = (16, 1024, 4096, 65536)
PER_CALL_OPS = ("forward-grad", "training")
#: Per-call goals on the CPU (1 thread, [8,5,5,5]): (op, vectors) -> anchor -> ratio.
PER_CALL_GOALS = {
    ("forward-grad", 16): {"upstream": 3.0},
    ("training", 16): {"upstream": 2.0},
    ("training", 4096): {"upstream": 2.0, "upstream-compiled": 2.0},
    ("training", 65536): {"upstream": 2.5},
}
#: CUDA: sizes and operations of the device-time section, each against compiled upstream.
CUDA_SIZES = (4096, 2**20, 2**24)
CUDA_OPS = ("inference", "forward-grad", "training", "encode", "decode")
DECODE_SMALL = 4096
MODEL_VECTORS = 2**18
MODEL_WIDTH = 64
GOALS = {
    "cpu": {"inference": 4.0, "encode": 4.0, "decode": 3.0, "decode_small": 1.0, "training": 2.0},
    "cuda": {"inference": 1.2, "encode": 1.2, "decode": 1.2, "decode_small": 1.2, "training": 1.2},
    "model": 1.0,
    "gpu_copy_fraction": 0.80,
    "gpu_vs_eager": 5.0,
    "gpu_host_us": 20.0,
}
UPSTREAM = "upstream"
COMPILED = "upstream-compiled"


@dataclass
class Figure:
    """One measured figure of one contender."""

    section: str
    levels: list[int]
    vectors: int
    contender: str
    path: str  # the path that ran (vqbench's ``last_backend``; "upstream" for the reference package)
    median_s: float | None = None
    iqr_s: float | None = None
    repeats: int = 0
    vectors_per_s: float | None = None
    ratio: float | None = None  # against eager upstream in the same section, levels and size
    ratio_compiled: float | None = None  # against compiled upstream there
    compile_s: float | None = None  # first call of a compiled contender, compile included
    extra: dict[str, Any] = field(default_factory=dict)


__all__ = [
    "COMPILED",
    "CUDA_OPS",
    "CUDA_SIZES",
    "DECODE_SMALL",
    "DESCRIPTION",
    "Figure",
    "GOALS",
    "MODEL_VECTORS",
    "MODEL_WIDTH",
    "PER_CALL_GOALS",
    "PER_CALL_OPS",
    "PER_CALL_SIZES",
    "PRESETS",
    "SECTIONS",
    "UPSTREAM",
]
