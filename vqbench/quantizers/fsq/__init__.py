"""vqbench's Finite Scalar Quantization (arXiv 2309.15505): a drop-in for ``vector_quantize_pytorch.FSQ``.

``from vqbench import FSQ`` replaces ``from vector_quantize_pytorch import FSQ`` (1.32) with no other
change: the same constructor, call ``(out, indices)``, layouts (input with 4 or more axes, or any
input with ``channel_first=True``, is ``(b, d, ...)``), attributes, buffers, ``state_dict`` keys and
methods, and the same codes, indices and gradients bit for bit. What differs is speed (fused paths,
below), whole-graph use, and defects fixed: indices are summed in integers (upstream's float32 sum
is off above 2^24 codes), and NaN/Inf input never becomes a valid index.

Paths (``backend=``, ``FSQ.BACKENDS``): ``"reference"`` runs upstream's arithmetic as module methods
(plain tensor operations, what ``torch.compile`` fuses); ``"torch"``, ``"cpu"`` (a C kernel) and
``"triton"`` run inside the custom operator ``torch.ops.vqbench.fsq_quantize`` (:mod:`.ops`), so
eager, compiled (``fullgraph=True``), exported and traced models run the fused kernels. ``"auto"``
(default) lets the operator pick the fastest path that can run, per call (:mod:`.paths`). Eager
calls skip the operators' dispatch: they call the same kernels through a lean
``torch.autograd.Function`` on the input's own shape, with the path and constants cached per device
and dtype; graphs that torch.compile, export or ``make_fx`` record still see the operators.
``encode`` gives the indices alone, and its kernels write no codes.

Non-finite input, without a host synchronization or a graph break: a row (token) with any NaN/Inf
gets index -1, outside the codebook; its codes stay upstream's (NaN for NaN, the saturated level for
+-Inf); ``indices_to_codes`` turns indices outside ``[0, codebook_size)`` into NaN codes, and
``codes_to_indices`` turns codes off the grid into -1. The C kernel marks rows in its own pass; on
the torch path the CPU proves all rows finite with one sum, and elsewhere marks rows with one
matrix-vector product, in graph (:func:`.paths.non_finite_rows`). ``check_finite=True`` raises
``ValueError`` instead, in eager calls only (one host synchronization on CUDA); compiled and traced
graphs keep the in-graph marking.

Modules: :mod:`.module` (the ``nn.Module``), :mod:`.adapter` (the suite's protocol), :mod:`.ops`
(custom operators, eager calls), :mod:`.paths` (path choice, shared constants, kernel calls),
:mod:`.cpu` and :mod:`.cpu_build` (the C kernel), :mod:`.triton`, :mod:`.torch_path`,
:mod:`.reference`, :mod:`.thresholds`, :mod:`.levels` (the paper's operating points).

Importing this package is cheap: the module, its operators and kernels load on first use of a
name below other than the operating points.
"""

from __future__ import annotations

import importlib
from typing import Any

from .levels import RECOMMENDED_LEVELS, recommended_levels

# name -> submodule that defines it, imported on first use (it registers the custom operators)
_LAZY = {
    "DEFAULT_CODEBOOK_SIZE": "module",
    "FSQ": "module",
    "FSQOutput": "module",
    "IMPLICIT_CODEBOOK_LIMIT": "module",
    "MAX_CODEBOOK_SIZE": "module",
    "kernel_constants": "module",
    "VqbenchFSQAdapter": "adapter",
    "fsq_quantizer": "adapter",
    "available_paths": "paths",
    "last_path": "ops",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module = importlib.import_module(f"{__name__}.{_LAZY[name]}")
        return getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["RECOMMENDED_LEVELS", "recommended_levels", *_LAZY]
