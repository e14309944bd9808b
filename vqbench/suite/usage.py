"""Codebook usage: how many codes a quantizer uses, and how evenly, over a whole eval split.

Figures per codebook (several for multi-codebook and residual quantizers, never a flattened
``unique()``): utilization (codes used at least once / codebook size), perplexity exp(H) and
perplexity / codebook size, entropy H in bits, dead codes. Aggregates: the mean over codebooks,
except dead codes, which are summed (code vectors never used, over all codebooks).

The benchmark (``measure``) fits the quantizer alone to the train split (``codes ~ x``, plus its
auxiliary loss) for a few steps, then counts its indices over every eval token. Defaults
(``PARAMS``), each overridable from ``cell.params``:

- ``train_steps`` = 200: Adam steps fitting the quantizer to the train split (0: usage as built);
- ``batch`` = 256, ``lr`` = 1e-2 (the fitted model is the quantizer and linear maps: it converges in
  100-300 steps at this rate, not at 1e-3), ``aux_loss_weight`` = 1.0 (the quantizer's own loss);
- ``eval_batch`` = 8192: tokens per eval forward (memory only; all eval tokens are counted), capped
  so that tokens x codes stays under 2^25 for large codebooks;
- ``patch`` = 4: images become tokens of ``patch x patch`` pixels (all channels);
- ``standardize`` = True: features z-scored with the train split's mean and std;
- ``min_tokens_per_code`` = 10: below this the figures carry a warning in ``extra``;
- ``threads`` = None: CPU threads (None keeps torch's count);
- ``dtype`` = "float32": or ``autocast-bfloat16`` / ``autocast-float16``: the fit's forward and
  loss, and the eval passes, run under ``torch.autocast`` (float16 with a gradient scaler); every
  row records ``dtype``, ``autocast`` and, off float32, ``precision``;
- training to convergence (``vqbench.suite.convergence``): ``train_steps`` is the cap; every
  ``eval_every`` = 100 steps the held-out quantization MSE and utilization are measured on
  ``monitor_samples`` = 16384 tokens held out of the train split; training stops at a plateau of
  ``plateau_window`` steps (``loss_tol``, ``util_tol``, ``min_steps``; ``eval_every`` = 0: exactly
  ``train_steps``). The ``train_steps`` row holds the steps taken, ``converged`` and the curve.

Which question it answers: how a quantizer fits a *fixed* token distribution on its own (no
encoder adapts to it). It cannot test a claim about an encoder trained together with its quantizer
(the FSQ paper's): the reconstruction benchmark does that.
Vectors and audio frames are one token per row. The quantizer is built at its own input width
(FSQ ``len(levels) * num_codebooks``, LFQ its bits, VQ ``codebook_dim``; a ``dim`` in the config
overrides it); where that differs from the token size, one explicit learned linear map in and out
goes around the quantizer, the same for every quantizer, and the rows record both widths.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import torch

from ._common import (
    build_quantizer,
    eval_batch_size,
    figure,
    load_cell_dataset,
    positive_float,
    positive_int,
    resolve_params,
)
from .convergence import CONVERGENCE_PARAMS
from .precision import autocast_context, precision_extra
from .timing import fix_threads
from .training import TrainingLoop, check_training_precision, plateau_and_monitor

if TYPE_CHECKING:
    from vqbench.datasets import Dataset

    from .cells import Cell

PARAMS: dict[str, Any] = {
    "train_steps": 200,
    "batch": 256,
    "lr": 1e-2,
    "aux_loss_weight": 1.0,
    "eval_batch": 8192,
    "patch": 4,
    "standardize": True,
    "min_tokens_per_code": 10,
    "threads": None,
    "dtype": "float32",
    **CONVERGENCE_PARAMS,
    "monitor_samples": 16384,  # tokens: utilization on few tokens is bounded by their count
}

#: Codebooks larger than this (per codebook x number of codebooks) are counted sparsely.
DENSE_LIMIT = 2**24

#: Shares of the tokens (in the order counted) at which utilization is also given: the token curve.
TOKEN_FRACTIONS = (1 / 16, 1 / 4, 1 / 2, 1.0)
#: Utilization is token-limited when the last doubling of tokens (half -> all) adds more than this
#: (absolute: 0.03 is 3 percentage points).
TOKEN_TOL = 0.03
#: First position of a code never seen.
NEVER = 2**62

FIGURES = ("utilization", "perplexity", "perplexity_ratio", "entropy_bits", "dead_codes")


class UsageCounter:
    """Accumulates per-codebook code counts over batches of indices."""

    def __init__(self, codebook_size: int, num_codebooks: int = 1) -> None:
        for name, value in (("codebook_size", codebook_size), ("num_codebooks", num_codebooks)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        self.codebook_size = codebook_size
        self.num_codebooks = num_codebooks
        self.tokens = 0
        self.dense = codebook_size * num_codebooks <= DENSE_LIMIT
        size = num_codebooks * codebook_size
        self._counts = torch.zeros(size, dtype=torch.int64) if self.dense else None
        # the position (token number) where each code was first seen: the token curve in one pass
        self._first = torch.full((size,), NEVER, dtype=torch.int64) if self.dense else None
        self._sparse: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []

    def update(self, indices: torch.Tensor) -> None:
        """Count a batch: shape ``(..., num_codebooks)`` (the last axis may be absent for one)."""
        if not isinstance(indices, torch.Tensor):
            raise TypeError(f"indices must be a torch.Tensor, got {type(indices).__name__}")
        if indices.is_floating_point() or indices.is_complex() or indices.dtype == torch.bool:
            raise TypeError(f"indices must be an integer tensor, got dtype {indices.dtype}")
        k, m = self.codebook_size, self.num_codebooks
        if m > 1:
            if indices.ndim < 1 or indices.shape[-1] != m:
                raise ValueError(
                    f"expected indices of shape (..., {m}) for {m} codebooks, got {tuple(indices.shape)}"
                )
            flat = indices.reshape(-1, m)
        else:
            flat = indices.reshape(-1, 1)
        flat = flat.detach().to("cpu", torch.int64)
        if flat.numel():
            lo, hi = int(flat.min()), int(flat.max())
            if lo < 0 or hi >= k:
                raise ValueError(
                    f"indices must lie in [0, {k}) for codebook size {k}, got values in [{lo}, {hi}]"
                )
        ids = (flat + torch.arange(m, dtype=torch.int64) * k).reshape(-1)  # codebook c's code i -> c*k + i
        pos = (self.tokens + torch.arange(flat.shape[0], dtype=torch.int64)).repeat_interleave(m)
        if self.dense:
            self._counts += torch.bincount(ids, minlength=m * k)
            self._first.scatter_reduce_(0, ids, pos, reduce="amin")
        else:
            values, inverse, counts = torch.unique(ids, return_inverse=True, return_counts=True)
            first = torch.full((len(values),), NEVER, dtype=torch.int64)
            first.scatter_reduce_(0, inverse, pos, "amin")
            self._sparse.append((values, counts, first))
            if len(self._sparse) > 16:
                self._sparse = [self._merged()]
        self.tokens += flat.shape[0]

    def _merged(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if not self._sparse:
            empty = torch.zeros(0, dtype=torch.int64)
            return empty, empty, empty
        values = torch.cat([v for v, _, _ in self._sparse])
        counts = torch.cat([c for _, c, _ in self._sparse])
        firsts = torch.cat([f for _, _, f in self._sparse])
        uniq, inverse = torch.unique(values, return_inverse=True)
        total = torch.zeros(len(uniq), dtype=torch.int64).index_add_(0, inverse, counts)
        first = torch.full((len(uniq),), NEVER, dtype=torch.int64).scatter_reduce_(0, inverse, firsts, "amin")
        return uniq, total, first

    def token_curve(self, fractions: tuple[float, ...] = TOKEN_FRACTIONS) -> dict[str, list]:
        """Utilization (mean over codebooks) counted on the first ``fractions`` of the tokens seen.

        One pass: each code's first position is kept while counting, so the used share after any
        prefix of the tokens is known at the end. A curve still rising at the full count means the
        figure measures the token count as much as the quantizer.
        """
        if self.tokens == 0:
            raise ValueError("no indices counted: usage needs at least one token")
        k, m = self.codebook_size, self.num_codebooks
        if self.dense:
            first, book = self._first, torch.arange(m * k) // k
        else:
            values, _, first = self._merged()
            book = values // k
        tokens, util = [], []
        for f in fractions:
            n = max(1, math.ceil(f * self.tokens))
            seen = first < n
            used = [int((seen & (book == c)).sum()) for c in range(m)] if m > 1 else [int(seen.sum())]
            tokens.append(n)
            util.append(sum(used) / (k * m))
        return {"fractions": list(fractions), "tokens": tokens, "utilization": util}

    def per_codebook_counts(self) -> list[torch.Tensor]:
        """The non-zero counts of each codebook (dense counts include zeros)."""
        k, m = self.codebook_size, self.num_codebooks
        if self.dense:
            return list(self._counts.view(m, k))
        values, counts, _ = self._merged()
        book = values // k
        return [counts[book == c] for c in range(m)]

    def figures(self) -> dict[str, Any]:
        """Usage figures: aggregates plus ``per_codebook`` lists (see the module docstring)."""
        if self.tokens == 0:
            raise ValueError("no indices counted: usage needs at least one token")
        k = self.codebook_size
        per: dict[str, list[float]] = {name: [] for name in FIGURES}
        for counts in self.per_codebook_counts():
            p = counts[counts > 0].double() / self.tokens
            entropy = float(-(p * p.log()).sum())  # nats
            used = int((counts > 0).sum())
            per["utilization"].append(used / k)
            per["perplexity"].append(math.exp(entropy))
            per["perplexity_ratio"].append(math.exp(entropy) / k)
            per["entropy_bits"].append(entropy / math.log(2))
            per["dead_codes"].append(float(k - used))
        out: dict[str, Any] = {name: sum(v) / len(v) for name, v in per.items()}
        out["dead_codes"] = sum(per["dead_codes"])
        out.update(
            tokens=self.tokens,
            codebook_size=k,
            num_codebooks=self.num_codebooks,
            tokens_per_code=self.tokens / k,
            per_codebook=per,
            token_curve=self.token_curve(),
        )
        return out


def codebook_usage(indices: torch.Tensor, codebook_size: int, num_codebooks: int = 1) -> dict[str, Any]:
    """Usage figures of a set of indices, per codebook (see ``UsageCounter.figures``).

    ``indices``: integer tensor of shape ``(..., num_codebooks)`` (for one codebook, any shape).
    Returns ``utilization``, ``perplexity``, ``perplexity_ratio``, ``entropy_bits``, ``dead_codes``
    (mean over codebooks; dead codes summed), ``tokens``, ``tokens_per_code`` and ``per_codebook``.
    """
    counter = UsageCounter(codebook_size, num_codebooks)
    counter.update(indices)
    return counter.figures()


_UNITS = {
    "utilization": ("ratio", True),
    "perplexity": ("codes", True),
    "perplexity_ratio": ("ratio", True),
    "entropy_bits": ("bits", True),
    "dead_codes": ("codes", False),
}


def token_limited(curve: dict[str, list], tol: float = TOKEN_TOL) -> tuple[bool, float]:
    """``(limited, gain)``: what the last doubling of tokens added to utilization, and whether it
    passes ``tol``."""
    util = curve["utilization"]
    gain = util[-1] - util[-2] if len(util) >= 2 else 0.0
    return gain > tol, gain


def usage_figures(
    stats: dict[str, Any], min_tokens_per_code: float = 10, prefix: str = "", token_tol: float = TOKEN_TOL
) -> list[dict]:
    """Engine figures from ``UsageCounter.figures()``; token count and token curve beside each figure.

    Every row's extra holds ``tokens_per_code``, ``token_curve`` (utilization at 1/16, 1/4, 1/2 and
    all of the tokens) and ``token_limited``: the last doubling of tokens still added more than
    ``token_tol`` of utilization, so the figure is bounded by the eval set's size. The row
    ``utilization_token_gain`` holds that last doubling's gain.
    """
    curve = stats.get("token_curve")
    extra: dict[str, Any] = {
        "tokens": stats["tokens"],
        "tokens_per_code": stats["tokens_per_code"],
        "codebook_size": stats["codebook_size"],
        "num_codebooks": stats["num_codebooks"],
    }
    limited, gain = token_limited(curve, token_tol) if curve else (False, 0.0)
    if curve:
        extra.update(token_curve=curve, token_limited=limited, token_tol=token_tol)
    warnings = []
    if stats["tokens_per_code"] < min_tokens_per_code:
        warnings.append(
            f"only {stats['tokens_per_code']:.2f} eval tokens per code (aim for >= {min_tokens_per_code}); "
            "utilization is bounded by the token count"
        )
    if limited:
        warnings.append(
            f"token-limited: the last doubling of eval tokens "
            f"({curve['tokens'][-2]} -> {curve['tokens'][-1]}) "
            f"added {100 * gain:.1f} points of utilization (tolerance {100 * token_tol:.1f})"
        )
    if warnings:
        extra["warning"] = "; ".join(warnings)
    rows = []
    for name, (unit, better) in _UNITS.items():
        e = dict(extra)
        if stats["num_codebooks"] > 1:
            e["per_codebook"] = stats["per_codebook"][name]
        rows.append(figure(prefix + name, stats[name], unit, better, n=stats["tokens"], extra=e))
    rows.append(figure(prefix + "tokens", stats["tokens"], "tokens", None, n=stats["tokens"], extra=extra))
    n = stats["tokens"]
    rows.append(figure(prefix + "tokens_per_code", stats["tokens_per_code"], "ratio", None, n=n, extra=extra))
    if curve:
        rows.append(figure(prefix + "utilization_token_gain", gain, "ratio", None, n=n, extra=extra))
    return rows


# ---- the benchmark -----------------------------------------------------------------------------


def tokens_of(data: torch.Tensor, kind: str, patch: int) -> torch.Tensor:
    """``(N, D)`` tokens: rows for vectors/audio, ``patch x patch`` pixel patches for images."""
    if kind in ("vectors", "audio"):
        return data.reshape(data.shape[0], -1)
    if kind != "images":
        raise ValueError(f"expected dataset kind 'vectors', 'images' or 'audio', got {kind!r}")
    from einops import rearrange

    _, _, h, w = data.shape
    if h < patch or w < patch:
        raise ValueError(f"param 'patch' = {patch} exceeds the image size {h}x{w}")
    data = data[:, :, : h - h % patch, : w - w % patch]
    return rearrange(data, "n c (h p1) (w p2) -> (n h w) (c p1 p2)", p1=patch, p2=patch)


def eval_tokens(data: Dataset, params: dict[str, Any]) -> int:
    """How many eval tokens the benchmark counts on ``data`` with ``params`` (engine defaults filled)."""
    return int(tokens_of(data.eval, data.kind, positive_int({**PARAMS, **params}, "patch")).shape[0])


def fit_and_count(
    cell: Cell,
    train: torch.Tensor,
    eval: torch.Tensor,
    params: dict[str, Any],
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Fit the cell's quantizer to ``train`` tokens ``(N, D)``, then count its indices on ``eval``.

    Returns the usage statistics and a dict of side figures (eval MSE, training time).
    """
    steps = positive_int(params, "train_steps", allow_zero=True)
    batch = positive_int(params, "batch")
    eval_batch = positive_int(params, "eval_batch")
    lr = positive_float(params, "lr")
    weight = positive_float(params, "aux_loss_weight", allow_zero=True)
    precision = check_training_precision(params, "usage")
    fix_threads(params["threads"])
    device = torch.device(cell.device)
    if params["standardize"]:
        mean, std = train.mean(0), train.std(0).clamp_min(1e-6)
        train, eval = (train - mean) / std, (eval - mean) / std
    dim = train.shape[1]
    torch.manual_seed(cell.seed)
    call, quantizer = build_quantizer(cell)  # at its own width (or the config's dim): no projection inside
    qdim = int(quantizer.dim)
    proj_in = torch.nn.Identity() if qdim == dim else torch.nn.Linear(dim, qdim).to(device)
    proj_out = torch.nn.Identity() if qdim == dim else torch.nn.Linear(qdim, dim).to(device)
    trainable = [p for m in (quantizer, proj_in, proj_out) for p in m.parameters() if p.requires_grad]
    plateau, train, monitor = plateau_and_monitor(params, steps, train, cell.seed)

    def count(tokens: torch.Tensor) -> tuple[float, UsageCounter, int]:
        """Mean squared error, index counts and batch size of one pass over ``tokens`` (eval mode)."""
        quantizer.eval()
        counter = UsageCounter(int(quantizer.codebook_size), int(quantizer.num_codebooks))
        step = eval_batch_size(eval_batch, 1, counter.codebook_size * counter.num_codebooks)
        err = 0.0
        with torch.no_grad(), autocast_context(device, precision):
            for start in range(0, tokens.shape[0], step):
                x = tokens[start : start + step].to(device)
                out = call(proj_in(x).unsqueeze(0))
                err += float((proj_out(out.codes.squeeze(0)).float() - x).square().sum())
                counter.update(out.indices)
        return err / tokens.numel(), counter, step

    def held_out() -> dict[str, float]:
        mse, counter, _ = count(monitor)
        quantizer.train()
        return {"loss": mse, "utilization": float(counter.figures()["utilization"])}

    opt = torch.optim.Adam(trainable, lr=lr) if trainable and steps else None
    quantizer.train()

    def loss_of(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        out = call(proj_in(x).unsqueeze(0))
        return torch.nn.functional.mse_loss(proj_out(out.codes.squeeze(0)).float(), x), out.loss

    loop = TrainingLoop(
        loss_of,
        train,
        plateau,
        batch=batch,
        seed=cell.seed,
        device=device,
        precision=precision,
        optimizer=opt,
        lr=lr,
        aux_loss_weight=weight,
        held_out=held_out if monitor is not None else None,
    ).run()
    loop.record_end()
    mse, counter, eval_batch = count(eval)
    stats = counter.figures()
    side = {
        "mse": mse,
        "train_s": loop.train_s,
        "dim": dim,
        "quantizer_dim": qdim,
        "eval_batch": eval_batch,
        "convergence": loop.summary(),
    }
    return stats, side


def measure(cell: Cell, data: Dataset | None = None) -> list[dict]:
    """Usage figures of the cell's quantizer over the whole eval split (see module docstring)."""
    params = resolve_params(cell, PARAMS)
    patch = positive_int(params, "patch")
    data = load_cell_dataset(cell) if data is None else data
    train, eval = tokens_of(data.train, data.kind, patch), tokens_of(data.eval, data.kind, patch)
    stats, side = fit_and_count(cell, train, eval, params)
    rows = usage_figures(stats, positive_float(params, "min_tokens_per_code", allow_zero=True))
    convergence = side["convergence"]
    steps = {
        "steps": convergence["steps_taken"],
        "converged": convergence["converged"],
        "token_dim": side["dim"],
        "quantizer_dim": side["quantizer_dim"],
        **precision_extra(params["dtype"]),
    }
    for row in rows:
        row["extra"] = {**row["extra"], **steps}
    context = {
        "dataset_kind": data.kind,
        "token_dim": side["dim"],
        "quantizer_dim": side["quantizer_dim"],
        "eval_batch": side["eval_batch"],
        **precision_extra(params["dtype"]),
    }
    rows.append(figure("quantization_mse", side["mse"], "mse", False, n=stats["tokens"], extra=context))
    rows.append(
        figure(
            "train_time", side["train_s"], "s", False, extra={"train_steps": params["train_steps"], **steps}
        )
    )
    rows.append(
        figure(
            "train_steps",
            convergence["steps_taken"],
            "steps",
            None,
            n=convergence["steps_taken"],
            extra={**convergence, **precision_extra(params["dtype"])},
        )
    )
    return rows


__all__ = [
    "PARAMS",
    "TOKEN_FRACTIONS",
    "TOKEN_TOL",
    "UsageCounter",
    "codebook_usage",
    "eval_tokens",
    "measure",
    "token_limited",
    "tokens_of",
    "usage_figures",
]
