"""What a generator sees in a trained autoencoder's tokens: modelability and robustness.

Measured by the reconstruction engine on the autoencoder a cell has just trained (never a second
training), when its ``token_figures`` parameter asks (``"counts"``, or ``"prior"`` for all):

- modelability, count-based: tokens of the train split fit add-one-style smoothed counts, the eval
  split's tokens are scored by them (held-out cross-entropy, bits per token): the unigram, a token
  given its raster predecessor, and a token given its left and upper neighbours (images; for
  vectors and audio frames the tokens of a sample form one row, so there is no upper neighbour).
  Each context's distribution is smoothed towards the train unigram (a Dirichlet prior of weight
  ``SMOOTHING``), so an unseen context scores as the unigram.
- modelability, a prior (``"prior"``): a small causal transformer (2 layers, width 32, a fixed budget
  of ``prior_steps`` Adam steps of 64 sequences, cosine schedule; the same for every quantizer) fit
  on the train split's token sequences in raster order, scored on up to 2,048 eval sequences; its
  held-out curve and whether its second half gained at most 2% are in the rows.
- a quantizer with several codebooks or residual levels is modelled on its joint index per position.
- robustness: the PSNR drop when a share of the eval tokens is replaced by random codes, or gets one
  random bit of its index flipped (a channel error), and the share of indices that change, with the
  PSNR drop it causes, when the quantizer's input gets Gaussian noise of a scale relative to its
  standard deviation.
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np
import torch
from torch import nn

from ._common import figure

#: The weight of the unigram prior in each context's smoothed distribution (pseudo-counts).
SMOOTHING = 1.0
#: The shares of tokens corrupted and the relative noise scales, kept in the figures' extra.
SHARES = (0.01, 0.05, 0.1, 0.25)
NOISE_SCALES = (0.01, 0.05, 0.1, 0.25)


def joint_ids(train: torch.Tensor, eval: torch.Tensor) -> tuple[np.ndarray, np.ndarray, int]:
    """Token ids ``(N, T)`` of both splits: the index itself, or the joint index per position of a
    quantizer with several codebooks (trailing axis); also the alphabet size seen in train and eval."""
    if train.dim() == 2:
        both = torch.cat([train.flatten(), eval.flatten()])
        _, ids = torch.unique(both, return_inverse=True)
    else:
        rows = torch.cat([train.flatten(0, 1), eval.flatten(0, 1)])
        _, ids = torch.unique(rows, dim=0, return_inverse=True)
    n = train.shape[0] * train.shape[1]
    ids = ids.numpy().astype(np.int64)
    return ids[:n].reshape(train.shape[:2]), ids[n:].reshape(eval.shape[:2]), int(ids.max()) + 1


def _cross_entropy(
    train_ctx: np.ndarray, train_x: np.ndarray, eval_ctx: np.ndarray, eval_x: np.ndarray, k: int
) -> float:
    """Held-out bits per token of ``eval_x`` given ``eval_ctx`` under counts of the train pairs."""
    unigram = (np.bincount(train_x, minlength=k) + 1.0) / (train_x.size + k)
    pair = train_ctx * k + train_x
    keys, counts = np.unique(pair, return_counts=True)
    ctx_keys, ctx_counts = np.unique(train_ctx, return_counts=True)
    query = eval_ctx * k + eval_x
    at = np.searchsorted(keys, query).clip(max=keys.size - 1)
    joint = np.where(keys[at] == query, counts[at], 0)
    at = np.searchsorted(ctx_keys, eval_ctx).clip(max=ctx_keys.size - 1)
    total = np.where(ctx_keys[at] == eval_ctx, ctx_counts[at], 0)
    p = (joint + SMOOTHING * unigram[eval_x]) / (total + SMOOTHING)
    return float(-np.log2(p).mean())


def conditional_entropies(
    train: np.ndarray, eval: np.ndarray, k: int, grid: tuple[int, int]
) -> dict[str, float]:
    """Held-out bits per token of eval token ids ``(N, T)`` (alphabet ``k``, fit on train ids) on a
    ``grid`` of rows x columns (``T = rows * columns``): unigram, given the raster predecessor, given
    the left and upper neighbours. A missing neighbour is the start symbol ``k``."""
    rows, cols = grid
    if rows * cols != train.shape[1] or train.shape[1] != eval.shape[1]:
        raise ValueError(
            f"expected {rows}x{cols} tokens per sample, got {train.shape[1]} and {eval.shape[1]}"
        )
    start = k

    def contexts(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        grid_ids = ids.reshape(-1, rows, cols)
        prev = np.concatenate([np.full((ids.shape[0], 1), start), ids[:, :-1]], 1)
        left = np.concatenate([np.full((grid_ids.shape[0], rows, 1), start), grid_ids[:, :, :-1]], 2)
        up = np.concatenate([np.full((grid_ids.shape[0], 1, cols), start), grid_ids[:, :-1, :]], 1)
        return prev.reshape(-1), (left * (k + 1) + up).reshape(-1)

    tp, tn = contexts(train)
    ep, en = contexts(eval)
    tx, ex = train.reshape(-1), eval.reshape(-1)
    zeros_t, zeros_e = np.zeros_like(tx), np.zeros_like(ex)
    return {
        "unigram": _cross_entropy(zeros_t, tx, zeros_e, ex, k),
        "previous": _cross_entropy(tp, tx, ep, ex, k),
        "neighbours": _cross_entropy(tn, tx, en, ex, k),
    }


def _random_codes(indices: torch.Tensor, size: int, share: float, gen: torch.Generator) -> torch.Tensor:
    """``indices`` with a ``share`` of its entries replaced by uniformly random codes."""
    hit = torch.rand(indices.shape, generator=gen) < share
    other = torch.randint(0, size, indices.shape, generator=gen)
    return torch.where(hit, other.to(indices.dtype), indices)


def _flip_bits(indices: torch.Tensor, size: int, share: float, gen: torch.Generator) -> torch.Tensor:
    """``indices`` with one random bit of a ``share`` of its entries flipped (kept below ``size``)."""
    bits = max(1, math.ceil(math.log2(size)))
    hit = torch.rand(indices.shape, generator=gen) < share
    bit = torch.randint(0, bits, indices.shape, generator=gen)
    flipped = torch.bitwise_xor(indices.long(), torch.bitwise_left_shift(torch.ones_like(bit), bit)) % size
    return torch.where(hit, flipped.to(indices.dtype), indices)


def _psnr(x: torch.Tensor, y: torch.Tensor, peak: float) -> torch.Tensor:
    mse = (y.float() - x).square().flatten(1).mean(1).double()
    return 10 * torch.log10(peak**2 / mse.clamp_min(1e-12))


def robustness(
    model: Any,
    eval: torch.Tensor,
    peak: float,
    batch: int,
    seed: int,
    shares: tuple[float, ...] = SHARES,
    scales: tuple[float, ...] = NOISE_SCALES,
) -> dict[str, dict[float, float]]:
    """PSNR drops (dB, mean over eval samples) under random codes and bit flips per share of tokens,
    and under input noise per relative scale, with the share of indices that noise changes."""
    quantizer = model.quantizer
    size = int(quantizer.codebook_size)
    gen = torch.Generator().manual_seed(seed)
    device = next(model.parameters()).device
    out: dict[str, dict[float, list[torch.Tensor]]] = {
        "random_codes": {s: [] for s in shares},
        "bit_flips": {s: [] for s in shares},
        "noise": {s: [] for s in scales},
        "noise_changed": {s: [] for s in scales},
    }
    model.eval()
    with torch.no_grad():
        for begin in range(0, eval.shape[0], batch):
            x = eval[begin : begin + batch].to(device)
            tokens, shape = model.to_tokens(model.encoder(x))
            tokens = model.project_in(tokens)
            indices = quantizer(tokens).indices

            def decode(ids: torch.Tensor, shape=shape) -> torch.Tensor:
                codes = quantizer.indices_to_codes(ids.to(device))
                return model.decoder(model.from_tokens(model.project_out(codes), shape))

            clean = _psnr(x, decode(indices), peak).cpu()
            cpu_ids = indices.cpu()
            for share in shares:
                out["random_codes"][share].append(
                    clean - _psnr(x, decode(_random_codes(cpu_ids, size, share, gen)), peak).cpu()
                )
                out["bit_flips"][share].append(
                    clean - _psnr(x, decode(_flip_bits(cpu_ids, size, share, gen)), peak).cpu()
                )
            spread = tokens.float().std()
            for scale in scales:
                noise = torch.randn(tokens.shape, generator=gen).to(device) * (scale * spread)
                noisy = quantizer((tokens + noise).to(tokens.dtype)).indices
                changed = (noisy != indices).reshape(indices.shape[0], indices.shape[1], -1).any(-1)
                out["noise_changed"][scale].append(changed.float().mean(1).double().cpu())
                out["noise"][scale].append(clean - _psnr(x, decode(noisy), peak).cpu())
    return {kind: {k: float(torch.cat(v).mean()) for k, v in curve.items()} for kind, curve in out.items()}


def token_rows(
    model: Any,
    train: torch.Tensor,
    eval: torch.Tensor,
    peak: float,
    batch: int,
    seed: int,
    grid: tuple[int, int],
    ctx: dict[str, Any],
    share: float,
    scale: float,
    prior_steps: int = 0,
) -> list[dict]:
    """The token figures of a trained autoencoder (module docstring); ``share`` and ``scale`` pick the
    headline share of corrupted tokens and relative noise scale (every point is in the extra)."""
    quantizer = model.quantizer
    device = next(model.parameters()).device

    def indices_of(data: torch.Tensor) -> torch.Tensor:
        parts = []
        model.eval()
        with torch.no_grad():
            for begin in range(0, data.shape[0], batch):
                tokens, _ = model.to_tokens(model.encoder(data[begin : begin + batch].to(device)))
                parts.append(quantizer(model.project_in(tokens)).indices.cpu())
        return torch.cat(parts)

    clock = time.perf_counter()
    train_ids, eval_ids, alphabet = joint_ids(indices_of(train), indices_of(eval))
    bits = conditional_entropies(train_ids, eval_ids, alphabet, grid)
    counts_s = time.perf_counter() - clock
    codes = int(quantizer.codebook_size) ** int(quantizer.num_codebooks)
    log_k = math.log2(codes)
    per_sample = grid[0] * grid[1]
    modelled = "joint index per position" if int(quantizer.num_codebooks) > 1 else "index per position"
    extra = {
        **ctx,
        "modelled": modelled,
        "grid": list(grid),
        "smoothing": SMOOTHING,
        "train_tokens": int(train_ids.size),
        "log2_codebook": log_k,
        "counts_s": counts_s,
    }
    rows = []
    for name, value in bits.items():
        info = {**extra, "bits_per_sample": value * per_sample, "fraction_of_log2_codebook": value / log_k}
        rows.append(figure(f"token_bits_{name}", value, "bits", False, n=eval_ids.size, extra=info))
    rows.append(
        figure(
            "token_bits_per_sample",
            bits["neighbours"] * per_sample,
            "bits",
            False,
            n=eval_ids.shape[0],
            extra={**extra, "context": "left and upper neighbours"},
        )
    )
    if prior_steps:
        clock = time.perf_counter()
        value, record = prior_bits(train_ids, eval_ids, alphabet, steps=prior_steps, seed=seed)
        record["prior_s"] = time.perf_counter() - clock
        info = {**extra, **record, "fraction_of_log2_codebook": value / log_k}
        rows.append(
            figure(
                "token_bits_prior", value, "bits", False, n=record["eval_sequences"] * per_sample, extra=info
            )
        )
        rows.append(figure("prior_bits_per_sample", value * per_sample, "bits", False, extra=info))
    clock = time.perf_counter()
    curves = robustness(
        model, eval, peak, batch, seed, tuple(sorted({*SHARES, share})), tuple(sorted({*NOISE_SCALES, scale}))
    )
    extra["robustness_s"] = time.perf_counter() - clock
    for name, kind, at in (
        ("corrupt_psnr_drop", "random_codes", share),
        ("bitflip_psnr_drop", "bit_flips", share),
        ("noise_psnr_drop", "noise", scale),
        ("noise_index_change", "noise_changed", scale),
    ):
        points = curves[kind]
        unit = "ratio" if kind == "noise_changed" else "dB"
        info = {**extra, "share" if kind in ("random_codes", "bit_flips") else "noise_scale": at}
        info["curve"] = {str(k): v for k, v in points.items()}
        rows.append(figure(name, points[at], unit, False, n=eval.shape[0], extra=info))
    return rows


class _Prior(nn.Module):
    """A small causal transformer over token sequences (start symbol first)."""

    def __init__(self, alphabet: int, length: int, width: int, layers: int):
        super().__init__()
        self.embed = nn.Embedding(alphabet + 1, width)
        self.position = nn.Parameter(torch.zeros(length, width))
        layer = nn.TransformerEncoderLayer(
            width, 4, 4 * width, dropout=0.0, batch_first=True, norm_first=True
        )
        self.body = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.head = nn.Linear(width, alphabet)
        self.mask = nn.Transformer.generate_square_subsequent_mask(length)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        start = torch.full_like(ids[:, :1], self.embed.num_embeddings - 1)
        x = self.embed(torch.cat([start, ids[:, :-1]], 1)) + self.position
        return self.head(self.body(x, mask=self.mask, is_causal=True))


def prior_bits(
    train: np.ndarray,
    eval: np.ndarray,
    alphabet: int,
    steps: int = 200,
    batch: int = 64,
    width: int = 32,
    layers: int = 2,
    seed: int = 0,
) -> tuple[float, dict[str, Any]]:
    """Held-out bits per token of eval ids ``(N, T)`` under a causal transformer fit on train ids for
    ``steps`` Adam steps (a fixed budget); also its record: the held-out curve and whether its second
    half gained at most 2%."""
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model = _Prior(alphabet, train.shape[1], width, layers)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    train_t, eval_t = torch.from_numpy(train), torch.from_numpy(eval[:2048])
    every = max(1, steps // 8)

    def held_out() -> float:
        model.eval()
        with torch.no_grad():
            logits = torch.cat([model(eval_t[i : i + 512]) for i in range(0, eval_t.shape[0], 512)])
        model.train()
        return float(nn.functional.cross_entropy(logits.flatten(0, 1), eval_t.flatten()) / math.log(2))

    curve = []
    for step in range(steps):
        ids = train_t[torch.randint(0, train_t.shape[0], (batch,), generator=gen)]
        loss = nn.functional.cross_entropy(model(ids).flatten(0, 1), ids.flatten())
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if (step + 1) % every == 0:
            curve.append([step + 1, held_out()])
    bits = curve[-1][1]
    half = next(v for s, v in curve if s >= steps / 2)
    flat = half - bits <= 0.02 * bits  # the cosine schedule flattens the tail: judge the second half
    record = {
        "prior": f"causal transformer, {layers} layers, width {width}, {steps} Adam steps of {batch}",
        "curve": curve,
        "converged": flat,
        "eval_sequences": int(eval_t.shape[0]),
    }
    return bits, record
