"""What a registered quantizer is and does, measured on its default operating point.

``describe_quantizer(name)`` builds the quantizer and runs a tiny batch through it: nothing in the
result is taken from documentation. A quantizer that fails to import, build or run gives an
``QuantizerInfo`` with ``error`` set instead of raising, so that one broken plugin never hides the
rest.
"""

from __future__ import annotations

import fnmatch
from dataclasses import asdict, dataclass, field
from typing import Any

from ._registry import get_quantizer_spec, list_quantizers, plugin_errors


@dataclass
class QuantizerInfo:
    """One quantizer's facts: registry entry plus what a tiny forward measured."""

    name: str
    family: str = ""
    source: str = ""
    description: str = ""
    tags: tuple[str, ...] = field(default_factory=tuple)
    codebook_size: int | None = None
    dim: int | None = None
    num_codebooks: int | None = None
    bits_per_token: float | None = None
    round_trip: str | None = None  # "exact" | "approx" | "mismatch" | "n/a"
    aux_loss: bool | None = None  # a train-mode loss that carries gradient
    learned_codebook: bool | None = None  # codes of fixed indices move with one training step
    gradients: bool | None = None  # the input gets a gradient through the codes
    error: str | None = None

    def supports(self) -> list[str]:
        """Short labels of the measured capabilities."""
        labels = []
        if self.round_trip in ("exact", "approx"):
            labels.append(f"round-trip ({self.round_trip})")
        if self.aux_loss:
            labels.append("aux-loss")
        if self.learned_codebook:
            labels.append("learned-codebook")
        if self.gradients:
            labels.append("gradients")
        return labels

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["tags"] = list(self.tags)
        out["supports"] = self.supports()
        return out


def describe_quantizer(name: str, measure: bool = True, **config: Any) -> QuantizerInfo:
    """Registry facts for ``name``; with ``measure``, build it (``config`` or defaults) and probe it."""
    try:
        spec = get_quantizer_spec(name)
    except Exception as exc:  # an unknown or malformed name
        return QuantizerInfo(name, error=f"{type(exc).__name__}: {exc}")
    info = QuantizerInfo(name, spec.family, spec.source, spec.description, tuple(spec.tags))
    if not measure:
        return info
    stage = "build"
    try:
        import torch

        from ._registry import create_quantizer

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            quantizer = create_quantizer(name, **config)
            info.dim, info.codebook_size = int(quantizer.dim), int(quantizer.codebook_size)
            info.num_codebooks = int(quantizer.num_codebooks)
            info.bits_per_token = float(quantizer.bits_per_token)
            stage = "probe"
            _probe(quantizer, info, torch)
    except Exception as exc:  # report, never raise: a plugin may fail in any way
        info.error = f"{stage} failed: {type(exc).__name__}: {exc}"
    return info


def _probe(quantizer, info: QuantizerInfo, torch) -> None:
    x = torch.randn(4, 8, info.dim)
    indices_shape = (4, 8) + ((info.num_codebooks,) if info.num_codebooks > 1 else ())

    quantizer.eval()
    with torch.no_grad():
        out = quantizer(x)
        _check_output(out, x, indices_shape)
        try:
            before = quantizer.indices_to_codes(out.indices)
        except NotImplementedError:
            before = None
    if before is None:
        info.round_trip = "n/a"
    elif torch.equal(before, out.codes.to(before.dtype)):
        info.round_trip = "exact"
    elif torch.allclose(before, out.codes.to(before.dtype), rtol=1e-4, atol=1e-5):
        info.round_trip = "approx"
    else:
        info.round_trip = "mismatch"

    quantizer.train()
    xg = x.clone().requires_grad_()
    train_out = quantizer(xg)
    _check_output(train_out, x, indices_shape)
    loss = train_out.loss
    info.aux_loss = loss is not None and loss.requires_grad
    weights = torch.randn_like(train_out.codes)
    objective = (train_out.codes * weights).sum() + (loss if info.aux_loss else 0.0)
    objective.backward()
    info.gradients = bool(xg.grad is not None and torch.isfinite(xg.grad).all() and xg.grad.abs().sum() > 0)
    with torch.no_grad():  # one plain SGD step; EMA codebooks already moved in the forward
        for p in quantizer.parameters():
            if p.grad is not None:
                p.add_(p.grad, alpha=-0.1)

    if before is not None:
        quantizer.eval()
        with torch.no_grad():
            after = quantizer.indices_to_codes(out.indices)
        info.learned_codebook = not torch.equal(before, after)


def _check_output(out, x, indices_shape) -> None:
    codes, indices, loss = out
    if codes.shape != x.shape or codes.dtype != x.dtype:
        raise ValueError(f"codes {tuple(codes.shape)} {codes.dtype}, expected {tuple(x.shape)} {x.dtype}")
    if tuple(indices.shape) != indices_shape:
        raise ValueError(f"indices of shape {tuple(indices.shape)}, expected {indices_shape}")
    if loss is not None and loss.ndim != 0:
        raise ValueError(f"loss of shape {tuple(loss.shape)}, expected a scalar or None")


def describe_quantizers(pattern: str | None = None, measure: bool = True) -> list[QuantizerInfo]:
    """``describe_quantizer`` for every registered name matching ``pattern`` and for each file or
    module reference in it (``my_fsq.py:MyFSQ``), plus one row per entry point that could not be
    registered."""
    patterns = [p.strip() for p in (pattern or "*").split(",") if p.strip()]
    references = [p for p in patterns if ":" in p]
    names = list_quantizers([p for p in patterns if ":" not in p]) if pattern else list_quantizers()
    infos = [describe_quantizer(name, measure=measure) for name in names + references]
    for name, error in sorted(plugin_errors().items()):
        if any(fnmatch.fnmatchcase(name, p) for p in patterns):
            infos.append(QuantizerInfo(name, family="plugin", source="entry point", error=error))
    return infos


__all__ = ["QuantizerInfo", "describe_quantizer", "describe_quantizers"]
