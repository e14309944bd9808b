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

The operators run the paths of :mod:`.paths` (which path, non-finite input, the kernel contract).
Eager calls of :class:`~vqbench.quantizers.fsq.FSQ` run the same paths without the operators'
dispatch (:class:`EagerRunner`, :func:`direct_call_ok`); compiled, exported and traced graphs
see the operators. :func:`last_path` says which path the latest call ran.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass

import torch
from torch import Tensor
from torch.library import custom_op

from .paths import Constants, choose, constants, run_backward, run_decode, run_encode, run_path

_local = threading.local()


def last_path() -> str | None:
    """The path that the latest ``fsq_quantize`` call in this thread ran (None before any)."""
    return getattr(_local, "path", None)


# -- fsq_quantize -------------------------------------------------------------------------------


def _quantize_impl(z, levels, symmetric, hard_clamp, with_indices, backend, check_finite):
    path = choose(backend, z)
    _local.path = path
    c = constants(levels, symmetric, hard_clamp, z.device)
    return run_path(path, c, z, with_indices, check_finite)


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


@custom_op("vqbench::fsq_decode", mutates_args=())
def fsq_decode(indices: Tensor, levels: list[int], symmetric: bool) -> Tensor:
    """float32 codes ``(..., d)`` of integer indices ``(...)``; NaN rows outside the codebook."""
    return run_decode(constants(levels, symmetric, False, indices.device), indices, math.prod(levels))


@fsq_decode.register_fake
def _decode_fake(indices, levels, symmetric):
    return indices.new_empty((*indices.shape, len(levels)), dtype=torch.float32)


__all__ = [
    "EagerRunner",
    "direct_call_ok",
    "eager_runner",
    "fsq_decode",
    "fsq_encode",
    "fsq_quantize",
    "fsq_quantize_backward",
    "last_path",
]
