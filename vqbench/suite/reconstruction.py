"""Reconstruction: a fixed small autoencoder per data kind with the quantizer as its bottleneck.

Images: a conv net (stride-2 convs down to a grid of tokens, transposed convs back up).
Vectors and audio frames: an MLP whose encoder emits ``tokens_per_sample`` tokens per row.
The quantizer is built as ``create_quantizer(name, **config)``, at its own input width (FSQ
``len(levels) * num_codebooks``, LFQ/BSQ their bits, VQ ``codebook_dim``, a plugin its default
``dim``; a ``dim`` in the config overrides it), and the encoder emits exactly that width: no
projection inside the quantizer, none beside it. With ``latent_dim`` set, the latent has that one
shared width for every quantizer and an explicit ``Linear(latent_dim -> width)`` /
``Linear(width -> latent_dim)`` pair sits around each quantizer (the rows say so). Trained with
a fixed seed, Adam, ``train_steps`` and ``batch`` on the train split, with loss MSE +
``aux_loss_weight`` x the quantizer's own auxiliary loss; then measured on the whole eval split:
per-sample MSE and PSNR averaged, codebook usage, bits per token.

Vectors and audio frames are z-scored with the train split's mean and std first, so their MSE is
in units of the feature variance (1.0 = predicting the mean); PSNR uses the eval split's value range
as the peak (1.0 for images, which stay in [0, 1]).

Defaults (``PARAMS``), each overridable from ``cell.params``:
- ``train_steps`` = 200 (read from ``steps`` too, its earlier name), ``batch`` = 128, ``lr`` = 2e-3,
  ``aux_loss_weight`` = 1.0;
- ``latent_dim`` = None (each quantizer's own width; an int: one shared width, see above),
  ``hidden`` = 128 (MLP width) / ``channels`` = 32 (conv width); every row's extra holds
  ``latent_dim``, ``quantizer_dim``, ``native_dim``, ``width`` (native / config / shared) and
  ``width_note``;
- ``tokens_per_sample`` = 4 (vectors, audio); ``downsample`` = None: images, the largest of 4, 2, 1
  that leaves a grid of at least 4 x 4 tokens;
- ``eval_batch`` = 1024 samples (capped so that tokens x codes stays under 2^25);
- ``reconstructions`` = 4: images whose original and reconstruction are stored as a PNG strip
  (base64) in the ``psnr`` figure's extra (0: none);
- ``min_tokens_per_code`` = 10: usage figures below this carry a warning; ``token_tol`` = 0.03:
  utilization whose last doubling of eval tokens (1/2 -> all) added more than this is marked
  ``token_limited`` (the token curve at 1/16, 1/4, 1/2, all is in every usage row);
- ``threads`` = None: CPU threads (None keeps torch's count); recorded with the training time;
- ``dtype`` = "float32": or ``autocast-bfloat16`` / ``autocast-float16``: training steps and every
  evaluation run under ``torch.autocast`` (float16 with a gradient scaler); the MSE is taken in
  float32; every row records ``dtype``, ``autocast`` and, off float32, ``precision``;
- training to convergence (``vqbench.suite.convergence``): ``train_steps`` is the cap; every
  ``eval_every`` = 100 steps the held-out MSE, PSNR and utilization are measured on
  ``monitor_samples`` = 1024 samples held out of the train split, and training stops once over
  ``plateau_window`` = 500 steps (and after ``min_steps``) the MSE fell by at most ``loss_tol`` = 1%
  and utilization and perplexity moved by at most ``util_tol`` = 2% / ``perplexity_tol`` (relative);
  with ``lr_cuts`` > 0 each of the first plateaus instead multiplies the rate by ``lr_decay``.
  ``eval_every`` = 0 trains exactly ``train_steps``. The ``train_steps`` row holds the steps taken,
  ``converged`` (never at the cap) and the curve.
- ``token_figures`` = "none": "counts" also measures what a generator sees in the trained model's
  tokens (``vqbench.suite.tokens``): held-out count-based bits per token (unigram, given the raster
  predecessor, given the left and upper neighbours), the PSNR drop when ``corrupt_share`` = 0.05 of
  the tokens are random codes or have one bit flipped, and the share of indices that change (and the
  PSNR drop) under input noise of ``noise_scale`` = 0.1 of its standard deviation; "prior" also fits
  a small causal transformer prior to the train tokens for ``prior_steps`` = 200 Adam steps (held-out
  bits per token and per sample);
- diagnostics over the eval tokens (``vqbench.suite.diagnostics``): the participation ratio and
  effective rank of the quantizer's input (also for the ceiling), levels used per channel (FSQ),
  live bits and balance (LFQ/BSQ), and the share of codes those leave reachable.

Which question it answers: how a quantizer behaves when trained *jointly* with an encoder and a
decoder, the setting of the FSQ paper's claims (usage and reconstruction against codebook size).
The cell whose quantizer is ``NO_QUANTIZER`` trains the same autoencoder with an identity
bottleneck: the ceiling that a rate-distortion figure draws. Its step cap is ``ceiling_steps``
where given (an autoencoder with no bottleneck keeps improving longer; it costs as little as FSQ).
Its width is ``latent_dim``: a sweep's expansion sets it to the widest width of the sweep's
quantizers and says which in ``ceiling_width_note`` (8 when no sweep gave one).
"""

