"""What the pytest fixtures measure: operations, bytes moved, usage and reconstruction figures.

This is the one place where the pytest integration touches the suite's engines. Where an engine
already offers a piece, it is used; the small fallbacks here only keep the fixtures working until
then, and are meant to be swapped for the engines' functions.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

OPERATIONS = ("forward", "train_step", "encode", "decode")


def check_operation(operation: str) -> str:
    """Return ``operation`` or raise a ValueError naming the known ones."""
    if operation not in OPERATIONS:
        raise ValueError(f"operation must be one of {', '.join(OPERATIONS)}, got {operation!r}")
    return operation


def _forward(quantizer: nn.Module, x: Tensor):
    out = quantizer(x)
    return out


def _indices(quantizer: nn.Module, x: Tensor) -> Tensor:
    encode = getattr(quantizer, "encode", None)
    if callable(encode):
        return encode(x)
    return quantizer(x).indices


def make_operation(quantizer: nn.Module, operation: str, x: Tensor) -> Callable[[], Any]:
    """A no-argument callable that runs ``operation`` of ``quantizer`` once on ``x``.

    forward: inference (eval mode, no grad); train_step: forward and backward through the codes and
    the auxiliary loss (train mode); encode: indices only; decode: ``indices_to_codes`` of the
    indices of ``x``.
    """
    check_operation(operation)
    if operation == "train_step":
        quantizer.train()
        xg = x.detach().clone().requires_grad_(True)

        def train_step() -> Tensor:
            quantizer.zero_grad(set_to_none=True)
            xg.grad = None
            out = _forward(quantizer, xg)
            loss = out.codes.float().square().mean()
            if out.loss is not None:
                loss = loss + out.loss.float().sum()
            loss.backward()
            return loss.detach()

        return train_step

    quantizer.eval()
    if operation == "forward":

        def forward():
            with torch.no_grad():
                return _forward(quantizer, x)

        return forward
    if operation == "encode":

        def encode() -> Tensor:
            with torch.no_grad():
                return _indices(quantizer, x)

        return encode
    with torch.no_grad():
        indices = _indices(quantizer, x)

    def decode() -> Tensor:
        with torch.no_grad():
            return quantizer.indices_to_codes(indices)

    return decode


def _nbytes(t: Tensor) -> int:
    return t.numel() * t.element_size()


def bytes_moved(quantizer: nn.Module, operation: str, x: Tensor) -> int:
    """Bytes the operation must read and write at the least: its inputs, outputs and parameters."""
    check_operation(operation)
    with torch.no_grad():
        was_training = quantizer.training
        quantizer.eval()
        out = quantizer(x)
        quantizer.train(was_training)
    params = sum(_nbytes(p) for p in quantizer.parameters())
    x_b, codes_b, idx_b = _nbytes(x), _nbytes(out.codes), _nbytes(out.indices)
    if operation == "forward":
        return x_b + codes_b + idx_b + params
    if operation == "encode":
        return x_b + idx_b + params
    if operation == "decode":
        return idx_b + codes_b + params
    # forward, then the gradient of the codes in and the gradient of the input out (and the params')
    return x_b + codes_b + idx_b + codes_b + x_b + 2 * params


def usage_figures(indices: Tensor, codebook_size: int, num_codebooks: int = 1) -> dict[str, float]:
    """Codebook usage over ``indices``, per codebook where there are several, averaged.

    utilization (codes used / codebook size), perplexity exp(H), perplexity / codebook size,
    entropy in bits, dead codes.
    """
    idx = (
        indices.detach().reshape(-1, num_codebooks) if num_codebooks > 1 else indices.detach().reshape(-1, 1)
    )
    figures: dict[str, list[float]] = {
        k: [] for k in ("utilization", "perplexity", "entropy_bits", "dead_codes")
    }
    for c in range(idx.shape[1]):
        counts = torch.bincount(idx[:, c].long().cpu(), minlength=codebook_size).double()
        p = counts / counts.sum()
        nz = p[p > 0]
        entropy = float(-(nz * nz.log()).sum())
        used = int((counts > 0).sum())
        figures["utilization"].append(used / codebook_size)
        figures["perplexity"].append(math.exp(entropy))
        figures["entropy_bits"].append(entropy / math.log(2))
        figures["dead_codes"].append(float(codebook_size - used))
    result = {k: sum(v) / len(v) for k, v in figures.items()}
    result["perplexity_ratio"] = result["perplexity"] / codebook_size
    result["tokens"] = float(idx.shape[0])
    return result


def encode_all(quantizer: nn.Module, data: Tensor, batch: int = 8192) -> Tensor:
    """Indices of every row of ``data``, in batches, in eval mode."""
    quantizer.eval()
    with torch.no_grad():
        return torch.cat([_indices(quantizer, chunk) for chunk in data.split(batch)])


class _Autoencoder(nn.Module):
    """A small MLP autoencoder with the quantizer as its bottleneck."""

    def __init__(self, data_dim: int, quantizer: nn.Module, hidden: int = 128) -> None:
        super().__init__()
        qdim = int(quantizer.dim)
        self.encoder = nn.Sequential(nn.Linear(data_dim, hidden), nn.GELU(), nn.Linear(hidden, qdim))
        self.quantizer = quantizer
        self.decoder = nn.Sequential(nn.Linear(qdim, hidden), nn.GELU(), nn.Linear(hidden, data_dim))

    def forward(self, x: Tensor):
        out = self.quantizer(self.encoder(x))
        return self.decoder(out.codes), out


def psnr(x: Tensor, y: Tensor, peak: float) -> float:
    """Per-sample PSNR in dB against ``peak`` (the data range), averaged over samples."""
    mse = (x - y).float().square().flatten(1).mean(1).clamp_min(1e-12)
    return float((10 * torch.log10(peak**2 / mse)).mean())


def train_reconstruction(
    quantizer: nn.Module,
    train: Tensor,
    eval_data: Tensor,
    *,
    steps: int,
    batch: int,
    lr: float = 2e-3,
    seed: int = 0,
) -> dict[str, float]:
    """Train a small autoencoder around ``quantizer`` and return MSE, PSNR and usage on ``eval_data``."""
    if train.ndim != 2 or eval_data.ndim != 2:
        raise ValueError(f"reconstruction data must be (N, D) vectors, got {tuple(train.shape)}")
    torch.manual_seed(seed)
    model = _Autoencoder(train.shape[1], quantizer).to(train.device)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(steps):
        rows = torch.randint(0, train.shape[0], (batch,), generator=gen).to(train.device)
        x = train[rows]
        recon, out = model(x)
        loss = (recon - x).square().mean()
        if out.loss is not None:
            loss = loss + out.loss.sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        recon, _ = model(eval_data)
        indices = encode_all(quantizer, model.encoder(eval_data))
    peak = float(eval_data.max() - eval_data.min())
    figures = {
        "mse": float((recon - eval_data).square().mean()),
        "psnr": psnr(recon, eval_data, peak),
    }
    usage = usage_figures(indices, int(quantizer.codebook_size), int(getattr(quantizer, "num_codebooks", 1)))
    figures.update({f"usage_{k}": v for k, v in usage.items()})
    return figures


def gaussian_vectors(n: int, dim: int, seed: int = 0, device: str | torch.device = "cpu") -> Tensor:
    """Seeded standard-normal vectors, shape (n, dim), float32."""
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(n, dim, generator=gen).to(device)


__all__ = [
    "OPERATIONS",
    "bytes_moved",
    "check_operation",
    "encode_all",
    "gaussian_vectors",
    "make_operation",
    "psnr",
    "train_reconstruction",
    "usage_figures",
]
