"""FSQ's fast paths as PyTorch custom operators, so that eager, compiled and exported models run them.

Operators (``torch.ops.vqbench.*``), each with a fake (meta) implementation for tracing:

- ``fsq_quantize(z, levels, symmetric, hard_clamp, with_indices, backend, check_finite)
  -> (codes, indices)``: rows ``z`` ``(R, d)`` float32/float64 to codes ``(R, d)`` (z's dtype) and
  int32 indices ``(R,)`` (``(0,)`` when ``with_indices`` is False). Differentiable: its autograd
  calls ``fsq_quantize_backward``.
- ``fsq_quantize_backward(z, grad, levels, symmetric, hard_clamp) -> grad_z``: the reference's
  straight-through gradient, bit for bit.
- ``fsq_decode(indices, levels, symmetric) -> codes``: integer indices ``(...)`` to float32 codes
  ``(..., d)``.
- ``fsq_encode(z, levels, symmetric, hard_clamp, backend, check_finite) -> indices``:
  ``fsq_quantize``'s indices alone; the fused kernels write no codes (encode moves the input and
  the indices only).

Eager calls of :class:`~vqbench.quantizers.fsq.FSQ` run the same paths without the operators'
dispatch (:class:`EagerRunner`, :func:`direct_call_ok`); compiled, exported and traced graphs
see the operators.

Non-finite values, in graph and without a host synchronization: a row with any NaN/Inf input gets
index -1 (never a valid index); its codes are the reference's (NaN for NaN input, the saturated
level for +-Inf). ``fsq_decode`` gives NaN codes for indices outside ``[0, prod(levels))``. With
``check_finite`` (eager use) ``fsq_quantize`` raises ``ValueError`` on non-finite input instead;
on the CPU kernel the count is free, on CUDA it costs one device-to-host copy.

Dispatch per call (``backend="auto"``): the Triton kernel (``_fsq_triton``) for float32 CUDA input
where it is available, the C kernel (``_fsq_cpu``) for float32 CPU input where it compiled, else the
torch arithmetic of ``_fsq_torch`` / ``_fsq_reference``. A forced backend that cannot run raises.
:func:`last_path` says which path the latest call ran.

Kernel contract (functions looked up at call time, so new kernels plug in without changes here):

- ``forward(z, prep_or_consts..., with_indices=, check_finite=) -> (codes, idx, n_bad)`` as today
  (``_fsq_cpu.forward(z, prep, ...)``, ``_fsq_triton.forward(z, thresholds, table, basis, ...)``).
  If it also accepts ``mark_nonfinite=True``, it must write NaN codes for NaN inputs and index -1
  for rows with a non-finite input itself; otherwise this module does so after the call.
- ``decode(indices, prep)`` (CPU) / ``decode(indices, table, basis)`` (Triton): float32 codes
  ``(*indices.shape, d)`` of int32/int64 indices, the forward kernel's codes bit for bit; an index
  outside the codebook raises ``ValueError`` (CPU) or gives a NaN row; on ``ValueError`` this
  module recomputes with the torch arithmetic, which gives NaN rows there.
- ``backward(z, grad_codes, params)``: float32 gradient with respect to ``z`` ``(R, d)``,
  bit-identical to ``_fsq_torch.reference_backward`` (``params``: ``_fsq_reference.FSQParams``).
"""

from __future__ import annotations

import inspect
import math
import threading
from dataclasses import dataclass, field

import torch
from torch import Tensor
from torch.library import custom_op

from . import _fsq_cpu, _fsq_thresholds, _fsq_torch, _fsq_triton
from . import _fsq_reference as ref

#: The paths an operator can run, besides ``"auto"``.
PATHS: tuple[str, ...] = ("reference", "torch", "cpu", "triton")
#: The device types each path runs on (None: any): what the suite's backend axis offers for ``fsq``.
PATH_DEVICES: dict[str, tuple[str, ...] | None] = {
    "reference": None,
    "torch": None,
    "cpu": ("cpu",),
    "triton": ("cuda",),
}

_local = threading.local()


