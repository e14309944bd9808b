"""The quantizer protocol that every registered quantizer follows."""

from __future__ import annotations

import math
from typing import NamedTuple

from torch import Tensor, nn


class QuantizerOutput(NamedTuple):
    """What a quantizer returns.

    codes:   quantized tensor, same shape and dtype as the input (straight-through gradients).
    indices: integer code ids, shape ``input.shape[:-1]`` plus a trailing ``num_codebooks`` axis
             where the quantizer has several codebooks or residual levels.
    loss:    auxiliary loss as a scalar tensor, or None.
    """

    codes: Tensor
    indices: Tensor
    loss: Tensor | None


class Quantizer(nn.Module):
    """Base class for quantizers: channel-last input ``(..., dim)`` in, ``QuantizerOutput`` out.

    Subclasses set ``dim``, ``codebook_size`` (per codebook) and ``num_codebooks`` and implement
    ``forward`` and ``indices_to_codes``.
    """

    dim: int
    codebook_size: int
    num_codebooks: int = 1

    @property
    def bits_per_token(self) -> float:
        """Bits that one token (all its codebooks together) carries."""
        return self.num_codebooks * math.log2(self.codebook_size)

    def forward(self, x: Tensor) -> QuantizerOutput:  # pragma: no cover - abstract
        raise NotImplementedError

    def indices_to_codes(self, indices: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def check_input(self, x: Tensor) -> None:
        """Raise a clear error unless ``x`` is a floating tensor whose last axis is ``dim``."""
        check_input(x, self.dim)


def check_input(x: Tensor, dim: int) -> None:
    """Raise TypeError/ValueError unless ``x`` is a floating tensor of shape ``(..., dim)``."""
    if not isinstance(x, Tensor):
        raise TypeError(f"expected a torch.Tensor of shape (..., {dim}), got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"expected a floating-point tensor, got dtype {x.dtype}")
    if x.ndim < 1 or x.shape[-1] != dim:
        raise ValueError(f"expected input of shape (..., {dim}) (channel-last), got {tuple(x.shape)}")


def is_quantizer(obj: object) -> bool:
    """True when ``obj`` looks like a protocol quantizer (duck-typed, no subclassing needed)."""
    needed = ("dim", "codebook_size", "num_codebooks", "bits_per_token", "indices_to_codes")
    return isinstance(obj, nn.Module) and all(hasattr(obj, a) for a in needed)


__all__ = ["Quantizer", "QuantizerOutput", "check_input", "is_quantizer"]
