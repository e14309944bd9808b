"""FSQ's fused CPU kernel: one pass over float32 input, codes and indices written once.

The C program ``fsq_kernel.c`` (built and loaded by :mod:`.cpu_build`), called through ctypes
(which releases the GIL, so row chunks run on ``torch.get_num_threads()`` Python threads). Set
``VQBENCH_FSQ_CPU_KERNEL=0`` to turn it off. Without a compiler the kernel is unavailable and
vqbench's FSQ falls back to its torch path.

Per element the kernel counts the thresholds of :mod:`.thresholds` that the input reaches (no
``tanh``), writes the code of that level with the reference's own float arithmetic (``(k - h) / h``,
or ``k * s - 1`` for the symmetric variant; compiled with ``-ffp-contract=off`` so that no FMA
changes a rounding), and sums the mixed-radix index in int32. Optionally it counts NaN/Inf inputs
on the way, which makes the finite check free.

Entry points (all take float32 CPU rows ``(R, d)`` and split rows over the thread pool):

- :func:`forward` ``(z, prep, *, with_indices, check_finite, with_codes, mark_nonfinite)`` ->
  ``(codes, indices, n_bad)``: ``with_codes=False`` is encode (indices only);
  ``mark_nonfinite`` writes NaN codes for NaN input and index -1 for non-finite rows in the pass;
- :func:`decode` ``(indices, prep)`` -> codes ``(*indices.shape, d)``: per row one or two table
  reads (every code when the codebook has at most 4096, else two tables of about sqrt(size) rows
  split at a channel, whose bits are or-ed), so decode gives the forward kernel's codes bit for
  bit; an index outside the codebook raises ValueError (counted in the same pass);
- :func:`backward` ``(z, grad_codes, params)`` -> grad_z: the reference's straight-through
  gradient in one kernel pass (for the tanh bounds after torch's own ``tanh`` of the bound's input,
  chunk by chunk in cache; ``tanh_backward`` rounded as ATen rounds it here, found once:
  :func:`tanh_backward_rounding`).
"""

from __future__ import annotations

import ctypes
import math
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import torch
from torch import Tensor

from .cpu_build import available, load, unavailable_reason

#: Rows per thread below which a call runs on fewer threads (the pool splits larger calls).
MIN_ROWS_PER_THREAD = 32768

_lock = threading.Lock()
_state: dict[str, object] = {}  # the thread pool and the rounding of ATen's tanh_backward


def _pool() -> ThreadPoolExecutor:
    with _lock:
        pool = _state.get("pool")
        if pool is None:
            pool = ThreadPoolExecutor(
                max_workers=max(1, os.cpu_count() or 1), thread_name_prefix="vqbench-fsq"
            )
            _state["pool"] = pool
        return pool  # type: ignore[return-value]


_BACKWARD_CHUNK = 24 * 1024  # elements of tanh scratch per step: in cache, below ATen's grain size
_DECODE_SINGLE_TABLE = 4096  # codebooks up to this size decode from one table of every code


@dataclass(frozen=True)
class Prepared:
    """Per-configuration kernel constants, laid out in blocks of ``rows_per_block`` rows."""

    d: int
    n_thresholds: int
    rows_per_block: int
    thresholds: Tensor  # float32 (J, P): threshold j of position p's channel, NaN-padded
    a: Tensor  # float32 (P,)
    b: Tensor  # float32 (P,)
    basis: Tensor  # int32 (d,)
    mode: int  # 0: (k + a) / b; 1: k * a - b
    codebook_size: int = 0
    split: int = 0  # decode: index i reads row i % split of decode_lo and row i // split of decode_hi
    decode_lo: Tensor | None = None  # int32 bits of float32 codes (split, d), zero in the hi channels
    decode_hi: Tensor | None = None  # int32 bits (codebook_size // split, d), zero in the lo channels


