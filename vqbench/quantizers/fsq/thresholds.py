"""Decision boundaries of FSQ in input space, found with the reference arithmetic itself.

Per channel, the reference maps a float32 input ``z`` to a level index ``k(z)`` in ``0 .. L-1``
through ``tanh`` (or a clamp), a scale, a shift and a rounding. Each of those float operations is
monotone, so ``k`` is a non-decreasing step function of ``z`` wherever the device's ``tanh`` is
monotone. Then ``k(z) = #{j : z >= t_j}`` with ``t_j`` the smallest float32 whose reference level
index is at least ``j``; the fast kernels compare against these ``L - 1`` thresholds and never
evaluate ``tanh``.

The thresholds are found by bisection over the ordered float32 bit patterns, evaluating the
reference arithmetic (``reference.level_index``) on the device that the kernel runs on, so
they are exact for that device's ``tanh``: the kernels give the reference's level index for every
input except where ``tanh`` itself is not monotone next to a threshold. A non-monotone step of a
correctly rounded or few-ulp ``tanh`` can only fall within a few output ulps of a threshold, so
``tests/test_fsq_exactness.py`` checks every float32 within 2^14 ulps of every threshold of every
preset (2^20 ulps, and every variant, in its slow tests), where it also checks that the reference's
level index is monotone, and random inputs besides; on the CPU no disagreement has been found.

NaN compares false against every threshold (level index 0); +-inf give the top and bottom levels,
as ``tanh`` does in the reference.
"""

from __future__ import annotations

import torch
from torch import Tensor

from . import reference as ref

_INF_BITS = 0x7F800000


def float_to_key(x: Tensor) -> Tensor:
    """Order-preserving int64 key of float32 values (``-0.0`` and ``0.0`` share key 0)."""
    bits = x.contiguous().view(torch.int32).to(torch.int64)
    return torch.where(bits >= 0, bits, -(bits & 0x7FFFFFFF))


def key_to_float(key: Tensor) -> Tensor:
    """Inverse of :func:`float_to_key` (key 0 gives ``+0.0``)."""
    bits = torch.where(key >= 0, key, (-key) | 0x80000000)
    bits = torch.where(bits >= 2**31, bits - 2**32, bits)  # as signed int32
    return bits.to(torch.int32).view(torch.float32)


def find_thresholds(levels: list[int], *, symmetric: bool, hard_clamp: bool, device: torch.device) -> Tensor:
    """Thresholds ``(d, max(L) - 1)`` float32 on ``device``; NaN pads channels with fewer levels.

    ``out[c, j - 1]`` is the smallest float32 ``z`` whose reference level index in channel ``c``
    is at least ``j``.
    """
    distinct = sorted(set(levels))
    pair_levels = [lv for lv in distinct for _ in range(1, lv)]
    pair_j = [j for lv in distinct for j in range(1, lv)]
    lv = torch.tensor(pair_levels, dtype=torch.int32, device=device)
    target = torch.tensor(pair_j, dtype=torch.float32, device=device)
    params = ref.make_params(lv, symmetric=symmetric, hard_clamp=hard_clamp)

    def level(key: Tensor) -> Tensor:
        return ref.level_index(key_to_float(key), params)

    lo = torch.full_like(target, -_INF_BITS, dtype=torch.int64)
    hi = torch.full_like(target, _INF_BITS, dtype=torch.int64)
    if not (bool((level(lo) < target).all()) and bool((level(hi) >= target).all())):
        raise RuntimeError(f"FSQ level index is not bounded by -inf/+inf for levels {levels}")
    # invariant: level(lo) < j <= level(hi); 32 halvings of the key range suffice
    while bool(((hi - lo) > 1).any()):
        mid = lo + (hi - lo) // 2
        up = level(mid) >= target
        hi = torch.where(up, mid, hi)
        lo = torch.where(up, lo, mid)
    found = key_to_float(hi)

    width = max(levels) - 1
    out = torch.full((len(levels), width), float("nan"), dtype=torch.float32, device=device)
    start = {}
    pos = 0
    for value in distinct:
        start[value] = pos
        pos += value - 1
    for channel, value in enumerate(levels):
        out[channel, : value - 1] = found[start[value] : start[value] + value - 1]
    return out


def level_index_by_thresholds(z: Tensor, thresholds: Tensor) -> Tensor:
    """``#{j : z >= t_j}`` per channel of ``z`` (..., d), as int32; the kernels' arithmetic in torch."""
    k = torch.zeros(z.shape, dtype=torch.int32, device=z.device)
    for j in range(thresholds.shape[1]):
        k += z >= thresholds[:, j]
    return k


def boundary_window(thresholds: Tensor, ulps: int) -> Tensor:
    """Every float32 within ``ulps`` of any threshold of one channel row ``(J,)``, sorted, as a 1-D tensor."""
    keys = float_to_key(thresholds[~torch.isnan(thresholds)].float().cpu())
    span = torch.arange(-ulps, ulps + 1, dtype=torch.int64)
    window = (keys[:, None] + span[None, :]).flatten().clamp(-_INF_BITS, _INF_BITS).unique()
    return key_to_float(window)


__all__ = ["boundary_window", "find_thresholds", "float_to_key", "key_to_float", "level_index_by_thresholds"]
