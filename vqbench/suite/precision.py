"""The precision axis: the dtypes and autocast modes a suite measures quantizers in.

A precision is one of :data:`PRECISIONS`:

- ``float32``, ``bfloat16``, ``float16``: the quantizer's input in that dtype (the module as
  built: parameters float32, as in a model trained in mixed precision);
- ``autocast-bfloat16``, ``autocast-float16``: float32 input, the work run under
  ``torch.autocast(device_type, dtype)`` (training: forward and loss under autocast, a gradient
  scaler for float16, evaluation under the same autocast).

Profiles give them as ``dtypes = [...]`` (``[suite]`` or ``[benchmarks.LABEL]``), the CLI as
``--dtype float32,bfloat16``. Where each engine takes them: throughput every precision; the
agreement engine every one but float32 (its reference); usage and reconstruction (training)
float32 and the autocast modes. A quantizer may compute in another dtype than it was given: the
engines measure the dtype that ran (:func:`ran_dtype`) and record it beside the one asked for.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import torch

from ._precision_names import PRECISIONS, check_precisions

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
AUTOCAST_PREFIX = "autocast-"
REFERENCE = "float32"

#: The precisions each engine kind takes (others are left out of its cells).
KIND_PRECISIONS = {
    "throughput": PRECISIONS,
    "agreement": tuple(p for p in PRECISIONS if p != REFERENCE),
    "usage": ("float32", "autocast-bfloat16", "autocast-float16"),
    "reconstruction": ("float32", "autocast-bfloat16", "autocast-float16"),
}

# aten ops that move or view data without computing: not counted in the dtype that ran
_NOT_COMPUTE = {
    "_to_copy",
    "copy_",
    "clone",
    "detach",
    "alias",
    "lift_fresh",
    "empty",
    "empty_like",
    "empty_strided",
    "zeros",
    "zeros_like",
    "ones",
    "ones_like",
    "full",
    "full_like",
    "new_empty",
    "new_zeros",
    "new_ones",
    "new_full",
    "new_empty_strided",
    "_local_scalar_dense",
    "contiguous",
    "scalar_tensor",
    "arange",
    "cat",
    "stack",
    "_unsafe_view",
    "split",
    "unbind",
    "index_select",
}


def split_precision(precision: str) -> tuple[torch.dtype, torch.dtype | None]:
    """``(input dtype, autocast dtype or None)`` of a precision name."""
    check_precisions([precision], "precision")
    if precision.startswith(AUTOCAST_PREFIX):
        return torch.float32, DTYPES[precision[len(AUTOCAST_PREFIX) :]]
    return DTYPES[precision], None


def precision_extra(precision: str) -> dict[str, Any]:
    """What every row of a cell in ``precision`` records: ``dtype`` (the input's), ``autocast``
    (its dtype or None) and, for any precision but float32, ``precision`` (a variant key of the
    reports, so float32 rows keep the keys they always had)."""
    dtype, autocast = split_precision(precision)
    extra: dict[str, Any] = {"dtype": _name(dtype), "autocast": None if autocast is None else _name(autocast)}
    if precision != REFERENCE:
        extra["precision"] = precision
    return extra


def autocast_context(device: str | torch.device, precision: str) -> contextlib.AbstractContextManager:
    """``torch.autocast`` for an autocast precision on ``device``, else a no-op context."""
    _, autocast = split_precision(precision)
    if autocast is None:
        return contextlib.nullcontext()
    return torch.autocast(torch.device(device).type, dtype=autocast)


def grad_scaler(device: str | torch.device, precision: str) -> Any:
    """A ``torch.amp.GradScaler`` for float16 autocast (its gradients underflow otherwise), else None."""
    _, autocast = split_precision(precision)
    if autocast is not torch.float16:
        return None
    return torch.amp.GradScaler(torch.device(device).type)


def _name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


class _DtypeCounter(torch.utils._python_dispatch.TorchDispatchMode):
    """Counts the floating-point elements that computing aten ops write, per dtype."""

    def __init__(self) -> None:
        super().__init__()
        self.elements: Counter[str] = Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001
        out = func(*args, **(kwargs or {}))
        name = func.overloadpacket.__name__
        if name not in _NOT_COMPUTE and not getattr(func, "is_view", False):
            for t in torch.utils._pytree.tree_leaves(out):
                if isinstance(t, torch.Tensor) and t.is_floating_point():
                    self.elements[_name(t.dtype)] += t.numel()
        return out


def ran_dtype(fn: Callable[[], Any]) -> tuple[str | None, dict[str, float]]:
    """Run ``fn`` once and measure the dtype it computed in: the floating-point dtype of most of the
    elements that its computing ops wrote (casts, copies and views left out). Returns that dtype
    and each dtype's share of those elements (``(None, {})`` when nothing was counted)."""
    with _DtypeCounter() as counter:
        fn()
    total = sum(counter.elements.values())
    if not total:
        return None, {}
    shares = {k: round(v / total, 4) for k, v in counter.elements.most_common()}
    return next(iter(shares)), shares


@contextlib.contextmanager
def refusal_named(quantizer: str, precision: str) -> Iterator[None]:
    """Re-raise a quantizer's failure in ``precision`` as one that says so (an error row); in the
    reference precision (float32) a failure is not about precision and is raised as it came."""
    try:
        yield
    except Exception as exc:
        if precision == REFERENCE:
            raise
        raise RuntimeError(
            f"quantizer {quantizer!r} refuses precision {precision!r}: {type(exc).__name__}: {exc}"
        ) from exc


__all__ = [
    "DTYPES",
    "KIND_PRECISIONS",
    "PRECISIONS",
    "REFERENCE",
    "autocast_context",
    "check_precisions",
    "grad_scaler",
    "precision_extra",
    "ran_dtype",
    "refusal_named",
    "split_precision",
]
