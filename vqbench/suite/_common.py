"""Helpers the engines share: figures, parameters, the cell's data and its quantizer."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from vqbench.quantizers._registry import BASE_BACKENDS

if TYPE_CHECKING:
    import torch
    from torch import nn

    from vqbench.datasets import Dataset

    from .cells import Cell

#: Elements of a tokens x codes matrix that one eval batch may create (128 MiB of float32):
#: learned codebooks compare every token with every code, so large codebooks get smaller batches.
EVAL_BUDGET = 2**25


def eval_batch_size(requested: int, tokens_per_item: int, codes: int) -> int:
    """Items per eval batch: ``requested``, fewer where tokens x codes would pass ``EVAL_BUDGET``."""
    return max(1, min(requested, EVAL_BUDGET // max(1, tokens_per_item * codes)))


def figure(
    metric: str,
    value: float,
    unit: str,
    higher_is_better: bool | None,
    *,
    spread: float | None = None,
    n: int | None = None,
    extra: dict | None = None,
) -> dict:
    """One figure as the engines return it (see contracts: metric, value, unit, ...)."""
    return {
        "metric": metric,
        "value": float(value),
        "unit": unit,
        "higher_is_better": higher_is_better,
        "spread": None if spread is None else float(spread),
        "n": None if n is None else int(n),
        "extra": extra,
    }


def resolve_params(cell: Cell, defaults: Mapping[str, Any]) -> dict[str, Any]:
    """The engine's defaults overridden by ``cell.params`` (old parameter names read under their new
    name); unknown names are an error."""
    from vqbench.engines import ENGINES

    given = cell.params
    if cell.benchmark in ENGINES:
        given = ENGINES.get(cell.benchmark).current_params(given, f"{cell.benchmark} params")
    unknown = sorted(set(given) - set(defaults))
    if unknown:
        raise ValueError(
            f"{cell.benchmark} params: unknown name(s) {', '.join(map(repr, unknown))}; "
            f"expected some of {', '.join(sorted(defaults))}"
        )
    return {**defaults, **given}


def positive_int(params: Mapping[str, Any], name: str, *, allow_zero: bool = False) -> int:
    """``params[name]`` checked to be an int > 0 (or >= 0)."""
    value = params[name]
    low = 0 if allow_zero else 1
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"param {name!r} must be an integer >= {low}, got {value!r}")
    return value


def positive_float(params: Mapping[str, Any], name: str, *, allow_zero: bool = False) -> float:
    """``params[name]`` checked to be a finite number > 0 (or >= 0)."""
    value = params[name]
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"param {name!r} must be a finite number {bound}, got {value!r}")
    return float(value)


def load_cell_dataset(cell: Cell) -> Dataset:
    """The cell's dataset through ``vqbench.datasets.load_dataset``."""
    if not cell.dataset:
        raise ValueError(f"the {cell.benchmark} benchmark needs a dataset; got dataset={cell.dataset!r}")
    from vqbench.datasets import load_dataset

    return load_dataset(cell.dataset, seed=cell.seed, **cell.dataset_options)


def build_quantizer(cell: Cell, **overrides: Any) -> tuple[nn.Module, nn.Module]:
    """Build the cell's quantizer on its device for its backend.

    Returns ``(callable, module)``: the module to call (``torch.compile``-d for the "compile"
    backend) and the plain module (for attributes, parameters and ``indices_to_codes``).
    A backend other than "eager"/"compile" is passed as ``backend=`` to the constructor; it must be
    one that ``vqbench.quantizers.offered_backends`` lists for the quantizer on the cell's device
    (the same declaration that planning reads).
    """
    import torch

    from vqbench.quantizers import backend_unavailable, create_quantizer, is_quantizer, offered_backends

    config = {**cell.config, **overrides}
    backend = cell.backend
    reason = backend_unavailable(offered_backends(cell.quantizer), backend, cell.device)
    if reason:
        raise ValueError(f"quantizer {cell.quantizer!r}: {reason}")
    if backend not in BASE_BACKENDS:
        if "backend" in config:
            raise ValueError(
                f"backend given twice: cell backend {backend!r} and config backend {config['backend']!r}"
            )
        config["backend"] = backend
    module = create_quantizer(cell.quantizer, **config)
    if not is_quantizer(module):
        raise TypeError(
            f"quantizer {cell.quantizer!r} built a {type(module).__name__}, not a protocol quantizer"
        )
    module = module.to(torch.device(cell.device))
    module._vqbench_finite_check = module.register_forward_hook(_finite_hook(cell.quantizer))
    from vqbench.quantizers import BUILTIN_NAMES

    if cell.quantizer not in BUILTIN_NAMES:  # a plugin's first call is checked against the protocol
        module._vqbench_protocol_check = module.register_forward_hook(_protocol_hook(cell.quantizer, module))
    call = torch.compile(module) if backend == "compile" else module
    return call, module


class NonFiniteOutputError(RuntimeError):
    """A quantizer returned NaN or infinite codes for finite input: the quantizer's fault."""


def _finite_hook(name: str) -> Any:
    """A forward hook that raises :class:`NonFiniteOutputError` when finite input gives non-finite
    codes, so that the error names the quantizer, not whatever later consumes its codes."""
    import torch

    def hook(module: Any, args: tuple, out: Any) -> None:
        if torch.compiler.is_compiling():
            return
        codes = getattr(out, "codes", None)
        x = args[0] if args else None
        if not isinstance(codes, torch.Tensor) or not isinstance(x, torch.Tensor):
            return
        if not codes.is_floating_point() or bool(torch.isfinite(codes).all()):
            return
        if x.is_floating_point() and bool(torch.isfinite(x).all()):
            raise NonFiniteOutputError(
                f"quantizer {name!r} returned non-finite codes (NaN or inf) for finite input of shape "
                f"{tuple(x.shape)}; expected finite codes of the input's shape. The fault is in this "
                "quantizer's forward"
            )

    return hook


def _protocol_hook(name: str, module: Any) -> Any:
    """A forward hook that checks a plugin's first (eager) output against the protocol, so that an
    error row names what is wrong (a tuple, a shape, a dtype) rather than what tripped over it."""
    import torch

    from vqbench.quantizers._check import ProtocolError, output_problems

    def hook(mod: Any, args: tuple, out: Any) -> None:
        if torch.compiler.is_compiling() or not args or not isinstance(args[0], torch.Tensor):
            return
        handle = getattr(module, "_vqbench_protocol_check", None)
        if handle is not None:
            handle.remove()
        problems = output_problems(args[0], out, mod)
        if problems:
            raise ProtocolError(f"quantizer {name!r} does not follow the protocol: {'; '.join(problems)}")

    return hook


def drop_finite_check(module: Any) -> None:
    """Remove the output checks of ``build_quantizer`` (before timing, where they would cost)."""
    for attr in ("_vqbench_finite_check", "_vqbench_protocol_check"):
        handle = getattr(module, attr, None)
        if handle is not None:
            handle.remove()


def aux_loss(loss: torch.Tensor | None) -> torch.Tensor | None:
    """A quantizer's auxiliary loss as a scalar (summed if it came with more elements)."""
    if loss is None:
        return None
    return loss if loss.ndim == 0 else loss.sum()
