"""FSQ's fused GPU kernel (Triton): one read of the input, one write of codes and of indices.

Importing this module never needs Triton or CUDA; :func:`available` says whether the kernel can
run. Each program loads a tile of ``block_rows(d)`` rows of ``(R, d)`` input in its own dtype (float32,
bfloat16 or float16, widened to float32 exactly), counts per element the thresholds of
:mod:`.thresholds` that it reaches (computed with the device's own ``tanh``, so the counts are the
reference's level indices), gathers the code from a small per-channel table already in the output
dtype (so no division or rounding mode in the kernel can differ from the reference), sums the
int32 mixed-radix index and counts non-finite inputs with one atomic add per program.

:func:`level_index_formulation` states the same arithmetic in torch; the CPU tests check it against
the reference, and the GPU tests check the kernel against it.

Entry points besides :func:`forward` (``with_codes=False`` is the encode path, indices only):

- :func:`decode`: indices to codes, one program per tile of rows: per channel the level index
  ``(i // basis) % L`` gathers the code from the same per-channel table (so decode returns the
  forward kernel's codes bit for bit); an index outside the codebook gives a NaN row;
- :func:`backward`: the straight-through gradient with respect to the input in one pass: the
  reference's Div/Mul backward steps in IEEE arithmetic (``div_rn``, no contraction), ``tanh`` of
  the bound's input by libdevice, and ``tanh_backward`` rounded as ATen rounds it on this device
  (found once per device by :class:`RoundingProbe`, on the device and without a host
  synchronization), or the hard clamp's mask.

The host side keeps per-device constants cached (:func:`backward_constants`), copies nothing per
call, and synchronizes only where a count must reach Python (``check_finite`` / ``check_range``;
pass ``sync=False`` to get the count as a device tensor instead).
"""

from __future__ import annotations

import os
import warnings
from contextlib import nullcontext

import torch
from torch import Tensor

try:  # pragma: no cover - depends on the installation
    import triton
    import triton.language as tl
except Exception:  # ImportError, or a broken Triton install
    triton = None
    tl = None

_tanh = None
if triton is not None:  # pragma: no cover - depends on the Triton version
    try:
        from triton.language.extra import libdevice as _libdevice  # Triton >= 3.0

        _tanh = _libdevice.tanh
    except Exception:
        try:
            from triton.language.extra.cuda import libdevice as _libdevice

            _tanh = _libdevice.tanh
        except Exception:
            _tanh = getattr(tl.math, "tanh", None)

BLOCK_ROWS = 1024  # the most rows per program (for 1 or 2 channels): see block_rows
#: Elements per program: with 8 warps, 8 per thread. At 1024 rows for every width, ptxas (Triton
#: 3.7.1, sm_90a) gave the forward kernel 148 registers per thread for 4 channels and 243 for 5 or 6
#: (decode 152 / 225, backward 114 / 215): one block per SM. At 2048 elements: 71 / 62, 48 / 40,
#: 60 / 64 registers.
ELEMENTS_PER_PROGRAM = 2048


