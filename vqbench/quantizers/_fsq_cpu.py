"""FSQ's fused CPU kernel: one pass over float32 input, codes and indices written once.

A small C kernel, compiled on first use with the system C compiler (``$CC``, else ``cc``/``gcc``/
``clang``) and cached under ``$VQBENCH_CACHE_DIR`` (default ``~/.cache/vqbench``), called through
ctypes (which releases the GIL, so row chunks run on ``torch.get_num_threads()`` Python threads).
Set ``VQBENCH_FSQ_CPU_KERNEL=0`` to turn it off. Without a compiler the kernel is unavailable and
vqbench's FSQ falls back to its torch path.

Per element the kernel counts the thresholds of ``_fsq_thresholds`` that the input reaches (no
``tanh``), writes the code of that level with the reference's own float arithmetic (``(k - h) / h``,
or ``k * s - 1`` for the symmetric variant; compiled with ``-ffp-contract=off`` so that no FMA
changes a rounding), and sums the mixed-radix index in int32. Optionally it counts NaN/Inf inputs
on the way, which makes the finite check free.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

_SOURCE = r"""
#include <stdint.h>
#include <float.h>
#include <math.h>

#define FSQ_BODY(D)                                                                      \
    int32_t kb[4096];                                                                    \
    int64_t bad = 0;                                                                     \
    const int64_t P = (int64_t)RB * (D);                                                 \
    for (int64_t r0 = 0; r0 < rows; r0 += RB) {                                          \
        const int64_t nr = rows - r0 < RB ? rows - r0 : RB;                              \
        const int64_t np = nr * (D);                                                     \
        const float* xs = x + r0 * (D);                                                  \
        float* cs = codes + r0 * (D);                                                    \
        if (check) {                                                                     \
            for (int64_t p = 0; p < np; ++p) bad += !(fabsf(xs[p]) <= FLT_MAX);          \
        }                                                                                \
        for (int64_t p = 0; p < np; ++p) kb[p] = 0;                                      \
        for (int32_t j = 0; j < J; ++j) {                                                \
            const float* t = thr + (int64_t)j * P;                                       \
            for (int64_t p = 0; p < np; ++p) kb[p] += (xs[p] >= t[p]);                   \
        }                                                                                \
        if (mode == 0) {                                                                 \
            for (int64_t p = 0; p < np; ++p) cs[p] = ((float)kb[p] + a[p]) / b[p];       \
        } else {                                                                         \
            for (int64_t p = 0; p < np; ++p) {                                           \
                const float m = (float)kb[p] * a[p];                                     \
                cs[p] = m - b[p];                                                        \
            }                                                                            \
        }                                                                                \
        if (idx) {                                                                       \
            int32_t* is = idx + r0;                                                      \
            for (int64_t r = 0; r < nr; ++r) {                                           \
                int32_t s = 0;                                                           \
                for (int32_t c = 0; c < (D); ++c) s += kb[r * (D) + c] * basis[c];       \
                is[r] = s;                                                               \
            }                                                                            \
        }                                                                                \
    }                                                                                    \
    return bad;

#define FSQ_FN(NAME, D)                                                                  \
static int64_t NAME(const float* restrict x, float* restrict codes,                     \
                    int32_t* restrict idx, int64_t rows, int32_t dd, int32_t J,          \
                    int32_t RB, const float* restrict thr, const float* restrict a,      \
                    const float* restrict b, const int32_t* restrict basis,              \
                    int32_t mode, int32_t check) { (void)dd; FSQ_BODY(D) }

FSQ_FN(fsq_d1, 1)
FSQ_FN(fsq_d2, 2)
FSQ_FN(fsq_d3, 3)
FSQ_FN(fsq_d4, 4)
FSQ_FN(fsq_d5, 5)
FSQ_FN(fsq_d6, 6)
FSQ_FN(fsq_d7, 7)
FSQ_FN(fsq_d8, 8)
FSQ_FN(fsq_dn, dd)