def last_path() -> str | None:
    """The path that the latest ``fsq_quantize`` call in this thread ran (None before any)."""
    return getattr(_local, "path", None)


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
        """Decision boundaries ``(d, max L - 1)`` on this device (``_fsq_thresholds``)."""
        if "thresholds" not in self.cache:
            self.cache["thresholds"] = _fsq_thresholds.find_thresholds(
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

    def cpu_prepared(self) -> _fsq_cpu.Prepared:
        """The C kernel's constants (CPU only)."""
        if "cpu" not in self.cache:
            p = self.params
            self.cache["cpu"] = _fsq_cpu.prepare(
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
        return _fsq_cpu.unavailable_reason()
    if path == "triton":
        return _fsq_triton.unavailable_reason(z.device)
    raise ValueError(f"unknown FSQ backend {path!r}; expected 'auto' or one of {PATHS}")


def available_paths(device: torch.device | str = "cpu") -> list[str]:
    """The paths that can run float32 input on ``device`` here."""
    device = torch.device(device)
    names = ["reference", "torch"]
    if device.type == "cpu" and not _fsq_cpu.unavailable_reason():
        names.append("cpu")
    if device.type == "cuda" and not _fsq_triton.unavailable_reason(device):
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


# -- fsq_quantize -------------------------------------------------------------------------------


def _quantize_impl(z, levels, symmetric, hard_clamp, with_indices, backend, check_finite):
    path = choose(backend, z)
    _local.path = path
    c = constants(levels, symmetric, hard_clamp, z.device)
    return run_path(path, c, z, with_indices, check_finite)


def run_path(path: str, c: Constants, z: Tensor, with_indices: bool, check_finite: bool):
    """Codes and int32 indices of rows ``z`` on ``path`` (chosen by :func:`choose`) with constants ``c``."""
    z = z.contiguous()
    if path == "cpu":
        kernel = _fsq_cpu.forward
        marks = _accepts(kernel, "mark_nonfinite")
        extra = {"mark_nonfinite": True} if marks else {}
        codes, idx, bad = kernel(z, c.cpu_prepared(), with_indices=with_indices, check_finite=True, **extra)
        if bad:
            if check_finite:
                _raise_non_finite(int(bad), z.numel())
            if not marks:
                mark_non_finite(z, codes, idx, nan_codes=True)
    elif path == "triton":
        kernel = _fsq_triton.forward
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
            codes, idx, _ = _fsq_torch.forward(z, c.params, with_indices=with_indices)
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
        if z.device.type == "cpu" and _fsq_cpu.available():
            return _fsq_cpu.backward_unchecked(z, grad, c.params)
        if z.device.type == "cuda" and _fsq_triton.available(z.device):
            return _fsq_triton.backward(z.contiguous(), grad.contiguous(), c.params)
    return _fsq_torch.reference_backward(z, grad, c.params)


@custom_op("vqbench::fsq_quantize", mutates_args=())
def fsq_quantize(
    z: Tensor,
    levels: list[int],
    symmetric: bool,
    hard_clamp: bool,
    with_indices: bool,
    backend: str,
    check_finite: bool,
) -> tuple[Tensor, Tensor]:
    """Codes and int32 indices of rows ``z`` ``(R, d)`` (see the module docstring)."""
    return _quantize_impl(z, levels, symmetric, hard_clamp, with_indices, backend, check_finite)


@fsq_quantize.register_fake
def _quantize_fake(z, levels, symmetric, hard_clamp, with_indices, backend, check_finite):
    codes = z.new_empty(z.shape)
    idx = z.new_empty(z.shape[:-1] if with_indices else (0,), dtype=torch.int32)
    return codes, idx


@custom_op("vqbench::fsq_quantize_backward", mutates_args=())
def fsq_quantize_backward(
    z: Tensor, grad: Tensor, levels: list[int], symmetric: bool, hard_clamp: bool
) -> Tensor:
    """The reference's straight-through gradient with respect to rows ``z`` for ``grad`` on the codes."""
    return run_backward(constants(levels, symmetric, hard_clamp, z.device), z, grad)


@fsq_quantize_backward.register_fake
def _backward_fake(z, grad, levels, symmetric, hard_clamp):
    return z.new_empty(z.shape)


def _setup_context(ctx, inputs, output) -> None:
    z, levels, symmetric, hard_clamp = inputs[:4]
    ctx.save_for_backward(z)
    ctx.config = (list(levels), bool(symmetric), bool(hard_clamp))


def _backward(ctx, grad_codes, grad_indices):
    (z,) = ctx.saved_tensors
    grad = None
    if ctx.needs_input_grad[0]:
        grad = torch.ops.vqbench.fsq_quantize_backward(z, grad_codes, *ctx.config)
    return grad, None, None, None, None, None, None


fsq_quantize.register_autograd(_backward, setup_context=_setup_context)


# -- fsq_encode: indices only ------------------------------------------------------------------


def run_encode(path: str, c: Constants, z: Tensor, check_finite: bool) -> Tensor:
    """int32 indices ``(R,)`` of rows ``z`` on ``path``; the fused kernels write no codes."""
    z = z.contiguous()
    if path == "cpu":
        _, idx, bad = _fsq_cpu.forward(
            z, c.cpu_prepared(), with_indices=True, with_codes=False, check_finite=True, mark_nonfinite=True
        )
        if bad and check_finite:
            _raise_non_finite(int(bad), z.numel())
        return idx
    if path == "triton":
        _, idx, bad = _fsq_triton.forward(
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


@custom_op("vqbench::fsq_encode", mutates_args=())
def fsq_encode(
    z: Tensor, levels: list[int], symmetric: bool, hard_clamp: bool, backend: str, check_finite: bool
) -> Tensor:
    """int32 indices ``(R,)`` of rows ``z`` ``(R, d)``: ``fsq_quantize``'s, without writing codes."""
    path = choose(backend, z)
    _local.path = path
    return run_encode(path, constants(levels, symmetric, hard_clamp, z.device), z, check_finite)


@fsq_encode.register_fake
def _encode_fake(z, levels, symmetric, hard_clamp, backend, check_finite):
    return z.new_empty(z.shape[:-1], dtype=torch.int32)


# -- eager calls: the kernels without the operator dispatcher -----------------------------------


def direct_call_ok(t: Tensor) -> bool:
    """Whether an eager call may run the kernels directly on ``t``, outside the custom operators.

    Not while torch.compile, export or ``torch.jit.trace`` records, under a dispatch mode (fake or
    meta tensors, ``make_fx``, ``opcheck``), under functorch transforms, or for tensor subclasses:
    those see the custom operators.
    """
    return (
        type(t) is Tensor
        and t.device.type in ("cpu", "cuda")
        and not torch.compiler.is_compiling()
        and not torch.jit.is_tracing()
        and torch._C._len_torch_dispatch_stack() == 0
        and not torch._C._are_functorch_transforms_active()
    )


class _EagerQuantize(torch.autograd.Function):
    """``fsq_quantize`` for eager calls: the same path and gradient, with no operator dispatch.

    Takes ``z`` of any shape ``(..., d)`` and returns codes of that shape and indices of
    ``z.shape[:-1]``, so that no view of the caller's records a backward node of its own.
    """

    @staticmethod
    def forward(ctx, z, runner, check_finite):
        shape = z.shape
        codes, idx = run_path(runner.path, runner.constants, z.reshape(-1, shape[-1]), True, check_finite)
        ctx.constants = runner.constants
        ctx.save_for_backward(z)
        ctx.mark_non_differentiable(idx)
        ctx.set_materialize_grads(False)
        return codes.view(shape), idx.view(shape[:-1])

    @staticmethod
    def backward(ctx, grad_codes, grad_idx):  # the kernels' gradient is not differentiable again
        if grad_codes is None:
            return None, None, None
        (z,) = ctx.saved_tensors
        d = z.shape[-1]
        grad = run_backward(ctx.constants, z.reshape(-1, d), grad_codes.reshape(-1, d))
        return grad.view(z.shape), None, None


#: ``_EagerQuantize.apply`` without its Python wrapper, which only binds default arguments (none
#: here) and unwraps functorch's dead wrappers (none: :func:`direct_call_ok` excludes functorch).
_apply_eager_quantize = torch._C._FunctionBase.__dict__["apply"].__get__(None, _EagerQuantize)


@dataclass
class EagerRunner:
    """One configuration's path and constants for one device, dtype and backend: built once, reused."""

    path: str
    constants: Constants
    with_indices: bool

    def __call__(self, z: Tensor, check_finite: bool) -> tuple[Tensor, Tensor | None]:
        """Codes ``(..., d)`` and int32 indices ``(...)`` of ``z`` ``(..., d)``, differentiable in ``z``.

        Indices are None without ``with_indices`` (computed anyway when ``z`` needs a gradient).
        """
        _local.path = self.path
        if z.requires_grad and torch.is_grad_enabled():
            codes, idx = _apply_eager_quantize(z, self, check_finite)
            return codes, (idx if self.with_indices else None)
        shape = z.shape
        codes, idx = run_path(
            self.path, self.constants, z.reshape(-1, shape[-1]), self.with_indices, check_finite
        )
        return codes.view(shape), (idx.view(shape[:-1]) if self.with_indices else None)


def eager_runner(z: Tensor, levels, symmetric: bool, hard_clamp: bool, with_indices: bool, backend: str):
    """The :class:`EagerRunner` for ``z``'s device and dtype (the caller caches it per device and dtype)."""
    path = choose(backend, z)
    return EagerRunner(path, constants(levels, symmetric, hard_clamp, z.device), bool(with_indices))


# -- fsq_decode ---------------------------------------------------------------------------------


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
            if indices.device.type == "cpu" and _fsq_cpu.available():
                return _fsq_cpu.decode(indices, c.cpu_prepared())
            if indices.device.type == "cuda" and _fsq_triton.available(indices.device):
                return _fsq_triton.decode(indices, c.code_table(torch.float32), c.params.basis)
        except ValueError:
            pass  # an index outside the codebook: the torch arithmetic below gives NaN there
    # contiguous as the fake implementation says (elementwise results follow a strided input's layout)
    return decode_reference(indices, c.params, size).contiguous()


@custom_op("vqbench::fsq_decode", mutates_args=())
def fsq_decode(indices: Tensor, levels: list[int], symmetric: bool) -> Tensor:
    """float32 codes ``(..., d)`` of integer indices ``(...)``; NaN rows outside the codebook."""
    return run_decode(constants(levels, symmetric, False, indices.device), indices, math.prod(levels))


@fsq_decode.register_fake
def _decode_fake(indices, levels, symmetric):
    return indices.new_empty((*indices.shape, len(levels)), dtype=torch.float32)


__all__ = [
    "PATHS",
    "PATH_DEVICES",
    "available_paths",
    "choose",
    "constants",
    "decode_reference",
    "direct_call_ok",
    "eager_runner",
    "fsq_decode",
    "fsq_encode",
    "fsq_quantize",
    "fsq_quantize_backward",
    "last_path",
    "mark_non_finite",
    "run_backward",
    "run_decode",
    "run_encode",
    "run_path",
    "unavailable_reason",
]
