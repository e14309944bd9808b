"""A candidate quantizer in a file: ``vqbench compare --candidate examples/my_fsq.py:MyFSQ``.

The smallest quantizer that the suite benchmarks: vqbench's FSQ at the paper's levels for the
codebook size, behind the protocol (channel-last ``(..., dim)`` in, ``QuantizerOutput`` out).
The suite builds it with the profile's config, ``codebook_size=`` at least, so the constructor
takes it (and ``dim=``, the input width, when a benchmark sets one).
"""

from __future__ import annotations

import torch

from vqbench import FSQ
from vqbench.quantizers import Quantizer, QuantizerOutput


class MyFSQ(Quantizer):
    """FSQ with ``codebook_size`` codes (the FSQ paper's levels for that size)."""

    def __init__(self, codebook_size: int = 2**8, dim: int | None = None) -> None:
        super().__init__()
        self.fsq = FSQ(codebook_size=codebook_size, dim=dim)
        self.dim = self.fsq.dim
        self.codebook_size = self.fsq.codebook_size

    def forward(self, x: torch.Tensor) -> QuantizerOutput:
        # FSQ reads input with 4 or more axes as channel-first; the protocol's is channel-last
        codes, indices = self.fsq(x.reshape(1, -1, x.shape[-1]))
        return QuantizerOutput(codes.reshape(x.shape), indices.reshape(x.shape[:-1]), None)

    def indices_to_codes(self, indices: torch.Tensor) -> torch.Tensor:
        return self.fsq.indices_to_codes(indices)