int64_t fsq_forward(const float* x, float* codes, int32_t* idx, int64_t rows, int32_t d,
                    int32_t J, int32_t RB, const float* thr, const float* a, const float* b,
                    const int32_t* basis, int32_t mode, int32_t check) {
    switch (d) {
        case 1: return fsq_d1(x, codes, idx, rows, d, J, RB, thr, a, b, basis, mode, check);
        case 2: return fsq_d2(x, codes, idx, rows, d, J, RB, thr, a, b, basis, mode, check);
        case 3: return fsq_d3(x, codes, idx, rows, d, J, RB, thr, a, b, basis, mode, check);
        case 4: return fsq_d4(x, codes, idx, rows, d, J, RB, thr, a, b, basis, mode, check);
        case 5: return fsq_d5(x, codes, idx, rows, d, J, RB, thr, a, b, basis, mode, check);
        case 6: return fsq_d6(x, codes, idx, rows, d, J, RB, thr, a, b, basis, mode, check);
        case 7: return fsq_d7(x, codes, idx, rows, d, J, RB, thr, a, b, basis, mode, check);
        case 8: return fsq_d8(x, codes, idx, rows, d, J, RB, thr, a, b, basis, mode, check);
        default: return fsq_dn(x, codes, idx, rows, d, J, RB, thr, a, b, basis, mode, check);
    }
}

int32_t fsq_block_limit(void) { return 4096; }
"""

_BLOCK_LIMIT = 4096  # elements of the kernel's per-block level buffer
_ARCH_FLAGS = (["-march=native", "-mprefer-vector-width=512"], ["-march=native"], [])
_BASE_FLAGS = ["-O3", "-std=c99", "-shared", "-fPIC", "-ffp-contract=off", "-fno-math-errno"]
_MIN_ROWS_PER_THREAD = 32768

_lock = threading.Lock()
_state: dict[str, object] = {}


def _cache_dir() -> Path:
    base = os.environ.get("VQBENCH_CACHE_DIR")
    if base:
        return Path(base)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "vqbench"


def _fallback_dir() -> Path:
    user = os.getuid() if hasattr(os, "getuid") else os.environ.get("USERNAME", "user")
    return Path(tempfile.gettempdir()) / f"vqbench-{user}"


def _compiler() -> str | None:
    for name in (os.environ.get("CC"), "cc", "gcc", "clang"):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


def _cpu_signature() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if line.startswith(("flags", "Features")):
                    return line.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _build(compiler: str) -> Path:
    """Compile the kernel (or find it in the cache) and return the shared library's path."""
    errors = []
    for arch in _ARCH_FLAGS:
        flags = _BASE_FLAGS + arch
        key = hashlib.sha256(
            "\n".join([_SOURCE, compiler, " ".join(flags), platform.machine(), _cpu_signature()]).encode()
        ).hexdigest()[:20]
        for folder in (_cache_dir(), _fallback_dir()):
            target = folder / f"fsq_cpu_{key}.so"
            try:
                folder.mkdir(mode=0o700, parents=True, exist_ok=True)
                if hasattr(os, "getuid") and folder.stat().st_uid != os.getuid():
                    raise OSError(f"{folder} belongs to another user; not loading code from it")
                if target.exists():
                    return target
                fd, tmp_src = tempfile.mkstemp(suffix=".c", dir=folder)
                with os.fdopen(fd, "w") as fh:
                    fh.write(_SOURCE)
                tmp_lib = tmp_src[:-2] + ".so"
                proc = subprocess.run(
                    [compiler, *flags, tmp_src, "-o", tmp_lib], capture_output=True, text=True, timeout=120
                )
                os.unlink(tmp_src)
                if proc.returncode != 0:
                    Path(tmp_lib).unlink(missing_ok=True)
                    errors.append(f"{' '.join(arch) or 'generic'}: {proc.stderr.strip()[-300:]}")
                    break  # a flag problem, not a folder problem: try the next flags
                os.replace(tmp_lib, target)  # atomic: concurrent builds cannot leave a torn file
                return target
            except OSError as exc:
                errors.append(f"{folder}: {exc}")
                continue
    raise RuntimeError("could not compile the FSQ CPU kernel: " + " | ".join(errors))