def _code_values(k: Tensor, a: Tensor, b: Tensor, mode: int) -> Tensor:
    """Codes of float32 level indices ``k`` with the forward kernel's own arithmetic."""
    return (k + a) / b if mode == 0 else k * a - b


def _decode_tables(levels: list[int], a: Tensor, b: Tensor, mode: int) -> tuple[int, Tensor, Tensor]:
    """``(split, lo, hi)``: one table when the codebook is small, else two of about sqrt(size) rows."""
    d, size = len(levels), math.prod(levels)
    prefix = [math.prod(levels[:k]) for k in range(d + 1)]
    if size <= _DECODE_SINGLE_TABLE or d == 1:
        k = d
    else:
        k = min(range(1, d), key=lambda c: max(prefix[c], size // prefix[c]))
    split = prefix[k]

    def table(rows: int, channels: range, base: int) -> Tensor:
        out = torch.zeros(rows, d, dtype=torch.float32)
        i = torch.arange(rows, dtype=torch.int64)
        for c in channels:
            level = (i // (prefix[c] // base)) % levels[c]
            out[:, c] = _code_values(level.float(), a[c], b[c], mode)
        return out.view(torch.int32).contiguous()

    return split, table(split, range(k), 1), table(size // split, range(k, d), split)


def prepare(
    thresholds: Tensor, half_width: Tensor, sym_scale: Tensor, basis: Tensor, symmetric: bool
) -> Prepared:
    """Lay out thresholds ``(d, J)`` and the code arithmetic for the kernel (CPU tensors).

    The levels are read off the thresholds (``L - 1`` finite ones per channel); the decode tables
    hold the codes that the forward kernel writes, so decode(forward(z)) gives the same bits.
    """
    d, n_thr = thresholds.shape
    rows_per_block = max(1, 1024 // d)
    reps = rows_per_block
    thr = thresholds.t().float().repeat(1, reps).contiguous()  # (J, P), position p is channel p % d
    if symmetric:
        a = sym_scale.float().repeat(reps).contiguous()
        b = torch.ones(d * reps, dtype=torch.float32)
    else:
        a = (-half_width).float().repeat(reps).contiguous()
        b = half_width.float().repeat(reps).contiguous()
    mode = int(symmetric)
    levels = [int(n) + 1 for n in (~torch.isnan(thresholds)).sum(1).tolist()]
    split, lo, hi = _decode_tables(levels, a[:d], b[:d], mode)
    return Prepared(
        d,
        n_thr,
        rows_per_block,
        thr,
        a,
        b,
        basis.to(torch.int32).contiguous(),
        mode,
        math.prod(levels),
        split,
        lo,
        hi,
    )


def _lib() -> ctypes.CDLL:
    lib = load()
    if lib is None:
        raise RuntimeError(f"the FSQ CPU kernel is unavailable: {unavailable_reason()}")
    return lib


def _run_rows(run, rows: int, min_rows: int = MIN_ROWS_PER_THREAD) -> int:
    """``run(r0, r1)`` over row chunks on ``torch.get_num_threads()`` threads; the sum of the results."""
    threads = min(torch.get_num_threads(), max(1, rows // min_rows))
    if rows == 0:
        return 0
    if threads <= 1:
        return run(0, rows) or 0
    step = -(-rows // threads)
    futures = [_pool().submit(run, r0, min(r0 + step, rows)) for r0 in range(0, rows, step)]
    return sum(f.result() or 0 for f in futures)


def forward(
    z: Tensor,
    prep: Prepared,
    *,
    with_indices: bool = True,
    check_finite: bool = True,
    with_codes: bool = True,
    mark_nonfinite: bool = False,
):
    """Codes ``(R, d)`` float32 (or None), int32 indices ``(R,)`` (or None) and the non-finite count.

    ``with_codes=False`` is the encode path: the kernel writes indices only. ``mark_nonfinite``:
    NaN codes where the input is NaN and index -1 for rows with a NaN/Inf (in the same pass; the
    count is then returned even without ``check_finite``).
    """
    lib = _lib()
    if z.dtype != torch.float32 or z.device.type != "cpu" or z.ndim != 2 or z.shape[1] != prep.d:
        raise ValueError(
            f"expected a float32 CPU tensor (R, {prep.d}), got {z.dtype} {tuple(z.shape)} on {z.device}"
        )
    z = z.contiguous()
    rows = z.shape[0]
    codes = torch.empty_like(z) if with_codes else None
    idx = torch.empty(rows, dtype=torch.int32) if with_indices else None
    fn = lib.fsq_forward
    consts = (prep.thresholds.data_ptr(), prep.a.data_ptr(), prep.b.data_ptr(), prep.basis.data_ptr())
    d, esize = prep.d, 4
    zp = z.data_ptr()
    cp = None if codes is None else codes.data_ptr()
    ip = None if idx is None else idx.data_ptr()

    if rows < 2 * MIN_ROWS_PER_THREAD or torch.get_num_threads() == 1:  # one thread: call it here
        nt, rb, mode = prep.n_thresholds, prep.rows_per_block, prep.mode
        bad = fn(zp, cp, ip, rows, d, nt, rb, *consts, mode, int(check_finite), int(mark_nonfinite))
        return codes, idx, bad

    def run(r0: int, r1: int) -> int:
        return fn(
            zp + r0 * d * esize,
            None if cp is None else cp + r0 * d * esize,
            None if ip is None else ip + r0 * esize,
            r1 - r0,
            d,
            prep.n_thresholds,
            prep.rows_per_block,
            *consts,
            prep.mode,
            int(check_finite),
            int(mark_nonfinite),
        )

    bad = _run_rows(run, rows)
    return codes, idx, bad


def decode(indices: Tensor, prep: Prepared) -> Tensor:
    """float32 codes ``(*indices.shape, d)`` of integer indices, the forward kernel's codes bit for bit.

    Raises ValueError when an index is outside ``[0, codebook_size)`` (counted in the same pass).
    """
    lib = _lib()
    if prep.decode_lo is None:
        raise ValueError("this Prepared has no decode tables; build it with prepare()")
    if not isinstance(indices, Tensor) or indices.device.type != "cpu":
        raise ValueError(f"expected integer CPU indices, got {_describe(indices)}")
    if indices.dtype not in (torch.int32, torch.int64):
        if indices.is_floating_point() or indices.is_complex() or indices.dtype == torch.bool:
            raise ValueError(f"expected integer indices, got {indices.dtype}")
        indices = indices.to(torch.int64)
    shape = indices.shape
    flat = indices.contiguous().view(-1)
    rows, d = flat.shape[0], prep.d
    out = torch.empty(rows, d, dtype=torch.float32)
    wide = int(flat.dtype == torch.int64)
    isize = flat.element_size()
    ip, op = flat.data_ptr(), out.data_ptr()
    lo, hi = prep.decode_lo.data_ptr(), prep.decode_hi.data_ptr()
    fn = lib.fsq_decode

    def run(r0: int, r1: int) -> int:
        return fn(ip + r0 * isize, wide, op + r0 * d * 4, r1 - r0, d, prep.codebook_size, prep.split, lo, hi)

    bad = _run_rows(run, rows, 4 * MIN_ROWS_PER_THREAD)
    if bad:
        raise ValueError(
            f"expected indices in [0, {prep.codebook_size}), got {bad} value(s) outside that range"
        )
    return out.view(*shape, d)


def _describe(t: object) -> str:
    if isinstance(t, Tensor):
        return f"{t.dtype} tensor on {t.device}"
    return type(t).__name__


def _tanh_backward_mode(lib: ctypes.CDLL) -> int | None:
    """Which rounding ATen's ``tanh_backward`` uses here (0: fused multiply-add, 1: two roundings).

    Found by running both kernel variants against ATen on awkward sizes (vector body and scalar
    tail); None when neither matches, and then :func:`backward` replays the torch formulation.
    """
    with _lock:
        if "tanh_mode" in _state:
            return _state["tanh_mode"]  # type: ignore[return-value]
    gen = torch.Generator().manual_seed(0)
    found = None
    n = 4099
    g = torch.randn(n, generator=gen)
    y = torch.tanh(torch.randn(n, generator=gen) * 2)
    ones, zero = torch.ones(n), torch.zeros(n)
    expected = torch.ops.aten.tanh_backward(g, y)
    for mode in (0, 1):
        out = torch.empty(n)
        lib.fsq_backward(
            None, g.data_ptr(), y.data_ptr(), out.data_ptr(), n, 1, n,
            ones.data_ptr(), ones.data_ptr(), ones.data_ptr(), zero.data_ptr(), mode,
        )  # fmt: skip
        ok = all(
            torch.equal(torch.ops.aten.tanh_backward(g[:k], y[:k]), out[:k]) for k in (1, 7, 33, 100, 517)
        )
        if ok and torch.equal(out, expected):
            found = mode
            break
    with _lock:
        _state["tanh_mode"] = found
    return found


def tanh_backward_rounding() -> int | None:
    """Which rounding ATen's ``tanh_backward`` uses here: 0 (fused multiply-add), 1 (two roundings), or None.

    Found once, by running the kernel's variants against ATen; raises where the kernel cannot run.
    """
    return _tanh_backward_mode(_lib())


def _backward_constants(p, rows_per_block: int) -> tuple[Tensor, ...]:
    """(m1, dv, m2, shift) tiled ``rows_per_block`` times, cached in the params' pattern cache."""
    key = ("cpu.backward", rows_per_block)
    if key not in p.patterns:
        reps = rows_per_block
        if p.symmetric:  # codes = s * floor_ste((L - 1) * (y + 1) / 2 + 0.5) - 1
            m1, dv, m2 = p.sym_scale.float(), torch.full_like(p.sym_scale, 2.0), p.levels_minus_1.float()
            shift = torch.zeros_like(m1)
        else:  # codes = round_ste(y * half_l - offset) / h
            m1, dv, m2 = torch.ones_like(p.half_l), p.half_width.float(), p.half_l.float()
            shift = p.shift.float()
        p.patterns[key] = tuple(t.float().repeat(reps).contiguous() for t in (m1, dv, m2, shift))
    return p.patterns[key]


def backward(z: Tensor, grad_codes: Tensor, params) -> Tensor:
    """The reference's straight-through gradient with respect to ``z`` ``(R, d)`` float32, one C pass.

    ``params`` is the configuration's ``reference.FSQParams`` on the CPU. For the tanh bounds,
    ``tanh`` of the bound's input comes from torch (the reference's own ``tanh``), then one kernel
    pass applies the Div/Mul backward steps and ``tanh_backward``; for the hard clamp, one pass in
    all. Bit-identical to autograd through the reference graph.
    """
    d = z.shape[-1] if z.ndim == 2 else -1
    if z.dtype != torch.float32 or z.device.type != "cpu" or z.ndim != 2 or d != params.levels.numel():
        raise ValueError(
            f"expected a float32 CPU tensor (R, {params.levels.numel()}), got {z.dtype} "
            f"{tuple(z.shape)} on {z.device}"
        )
    if grad_codes.shape != z.shape or grad_codes.dtype != torch.float32 or grad_codes.device != z.device:
        raise ValueError(
            f"expected grad_codes like z, float32 {tuple(z.shape)} on the CPU, got {grad_codes.dtype} "
            f"{tuple(grad_codes.shape)} on {grad_codes.device}"
        )
    return backward_unchecked(z, grad_codes, params)


def _backward_plan(params) -> tuple | None:
    """What :func:`backward` needs per configuration, found once: None where torch must replay it."""
    key = ("cpu.backward_plan",)
    if key not in params.patterns:
        lib = _lib()
        tanh_mode = 2 if params.hard_clamp else _tanh_backward_mode(lib)
        if tanh_mode is None:
            params.patterns[key] = None
        else:
            d = params.levels.numel()
            rb = max(1, 1024 // d)
            m1, dv, m2, shift = _backward_constants(params, rb)
            ptrs = (m1.data_ptr(), dv.data_ptr(), m2.data_ptr(), shift.data_ptr())
            chunk = max(1, _BACKWARD_CHUNK // (rb * d)) * rb
            consts = (m1, dv, m2, shift, shift[:d].clone())  # kept alive: ptrs point into them
            params.patterns[key] = (lib.fsq_backward, tanh_mode, rb, ptrs, chunk, consts)
    return params.patterns[key]


def backward_unchecked(z: Tensor, grad_codes: Tensor, params) -> Tensor:
    """:func:`backward` without its argument checks (the caller passes float32 CPU ``(R, d)`` pairs)."""
    plan = _backward_plan(params)
    if plan is None:
        from . import torch_path

        return torch_path.reference_backward(z, grad_codes, params)
    fn, tanh_mode, rb, ptrs, chunk, (_, _, _, shift, shift_d) = plan
    if not z.is_contiguous():
        z = z.contiguous()
    if not grad_codes.is_contiguous():
        grad_codes = grad_codes.contiguous()
    rows, d = z.shape
    out = torch.empty_like(z, memory_format=torch.contiguous_format)
    zp, gp, op = z.data_ptr(), grad_codes.data_ptr(), out.data_ptr()
    if tanh_mode != 2 and rows <= chunk:  # one chunk: tanh of all rows in one torch call, one pass
        if torch.is_grad_enabled():
            with torch.no_grad():
                y = torch.tanh(z) if params.symmetric else torch.add(z, shift_d).tanh_()
        else:
            y = torch.tanh(z) if params.symmetric else torch.add(z, shift_d).tanh_()
        fn(None, gp, y.data_ptr(), op, rows, d, rb, *ptrs, tanh_mode)
        return out
    if tanh_mode == 2:  # the clamp's mask needs no tanh: one pass over all rows

        def run(r0: int, r1: int) -> None:
            off = r0 * d * 4
            fn(zp + off, gp + off, None, op + off, r1 - r0, d, rb, *ptrs, tanh_mode)

        _run_rows(run, rows)
        return out
    # tanh of the bound's input, by torch as in the reference, into a cache-sized scratch chunk;
    # chunks stay below ATen's grain size, so each thread's torch calls run inline on that thread
    z = z.detach()

    def run_tanh(r0: int, r1: int) -> None:
        with torch.no_grad():  # grad mode is per thread, and pool threads start with it on
            _tanh_rows(r0, r1)

    def _tanh_rows(r0: int, r1: int) -> None:
        scratch = torch.empty(min(r1 - r0, chunk) * d, dtype=torch.float32)
        for c0 in range(r0, r1, chunk):
            c1 = min(r1, c0 + chunk)
            main = c0 + ((c1 - c0) // rb) * rb
            for a0, a1, sp in ((c0, main, shift), (main, c1, shift[:d])):
                if a1 > a0:
                    zv = z[a0:a1].view(-1, sp.numel())
                    yv = scratch[(a0 - c0) * d : (a1 - c0) * d].view(-1, sp.numel())
                    if params.symmetric:
                        torch.tanh(zv, out=yv)
                    else:
                        torch.add(zv, sp, out=yv).tanh_()
            off = c0 * d * 4
            fn(None, gp + off, scratch.data_ptr(), op + off, c1 - c0, d, rb, *ptrs, tanh_mode)

    _run_rows(run_tanh, rows, 2 * chunk)
    return out


__all__ = [
    "MIN_ROWS_PER_THREAD",
    "Prepared",
    "available",
    "backward",
    "backward_unchecked",
    "decode",
    "forward",
    "prepare",
    "tanh_backward_rounding",
    "unavailable_reason",
]
