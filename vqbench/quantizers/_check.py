"""The protocol check: build a quantizer as the suite will, call it once, and name what is wrong.

``check_quantizer(name, config)`` imports the quantizer, builds it with exactly ``config`` (what the
suite passes: ``codebook_size=`` where a profile sets sizes, the ``[quantizers.NAME]`` settings,
``dim=`` where those set it), calls it on a tiny input of ``TINY_VECTORS`` vectors in training mode
and in eval mode, decodes its indices, and returns one :class:`Check` per step. A failing step says
what came against what was expected; the steps after it are skipped. ``output_problems`` is the
output part alone, for an engine's first call.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from vqbench.errors import UserError

from ._registry import get_quantizer_spec

#: The tiny input: ``(2, 4, dim)``, 8 vectors.
TINY_SHAPE = (2, 4)
TINY_VECTORS = 8
ATTRIBUTES = ("dim", "codebook_size", "num_codebooks", "bits_per_token", "indices_to_codes")
STEPS = ("import", "build", "attributes", "forward", "output", "codes", "indices", "loss", "eval", "decode")
_HOW = "from vqbench.quantizers import QuantizerOutput; return QuantizerOutput(codes, indices, loss)"


@dataclass
class Check:
    """One step of the check: ``status`` is "ok", "fail" or "skip"; ``detail`` says what was seen."""

    step: str
    status: str
    detail: str = ""

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


class ProtocolError(TypeError, UserError):
    """A quantizer's output that does not follow the protocol (the message says what came)."""


def call_args(config: dict[str, Any]) -> str:
    """``codebook_size=256, dim=4``: the keyword arguments as the constructor receives them."""
    return ", ".join(f"{k}={v!r}" for k, v in config.items())


def check_quantizer(name: str, config: dict[str, Any] | None = None, device: str = "cpu") -> list[Check]:
    """Every step of the protocol check of ``name`` built with ``config`` on ``device``."""
    import torch

    config = dict(config or {})
    checks: list[Check] = []

    def done(step: str, status: str, detail: str = "") -> bool:
        checks.append(Check(step, status, detail))
        return status == "ok"

    def rest() -> list[Check]:
        seen = {c.step for c in checks}
        return checks + [Check(s, "skip", "not reached") for s in STEPS if s not in seen]

    try:
        factory = get_quantizer_spec(name).load()
    except Exception as exc:  # a plugin may fail in any way
        done("import", "fail", _text(exc))
        return rest()
    label = getattr(factory, "__qualname__", None) or type(factory).__name__
    done("import", "ok", f"{label} from {_origin(factory)}")
    built = f"{label}({call_args(config)})"
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        try:
            module = factory(**config)
        except Exception as exc:
            done("build", "fail", f"{built} raised {_text(exc)}{_constructor_hint(exc, config)}")
            return rest()
        done("build", "ok", built)
        problem = attribute_problem(module)
        if problem:
            done("attributes", "fail", problem)
            return rest()
        dim, books, size = int(module.dim), int(module.num_codebooks), int(module.codebook_size)
        done(
            "attributes",
            "ok",
            f"dim={dim}, codebook_size={size}, num_codebooks={books}, "
            f"bits_per_token={float(module.bits_per_token):g}",
        )
        try:
            module = module.to(torch.device(device)).train()
            x = torch.randn(*TINY_SHAPE, dim, device=device, requires_grad=True)
            out = module(x)
        except Exception as exc:
            done(
                "forward",
                "fail",
                f"forward on input of shape {(*TINY_SHAPE, dim)} float32 raised {_text(exc)}",
            )
            return rest()
        done("forward", "ok", f"input {(*TINY_SHAPE, dim)} float32, training mode")
        for step, problem in _output_steps(x, out, module):
            if not done(step, "fail" if problem else "ok", problem or _ok_text(step, x, out, module)):
                return rest()
        try:
            module.eval()
            with torch.no_grad():
                again = module(x.detach())
            problem = "; ".join(p for _, p in _output_steps(x, again, module) if p)
        except Exception as exc:
            problem = f"raised {_text(exc)}"
        if not done("eval", "fail" if problem else "ok", f"eval mode, no_grad: {problem or 'same protocol'}"):
            return rest()
        try:
            with torch.no_grad():
                decoded = module.indices_to_codes(again.indices)
        except Exception as exc:
            done(
                "decode",
                "fail",
                f"indices_to_codes(indices) raised {_text(exc)} (the throughput benchmark's decode calls it)",
            )
            return rest()
        if not isinstance(decoded, torch.Tensor) or tuple(decoded.shape) != tuple(x.shape):
            got = (
                f"shape {tuple(decoded.shape)}"
                if isinstance(decoded, torch.Tensor)
                else type(decoded).__name__
            )
            done(
                "decode",
                "fail",
                f"indices_to_codes(indices) returned {got}; expected a tensor of the "
                f"codes' shape {tuple(x.shape)}",
            )
            return rest()
        done("decode", "ok", f"indices_to_codes(indices) -> {tuple(decoded.shape)}")
    return checks