def block_rows(d: int) -> int:
    """Rows per program for ``d`` channels (padded to a power of two in the kernels)."""
    return max(64, min(BLOCK_ROWS, ELEMENTS_PER_PROGRAM // triton.next_power_of_2(d)))


#: Triton's interpreter (``TRITON_INTERPRET=1``, read when this module is imported) runs the kernels
#: on CPU tensors with numpy: the host functions then accept CPU tensors, so tests check them too.
INTERPRETING = os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


def available(device: torch.device | str | None = None) -> bool:
    """Whether the Triton kernel can run on ``device`` (default: the current CUDA device)."""
    return unavailable_reason(device) == ""


def unavailable_reason(device: torch.device | str | None = None) -> str:
    """Why the kernel cannot run ('' when it can)."""
    if triton is None:
        return "triton is not installed"
    if INTERPRETING and device is not None and torch.device(device).type == "cpu":
        return ""
    if not torch.cuda.is_available():
        return "no CUDA device"
    if device is not None and torch.device(device).type != "cuda":
        return f"input is on {torch.device(device).type}, the Triton kernel needs a CUDA tensor"
    return ""


def _on_device(device: torch.device):
    """Launch on ``device``: Triton launches on the current CUDA device, whatever the tensors' device."""
    if device.type == "cuda" and device.index is not None and device.index != torch.cuda.current_device():
        return torch.cuda.device(device.index)
    return nullcontext()


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
        WITH_CODES: tl.constexpr,
        WITH_INDICES: tl.constexpr,
        CHECK: tl.constexpr,
        MARK: tl.constexpr,
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
        finite = tl.abs(x) <= 3.4028234663852886e38
        if WITH_CODES:
            code = tl.load(table_ptr + cols[None, :] * L_MAX + k, mask=mask, other=0.0)
            if MARK:  # NaN input keeps NaN as its code, as tanh gives in the reference
                code = tl.where(x != x, x.to(code.dtype), code)
            tl.store(codes_ptr + offsets, code, mask=mask, eviction_policy="evict_first")
        if WITH_INDICES:
            basis = tl.load(basis_ptr + cols, mask=col_ok, other=0)
            index = tl.sum(k.to(tl.int64) * basis[None, :].to(tl.int64), axis=1).to(tl.int32)
            if MARK:  # a row with any NaN/Inf input gets index -1
                row_bad = tl.sum((mask & ~finite).to(tl.int32), axis=1) > 0
                index = tl.where(row_bad, -1, index)
            tl.store(idx_ptr + rows, index, mask=row_ok)
        if CHECK:
            n_bad = tl.sum((mask & ~finite).to(tl.int32), axis=None)
            tl.atomic_add(bad_ptr, n_bad)

    @triton.jit
    def _fsq_decode_kernel(
        idx_ptr,
        codes_ptr,
        bad_ptr,
        table_ptr,
        basis_ptr,
        n_rows,
        D: tl.constexpr,
        D_PAD: tl.constexpr,
        L_MAX: tl.constexpr,
        L_PAD: tl.constexpr,
        BLOCK: tl.constexpr,
        CHECK: tl.constexpr,
    ):
        pid = tl.program_id(0)
        rows = pid.to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
        cols = tl.arange(0, D_PAD)
        row_ok = rows < n_rows
        col_ok = cols < D
        # levels per channel, read off the table: codes rise strictly up to L - 1, then repeat
        j = tl.arange(0, L_PAD)
        tmask = col_ok[:, None] & (j >= 1)[None, :] & (j < L_MAX)[None, :]
        here = tl.load(table_ptr + cols[:, None] * L_MAX + j[None, :], mask=tmask, other=0.0)
        prev = tl.load(table_ptr + cols[:, None] * L_MAX + j[None, :] - 1, mask=tmask, other=0.0)
        levels = 1 + tl.sum((here != prev).to(tl.int64), axis=1)
        levels = levels.to(tl.int32)
        basis = tl.load(basis_ptr + cols, mask=col_ok, other=1).to(tl.int32)  # < 2^31: fits
        wide = tl.load(idx_ptr + rows, mask=row_ok, other=0).to(tl.int64)
        fits = (wide >= 0) & (wide < 2147483647)
        i = tl.where(fits, wide, 0).to(tl.int32)  # 32-bit division from here on
        q = i[:, None] // basis[None, :]
        k = q % levels[None, :]
        over = tl.where((cols == D - 1)[None, :], q >= levels[None, :], False)  # i >= prod(levels)
        bad_row = ~fits | (tl.sum(over.to(tl.int32), axis=1) > 0)
        k = tl.where(bad_row[:, None], 0, k)
        mask = row_ok[:, None] & col_ok[None, :]
        code = tl.load(table_ptr + cols[None, :] * L_MAX + k, mask=mask, other=0.0)
        code = tl.where(bad_row[:, None], float("nan"), code)  # outside the codebook: a NaN row
        tl.store(codes_ptr + rows[:, None] * D + cols[None, :], code, mask=mask)
        if CHECK:
            tl.atomic_add(bad_ptr, tl.sum((row_ok & bad_row).to(tl.int32), axis=None))

    @triton.jit
    def _fsq_backward_kernel(
        z_ptr,
        g_ptr,
        out_ptr,
        m1_ptr,
        dv_ptr,
        m2_ptr,
        shift_ptr,
        rounding_ptr,  # read in MODE 3: ATen's tanh_backward rounding as the device's probe found it
        n_rows,
        D: tl.constexpr,
        D_PAD: tl.constexpr,
        BLOCK: tl.constexpr,
        MODE: tl.constexpr,
    ):
        pid = tl.program_id(0)
        rows = pid.to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
        cols = tl.arange(0, D_PAD)
        col_ok = cols < D
        mask = (rows < n_rows)[:, None] & col_ok[None, :]
        offsets = rows[:, None] * D + cols[None, :]
        z = tl.load(z_ptr + offsets, mask=mask, other=0.0, eviction_policy="evict_first")
        g = tl.load(g_ptr + offsets, mask=mask, other=0.0, eviction_policy="evict_first")
        m1 = tl.load(m1_ptr + cols, mask=col_ok, other=1.0)
        dv = tl.load(dv_ptr + cols, mask=col_ok, other=1.0)
        m2 = tl.load(m2_ptr + cols, mask=col_ok, other=1.0)
        shift = tl.load(shift_ptr + cols, mask=col_ok, other=0.0)
        t = tl.math.div_rn(g * m1[None, :], dv[None, :]) * m2[None, :]  # the Div and Mul backward steps
        u = z + shift[None, :]
        if MODE == 2:  # clamp's backward: the gradient where the bound's input is inside [-1, 1]
            grad = tl.where((u >= -1.0) & (u <= 1.0), t, 0.0)
        else:
            y = _tanh(u)
            if MODE == 0:  # tanh_backward as ATen computes it here: a * fma(-y, y, 1)
                grad = t * tl.fma(-y, y, 1.0)
            elif MODE == 1:  # or with two roundings: a * (1 - y * y)
                grad = t * (1.0 - y * y)
            else:  # not known on the host yet: the probe's result, read on the device (no sync)
                rounding = tl.load(rounding_ptr)
                grad = tl.where(rounding == 0, t * tl.fma(-y, y, 1.0), t * (1.0 - y * y))
        tl.store(out_ptr + offsets, grad, mask=mask)


def _launch_options() -> dict:
    """Compile options that keep IEEE rounding: no multiply-add contraction where ATen has none."""
    return {"enable_fp_fusion": False}


def forward(
    z: Tensor,
    thresholds: Tensor,
    table: Tensor,
    basis: Tensor,
    *,
    with_indices: bool = True,
    check_finite: bool = True,
    with_codes: bool = True,
    sync: bool = True,
    mark_nonfinite: bool = False,
) -> tuple[Tensor | None, Tensor | None, int | Tensor]:
    """Codes ``(R, d)`` in ``table``'s dtype (or None), int32 indices ``(R,)`` and the non-finite count.

    ``z``: CUDA ``(R, d)``, float32/bfloat16/float16; ``thresholds``: float32 ``(d, J)`` NaN-padded;
    ``table``: ``(d, L_max)`` codes per channel and level; ``basis``: int32 ``(d,)`` (all three
    cached per device by the caller). ``with_codes=False`` writes indices only (encode). The count
    is an int (one device-to-host copy) when ``check_finite`` and ``sync``; a device tensor when
    ``sync=False`` (no synchronization); 0 when the check is off. ``mark_nonfinite``: NaN codes
    where the input is NaN and index -1 for rows with a NaN/Inf, in the same pass.
    """
    reason = unavailable_reason(z.device)
    if reason:
        raise RuntimeError(f"the FSQ Triton kernel is unavailable: {reason}")
    z = z.contiguous()
    rows, d = z.shape
    codes = torch.empty((rows, d), dtype=table.dtype, device=z.device) if with_codes else None
    idx = torch.empty(rows, dtype=torch.int32, device=z.device) if with_indices else None
    bad = torch.zeros(1, dtype=torch.int32, device=z.device) if check_finite else None
    if rows:
        block = block_rows(d)
        grid = (triton.cdiv(rows, block),)
        dummy = z  # never written: the kernel's flags switch those stores off
        with _on_device(z.device):
            _fsq_kernel[grid](
                z,
                dummy if codes is None else codes,
                dummy if idx is None else idx,
                dummy if bad is None else bad,
                thresholds if thresholds.is_contiguous() else thresholds.contiguous(),
                table if table.is_contiguous() else table.contiguous(),
                basis,  # int32 or int64: the kernel widens it
                rows,
                D=d,
                D_PAD=triton.next_power_of_2(d),
                J=thresholds.shape[1],
                L_MAX=table.shape[1],
                BLOCK=block,
                WITH_CODES=with_codes,
                WITH_INDICES=with_indices,
                CHECK=check_finite,
                MARK=mark_nonfinite,
                num_warps=8,
            )
    if bad is None:
        return codes, idx, 0
    return codes, idx, (int(bad.item()) if sync else bad)


def decode(indices: Tensor, table: Tensor, basis: Tensor, *, check_range: bool = False) -> Tensor:
    """Codes ``(*indices.shape, d)`` in ``table``'s dtype of int32/int64 CUDA indices, in one pass.

    ``table`` and ``basis`` (int32 or int64) as for :func:`forward`; the levels are read off the
    table in the kernel (its codes rise strictly up to level ``L - 1``, then repeat), so nothing
    per call comes from the host. An index outside ``[0, prod(levels))`` gives a NaN row (no
    synchronization); with ``check_range`` it raises ValueError instead (one device-to-host copy).
    """
    reason = unavailable_reason(indices.device)
    if reason:
        raise RuntimeError(f"the FSQ Triton kernel is unavailable: {reason}")
    if indices.dtype not in (torch.int32, torch.int64):
        raise ValueError(f"expected int32 or int64 indices, got {indices.dtype}")
    d = table.shape[0]
    flat = indices.contiguous().view(-1)  # the kernel reads indices as one dense run
    rows = flat.numel()
    codes = torch.empty((rows, d), dtype=table.dtype, device=indices.device)
    bad = torch.zeros(1, dtype=torch.int32, device=indices.device) if check_range else codes
    if rows:
        block = block_rows(d)
        grid = (triton.cdiv(rows, block),)
        with _on_device(indices.device):
            _fsq_decode_kernel[grid](
                flat,
                codes,
                bad,
                table,
                basis,
                rows,
                D=d,
                D_PAD=triton.next_power_of_2(d),
                L_MAX=table.shape[1],
                L_PAD=triton.next_power_of_2(table.shape[1]),
                BLOCK=block,
                CHECK=check_range,
                num_warps=8,
            )
    if check_range and rows and int(bad.item()):
        raise ValueError(f"expected indices inside the codebook, got {int(bad.item())} value(s) outside it")
    return codes.view(*indices.shape, d)


def tanh_backward_rounding(device: torch.device | str) -> int | None:
    """How ATen's ``tanh_backward`` rounds on ``device``: 0 ``a * fma(-y, y, 1)``, 1 ``a * (1 - y*y)``.

    Found once per device by comparing ATen with both formulations (the fused one computed exactly
    in float64, then rounded once); None when neither matches.
    """
    device = torch.device(device)
    if device in _ROUNDING:
        return _ROUNDING[device]
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(8191, generator=gen).to(device)
    y = torch.tanh(torch.randn(8191, generator=gen) * 2).to(device)
    expected = torch.ops.aten.tanh_backward(a, y)
    fused = a * (1.0 - y.double() * y.double()).float()
    plain = a * (1.0 - y * y)
    found = 0 if torch.equal(expected, fused) else 1 if torch.equal(expected, plain) else None
    _ROUNDING[device] = found
    return found


_ROUNDING: dict[torch.device, int | None] = {}

_PENDING = 3  # the backward kernel's MODE that reads the rounding from device memory
_NEITHER = 2  # the probe's flag when neither known rounding matches ATen's


class RoundingProbe:
    """ATen's ``tanh_backward`` rounding on one device, found without a host synchronization.

    The probe runs on the device's stream once (its inputs drawn there, so nothing is copied from
    the host) and leaves its verdict in ``flag`` (int32: 0 fused, 1 two roundings, 2 neither). A
    non-blocking copy brings it to pinned host memory; :meth:`known` reads it once the copy's event
    has completed, never waiting. Until then the backward kernel reads ``flag`` itself.
    """

    def __init__(self, device: torch.device) -> None:
        gen = torch.Generator(device=device).manual_seed(0)
        a = torch.randn(8191, generator=gen, device=device)
        y = torch.tanh(torch.randn(8191, generator=gen, device=device) * 2)
        expected = torch.ops.aten.tanh_backward(a, y)
        fused = (expected == a * (1.0 - y.double() * y.double()).float()).all()
        plain = (expected == a * (1.0 - y * y)).all()
        self.flag = torch.where(fused, 0, torch.where(plain, 1, _NEITHER)).to(torch.int32).reshape(1)
        self._value: int | None = None
        self._event = None
        if device.type == "cuda":
            self._host = torch.empty(1, dtype=torch.int32, pin_memory=True)
            self._host.copy_(self.flag, non_blocking=True)
            self._event = torch.cuda.Event()
            self._event.record()
        else:  # the interpreter's CPU tensors: nothing to wait for
            self._value = int(self.flag[0])

    def known(self) -> int:
        """0 or 1 (the rounding), 2 (neither: replay torch), or 3 (not on the host yet)."""
        if self._value is None and not torch.cuda.is_current_stream_capturing() and self._event.query():
            self._value = int(self._host[0])  # pinned memory the copy has filled: no CUDA call
            if self._value == _NEITHER:
                warnings.warn(
                    "ATen's tanh_backward on this device matches neither known rounding; FSQ's Triton "
                    "backward replays the torch formulation instead (slower, still exact)",
                    stacklevel=3,
                )
        return _PENDING if self._value is None else self._value


_PROBES: dict[torch.device, RoundingProbe] = {}


def rounding_probe(device: torch.device | str) -> RoundingProbe:
    """The :class:`RoundingProbe` of ``device`` (started on first use)."""
    device = torch.device(device)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    probe = _PROBES.get(device)
    if probe is None:
        with _on_device(device):
            probe = _PROBES[device] = RoundingProbe(device)
    return probe


def backward_constants(params) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """``(m1, dv, m2, shift)`` float32 ``(d,)`` of ``reference.FSQParams``, cached in its patterns.

    The reference's backward chain is ``((g * m1) / dv) * m2`` then the bound's backward at
    ``z + shift``: ``(1, h, half_l, shift)`` for the plain bound, ``(2/(L-1), 2, L-1, 0)`` for the
    symmetric one.
    """
    key = ("triton.backward",)
    if key not in params.patterns:
        if params.symmetric:
            m1 = params.sym_scale.float()
            consts = (m1, torch.full_like(m1, 2.0), params.levels_minus_1.float(), torch.zeros_like(m1))
        else:
            h = params.half_width.float()
            consts = (torch.ones_like(h), h, params.half_l.float(), params.shift.float())
        params.patterns[key] = tuple(t.contiguous() for t in consts)
    return params.patterns[key]


def backward(z: Tensor, grad_codes: Tensor, params) -> Tensor:
    """The reference's straight-through gradient with respect to float32 CUDA ``z`` ``(R, d)``, one pass.

    ``params``: ``reference.FSQParams`` on ``z``'s device. Falls back to the torch formulation
    when this device's ``tanh_backward`` rounding is neither of the two known ones.
    """
    reason = unavailable_reason(z.device)
    if reason:
        raise RuntimeError(f"the FSQ Triton kernel is unavailable: {reason}")
    if z.dtype != torch.float32 or grad_codes.dtype != torch.float32 or grad_codes.shape != z.shape:
        raise ValueError(
            f"expected float32 z and grad_codes of one shape (R, d), got {z.dtype} {tuple(z.shape)} "
            f"and {grad_codes.dtype} {tuple(grad_codes.shape)}"
        )
    probe = None
    if params.hard_clamp:
        mode = 2
    else:
        probe = rounding_probe(z.device)
        mode = probe.known()
        if mode == _NEITHER or _tanh is None:
            from .torch_path import reference_backward

            return reference_backward(z, grad_codes, params)
    z, grad_codes = z.contiguous(), grad_codes.contiguous()
    rows, d = z.shape
    out = torch.empty_like(z)
    if rows:
        m1, dv, m2, shift = backward_constants(params)
        block = block_rows(d)
        grid = (triton.cdiv(rows, block),)
        with _on_device(z.device):
            _fsq_backward_kernel[grid](
                z,
                grad_codes,
                out,
                m1,
                dv,
                m2,
                shift,
                m1 if probe is None else probe.flag,  # read only in MODE 3
                rows,
                D=d,
                D_PAD=triton.next_power_of_2(d),
                BLOCK=block,
                MODE=mode,
                num_warps=8,
                **_launch_options(),
            )
        if mode == _PENDING:  # until the host knows: neither rounding matched -> the torch formulation
            from .torch_path import reference_backward

            out = torch.where(probe.flag == _NEITHER, reference_backward(z, grad_codes, params), out)
    return out


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


def decode_formulation(indices: Tensor, table: Tensor, basis: Tensor) -> Tensor:
    """The decode kernel's arithmetic in plain torch: levels read off the table, ``(i // basis) % L``."""
    levels = 1 + (table[:, 1:] != table[:, :-1]).sum(1)
    i = indices.to(torch.int64)[..., None]
    q = i // basis.to(torch.int64)
    bad = (i[..., 0] < 0) | (q[..., -1] >= levels[-1])
    k = torch.where(bad[..., None], 0, q % levels)
    channels = torch.arange(table.shape[0], device=indices.device)
    return torch.where(bad[..., None], float("nan"), table[channels, k])


def backward_formulation(z: Tensor, grad_codes: Tensor, params, rounding: int) -> Tensor:
    """The backward kernel's arithmetic in plain torch (float32; ``rounding`` as the kernel's MODE)."""
    m1, dv, m2, shift = backward_constants(params)
    t = ((grad_codes * m1) / dv) * m2
    u = z + shift
    if params.hard_clamp:
        return torch.where((u >= -1.0) & (u <= 1.0), t, torch.zeros((), device=z.device))
    y = torch.tanh(u)
    if rounding == 0:
        return t * (1.0 - y.double() * y.double()).float()
    return t * (1.0 - y * y)


__all__ = [
    "BLOCK_ROWS",
    "block_rows",
    "available",
    "backward",
    "backward_constants",
    "backward_formulation",
    "decode",
    "decode_formulation",
    "forward",
    "level_index_formulation",
    "rounding_probe",
    "tanh_backward_rounding",
    "unavailable_reason",
]