def _load() -> ctypes.CDLL | None:
    with _lock:
        if "lib" in _state:
            return _state["lib"]  # type: ignore[return-value]
        lib = None
        if os.environ.get("VQBENCH_FSQ_CPU_KERNEL", "1").strip().lower() in ("0", "false", "no", "off"):
            _state["reason"] = "disabled by VQBENCH_FSQ_CPU_KERNEL=0"
        elif (compiler := _compiler()) is None:
            _state["reason"] = "no C compiler found ($CC, cc, gcc or clang)"
        else:
            try:
                lib = ctypes.CDLL(str(_build(compiler)))
                fn = lib.fsq_forward
                fn.restype = ctypes.c_int64
                fn.argtypes = [ctypes.c_void_p] * 3 + [ctypes.c_int64] + [ctypes.c_int32] * 3
                fn.argtypes += [ctypes.c_void_p] * 4 + [ctypes.c_int32] * 2
                if lib.fsq_block_limit() != _BLOCK_LIMIT:
                    raise RuntimeError("stale FSQ CPU kernel in the cache")
            except (OSError, RuntimeError, subprocess.SubprocessError) as exc:
                lib = None
                _state["reason"] = str(exc)
        _state["lib"] = lib
        return lib


def available() -> bool:
    """Whether the compiled kernel can run here (compiles it on the first call)."""
    return _load() is not None


def unavailable_reason() -> str:
    """Why :func:`available` is False ('' when it is True)."""
    return "" if _load() is not None else str(_state.get("reason", "unknown"))


def _pool() -> ThreadPoolExecutor:
    with _lock:
        pool = _state.get("pool")
        if pool is None:
            pool = ThreadPoolExecutor(
                max_workers=max(1, os.cpu_count() or 1), thread_name_prefix="vqbench-fsq"
            )
            _state["pool"] = pool
        return pool  # type: ignore[return-value]


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


def prepare(
    thresholds: Tensor, half_width: Tensor, sym_scale: Tensor, basis: Tensor, symmetric: bool
) -> Prepared:
    """Lay out thresholds ``(d, J)`` and the code arithmetic for the kernel (CPU tensors)."""
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
    return Prepared(d, n_thr, rows_per_block, thr, a, b, basis.to(torch.int32).contiguous(), int(symmetric))


def forward(z: Tensor, prep: Prepared, *, with_indices: bool = True, check_finite: bool = True):
    """Codes ``(R, d)`` float32, int32 indices ``(R,)`` (or None) and the count of non-finite inputs."""
    lib = _load()
    if lib is None:
        raise RuntimeError(f"the FSQ CPU kernel is unavailable: {unavailable_reason()}")
    if z.dtype != torch.float32 or z.device.type != "cpu" or z.ndim != 2 or z.shape[1] != prep.d:
        raise ValueError(
            f"expected a float32 CPU tensor (R, {prep.d}), got {z.dtype} {tuple(z.shape)} on {z.device}"
        )
    z = z.contiguous()
    rows = z.shape[0]
    codes = torch.empty_like(z)
    idx = torch.empty(rows, dtype=torch.int32) if with_indices else None
    fn = lib.fsq_forward
    consts = (prep.thresholds.data_ptr(), prep.a.data_ptr(), prep.b.data_ptr(), prep.basis.data_ptr())
    d, esize = prep.d, 4

    def run(r0: int, r1: int) -> int:
        return fn(
            z.data_ptr() + r0 * d * esize,
            codes.data_ptr() + r0 * d * esize,
            None if idx is None else idx.data_ptr() + r0 * esize,
            r1 - r0,
            d,
            prep.n_thresholds,
            prep.rows_per_block,
            *consts,
            prep.mode,
            int(check_finite),
        )

    threads = min(torch.get_num_threads(), max(1, rows // _MIN_ROWS_PER_THREAD))
    if threads <= 1 or rows == 0:
        bad = run(0, rows) if rows else 0
    else:
        step = -(-rows // threads)
        futures = [_pool().submit(run, r0, min(r0 + step, rows)) for r0 in range(0, rows, step)]
        bad = sum(f.result() for f in futures)
    return codes, idx, bad


__all__ = ["Prepared", "available", "forward", "prepare", "unavailable_reason"]