def attribute_problem(module: Any) -> str:
    """'' when ``module`` has the protocol's attributes with usable values, else what is wrong."""
    from torch import nn

    if not isinstance(module, nn.Module):
        return f"the factory built a {type(module).__name__}; expected a torch.nn.Module"
    missing = [a for a in ATTRIBUTES if not hasattr(module, a)]
    if missing:
        hint = (
            " (vqbench.quantizers.Quantizer, as a base class, gives bits_per_token)"
            if ("bits_per_token" in missing)
            else ""
        )
        return f"missing attribute(s) {', '.join(missing)}; a quantizer exposes {', '.join(ATTRIBUTES)}{hint}"
    for attr, low in (("dim", 1), ("codebook_size", 2), ("num_codebooks", 1)):
        value = getattr(module, attr)
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            try:
                ok = int(value) == value and int(value) >= low and not isinstance(value, bool)
            except (TypeError, ValueError):
                ok = False
            if not ok:
                return f"{attr} is {value!r} ({type(value).__name__}); expected an integer >= {low}"
    bits = module.bits_per_token
    if isinstance(bits, bool) or not isinstance(bits, int | float) or not math.isfinite(bits) or bits <= 0:
        return f"bits_per_token is {bits!r}; expected a positive number"
    if not callable(module.indices_to_codes):
        return "indices_to_codes is not callable; expected a method indices -> codes"
    return ""


def output_problems(x: Any, out: Any, module: Any) -> list[str]:
    """What is wrong with ``out = module(x)`` against the protocol; [] when nothing is."""
    return [p for _, p in _output_steps(x, out, module) if p]


def _output_steps(x: Any, out: Any, module: Any) -> list[tuple[str, str]]:
    """(step, problem or '') for the output, codes, indices and loss of ``out``; stops at the first
    problem of the output's type (the rest cannot be read)."""
    import torch

    if isinstance(out, tuple) and not all(hasattr(out, f) for f in ("codes", "indices", "loss")):
        kinds = ", ".join(type(o).__name__ for o in out)
        return [
            (
                "output",
                f"forward returned a plain tuple of {len(out)} item(s) ({kinds}); expected a "
                f"QuantizerOutput(codes, indices, loss): {_HOW}",
            )
        ]
    missing = [f for f in ("codes", "indices", "loss") if not hasattr(out, f)]
    if missing:
        return [
            (
                "output",
                f"forward returned a {type(out).__name__} without {', '.join(missing)}; "
                f"expected a QuantizerOutput(codes, indices, loss): {_HOW}",
            )
        ]
    steps = [("output", "")]
    codes, indices, loss = out.codes, out.indices, out.loss
    if not isinstance(codes, torch.Tensor):
        steps.append(("codes", f"codes is a {type(codes).__name__}; expected a tensor"))
    elif tuple(codes.shape) != tuple(x.shape) or codes.dtype != x.dtype:
        steps.append(
            (
                "codes",
                f"codes of shape {tuple(codes.shape)} {codes.dtype}; expected the input's "
                f"shape {tuple(x.shape)} and dtype {x.dtype}",
            )
        )
    elif (
        codes.is_floating_point()
        and x.is_floating_point()
        and bool(torch.isfinite(x).all())
        and not bool(torch.isfinite(codes.detach()).all())
    ):
        steps.append(("codes", "codes hold NaN or inf for finite input; expected finite codes"))
    else:
        steps.append(("codes", ""))
    steps.append(("indices", _indices_problem(x, indices, module)))
    steps.append(("loss", _loss_problem(loss)))
    return steps


