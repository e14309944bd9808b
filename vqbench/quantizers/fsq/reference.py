"""FSQ's reference formulation: the arithmetic of arXiv 2309.15505 as vector-quantize-pytorch writes it.

Every function here performs the same tensor operations, in the same order and with the same dtypes,
as ``vector_quantize_pytorch.FSQ`` 1.32, so that its results are bit-identical. The fast paths of
vqbench's FSQ are checked against these functions; the backward of the fast paths replays them.

Two fixes over the original, both outside the shared arithmetic: indices are summed in integers
after rounding each channel (the original sums float32 and is wrong above 2^24 codes), and NaN
never becomes an out-of-range index.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import Tensor

#: The bound's margin (``eps`` of the original ``bound``), fixed as upstream fixes it.
BOUND_EPS = 1e-3


@dataclass(frozen=True)
class FSQParams:
    """Per-channel constants on one device, computed from int32 levels exactly as upstream does."""

    levels: Tensor  # int32 (d,)
    basis: Tensor  # int64 (d,): mixed-radix weights
    half_l: Tensor  # float32: (L - 1) * (1 + eps) / 2
    offset: Tensor  # float32: 0.5 for even L, else 0
    shift: Tensor  # float32: atanh(offset / half_l), or offset / half_l under a hard clamp
    half_width: Tensor  # int32: L // 2
    levels_minus_1: Tensor  # int32: L - 1
    sym_scale: Tensor  # float32: 2 / (L - 1), the symmetric variant's step
    symmetric: bool
    hard_clamp: bool
    codebook_size: int
    patterns: dict = field(default_factory=dict, compare=False, repr=False)

    def pattern(self, name: str, repeats: int) -> Tensor:
        """Constant ``name`` tiled ``repeats`` times (cached): one value per element of a row block."""
        value = getattr(self, name)
        if repeats == 1:
            return value
        key = (name, repeats)
        if key not in self.patterns:
            self.patterns[key] = value.repeat(repeats)
        return self.patterns[key]


def make_params(levels: Tensor, *, symmetric: bool, hard_clamp: bool) -> FSQParams:
    """Constants for int32 ``levels`` (any shape, usually ``(d,)``), on the levels' device."""
    if levels.dtype != torch.int32:
        raise TypeError(f"levels must be an int32 tensor, got {levels.dtype}")
    half_l = (levels - 1) * (1 + BOUND_EPS) / 2
    offset = torch.where(levels % 2 == 0, 0.5, 0.0)
    shift = offset / half_l if hard_clamp else torch.atanh(offset / half_l)
    levels_minus_1 = levels - 1
    basis = torch.cumprod(torch.cat([levels.new_ones(1), levels[:-1]]).to(torch.int64), dim=0)
    return FSQParams(
        levels=levels,
        basis=basis,
        half_l=half_l,
        offset=offset,
        shift=shift,
        half_width=levels // 2,
        levels_minus_1=levels_minus_1,
        sym_scale=2.0 / levels_minus_1,
        symmetric=symmetric,
        hard_clamp=hard_clamp,
        codebook_size=math.prod(levels.flatten().tolist()),
    )


def _squash(u: Tensor, hard_clamp: bool) -> Tensor:
    return torch.clamp(u, min=-1.0, max=1.0) if hard_clamp else torch.tanh(u)


def quantize(z: Tensor, p: FSQParams) -> Tensor:
    """Normalized codes of ``z`` (..., d), with straight-through rounding; upstream's ``quantize``."""
    if p.symmetric:
        # arXiv 2411.19842, section 3.2: QL(x) = 2 / (L - 1) * floor((L - 1) (tanh(x) + 1) / 2 + 0.5) - 1
        bracket = (p.levels_minus_1 * (_squash(z, p.hard_clamp) + 1) / 2.0) + 0.5
        bracket = bracket + (bracket.floor() - bracket).detach()
        return p.sym_scale * bracket - 1.0
    bounded = _squash(z + p.shift, p.hard_clamp) * p.half_l - p.offset
    rounded = bounded + (bounded.round() - bounded).detach()
    return rounded / p.half_width


def codes_to_level_indices(codes: Tensor, p: FSQParams) -> Tensor:
    """Per-channel level index (0 .. L-1) of normalized codes, as a rounded float tensor."""
    if p.symmetric:
        scaled = (codes + 1.0) / (2.0 / p.levels_minus_1)
    else:
        scaled = (codes * p.half_width) + p.half_width
    return scaled.round()


def combine_level_indices(level_indices: Tensor, p: FSQParams) -> Tensor:
    """Mixed-radix int32 index of per-channel level indices ``(..., d)`` (integer-valued floats or ints).

    Floats are summed as floats where that is exact (below 2^24 codes in float32, as upstream
    sums), else in int64. A NaN level index (NaN input with the finite check off) gives index 0.
    """
    if level_indices.is_floating_point():
        if level_indices.dtype not in (torch.float32, torch.float64):
            level_indices = level_indices.float()
        exact = 2**24 if level_indices.dtype == torch.float32 else 2**53
        if p.codebook_size <= exact:
            total = (level_indices * p.basis.to(level_indices.dtype)).sum(dim=-1)
            return total.nan_to_num_(nan=0.0).to(torch.int32)
        level_indices = torch.nan_to_num(level_indices, nan=0.0)
    return (level_indices.to(torch.int64) * p.basis).sum(dim=-1).to(torch.int32)


def split_indices(indices: Tensor, p: FSQParams) -> Tensor:
    """Per-channel level indices ``(..., d)`` of mixed-radix indices ``(...)``; upstream's formula."""
    return (indices.unsqueeze(-1) // p.basis) % p.levels


def level_indices_to_codes(level_indices: Tensor, p: FSQParams) -> Tensor:
    """Normalized codes of integer per-channel level indices; upstream's ``_scale_and_shift_inverse``."""
    if p.symmetric:
        return level_indices * (2.0 / p.levels_minus_1) - 1.0
    return (level_indices - p.half_width) / p.half_width


def forward(z: Tensor, p: FSQParams, *, with_indices: bool = True) -> tuple[Tensor, Tensor | None]:
    """Codes (same dtype as upstream computes them) and int32 indices of ``z`` (..., d)."""
    codes = quantize(z, p)
    indices = combine_level_indices(codes_to_level_indices(codes, p), p) if with_indices else None
    return codes, indices


def level_index(z: Tensor, p: FSQParams) -> Tensor:
    """The reference's per-channel level index of ``z`` (no grad): what every fast path must match."""
    with torch.no_grad():
        return codes_to_level_indices(quantize(z, p), p)


__all__ = [
    "BOUND_EPS",
    "FSQParams",
    "codes_to_level_indices",
    "combine_level_indices",
    "forward",
    "level_index",
    "level_indices_to_codes",
    "make_params",
    "quantize",
    "split_indices",
]
