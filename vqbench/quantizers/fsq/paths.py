"""FSQ's paths: which one runs a call, the constants they share, and the calls into each kernel.

Dispatch per call (``backend="auto"``): the Triton kernel (:mod:`.triton`) for float32 CUDA input
where it is available, the C kernel (:mod:`.cpu`) for float32 CPU input where it compiled, else the
torch arithmetic of :mod:`.torch_path` / :mod:`.reference`. A forced backend that cannot run raises.

Non-finite values, in graph and without a host synchronization: a row with any NaN/Inf input gets
index -1 (never a valid index); its codes are the reference's (NaN for NaN input, the saturated
level for +-Inf). Decoding gives NaN codes for indices outside ``[0, prod(levels))``. With
``check_finite`` (eager use) the paths raise ``ValueError`` on non-finite input instead; on the CPU
kernel the count is free, on CUDA it costs one device-to-host copy.

Kernel contract (functions looked up at call time, so new kernels plug in without changes here):

- ``forward(z, prep_or_consts..., with_indices=, check_finite=) -> (codes, idx, n_bad)`` as today
  (``cpu.forward(z, prep, ...)``, ``triton.forward(z, thresholds, table, basis, ...)``).
  If it also accepts ``mark_nonfinite=True``, it must write NaN codes for NaN inputs and index -1
  for rows with a non-finite input itself; otherwise this module does so after the call.
- ``decode(indices, prep)`` (CPU) / ``decode(indices, table, basis)`` (Triton): float32 codes
  ``(*indices.shape, d)`` of int32/int64 indices, the forward kernel's codes bit for bit; an index
  outside the codebook raises ``ValueError`` (CPU) or gives a NaN row; on ``ValueError`` this
  module recomputes with the torch arithmetic, which gives NaN rows there.
- ``backward(z, grad_codes, params)``: float32 gradient with respect to ``z`` ``(R, d)``,
  bit-identical to ``torch_path.reference_backward`` (``params``: ``reference.FSQParams``).
"""

from __future__ import annotations

import inspect
import threading
from dataclasses import dataclass, field

import torch
from torch import Tensor

from . import cpu, torch_path, triton
from . import reference as ref
from .thresholds import find_thresholds

#: The paths an operator can run, besides ``"auto"``.
PATHS: tuple[str, ...] = ("reference", "torch", "cpu", "triton")
#: The device types each path runs on (None: any): what the suite's backend axis offers for ``fsq``.
PATH_DEVICES: dict[str, tuple[str, ...] | None] = {
    "reference": None,
    "torch": None,
    "cpu": ("cpu",),
    "triton": ("cuda",),
}


# -- constants per configuration and device ---------------------------------------------------


@dataclass
class Constants:
    """Everything a path needs for one (levels, variant, device), built on first use."""

    levels: tuple[int, ...]
    symmetric: bool
    hard_clamp: bool
    device: torch.device
    params: ref.FSQParams
    cache: dict = field(default_factory=dict)

    def thresholds(self) -> Tensor:
        """Decision boundaries ``(d, max L - 1)`` on this device (:func:`.thresholds.find_thresholds`)."""
        if "thresholds" not in self.cache:
            self.cache["thresholds"] = find_thresholds(
                list(self.levels), symmetric=self.symmetric, hard_clamp=self.hard_clamp, device=self.device
            )
        return self.cache["thresholds"]

    def code_table(self, dtype: torch.dtype) -> Tensor:
        """Codes per channel and level ``(d, max L)`` in ``dtype``: the reference's values, cast."""
        key = ("table", dtype)
        if key not in self.cache:
            p = self.params
            k = torch.arange(max(self.levels), device=self.device).clamp(
                max=p.levels.to(torch.int64)[:, None] - 1
            )
            column = ref.FSQParams(
                **{
                    name: (
                        getattr(p, name)[:, None]
                        if isinstance(getattr(p, name), Tensor)
                        else getattr(p, name)
                    )
                    for name in p.__dataclass_fields__
                    if name != "patterns"
                }
            )
            self.cache[key] = ref.level_indices_to_codes(k, column).to(dtype).contiguous()
        return self.cache[key]

    def cpu_prepared(self) -> cpu.Prepared:
        """The C kernel's constants (CPU only)."""
        if "cpu" not in self.cache:
            p = self.params
            self.cache["cpu"] = cpu.prepare(
                self.thresholds(), p.half_width, p.sym_scale, p.basis, self.symmetric
            )
        return self.cache["cpu"]


_constants: dict[tuple, Constants] = {}
_constants_lock = threading.Lock()


def constants(levels, symmetric: bool, hard_clamp: bool, device: torch.device | str) -> Constants:
    """The cached :class:`Constants` of a configuration on ``device``."""
    device = torch.device(device)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    key = (tuple(int(n) for n in levels), bool(symmetric), bool(hard_clamp), device)
    found = _constants.get(key)
    if found is None:
        with _constants_lock:
            found = _constants.get(key)
            if found is None:
                lv = torch.tensor(key[0], dtype=torch.int32, device=device)
                params = ref.make_params(lv, symmetric=key[1], hard_clamp=key[2])
                found = Constants(key[0], key[1], key[2], device, params)
                _constants[key] = found
    return found


