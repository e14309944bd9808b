"""A plugin module that registers a quantizer by decorator: ``--plugins registered_plugin``.

Importable once ``tests/plugins`` is the current folder (or on the path). Registers
``test-registered`` (vqbench's FSQ behind a factory) and ``test-registered-tuple`` (returns a
plain tuple: the pre-flight stops it).
"""

from __future__ import annotations

import torch

from vqbench.quantizers import create_quantizer, register_quantizer


@register_quantizer("test-registered", family="fsq")
def registered(dim: int | None = None, codebook_size: int | None = None):
    """vqbench's FSQ at the requested size, registered by a plugin module."""
    return create_quantizer("fsq", codebook_size=codebook_size or 256)


class _Tuple(torch.nn.Module):
    """FSQ inside, but forward returns a plain (codes, indices) tuple."""

    def __init__(self, inner: torch.nn.Module) -> None:
        super().__init__()
        self.inner = inner
        self.dim, self.codebook_size, self.num_codebooks = inner.dim, inner.codebook_size, 1
        self.bits_per_token, self.indices_to_codes = inner.bits_per_token, inner.indices_to_codes

    def forward(self, x: torch.Tensor):
        out = self.inner(x)
        return out.codes, out.indices


@register_quantizer("test-registered-tuple", family="fsq")
def registered_tuple(dim: int | None = None, codebook_size: int | None = None):
    """Returns (codes, indices): not the protocol."""
    return _Tuple(create_quantizer("fsq", codebook_size=codebook_size or 256))
