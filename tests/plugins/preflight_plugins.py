"""Quantizers with the mistakes that the pre-flight check names, for its tests.

Loaded as ``tests/plugins/preflight_plugins.py:Name``. ``Good`` follows the protocol; each other
class makes one mistake: ``NoCodebookSize`` rejects ``codebook_size=``, ``TupleOut`` returns a
plain tuple, ``WrongShape`` drops the last axis of the codes, ``HalfCodes`` returns float16 codes,
``FloatIndices`` float indices, ``OutOfRange`` indices past the codebook, ``NoDecode`` lacks
``indices_to_codes``, ``Raising`` fails in forward, ``BadLoss`` returns a per-token loss.
"""

from __future__ import annotations

import torch

from vqbench.quantizers import Quantizer, QuantizerOutput


class Good(Quantizer):
    """Rounds tanh(x) to 4 levels in each of ``dim`` channels."""

    def __init__(self, dim: int | None = None, codebook_size: int | None = None) -> None:
        super().__init__()
        self.dim = dim or 4
        self.codebook_size = 4**self.dim
        self.scale = torch.nn.Parameter(torch.ones(()))

    def forward(self, x: torch.Tensor) -> QuantizerOutput:
        z = (torch.tanh(x * self.scale) + 1) * 1.5
        q = z + (z.round() - z).detach()
        radix = 4 ** torch.arange(self.dim, device=x.device)
        return QuantizerOutput(q / 1.5 - 1, (q.detach().round().long() * radix).sum(-1), None)

    def indices_to_codes(self, indices: torch.Tensor) -> torch.Tensor:
        radix = 4 ** torch.arange(self.dim, device=indices.device)
        return ((indices.unsqueeze(-1) // radix) % 4).float() / 1.5 - 1


class NoCodebookSize(Good):
    def __init__(self, dim: int | None = None) -> None:  # the suite passes codebook_size=
        super().__init__(dim)


class TupleOut(Good):
    def forward(self, x: torch.Tensor):
        out = super().forward(x)
        return out.codes, out.indices


class WrongShape(Good):
    def forward(self, x: torch.Tensor) -> QuantizerOutput:
        out = super().forward(x)
        return QuantizerOutput(out.codes[..., 0], out.indices, None)


class HalfCodes(Good):
    def forward(self, x: torch.Tensor) -> QuantizerOutput:
        out = super().forward(x)
        return QuantizerOutput(out.codes.half(), out.indices, None)


class FloatIndices(Good):
    def forward(self, x: torch.Tensor) -> QuantizerOutput:
        out = super().forward(x)
        return QuantizerOutput(out.codes, out.indices.float(), None)


class OutOfRange(Good):
    def forward(self, x: torch.Tensor) -> QuantizerOutput:
        out = super().forward(x)
        return QuantizerOutput(out.codes, out.indices + self.codebook_size, None)


class NoDecode(torch.nn.Module):
    def __init__(self, dim: int | None = None, codebook_size: int | None = None) -> None:
        super().__init__()
        self.dim, self.codebook_size, self.num_codebooks, self.bits_per_token = dim or 4, 256, 1, 8.0

    def forward(self, x: torch.Tensor) -> QuantizerOutput:
        return QuantizerOutput(x, torch.zeros(x.shape[:-1], dtype=torch.long), None)


class Raising(Good):
    def forward(self, x: torch.Tensor) -> QuantizerOutput:
        raise RuntimeError("this quantizer's forward is broken")


class BadLoss(Good):
    def forward(self, x: torch.Tensor) -> QuantizerOutput:
        out = super().forward(x)
        return QuantizerOutput(out.codes, out.indices, (out.codes - x).square().mean(-1))