# -- path choice ------------------------------------------------------------------------------


def unavailable_reason(path: str, z: Tensor) -> str:
    """'' when ``path`` can quantize ``z`` (its device and dtype), else why not."""
    if path == "reference":
        return ""
    if z.dtype not in (torch.float32, torch.float64):
        return f"it computes in float32/float64, and this input is quantized in {z.dtype}"
    if path == "torch":
        return ""
    if z.dtype != torch.float32:
        return f"it computes in float32, and this input is quantized in {z.dtype}"
    if path == "cpu":
        if z.device.type != "cpu":
            return f"it runs on the CPU, and the input is on {z.device}"
        return cpu.unavailable_reason()
    if path == "triton":
        return triton.unavailable_reason(z.device)
    raise ValueError(f"unknown FSQ backend {path!r}; expected 'auto' or one of {PATHS}")


def available_paths(device: torch.device | str = "cpu") -> list[str]:
    """The paths that can run float32 input on ``device`` here."""
    device = torch.device(device)
    names = ["reference", "torch"]
    if device.type == "cpu" and not cpu.unavailable_reason():
        names.append("cpu")
    if device.type == "cuda" and not triton.unavailable_reason(device):
        names.append("triton")
    return names


def choose(backend: str, z: Tensor) -> str:
    """The path that runs ``z``: the forced one (or an error saying why it cannot), else the fastest."""
    if backend != "auto":
        reason = unavailable_reason(backend, z)
        if reason:
            raise RuntimeError(
                f"FSQ backend {backend!r} cannot run here: {reason}; use backend='auto' to fall back "
                f"(paths here: {available_paths(z.device)})"
            )
        return backend
    for name in ("triton", "cpu", "torch"):
        if name == "triton" and z.device.type != "cuda":
            continue  # Triton's interpreter runs CPU tensors too, when asked for by name only
        if not unavailable_reason(name, z):
            return name
    return "reference"


_accepted: dict[tuple, bool] = {}


def _accepts(fn, name: str) -> bool:
    """Whether kernel function ``fn`` takes keyword ``name`` (cached: this runs on every call)."""
    key = (fn, name)
    if key not in _accepted:
        try:
            _accepted[key] = name in inspect.signature(fn).parameters
        except (TypeError, ValueError):  # pragma: no cover - builtins
            _accepted[key] = False
    return _accepted[key]


def _raise_non_finite(count: int, total: int) -> None:
    raise ValueError(
        f"expected finite input to FSQ, got {count} NaN/Inf value(s) among {total}; "
        "pass check_finite=False to skip this check (such rows then get index -1)"
    )


_MARK_ROWS = 2**16  # rows per block of the elementwise fallback: bounds its boolean intermediate


def non_finite_rows(z: Tensor) -> Tensor:
    """Boolean ``(R,)``: rows of ``z`` ``(R, d)`` with a NaN or an Inf.

    One matrix-vector product with weights ``2^-10``: the weighted row sum cannot overflow for
    ``d < 1024``, so it is finite exactly when every entry is (Inf and NaN propagate; the weights
    are not zero, so no BLAS can skip them). Measured on 2 CPU cores, 1M rows of 4: 17-19% of the
    torch path's time, where ``isfinite(z).all(-1)`` adds 82%.
    """
    d = z.shape[-1]
    if d < 1024 and z.shape[0]:
        weighted = torch.mv(z, z.new_full((d,), 2.0**-10))
        # 0 for a finite sum, NaN for Inf or NaN: two passes over (R,), where isfinite takes five
        return weighted.mul_(0.0) != 0.0
    bad = torch.empty(z.shape[0], dtype=torch.bool, device=z.device)
    for r0 in range(0, z.shape[0], _MARK_ROWS):
        bad[r0 : r0 + _MARK_ROWS] = ~torch.isfinite(z[r0 : r0 + _MARK_ROWS]).all(dim=-1)
    return bad


def mark_non_finite(z: Tensor, codes: Tensor | None, indices: Tensor | None, *, nan_codes: bool) -> None:
    """In place: index -1 for rows of ``z`` with a NaN/Inf; NaN codes where ``z`` is NaN (``nan_codes``)."""
    if indices is not None and indices.numel():
        indices.masked_fill_(non_finite_rows(z), -1)
    if nan_codes and codes is not None:
        for r0 in range(0, z.shape[0], _MARK_ROWS):
            codes[r0 : r0 + _MARK_ROWS].masked_fill_(torch.isnan(z[r0 : r0 + _MARK_ROWS]), float("nan"))


# -- the calls into each kernel ----------------------------------------------------------------


