"""FSQ's torch path and the reference gradient that every fast path shares.

The torch path runs the reference arithmetic of :mod:`.reference` op for op, in place in one
output-sized buffer (no intermediate larger than the codes), with the index as one matrix-vector
product of integer-valued floats (exact below 2^24 codes, integer arithmetic above). It is
bit-identical to the reference by construction, on any device and for float32 and float64.

:func:`reference_backward` gives the reference's gradient bit for bit without autograd: it
evaluates the backward operations that autograd records for the reference graph
(``tanh_backward(g / h * half_l, y)``, or the clamp's mask under a hard clamp). The custom
paths of :mod:`.paths` use it as the backward of every path that has no fused backward.
"""

from __future__ import annotations

import torch
from torch import Tensor

from . import reference as ref

_EXACT_FLOAT_INDEX = 2**24  # integer-valued float32 sums are exact below this


def _index_from_levels(level_values: Tensor, p: ref.FSQParams, offset: Tensor | None) -> Tensor:
    """int32 index of per-channel integer-valued floats ``(R, d)`` (``level - offset``)."""
    if p.codebook_size <= _EXACT_FLOAT_INDEX:
        weights = p.basis.to(level_values.dtype)
        flat = torch.mv(level_values, weights)
        if offset is not None:
            flat.add_(float((offset.to(torch.int64) * p.basis).sum()))
        return flat.nan_to_num_(nan=0.0).to(torch.int32)
    levels = torch.nan_to_num(level_values, nan=0.0).to(torch.int64)
    if offset is not None:
        levels += offset
    return ref.combine_level_indices(levels, p)


_BLOCK_ROWS = 256  # rows per block: per-channel constants broadcast over a long inner axis


def _blocked(*tensors: Tensor) -> list[tuple[int, tuple[Tensor, ...]]]:
    """Views of contiguous ``(R, d)`` tensors as ``(R // B, B * d)`` blocks plus a ``(R % B, d)`` tail.

    Each entry is ``(repeats, views)``: per-channel constants tiled ``repeats`` times line up with
    the views' last axis. Broadcasting a ``(d,)`` constant over ``(R, d)`` leaves torch an inner
    loop of ``d`` elements; over blocks it gets ``B * d``. Same elements, same operations.
    """
    rows, d = tensors[0].shape
    main = (rows // _BLOCK_ROWS) * _BLOCK_ROWS
    parts = []
    if main:
        parts.append((_BLOCK_ROWS, tuple(t[:main].view(-1, _BLOCK_ROWS * d) for t in tensors)))
    if rows > main:
        parts.append((1, tuple(t[main:] for t in tensors)))
    return parts


def forward(z: Tensor, p: ref.FSQParams, *, with_indices: bool = True, keep_squashed: bool = False):
    """Codes and indices of ``z`` (R, d), float32 or float64; optionally the tanh output for backward.

    Returns ``(codes, indices, squashed)``; ``squashed`` is None unless ``keep_squashed``.
    """
    z = z.contiguous()
    t = torch.empty(z.shape, dtype=torch.result_type(z, p.shift), device=z.device)
    squashed = torch.empty_like(t) if keep_squashed else None
    for r, (zp, tp, *kept) in _blocked(z, t, *([squashed] if keep_squashed else [])):
        sq = kept[0] if kept else tp
        if p.symmetric:
            if p.hard_clamp:
                torch.clamp(zp, min=-1.0, max=1.0, out=sq)
            else:
                torch.tanh(zp, out=sq)
            if kept:
                torch.add(sq, 1, out=tp)
            else:
                tp.add_(1)
            tp.mul_(p.pattern("levels_minus_1", r)).div_(2.0).add_(0.5).floor_()  # level index, as float
        else:
            torch.add(zp, p.pattern("shift", r), out=sq)
            if p.hard_clamp:
                sq.clamp_(min=-1.0, max=1.0)
            else:
                sq.tanh_()
            if kept:
                torch.mul(sq, p.pattern("half_l", r), out=tp)
            else:
                tp.mul_(p.pattern("half_l", r))
            tp.sub_(p.pattern("offset", r)).round_()  # level index minus half width, as float
    if with_indices:
        indices = _index_from_levels(t, p, None if p.symmetric else p.half_width)
    else:
        indices = None
    for r, (tp,) in _blocked(t):
        if p.symmetric:
            tp.mul_(p.pattern("sym_scale", r)).sub_(1.0)
        else:
            tp.div_(p.pattern("half_width", r))
    return t, indices, squashed


def reference_backward(z: Tensor, grad: Tensor, p: ref.FSQParams, squashed: Tensor | None = None) -> Tensor:
    """The reference's gradient with respect to ``z`` for the output gradient ``grad``.

    Evaluates the backward operations that autograd records for the reference graph, in their
    order: ``Div``/``Mul`` backward steps of the scale, then ``tanh_backward`` (or the clamp's mask
    ``where(-1 <= u <= 1, g, 0)`` under a hard clamp). ``squashed`` is ``tanh`` of the bound's input
    when the caller kept it; else it is recomputed. Plain tensor operations: no autograd needed,
    so this runs inside a custom operator and traces under ``torch.compile``.
    """
    z, grad = z.contiguous(), grad.contiguous()
    if p.hard_clamp:
        u = z if p.symmetric else z + p.shift
        if p.symmetric:  # codes = s * floor_ste((L - 1) * (clamp(z) + 1) / 2 + 0.5) - 1
            g = grad * p.sym_scale / 2.0 * p.levels_minus_1
        else:  # codes = round_ste(clamp(z + shift) * half_l - offset) / h
            g = grad / p.half_width * p.half_l
        return torch.where((u >= -1.0) & (u <= 1.0), g, 0.0).to(z.dtype)
    if squashed is None:
        squashed = torch.empty(z.shape, dtype=torch.result_type(z, p.shift), device=z.device)
        for r, (zp, sp) in _blocked(z, squashed):
            if p.symmetric:
                torch.tanh(zp, out=sp)
            else:
                torch.add(zp, p.pattern("shift", r), out=sp).tanh_()
    g = torch.empty_like(grad)
    for r, (gp, out) in _blocked(grad, g):
        if p.symmetric:  # codes = s * floor_ste((L - 1) * (y + 1) / 2 + 0.5) - 1
            torch.mul(gp, p.pattern("sym_scale", r), out=out).div_(2.0).mul_(p.pattern("levels_minus_1", r))
        else:  # codes = round_ste(y * half_l - offset) / h
            torch.div(gp, p.pattern("half_width", r), out=out).mul_(p.pattern("half_l", r))
    return torch.ops.aten.tanh_backward.grad_input(g, squashed, grad_input=g).to(z.dtype)


__all__ = ["forward", "reference_backward"]