from __future__ import annotations

import time
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from ._common import (
    build_quantizer,
    eval_batch_size,
    figure,
    load_cell_dataset,
    positive_float,
    positive_int,
    resolve_params,
)
from .autoencoders import Bottlenecked, auto_downsample, conv_autoencoder, mlp_autoencoder, png_strip
from .cells import NO_QUANTIZER
from .convergence import CONVERGENCE_PARAMS
from .diagnostics import Diagnostics
from .precision import autocast_context, precision_extra
from .timing import fix_threads, iqr
from .tokens import token_rows
from .training import TrainingLoop, check_training_precision, plateau_and_monitor
from .usage import TOKEN_TOL, UsageCounter, usage_figures

if TYPE_CHECKING:
    from vqbench.datasets import Dataset

    from .cells import Cell

PARAMS: dict[str, Any] = {
    "train_steps": 200,
    "batch": 128,
    "lr": 2e-3,
    "aux_loss_weight": 1.0,
    "latent_dim": None,
    "ceiling_width_note": None,
    "token_tol": TOKEN_TOL,
    "hidden": 128,
    "channels": 32,
    "tokens_per_sample": 4,
    "downsample": None,
    "eval_batch": 1024,
    "reconstructions": 4,
    "min_tokens_per_code": 10,
    "threads": None,
    "ceiling_steps": None,
    "dtype": "float32",
    "token_figures": "none",
    "corrupt_share": 0.05,
    "noise_scale": 0.1,
    "prior_steps": 200,
    **CONVERGENCE_PARAMS,
}
#: What ``token_figures`` may ask for: nothing, the count-based tier and robustness, or also the prior.
TOKEN_FIGURES = ("none", "counts", "prior")
#: The types of parameters whose default is None (checked before a run).
PARAM_TYPES = {
    "downsample": "int | None",
    "threads": "int | None",
    "ceiling_steps": "int | None",
    "latent_dim": "int | None",
    "ceiling_width_note": "str | None",
    "perplexity_tol": "float | None",
}


def check(params: dict[str, Any]) -> None:
    """Refuse token-figure settings the engine cannot measure (run before any cell)."""
    if params["token_figures"] not in TOKEN_FIGURES:
        raise ValueError(
            f"param 'token_figures' must be one of {list(TOKEN_FIGURES)}, got {params['token_figures']!r}"
        )
    share = params["corrupt_share"]
    if isinstance(share, bool) or not isinstance(share, (int, float)) or not 0 < share <= 1:
        raise ValueError(f"param 'corrupt_share' must be a share in (0, 1], got {share!r}")
    positive_float(params, "noise_scale")
    positive_int(params, "prior_steps")


#: The ceiling's width when no sweep gave it one (a lone no-quantizer cell).
CEILING_WIDTH = 8