def run_path(path: str, c: Constants, z: Tensor, with_indices: bool, check_finite: bool):
    """Codes and int32 indices of rows ``z`` on ``path`` (chosen by :func:`choose`) with constants ``c``."""
    z = z.contiguous()
    if path == "cpu":
        kernel = cpu.forward
        marks = _accepts(kernel, "mark_nonfinite")
        extra = {"mark_nonfinite": True} if marks else {}
        codes, idx, bad = kernel(z, c.cpu_prepared(), with_indices=with_indices, check_finite=True, **extra)
        if bad:
            if check_finite:
                _raise_non_finite(int(bad), z.numel())
            if not marks:
                mark_non_finite(z, codes, idx, nan_codes=True)
    elif path == "triton":
        kernel = triton.forward
        marks = _accepts(kernel, "mark_nonfinite")
        extra = {"mark_nonfinite": True} if marks else {}
        codes, idx, bad = kernel(
            z,
            c.thresholds(),
            c.code_table(torch.float32),
            c.params.basis,
            with_indices=with_indices,
            check_finite=check_finite,
            **extra,
        )
        if bad:
            _raise_non_finite(int(bad), z.numel())
        if not marks:
            mark_non_finite(z, codes, idx, nan_codes=True)
    else:
        if check_finite and z.numel():
            bad = int((~torch.isfinite(z)).sum())
            if bad:
                _raise_non_finite(bad, z.numel())
        if path == "torch":
            codes, idx, _ = torch_path.forward(z, c.params, with_indices=with_indices)
        else:
            codes, idx = ref.forward(z, c.params, with_indices=with_indices)
        # NaN codes come from tanh. On the CPU a finite sum (one fast reduction, no device to wait
        # for) proves every row finite; else, and on other devices (no sync), mark row by row.
        if z.device.type != "cpu" or not bool(torch.isfinite(z.sum())):
            mark_non_finite(z, codes, idx, nan_codes=False)
    if idx is None:
        idx = torch.empty(0, dtype=torch.int32, device=z.device)
    return codes, idx


def run_backward(c: Constants, z: Tensor, grad: Tensor) -> Tensor:
    """The reference's straight-through gradient with respect to rows ``z`` (constants ``c``)."""
    grad = grad.to(z.dtype)
    if z.dtype == torch.float32:
        if z.device.type == "cpu" and cpu.available():
            return cpu.backward_unchecked(z, grad, c.params)
        if z.device.type == "cuda" and triton.available(z.device):
            return triton.backward(z.contiguous(), grad.contiguous(), c.params)
    return torch_path.reference_backward(z, grad, c.params)


def run_encode(path: str, c: Constants, z: Tensor, check_finite: bool) -> Tensor:
    """int32 indices ``(R,)`` of rows ``z`` on ``path``; the fused kernels write no codes."""
    z = z.contiguous()
    if path == "cpu":
        _, idx, bad = cpu.forward(
            z, c.cpu_prepared(), with_indices=True, with_codes=False, check_finite=True, mark_nonfinite=True
        )
        if bad and check_finite:
            _raise_non_finite(int(bad), z.numel())
        return idx
    if path == "triton":
        _, idx, bad = triton.forward(
            z,
            c.thresholds(),
            c.code_table(torch.float32),
            c.params.basis,
            with_indices=True,
            with_codes=False,
            check_finite=check_finite,
            mark_nonfinite=True,
        )
        if bad:
            _raise_non_finite(int(bad), z.numel())
        return idx
    return run_path(path, c, z, True, check_finite)[1]


def decode_reference(indices: Tensor, p: ref.FSQParams, codebook_size: int) -> Tensor:
    """Upstream's decode arithmetic; NaN rows for indices outside ``[0, codebook_size)``."""
    wide = indices.to(torch.int64)
    codes = ref.level_indices_to_codes(ref.split_indices(wide, p), p)
    valid = (wide >= 0) & (wide < codebook_size)
    return torch.where(valid.unsqueeze(-1), codes, float("nan"))


def run_decode(c: Constants, indices: Tensor, size: int) -> Tensor:
    """float32 codes ``(..., d)``, contiguous, of integer indices ``(...)``; NaN rows outside the codebook."""
    if indices.dtype in (torch.int32, torch.int64) and indices.numel():
        try:
            if indices.device.type == "cpu" and cpu.available():
                return cpu.decode(indices, c.cpu_prepared())
            if indices.device.type == "cuda" and triton.available(indices.device):
                return triton.decode(indices, c.code_table(torch.float32), c.params.basis)
        except ValueError:
            pass  # an index outside the codebook: the torch arithmetic below gives NaN there
    # contiguous as the fake implementation says (elementwise results follow a strided input's layout)
    return decode_reference(indices, c.params, size).contiguous()


__all__ = [
    "PATHS",
    "PATH_DEVICES",
    "Constants",
    "available_paths",
    "choose",
    "constants",
    "decode_reference",
    "mark_non_finite",
    "non_finite_rows",
    "run_backward",
    "run_decode",
    "run_encode",
    "run_path",
    "unavailable_reason",
]
