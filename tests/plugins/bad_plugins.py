"""Quantizer plugins with faults of their own, for the bad-input tests.

``NaNCodes`` wraps vqbench's FSQ and returns NaN codes; ``Marked`` fails with an error text that
looks like rich markup. Loaded as ``tests/plugins/bad_plugins.py:Name``. Each misbehaves only on
inputs of more than ``TINY_VECTORS`` vectors, so that the pre-flight's tiny call passes and the
fault reaches the cells (as a fault that shows at real sizes does).
"""

from __future__ import annotations

import torch

from vqbench.quantizers import QuantizerOutput, create_quantizer
from vqbench.quantizers._check import TINY_VECTORS


class NaNCodes(torch.nn.Module):
    """vqbench's FSQ inside, but the codes it returns are NaN."""

    def __init__(self, dim: int | None = None, codebook_size: int | None = None) -> None:
        super().__init__()
        self.inner = create_quantizer("fsq", codebook_size=codebook_size or 256, dim=dim)
        self.dim, self.codebook_size = self.inner.dim, self.inner.codebook_size
        self.num_codebooks, self.bits_per_token = 1, self.inner.bits_per_token

    def forward(self, x: torch.Tensor) -> QuantizerOutput:
        out = self.inner(x)
        if x.shape[:-1].numel() <= TINY_VECTORS:
            return out
        return QuantizerOutput(out.codes * float("nan"), out.indices, out.loss)

    def indices_to_codes(self, indices: torch.Tensor) -> torch.Tensor:
        return self.inner.indices_to_codes(indices)


class Marked(NaNCodes):
    """Fails with an error text that rich would read as markup."""

    def forward(self, x: torch.Tensor) -> QuantizerOutput:
        if x.shape[:-1].numel() <= TINY_VECTORS:
            return self.inner(x)
        raise ValueError("closing tag [/x] and [bold]not bold[/bold] in an error")


#: A window title, a cleared screen, a colour and a right-to-left override, in one error message.
HOSTILE = "\x1b]0;owned\x07\x1b[2J\x1b[31mred\u202eevil\r"


class Hostile(NaNCodes):
    """Fails with an error text full of terminal escape sequences."""

    def forward(self, x: torch.Tensor) -> QuantizerOutput:
        if x.shape[:-1].numel() <= TINY_VECTORS:
            return self.inner(x)
        raise ValueError(f"bad {HOSTILE} end")
