"""Upstream FSQ's arithmetic methods, on the module's ``_levels`` buffer: the reference as methods.

The same tensor operations in the same order as ``vector_quantize_pytorch.FSQ`` 1.32's methods of
these names (what ``torch.compile`` fuses on the ``"reference"`` path).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class UpstreamMethods(nn.Module):
    """Upstream's ``bound``, ``quantize``, noise dropout and level arithmetic; the base of ``FSQ``.

    Needs ``_levels`` and ``_basis`` buffers and ``preserve_symmetry``, ``bound_hard_clamp`` and
    ``noise_dropout`` attributes.
    """

    def bound(self, z: Tensor, eps: float = 1e-3, hard_clamp: bool = False) -> Tensor:
        """Bound ``z`` (..., d) and round it (straight through) to normalized codes; upstream's ``bound``."""
        half_l = (self._levels - 1) * (1 + eps) / 2
        offset = torch.where(self._levels % 2 == 0, 0.5, 0.0)
        ratio = offset / half_l
        if hard_clamp:
            bounded = torch.clamp(z + ratio, min=-1.0, max=1.0) * half_l - offset
        else:
            bounded = torch.tanh(z + torch.atanh(ratio)) * half_l - offset
        rounded = bounded + (bounded.round() - bounded).detach()
        return rounded / (self._levels // 2)

    def symmetry_preserving_bound(self, z: Tensor, hard_clamp: bool = False) -> Tensor:
        """``2 / (L - 1) * floor((L - 1) (tanh(z) + 1) / 2 + 0.5) - 1`` (arXiv 2411.19842, section 3.2)."""
        levels_minus_1 = self._levels - 1
        scale = 2.0 / levels_minus_1
        squashed = torch.clamp(z, min=-1.0, max=1.0) if hard_clamp else torch.tanh(z)
        bracket = (levels_minus_1 * (squashed + 1) / 2.0) + 0.5
        bracket = bracket + (bracket.floor() - bracket).detach()
        return scale * bracket - 1.0

    def quantize(self, z: Tensor) -> Tensor:
        """Normalized codes of ``z`` (..., codebook_dim), same shape; upstream's ``quantize``."""
        if self.preserve_symmetry:
            return self.symmetry_preserving_bound(z, hard_clamp=self.bound_hard_clamp)
        return self.bound(z, hard_clamp=self.bound_hard_clamp)

    def maybe_apply_noise(self, bounded_z: Tensor) -> Tensor:
        """Noise dropout of arXiv 2411.19842 in training: the same random draws as upstream."""
        if not self.training or self.noise_dropout == 0.0:
            return bounded_z
        mask = torch.full_like(bounded_z, self.noise_dropout).bernoulli_().bool()
        offset = torch.rand_like(bounded_z) - 0.5
        return torch.where(mask, bounded_z + offset, bounded_z).clamp(-1.0, 1.0)

    def _scale_and_shift(self, zhat_normalized: Tensor) -> Tensor:
        """Normalized codes to per-channel level indices (as floats, not rounded)."""
        if self.preserve_symmetry:
            return (zhat_normalized + 1.0) / (2.0 / (self._levels - 1))
        half_width = self._levels // 2
        return (zhat_normalized * half_width) + half_width

    def _scale_and_shift_inverse(self, zhat: Tensor) -> Tensor:
        """Per-channel level indices to normalized codes."""
        if self.preserve_symmetry:
            return zhat * (2.0 / (self._levels - 1)) - 1.0
        half_width = self._levels // 2
        return (zhat - half_width) / half_width

    def _indices_to_codes(self, indices: Tensor) -> Tensor:
        """Normalized codes ``(..., codebook_dim)`` of indices ``(...)``: upstream's, unchecked."""
        return self._scale_and_shift_inverse(self.indices_to_level_indices(indices))

    def indices_to_level_indices(self, indices: Tensor) -> Tensor:
        """Per-channel level indices ``(..., codebook_dim)`` (0 .. L-1) of indices ``(...)``."""
        return (indices.unsqueeze(-1) // self._basis) % self._levels


__all__ = ["UpstreamMethods"]
