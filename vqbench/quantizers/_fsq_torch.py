"""FSQ's torch path and the straight-through autograd shared by every fast path.

The torch path runs the reference arithmetic of ``_fsq_reference`` op for op, in place in one
output-sized buffer (no intermediate larger than the codes), with the index as one matrix-vector
product of integer-valued floats (exact below 2^24 codes, integer arithmetic above). It is
bit-identical to the reference by construction, on any device and for float32 and float64.

:class:`STEQuantize` wraps any forward (this one, the CPU kernel, the Triton kernel) in an autograd
function whose backward gives the reference's gradient bit for bit: for the default tanh bounds it
evaluates the same backward operations that autograd records for the reference graph
(``tanh_backward(g / h * half_l, y)``); for the hard-clamp variants it replays the reference graph.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from . import _fsq_reference as ref

_EXACT_FLOAT_INDEX = 2**24  # integer-valued float32 sums are exact below this


def _index_from_levels(level_values: Tensor, p: ref.FSQParams, offset: Tensor | None) -> Tensor:
    """int32 index of per-channel integer-valued floats ``(R, d)`` (``level - offset``)."""
    size = int(torch.prod(p.levels.to(torch.int64)))
    if size <= _EXACT_FLOAT_INDEX:
        weights = p.basis.to(level_values.dtype)
        flat = torch.mv(level_values, weights)
        if offset is not None:
            flat.add_(float((offset.to(torch.int64) * p.basis).sum()))
        return flat.nan_to_num_(nan=0.0).to(torch.int32)
    levels = torch.nan_to_num(level_values, nan=0.0).to(torch.int64)
    if offset is not None:
        levels += offset
    return ref.combine_level_indices(levels, p)


def forward(z: Tensor, p: ref.FSQParams, *, with_indices: bool = True, keep_squashed: bool = False):
    """Codes and indices of ``z`` (R, d), float32 or float64; optionally the tanh output for backward.

    Returns ``(codes, indices, squashed)``; ``squashed`` is None unless ``keep_squashed``.
    """
    squashed = None
    if p.symmetric:
        t = torch.clamp(z, min=-1.0, max=1.0) if p.hard_clamp else torch.tanh(z)
        if keep_squashed:
            squashed, t = t, t.add(1)
        else:
            t.add_(1)
        t.mul_(p.levels_minus_1).div_(2.0).add_(0.5).floor_()  # level index k, as float
        indices = _index_from_levels(t, p, None) if with_indices else None
        t.mul_(p.sym_scale).sub_(1.0)
    else:
        t = torch.add(z, p.shift)
        t = t.clamp_(min=-1.0, max=1.0) if p.hard_clamp else t.tanh_()
        if keep_squashed:
            squashed, t = t, t.mul(p.half_l)
        else:
            t.mul_(p.half_l)
        t.sub_(p.offset).round_()  # level index minus half width, as float
        indices = _index_from_levels(t, p, p.half_width) if with_indices else None
        t.div_(p.half_width)
    return t, indices, squashed


def reference_backward(z: Tensor, grad: Tensor, p: ref.FSQParams, squashed: Tensor | None = None) -> Tensor:
    """The reference's gradient with respect to ``z`` for the output gradient ``grad``.

    ``squashed`` is ``tanh`` of the bound's input when the caller kept it; else it is recomputed.
    """
    if p.hard_clamp:  # replay the reference graph: clamp masks are not worth hand-writing
        with torch.enable_grad():
            leaf = z.detach().requires_grad_(True)
            (out,) = torch.autograd.grad(ref.quantize(leaf, p), leaf, grad)
        return out
    if squashed is None:
        squashed = torch.tanh(z) if p.symmetric else torch.add(z, p.shift).tanh_()
    if p.symmetric:  # codes = s * floor_ste((L - 1) * (y + 1) / 2 + 0.5) - 1
        g = (grad * p.sym_scale).div_(2.0).mul_(p.levels_minus_1)
    else:  # codes = round_ste(y * half_l - offset) / h
        g = (grad / p.half_width).mul_(p.half_l)
    return torch.ops.aten.tanh_backward(g, squashed)


Forward = Callable[[Tensor], "tuple[Tensor, Tensor | None]"]


class STEQuantize(torch.autograd.Function):
    """Codes and indices from a fast forward; the reference's straight-through gradient backward."""

    @staticmethod
    def forward(ctx, z: Tensor, params: ref.FSQParams, fast_forward: Forward, keep: bool):  # type: ignore[override]
        if keep:  # the torch path: keep tanh's output instead of recomputing it
            codes, indices, squashed = forward(z, params, keep_squashed=not params.hard_clamp)
        else:
            (codes, indices), squashed = fast_forward(z), None
        ctx.params = params
        ctx.save_for_backward(z, squashed)
        if indices is not None:
            ctx.mark_non_differentiable(indices)
        return codes, indices

    @staticmethod
    def backward(ctx, grad_codes: Tensor, grad_indices: Tensor | None):  # type: ignore[override]
        z, squashed = ctx.saved_tensors
        grad = None
        if ctx.needs_input_grad[0] and grad_codes is not None:
            grad = reference_backward(z, grad_codes, ctx.params, squashed)
        return grad, None, None, None


__all__ = ["STEQuantize", "forward", "reference_backward"]