def eval_tokens(data: Dataset, params: dict[str, Any]) -> int:
    """How many eval tokens the autoencoder emits on ``data`` with ``params`` (engine defaults filled)."""
    params = {**PARAMS, **params}
    if data.kind == "images":
        _, _, h, w = data.eval.shape
        down = params["downsample"] or auto_downsample(h, w)
        per_sample = (h // down) * (w // down)
    else:
        per_sample = positive_int(params, "tokens_per_sample")
    return int(data.eval.shape[0]) * per_sample


def native_width(quantizer: str, config: dict[str, Any]) -> int:
    """The input width of quantizer ``quantizer`` built from ``config`` without a ``dim``: its own width
    (FSQ ``len(levels) * num_codebooks``, LFQ/BSQ their bits, VQ ``codebook_dim``, a plugin its default)."""
    from vqbench.quantizers import create_quantizer

    return int(create_quantizer(quantizer, **{k: v for k, v in config.items() if k != "dim"}).dim)


def _widths(cell: Cell, quantizer: nn.Module | None, params: dict[str, Any]) -> dict[str, Any]:
    """The widths of the cell: encoder output, quantizer input, and how they meet (for every row)."""
    shared = params["latent_dim"]
    if shared is not None:
        shared = positive_int(params, "latent_dim")
    if quantizer is None:  # the ceiling: the width the sweep gave it (its widest), else the default
        latent = shared or CEILING_WIDTH
        note = params["ceiling_width_note"] or (
            f"shared width {shared}" if shared else f"default width {CEILING_WIDTH} (no sweep width given)"
        )
        return {"latent_dim": latent, "width": "ceiling", "width_note": note}
    qdim = int(quantizer.dim)
    out: dict[str, Any] = {"quantizer_dim": qdim}
    if "dim" in cell.config:
        native = native_width(cell.quantizer, cell.config)
        out["native_dim"] = native
        inside = "" if native == qdim else f"; the quantizer projects {qdim} -> {native} inside"
        note = f"config dim {qdim}{inside}"
    else:
        out["native_dim"] = qdim
        note = f"native width {qdim}"
    if shared is None:
        kind = "native" if out["native_dim"] == qdim else "config"
        out.update(latent_dim=qdim, width=kind, width_note=note)
    else:
        out.update(
            latent_dim=shared,
            width="shared",
            width_note=f"shared width {shared}: explicit Linear({shared}->{qdim}) and "
            f"Linear({qdim}->{shared}) around the quantizer",
        )
    return out


def _build(
    cell: Cell, data: Dataset, params: dict[str, Any]
) -> tuple[Bottlenecked, nn.Module | None, int, dict]:
    if cell.quantizer == NO_QUANTIZER:
        call, quantizer = NoQuantizer(), None
    else:
        call, quantizer = build_quantizer(cell)  # at its own width (or the config's dim)
    widths = _widths(cell, quantizer, params)
    latent = widths["latent_dim"]
    if data.kind == "images":
        _, c, h, w = data.train.shape
        down = params["downsample"] or auto_downsample(h, w)
        if down not in (1, 2, 4, 8, 16) or h % down or w % down:
            raise ValueError(
                f"param 'downsample' must be a power of two dividing the image size {h}x{w}, got {down!r}"
            )
        model = conv_autoencoder(c, latent, down, positive_int(params, "channels"), call)
        tokens = (h // down) * (w // down)
        shape = {"downsample": down, "token_grid": [h // down, w // down]}
    elif data.kind in ("vectors", "audio"):
        tokens = positive_int(params, "tokens_per_sample")
        model = mlp_autoencoder(data.train.shape[1], latent, tokens, positive_int(params, "hidden"), call)
        shape = {}
    else:
        raise ValueError(f"expected dataset kind 'vectors', 'images' or 'audio', got {data.kind!r}")
    if widths["width"] == "shared":
        qdim = widths["quantizer_dim"]
        model.project_in, model.project_out = nn.Linear(latent, qdim), nn.Linear(qdim, latent)
    return model.to(torch.device(cell.device)), quantizer, tokens, {**widths, **shape}


def _evaluate(
    model: Bottlenecked,
    quantizer: nn.Module | None,
    eval: torch.Tensor,
    peak: float,
    batch: int,
    device: torch.device,
    counter: UsageCounter | None,
    probe: Diagnostics | None = None,
    precision: str = "float32",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample MSE and PSNR over ``eval``; counts indices into ``counter``, inputs into ``probe``."""
    model.eval()
    mses: list[torch.Tensor] = []
    with torch.no_grad(), autocast_context(device, precision):
        for start in range(0, eval.shape[0], batch):
            x = eval[start : start + batch].to(device)
            y, out = model(x)
            mses.append((y.float() - x).square().flatten(1).mean(1).double().cpu())
            if counter is not None:
                counter.update(out.indices)
            if probe is not None:
                probe.update(model.quantizer_input, out.codes)
    mse = torch.cat(mses)
    psnr = 10 * torch.log10(peak**2 / mse.clamp_min(1e-12))
    return mse, psnr


class NoQuantizer(nn.Module):
    """The identity bottleneck of the ceiling run: latents pass unquantized (no codes, no loss).

    Not a protocol quantizer (it has no codebook) and never registered; the reconstruction engine
    builds it for cells whose quantizer is ``NO_QUANTIZER``.
    """

    def forward(self, x: torch.Tensor) -> SimpleNamespace:
        return SimpleNamespace(codes=x, indices=None, loss=None)


def _monitor(
    model: Bottlenecked,
    quantizer: nn.Module | None,
    monitor: torch.Tensor,
    peak: float,
    batch: int,
    device: torch.device,
    precision: str = "float32",
) -> dict[str, float]:
    """Held-out figures of the criterion: loss (MSE), PSNR and utilization (with a codebook)."""
    counter = (
        None
        if quantizer is None
        else UsageCounter(int(quantizer.codebook_size), int(quantizer.num_codebooks))
    )
    mse, psnr = _evaluate(model, quantizer, monitor, peak, batch, device, counter, precision=precision)
    model.train()
    out = {"loss": float(mse.mean()), "psnr": float(psnr.mean())}
    if counter is not None:
        usage = counter.figures()
        out["utilization"] = float(usage["utilization"])
        out["perplexity"] = float(usage["perplexity"])
    return out


def train_and_evaluate(cell: Cell, data: Dataset, params: dict[str, Any]) -> list[dict]:
    """Build, train (to a plateau or the step cap) and measure the autoencoder of ``cell``."""
    steps = positive_int(params, "train_steps", allow_zero=True)
    if cell.quantizer == NO_QUANTIZER and params["ceiling_steps"] is not None:
        steps = positive_int(params, "ceiling_steps", allow_zero=True)
    batch = positive_int(params, "batch")
    eval_batch = positive_int(params, "eval_batch")
    lr = positive_float(params, "lr")
    weight = positive_float(params, "aux_loss_weight", allow_zero=True)
    n_show = positive_int(params, "reconstructions", allow_zero=True)
    precision = check_training_precision(params, "reconstruction")
    threads = fix_threads(params["threads"])
    device = torch.device(cell.device)
    train, eval = data.train, data.eval
    if data.kind == "images":
        peak = 1.0
    else:
        mean, std = train.mean(0), train.std(0).clamp_min(1e-6)
        train, eval = (train - mean) / std, (eval - mean) / std
        peak = float(eval.max() - eval.min())
    plateau, train, monitor = plateau_and_monitor(params, steps, train, cell.seed)
    torch.manual_seed(cell.seed)
    model, quantizer, tokens, shape = _build(cell, data, params)
    ceiling = quantizer is None
    codes = 1 if ceiling else int(quantizer.codebook_size) * int(quantizer.num_codebooks)
    eval_batch = eval_batch_size(eval_batch, tokens, codes)
    mse0, psnr0 = _evaluate(model, quantizer, eval, peak, eval_batch, device, None, precision=precision)
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=lr)
    model.train()

    def loss_of(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        y, out = model(x)
        return (y.float() - x).square().mean(), out.loss

    def held_out() -> dict[str, float]:
        return _monitor(model, quantizer, monitor, peak, eval_batch, device, precision)

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
    )
    cpu0 = time.process_time()
    loop.run()
    done = loop.steps
    counter = None if ceiling else UsageCounter(int(quantizer.codebook_size), int(quantizer.num_codebooks))
    probe = Diagnostics(quantizer)
    mse, psnr = _evaluate(model, quantizer, eval, peak, eval_batch, device, counter, probe, precision)
    loop.record_end()  # the last point: the held-out figures at the end of training
    cpu_s = time.process_time() - cpu0
    convergence = loop.summary()
    n_eval = eval.shape[0]
    ctx = {
        "dataset_kind": data.kind,
        "eval_samples": n_eval,
        "tokens_per_sample": tokens,
        "steps": done,
        "step_cap": steps,
        "converged": convergence["converged"],
        "batch": batch,
        "eval_batch": eval_batch,
        "lr": lr,
        "aux_loss_weight": weight,
        **shape,
        **precision_extra(precision),
    }
    if ceiling:
        ctx["ceiling"] = "no quantizer: the same autoencoder with an identity bottleneck"
    psnr_extra = {**ctx, "peak": peak}
    if data.kind == "images" and n_show:
        shown = data.eval[:n_show]
        with torch.no_grad():
            model.eval()
            with autocast_context(device, precision):
                recon = model(shown.to(device))[0].float().cpu()
        psnr_extra["reconstructions_png"] = png_strip(shown, recon)
        psnr_extra["reconstructions_layout"] = "top row: eval originals 0..n-1; bottom row: reconstructions"
    rows = [
        figure("mse", mse.mean(), "mse", False, spread=iqr(mse.tolist()), n=n_eval, extra=ctx),
        figure("psnr", psnr.mean(), "dB", True, spread=iqr(psnr.tolist()), n=n_eval, extra=psnr_extra),
        figure(
            "mse_untrained",
            mse0.mean(),
            "mse",
            None,
            n=n_eval,
            extra={**ctx, "psnr_untrained": float(psnr0.mean())},
        ),
        figure(
            "train_time",
            loop.train_s,
            "s",
            False,
            n=done,
            extra={
                **ctx,
                "threads": threads,
                "final_loss": loop.final_loss,
                "monitor_s": loop.monitor_s,
                "cpu_s": cpu_s,
            },
        ),
        figure("train_steps", done, "steps", None, n=done, extra={**ctx, **convergence}),
    ]
    rows += probe.rows(ctx)
    if ceiling:
        return rows
    if params["token_figures"] != "none":
        grid = tuple(shape["token_grid"]) if "token_grid" in shape else (1, tokens)
        keep_ctx = {k: ctx[k] for k in ("steps", "converged", "tokens_per_sample", "dtype") if k in ctx}
        rows += token_rows(
            model,
            train,
            eval,
            peak,
            eval_batch,
            cell.seed,
            grid,
            keep_ctx,
            float(params["corrupt_share"]),
            positive_float(params, "noise_scale"),
            positive_int(params, "prior_steps") if params["token_figures"] == "prior" else 0,
        )
    bits = float(quantizer.bits_per_token)
    rows += [
        figure("bits_per_token", bits, "bits", None, extra=ctx),
        figure("bits_per_sample", bits * tokens, "bits", None, extra=ctx),
    ]
    usage = usage_figures(
        counter.figures(),
        positive_float(params, "min_tokens_per_code", allow_zero=True),
        token_tol=positive_float(params, "token_tol", allow_zero=True),
    )
    keep = (
        "steps",
        "converged",
        "latent_dim",
        "quantizer_dim",
        "native_dim",
        "width",
        "width_note",
        "dtype",
        "autocast",
        "precision",
    )
    for row in usage:
        row["extra"] = {**row["extra"], **{k: ctx[k] for k in keep if k in ctx}}
    return rows + usage


def measure(cell: Cell, data: Dataset | None = None) -> list[dict]:
    """Reconstruction figures of the cell's quantizer as an autoencoder bottleneck (module docstring)."""
    params = resolve_params(cell, PARAMS)
    check(params)
    data = load_cell_dataset(cell) if data is None else data
    return train_and_evaluate(cell, data, params)


__all__ = ["PARAMS", "NoQuantizer", "check", "eval_tokens", "measure", "native_width"]
