"""The operations that the pytest throughput benchmarks time, and the bytes each must move.

The one place where the pytest integration defines operations itself: it mirrors the throughput
engine (``vqbench.suite.throughput``: same operation names, modes and byte counts) and is meant to
be replaced by a public helper of that engine that returns an operation's callable.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

OPERATIONS = ("forward", "train", "encode", "decode")


def check_operation(operation: str) -> str:
    """Return ``operation`` or raise a ValueError naming the known ones."""
    if operation not in OPERATIONS:
        raise ValueError(f"operation must be one of {', '.join(OPERATIONS)}, got {operation!r}")
    return operation


def _encoder(quantizer: nn.Module) -> Callable[[Tensor], Tensor]:
    encode = getattr(quantizer, "encode", None)
    return encode if callable(encode) else (lambda t: quantizer(t).indices)


def make_operation(call: nn.Module, quantizer: nn.Module, operation: str, x: Tensor) -> Callable[[], Any]:
    """A no-argument callable that runs ``operation`` once on ``x``.

    ``call`` is the module to call (``torch.compile``-d or not), ``quantizer`` the plain module.
    forward: ``eval()`` under ``no_grad``; train: forward and backward in ``train()`` mode (no
    optimizer step); encode: indices only; decode: ``indices_to_codes`` of the indices of ``x``.
    """
    check_operation(operation)
    if operation == "train":
        quantizer.train()
        x_leaf = x.detach().clone().requires_grad_(True)
        with torch.no_grad():
            grad = torch.randn_like(call(x).codes)
        trainable = [p for p in quantizer.parameters() if p.requires_grad]

        def train() -> None:
            x_leaf.grad = None
            for p in trainable:
                p.grad = None
            out = call(x_leaf)
            loss = (out.codes * grad).sum()
            if out.loss is not None:
                loss = loss + out.loss.sum()
            loss.backward()

        return train

    quantizer.eval()
    if operation == "forward":

        def forward() -> Any:
            with torch.no_grad():
                return call(x)

        return forward
    encode = _encoder(quantizer)
    if operation == "encode":

        def encode_once() -> Tensor:
            with torch.no_grad():
                return encode(x)

        return encode_once
    with torch.no_grad():
        indices = quantizer(x).indices

    def decode() -> Tensor:
        with torch.no_grad():
            return quantizer.indices_to_codes(indices)

    return decode


def _nbytes(*tensors: Tensor) -> int:
    return sum(t.numel() * t.element_size() for t in tensors)


def bytes_moved(quantizer: nn.Module, operation: str, x: Tensor) -> int:
    """Bytes the operation must read and write at least once: inputs, outputs and state."""
    check_operation(operation)
    was_training = quantizer.training
    quantizer.eval()
    with torch.no_grad():
        out = quantizer(x)
    quantizer.train(was_training)
    x_b, codes, idx = _nbytes(x), _nbytes(out.codes), _nbytes(out.indices)
    state = _nbytes(*quantizer.parameters(), *quantizer.buffers())
    if operation == "forward":
        return x_b + codes + idx + state
    if operation == "encode":
        return x_b + idx + state
    if operation == "decode":
        return idx + codes + state
    trainable = _nbytes(*(p for p in quantizer.parameters() if p.requires_grad))
    # forward, then read the codes' gradient, write the input's and the parameters'
    return x_b + codes + idx + state + codes + x_b + trainable


def gaussian_vectors(
    n: int, dim: int, seed: int = 0, device: str | torch.device = "cpu", seq_len: int = 256
) -> Tensor:
    """Seeded standard-normal input of ``n`` vectors laid out as sequences of tokens, like the
    throughput engine's: ``(n / seq_len, seq_len, dim)`` (``(1, n, dim)`` when that does not divide)."""
    seq = min(seq_len, n)
    batch, seq = (n // seq, seq) if n % seq == 0 else (1, n)
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(batch, seq, dim, generator=gen).to(device)


__all__ = ["OPERATIONS", "bytes_moved", "check_operation", "gaussian_vectors", "make_operation"]
