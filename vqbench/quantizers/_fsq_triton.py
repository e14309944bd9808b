"""FSQ's fused GPU kernel (Triton): one read of the input, one write of codes and of indices.

Importing this module never needs Triton or CUDA; :func:`available` says whether the kernel can
run. Each program loads a tile of ``BLOCK_ROWS`` rows of ``(R, d)`` input in its own dtype (float32,
bfloat16 or float16, widened to float32 exactly), counts per element the thresholds of
``_fsq_thresholds`` that it reaches (computed with the device's own ``tanh``, so the counts are the
reference's level indices), gathers the code from a small per-channel table already in the output
dtype (so no division or rounding mode in the kernel can differ from the reference), sums the
int32 mixed-radix index and counts non-finite inputs with one atomic add per program.

:func:`level_index_formulation` states the same arithmetic in torch; the CPU tests check it against
the reference, and the GPU tests check the kernel against it.
"""

from __future__ import annotations

import torch
from torch import Tensor

try:  # pragma: no cover - depends on the installation
    import triton
    import triton.language as tl
except Exception:  # ImportError, or a broken Triton install
    triton = None
    tl = None

BLOCK_ROWS = 1024


def available(device: torch.device | str | None = None) -> bool:
    """Whether the Triton kernel can run on ``device`` (default: the current CUDA device)."""
    return unavailable_reason(device) == ""


def unavailable_reason(device: torch.device | str | None = None) -> str:
    """Why the kernel cannot run ('' when it can)."""
    if triton is None:
        return "triton is not installed"
    if not torch.cuda.is_available():
        return "no CUDA device"
    if device is not None and torch.device(device).type != "cuda":
        return f"input is on {torch.device(device).type}, the Triton kernel needs a CUDA tensor"
    return ""


if triton is not None:  # pragma: no cover - needs a GPU

    @triton.jit
    def _fsq_kernel(
        x_ptr,
        codes_ptr,
        idx_ptr,
        bad_ptr,
        thr_ptr,
        table_ptr,
        basis_ptr,
        n_rows,
        D: tl.constexpr,
        D_PAD: tl.constexpr,
        J: tl.constexpr,
        L_MAX: tl.constexpr,
        BLOCK: tl.constexpr,
        WITH_INDICES: tl.constexpr,
        CHECK: tl.constexpr,
    ):
        pid = tl.program_id(0)
        rows = pid.to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
        cols = tl.arange(0, D_PAD)
        row_ok = rows < n_rows
        col_ok = cols < D
        mask = row_ok[:, None] & col_ok[None, :]
        offsets = rows[:, None] * D + cols[None, :]
        x = tl.load(x_ptr + offsets, mask=mask, other=0.0, eviction_policy="evict_first").to(tl.float32)
        k = tl.zeros((BLOCK, D_PAD), dtype=tl.int32)
        for j in tl.static_range(J):
            t = tl.load(thr_ptr + cols * J + j, mask=col_ok, other=float("nan"))
            k += (x >= t[None, :]).to(tl.int32)
        code = tl.load(table_ptr + cols[None, :] * L_MAX + k, mask=mask, other=0.0)
        tl.store(codes_ptr + offsets, code, mask=mask)
        if WITH_INDICES:
            basis = tl.load(basis_ptr + cols, mask=col_ok, other=0)
            tl.store(idx_ptr + rows, tl.sum(k * basis[None, :], axis=1), mask=row_ok)
        if CHECK:
            finite = tl.abs(x) <= 3.4028234663852886e38
            n_bad = tl.sum((mask & ~finite).to(tl.int32), axis=None)
            tl.atomic_add(bad_ptr, n_bad)


def forward(
    z: Tensor,
    thresholds: Tensor,
    table: Tensor,
    basis: Tensor,
    *,
    with_indices: bool = True,
    check_finite: bool = True,
) -> tuple[Tensor, Tensor | None, int]:
    """Codes ``(R, d)`` in ``table``'s dtype, int32 indices ``(R,)`` and the non-finite count.

    ``z``: CUDA ``(R, d)``, float32/bfloat16/float16; ``thresholds``: float32 ``(d, J)`` NaN-padded;
    ``table``: ``(d, L_max)`` codes per channel and level; ``basis``: int32 ``(d,)``.
    """
    reason = unavailable_reason(z.device)
    if reason:
        raise RuntimeError(f"the FSQ Triton kernel is unavailable: {reason}")
    z = z.contiguous()
    rows, d = z.shape
    codes = torch.empty((rows, d), dtype=table.dtype, device=z.device)
    idx = torch.empty(rows, dtype=torch.int32, device=z.device) if with_indices else codes
    bad = torch.zeros(1, dtype=torch.int32, device=z.device)
    if rows:
        grid = (triton.cdiv(rows, BLOCK_ROWS),)
        _fsq_kernel[grid](
            z,
            codes,
            idx,
            bad,
            thresholds.contiguous(),
            table.contiguous(),
            basis.to(torch.int32).contiguous(),
            rows,
            D=d,
            D_PAD=triton.next_power_of_2(d),
            J=thresholds.shape[1],
            L_MAX=table.shape[1],
            BLOCK=BLOCK_ROWS,
            WITH_INDICES=with_indices,
            CHECK=check_finite,
            num_warps=8,
        )
    n_bad = int(bad.item()) if check_finite else 0  # one tiny device-to-host copy
    return codes, (idx if with_indices else None), n_bad


def level_index_formulation(z: Tensor, thresholds: Tensor, table: Tensor, basis: Tensor):
    """The kernel's arithmetic in plain torch: codes from the table, int32 indices, non-finite count."""
    zf = z.float()
    k = torch.zeros(zf.shape, dtype=torch.int64, device=z.device)
    for j in range(thresholds.shape[1]):
        k += zf >= thresholds[:, j]
    channels = torch.arange(zf.shape[-1], device=z.device)
    codes = table[channels, k]
    idx = (k * basis.to(torch.int64)).sum(-1).to(torch.int32)
    return codes, idx, int((~torch.isfinite(zf)).sum())


__all__ = ["BLOCK_ROWS", "available", "forward", "level_index_formulation", "unavailable_reason"]
