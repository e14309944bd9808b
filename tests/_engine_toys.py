"""Small protocol quantizers for the engine tests, loaded as ``tests/_engine_toys.py:Name``."""

from __future__ import annotations

import math

import torch
from torch import nn

from vqbench.quantizers import Quantizer, QuantizerOutput


class ToyFSQ(Quantizer):
    """Finite scalar quantization with odd levels, linear maps in and out when dim differs."""

    BACKENDS = ("reference",)

    def __init__(self, dim: int | None = None, codebook_size: int | None = None, levels=None, backend=None):
        super().__init__()
        if levels is None:
            levels = [5] * max(1, round(math.log((codebook_size or 125), 5)))
        self.levels = list(levels)
        self.dim = dim or len(self.levels)
        self.codebook_size = math.prod(self.levels)
        self.backend = backend or "reference"
        d = len(self.levels)
        self.project_in = nn.Linear(self.dim, d) if self.dim != d else nn.Identity()
        self.project_out = nn.Linear(d, self.dim) if self.dim != d else nn.Identity()
        half_width = (torch.tensor(self.levels, dtype=torch.float32) - 1) / 2
        self.register_buffer("half_width", half_width, persistent=False)
        radix = torch.cumprod(torch.tensor([1] + self.levels[:-1]), 0)
        self.register_buffer("radix", radix, persistent=False)

    def _levels(self, x: torch.Tensor) -> torch.Tensor:
        z = torch.tanh(self.project_in(x)) * self.half_width
        return z + (z.round() - z).detach()

    def forward(self, x: torch.Tensor) -> QuantizerOutput:
        self.check_input(x)
        q = self._levels(x)
        indices = ((q.detach() + self.half_width).round().long() * self.radix).sum(-1)
        return QuantizerOutput(self.project_out(q / self.half_width), indices, None)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        q = torch.tanh(self.project_in(x)) * self.half_width
        return ((q.round() + self.half_width).long() * self.radix).sum(-1)

    def indices_to_codes(self, indices: torch.Tensor) -> torch.Tensor:
        digits = (indices.unsqueeze(-1) // self.radix) % torch.tensor(self.levels, device=indices.device)
        return self.project_out((digits.float() - self.half_width) / self.half_width)


class ToyVQ(Quantizer):
    """Nearest-neighbour VQ with a learned codebook and a commitment loss; residual when levels > 1."""

    def __init__(
        self,
        dim: int | None = None,
        codebook_size: int | None = None,
        num_codebooks: int = 1,
        commitment: float = 0.25,
    ):
        super().__init__()
        self.dim = dim or 4
        self.codebook_size = codebook_size or 64
        self.num_codebooks = num_codebooks
        self.commitment = commitment
        self.codebooks = nn.Parameter(torch.randn(num_codebooks, self.codebook_size, self.dim))

    def forward(self, x: torch.Tensor) -> QuantizerOutput:
        self.check_input(x)
        residual, total, loss, ids = x, torch.zeros_like(x), x.new_zeros(()), []
        for book in self.codebooks:
            idx = torch.cdist(residual.reshape(-1, self.dim), book).argmin(-1).reshape(x.shape[:-1])
            code = book[idx]
            loss = loss + (code - residual.detach()).square().mean()
            loss = loss + self.commitment * (residual - code.detach()).square().mean()
            total = total + code
            residual = residual - code.detach()
            ids.append(idx)
        codes = x + (total - x).detach()
        indices = torch.stack(ids, -1) if self.num_codebooks > 1 else ids[0]
        return QuantizerOutput(codes, indices, loss)

    def indices_to_codes(self, indices: torch.Tensor) -> torch.Tensor:
        if self.num_codebooks == 1:
            indices = indices.unsqueeze(-1)
        return sum(book[indices[..., i]] for i, book in enumerate(self.codebooks))


class Doubled(ToyFSQ):
    """ToyFSQ whose forward runs the quantization twice: twice the work of ToyFSQ."""

    def forward(self, x: torch.Tensor) -> QuantizerOutput:
        super().forward(x)
        return super().forward(x)
