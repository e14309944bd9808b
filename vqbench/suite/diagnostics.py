"""Per-dimension diagnostics of a trained quantizer, counted over the eval tokens in one pass.

They explain a utilization figure rather than restate it:

- every quantizer (and the no-quantizer ceiling): the spread of its *input* over directions, from
  the eigenvalues of the input's covariance: the participation ratio ``(sum l)^2 / sum l^2`` and the
  effective rank ``exp(H(l / sum l))`` (both between 1 and the width), and the share of variance
  in the weakest direction. An encoder whose output collapses onto fewer directions than the
  quantizer has channels leaves codes unreachable whatever the quantizer does.
- per-channel scalar quantizers (FSQ: the module has ``levels``, one channel each, no projection
  inside): the levels each channel used and their entropy in bits; ``reachable_share`` is the
  product of the used levels over the codebook size, the most utilization those channels allow.
- one sign bit per channel (LFQ, BSQ: ``codebook_size ** num_codebooks == 2 ** dim``): the live
  bits (both signs seen; a bit with one sign for every token is dead) and each bit's balance (share
  of tokens with a positive bit): "7 of 8 bits live" caps utilization at 2^7 / 2^8 = 50%.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from ._common import figure

#: Distinct values per channel above which a channel is not a scalar quantizer's (counting stops).
MAX_LEVELS = 256


def channel_levels(quantizer: nn.Module | None) -> list[int] | None:
    """The level count of each input channel of a per-channel scalar quantizer (FSQ), else None."""
    if quantizer is None:
        return None
    for module in (quantizer, getattr(quantizer, "inner", None)):
        levels = getattr(module, "levels", None) if module is not None else None
        buffer = getattr(module, "_levels", None) if module is not None else None
        if levels is None and isinstance(buffer, torch.Tensor):
            levels = buffer
        if isinstance(levels, torch.Tensor):
            levels = levels.tolist()
        if isinstance(levels, list | tuple) and levels and all(isinstance(v, int) for v in levels):
            per = list(levels) * int(getattr(quantizer, "num_codebooks", 1) or 1)
            return per if len(per) == int(quantizer.dim) else None
    return None


def is_bitwise(quantizer: nn.Module | None) -> bool:
    """Whether each input channel is one sign bit (LFQ, BSQ with no projection inside)."""
    if quantizer is None:
        return False
    size, books, dim = int(quantizer.codebook_size), int(quantizer.num_codebooks), int(quantizer.dim)
    return size & (size - 1) == 0 and size > 1 and books * int(math.log2(size)) == dim


class Diagnostics:
    """Accumulates the quantizer's inputs and codes over eval batches; ``rows`` gives the figures."""

    def __init__(self, quantizer: nn.Module | None) -> None:
        self.levels = channel_levels(quantizer)
        self.bitwise = self.levels is None and is_bitwise(quantizer)
        self.n = 0
        self._sum: torch.Tensor | None = None
        self._outer: torch.Tensor | None = None
        self._positive: torch.Tensor | None = None
        width = len(self.levels) if self.levels else (int(quantizer.dim) if self.bitwise else 0)
        self._values: list[dict[float, int]] | None = [{} for _ in range(width)] if width else None

    def update(self, inputs: torch.Tensor | None, codes: torch.Tensor | None) -> None:
        """Add a batch: the quantizer's input and its codes, channel-last ``(..., dim)``."""
        if inputs is None:
            return
        x = inputs.detach().reshape(-1, inputs.shape[-1]).to("cpu", torch.float64)
        if self._sum is None:
            self._sum = torch.zeros(x.shape[1], dtype=torch.float64)
            self._outer = torch.zeros(x.shape[1], x.shape[1], dtype=torch.float64)
        self._sum += x.sum(0)
        self._outer += x.T @ x
        self.n += x.shape[0]
        if codes is None:
            return
        c = codes.detach().reshape(-1, codes.shape[-1]).to("cpu", torch.float64)
        if self.bitwise:
            positive = (c > 0).sum(0)
            self._positive = positive if self._positive is None else self._positive + positive
        if self._values is not None:
            rounded = (c * 1e6).round() / 1e6
            cap = 2 if self.bitwise else MAX_LEVELS
            for ch, seen in enumerate(self._values):
                values, counts = torch.unique(rounded[:, ch], return_counts=True)
                for v, k in zip(values.tolist(), counts.tolist(), strict=True):
                    seen[v] = seen.get(v, 0) + k
                if len(seen) > cap:  # not a sign bit / a grid of levels after all (e.g. VQ's codes)
                    self._values, self.bitwise = None, False
                    break

    def spread(self) -> dict[str, Any] | None:
        """Eigen-spread of the input: participation ratio, effective rank, shares of variance."""
        if not self.n or self._sum is None or self._outer is None:
            return None
        mean = self._sum / self.n
        cov = self._outer / self.n - torch.outer(mean, mean)
        eig = torch.linalg.eigvalsh(cov).clamp_min(0).flip(0)
        total = float(eig.sum())
        if total <= 0:
            return {
                "participation_ratio": 0.0,
                "effective_rank": 0.0,
                "variance_shares": [0.0] * len(eig),
                "weakest_share": 0.0,
                "width": len(eig),
            }
        shares = eig / total
        nz = shares[shares > 0]
        return {
            "participation_ratio": total**2 / float((eig**2).sum()),
            "effective_rank": math.exp(float(-(nz * nz.log()).sum())),
            "variance_shares": [round(float(v), 6) for v in shares],
            "weakest_share": float(shares[-1]),
            "width": len(eig),
        }

    def channels(self) -> dict[str, Any] | None:
        """Per-channel levels used and entropy (FSQ), or live bits and balance (LFQ/BSQ)."""
        if not self.n:
            return None
        if self.bitwise and self._positive is not None and self._values is not None:
            share = (self._positive.double() / self.n).tolist()
            live = [0 < p < 1 for p in share]
            dead = [i for i, ok in enumerate(live) if not ok]
            bits = len(share)
            return {
                "kind": "bits",
                "bits": bits,
                "live_bits": sum(live),
                "dead_bits": dead,
                "balance": [round(p, 6) for p in share],
                "bit_entropy_bits": [_entropy([p, 1 - p]) for p in share],
                "reachable_share": 2.0 ** (sum(live) - bits),
                "summary": f"{sum(live)} of {bits} bits live" + (f" (dead: {dead})" if dead else ""),
            }
        if self.levels is not None and self._values is not None:
            used = [len(seen) for seen in self._values]
            entropy = [_entropy([k / self.n for k in seen.values()]) for seen in self._values]
            reach = math.prod(used) / math.prod(self.levels)
            return {
                "kind": "levels",
                "levels": list(self.levels),
                "levels_used": used,
                "entropy_bits": [round(h, 4) for h in entropy],
                "reachable_share": reach,
                "summary": "levels used per channel: "
                + " ".join(f"{u}/{n}" for u, n in zip(used, self.levels, strict=True)),
            }
        return None

    def rows(self, ctx: dict[str, Any]) -> list[dict]:
        """The diagnostics as figure rows (``extra`` holds the per-direction / per-channel lists)."""
        rows = []
        spread = self.spread()
        if spread is not None:
            extra = {**ctx, **spread}
            rows += [
                figure(
                    "input_participation_ratio",
                    spread["participation_ratio"],
                    "dims",
                    True,
                    n=self.n,
                    extra=extra,
                ),
                figure("input_effective_rank", spread["effective_rank"], "dims", True, n=self.n, extra=extra),
            ]
        ch = self.channels()
        if ch is None:
            return rows
        extra = {**ctx, **ch}
        if ch["kind"] == "bits":
            rows += [
                figure("live_bits", ch["live_bits"], "bits", True, n=self.n, extra=extra),
                figure(
                    "bit_balance",
                    min(min(p, 1 - p) for p in ch["balance"]),
                    "ratio",
                    True,
                    n=self.n,
                    extra=extra,
                ),
            ]
        else:
            pairs = zip(ch["levels_used"], ch["levels"], strict=True)
            share = sum(u / n for u, n in pairs) / len(ch["levels"])
            rows += [
                figure("levels_used", share, "ratio", True, n=self.n, extra=extra),
                figure("levels_entropy_bits", sum(ch["entropy_bits"]), "bits", True, n=self.n, extra=extra),
            ]
        rows.append(figure("reachable_share", ch["reachable_share"], "ratio", True, n=self.n, extra=extra))
        return rows


def _entropy(p: list[float]) -> float:
    """Entropy in bits of a distribution given as shares."""
    return float(-sum(x * math.log2(x) for x in p if x > 0))


__all__ = ["Diagnostics", "MAX_LEVELS", "channel_levels", "is_bitwise"]
