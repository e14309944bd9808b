"""FSQ with a sigmoid bound: a new quantizer variant, registered with vqbench by entry point.

Each channel z_i is squashed by ``(L_i - 1) * sigmoid(z_i)`` into ``[0, L_i - 1]`` and rounded to an
integer level with a straight-through gradient; codes are the levels scaled to ``[-1, 1]``. The
implicit codebook is the product of the level sets and an index is the mixed-radix number of the
per-channel levels, as in FSQ (arXiv 2309.15505), whose bound is ``tanh`` with a half-level shift.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from vqbench.quantizers import Quantizer, QuantizerOutput, check_input, recommended_levels

__all__ = ["SigmoidFSQ"]


class SigmoidFSQ(Quantizer):
    """Finite scalar quantization with a sigmoid bounding function.

    ``levels``: levels per channel; or ``codebook_size``: the FSQ paper's levels for that size
    (default 2^10). ``dim``: input dim; a linear projection maps it to ``len(levels)`` channels and
    back when they differ.
    """

    def __init__(
        self, levels: list[int] | None = None, dim: int | None = None, codebook_size: int | None = None
    ):
        super().__init__()
        if levels is None:
            levels = list(recommended_levels(codebook_size or 2**10))
        elif codebook_size is not None:
            raise ValueError(f"give levels or codebook_size, not both (got {levels} and {codebook_size})")
        if not levels or any(not isinstance(n, int) or n < 2 for n in levels):
            raise ValueError(f"levels must be integers >= 2, got {levels!r}")
        channels = len(levels)
        self.dim = channels if dim is None else int(dim)
        self.codebook_size = math.prod(levels)
        self.num_codebooks = 1
        self.register_buffer("levels", torch.tensor(levels, dtype=torch.int64), persistent=False)
        basis = torch.cumprod(torch.tensor([1, *levels[:-1]], dtype=torch.int64), dim=0)
        self.register_buffer("basis", basis, persistent=False)
        needs_projection = self.dim != channels
        self.project_in = nn.Linear(self.dim, channels) if needs_projection else nn.Identity()
        self.project_out = nn.Linear(channels, self.dim) if needs_projection else nn.Identity()

    def _levels_to_codes(self, q: Tensor) -> Tensor:
        return q / (self.levels - 1) * 2 - 1

    def forward(self, x: Tensor) -> QuantizerOutput:
        """Quantize channel-last ``x`` of shape ``(..., dim)``."""
        check_input(x, self.dim)
        if not torch.isfinite(x).all():
            raise ValueError("input has NaN or infinite values; expected finite latents")
        z = self.project_in(x).float()
        bounded = torch.sigmoid(z) * (self.levels - 1)
        q = bounded + (bounded.round() - bounded).detach()  # straight-through rounding
        indices = (q.round().long() * self.basis).sum(-1)
        codes = self.project_out(self._levels_to_codes(q)).to(x.dtype)
        return QuantizerOutput(codes, indices, None)

    def indices_to_codes(self, indices: Tensor) -> Tensor:
        """Codes ``(..., dim)`` for integer ``indices`` of shape ``(...)``."""
        q = (indices.long().unsqueeze(-1) // self.basis) % self.levels
        return self.project_out(self._levels_to_codes(q.float()))