def _indices_problem(x: Any, indices: Any, module: Any) -> str:
    import torch

    books = int(getattr(module, "num_codebooks", 1) or 1)
    expected = tuple(x.shape[:-1]) + ((books,) if books > 1 else ())
    if not isinstance(indices, torch.Tensor):
        return f"indices is a {type(indices).__name__}; expected an integer tensor of shape {expected}"
    if indices.is_floating_point() or indices.is_complex() or indices.dtype == torch.bool:
        return f"indices of dtype {indices.dtype}; expected an integer dtype (torch.long)"
    if tuple(indices.shape) != expected:
        why = f" (input shape[:-1] plus num_codebooks={books})" if books > 1 else " (the input's shape[:-1])"
        return f"indices of shape {tuple(indices.shape)}; expected {expected}{why}"
    size = int(module.codebook_size)
    if indices.numel():
        low, high = int(indices.min()), int(indices.max())
        if low < 0 or high >= size:
            return f"indices range from {low} to {high}; expected 0 .. {size - 1} (codebook_size {size})"
    return ""


def _loss_problem(loss: Any) -> str:
    import torch

    if loss is None:
        return ""
    if not isinstance(loss, torch.Tensor):
        return f"loss is a {type(loss).__name__}; expected a scalar tensor or None"
    if loss.ndim != 0:
        return f"loss of shape {tuple(loss.shape)}; expected a scalar tensor (or None)"
    if not bool(torch.isfinite(loss.detach())):
        return f"loss is {float(loss.detach())}; expected a finite value"
    return ""


def _ok_text(step: str, x: Any, out: Any, module: Any) -> str:
    if step == "output":
        return type(out).__name__
    if step == "codes":
        return f"{tuple(out.codes.shape)} {out.codes.dtype}"
    if step == "indices":
        ind = out.indices
        span = f", {int(ind.min())} .. {int(ind.max())}" if ind.numel() else ""
        return f"{tuple(ind.shape)} {ind.dtype}{span} of {int(module.codebook_size)}"
    return "None" if out.loss is None else f"scalar {float(out.loss.detach()):.4g}"


def _constructor_hint(exc: Exception, config: dict[str, Any]) -> str:
    if not isinstance(exc, TypeError) or "argument" not in str(exc):
        return ""
    return (
        f"; the suite builds every quantizer with these keyword arguments ({call_args(config) or 'none'}): "
        "accept them, e.g. def __init__(self, dim=None, codebook_size=None, **settings)"
    )


def _origin(factory: Any) -> str:
    """The file a factory comes from (for a file reference), else its module's name."""
    import sys

    module = getattr(factory, "__module__", None) or "?"
    path = getattr(sys.modules.get(module), "__file__", None)
    return path if path and module.startswith("vqbench_plugin_") else module


def _text(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def failures(checks: list[Check]) -> list[Check]:
    """The failed steps of ``checks``."""
    return [c for c in checks if c.status == "fail"]


__all__ = [
    "Check",
    "ProtocolError",
    "TINY_SHAPE",
    "TINY_VECTORS",
    "call_args",
    "check_quantizer",
    "failures",
    "output_problems",
]
