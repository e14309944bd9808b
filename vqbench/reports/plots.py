"""Seaborn plots of one run: throughput, utilization versus codebook size, rate-distortion,
training curves and reconstructions of a few eval images.

Each figure is drawn from the rows that ``_figure_data`` takes from the run, on the canvas of
``_figure_layout``, and stamped with its run, suite and environment fingerprint. Error and skipped
rows are left out of the plots and listed in the caption instead, never drawn as zeros. Every
quantizer is drawn: each gets its own colour and marker (``_palette``; a family shares a hue),
lines carry markers so that a one-point line shows, legends sit outside the axes, and figures with
more quantizers than fit are split into pages that say which part they show.
"""

from __future__ import annotations

import math
from typing import Any

from vqbench.engines import view_of
from vqbench.reports._palette import quantizer_styles
from vqbench.reports._plot_data import (
    CURVE_METRICS,
    curve_points,
    not_drawn,
    rate_distortion_points,
    reconstruction_strips,
    throughput_bars,
    utilization_points,
)
from vqbench.reports._plot_layout import (
    legend_outside,
    log2_axis,
    new_figure,
    paginate,
    png,
    quantizer_lines,
)
from vqbench.reports.document import Plot

#: Reconstruction strips per figure; more quantizer settings continue on further pages.
MAX_RECON_ROWS = 10
#: Codebook sizes (panels) per training-curves figure; more continue on further pages.
MAX_CURVE_PANELS = 6


def throughput_plot(frame: Any, stamp: str) -> Plot | None:
    """Bars of the throughput rate per quantizer, one panel per operation (and device), hue = backend."""
    import seaborn as sns
    from matplotlib.ticker import EngFormatter

    is_bench = frame["benchmark"].map(view_of).eq("operations")
    bars = throughput_bars(frame)
    if bars is None:
        return None
    data, metric, unit, ops = bars
    devices = list(dict.fromkeys(data["device"]))
    n_labels = data["label"].nunique()
    fig = new_figure(max(6.0, min(4.0 * len(ops), 16.0)), (2.2 + 0.28 * n_labels) * len(devices) + 0.6)
    axes = fig.subplots(len(devices), len(ops), squeeze=False, sharex="row")
    order = list(dict.fromkeys(data["label"]))
    hue_order = sorted(dict.fromkeys(data["backend"]), key=lambda b: (b != "eager", b != "compile", b))
    log = data["value"].max() / max(data["value"].min(), 1e-30) > 50
    for r, device in enumerate(devices):
        for c, op in enumerate(ops):
            ax = axes[r][c]
            sub = data[(data["device"] == device) & (data["operation"] == op)]
            if sub.empty:
                ax.set_axis_off()
                continue
            sns.barplot(
                data=sub,
                y="label",
                x="value",
                hue="backend",
                order=order,
                hue_order=hue_order,
                orient="h",
                ax=ax,
                legend=(r == 0 and c == len(ops) - 1),
            )
            if log:
                ax.set_xscale("log")
            ax.xaxis.set_major_formatter(EngFormatter(sep=""))
            ax.set_title(f"{op} · {device}")
            ax.set_xlabel(f"{metric} [{unit}]")
            ax.set_ylabel("" if c else "quantizer")
    legend_outside(fig, axes, "backend")
    fig.suptitle(f"Throughput: {metric} by operation, backend and device")
    caption = (
        f"{metric} [{unit}] per quantizer; panels by operation and device, colours by backend; "
        "each bar is the median at the largest size measured." + not_drawn(frame, is_bench)
    )
    return Plot(
        "throughput",
        "Throughput by operation, backend and device",
        png(fig, stamp),
        caption=f"{caption} {stamp}",
        alt=f"bar chart of {metric}",
    )


def utilization_plot(frame: Any, stamp: str) -> Plot | None:
    """Codebook utilization against codebook size (log2 axis): a line per quantizer, a panel per
    benchmark and dataset it was measured in."""
    is_util = frame["base_metric"] == "utilization"
    data = utilization_points(frame)
    if data is None:
        return None
    panels = list(dict.fromkeys(data["measured"]))
    styles = quantizer_styles(data["quantizer"])
    fig = new_figure(max(7.5, 4.4 * len(panels) + 2.0), 4.6)
    axes = fig.subplots(1, len(panels), squeeze=False, sharey=True)[0]
    for ax, panel in zip(axes, panels, strict=True):
        sub = data[data["measured"] == panel]
        quantizer_lines(ax, sub, "codebook_size", styles)
        log2_axis(ax.xaxis, sub["codebook_size"])
        ax.set_ylim(-0.02, 1.05)
        ax.set_title(panel, fontsize=9)
        ax.set_xlabel("codebook size (codes per codebook)")
    axes[0].set_ylabel("utilization (codes used / codebook size)")
    legend_outside(fig, axes, "quantizer")
    fig.suptitle("Codebook utilization versus codebook size")
    caption = (
        "Fraction of codes used at least once over the whole eval split, a line per quantizer (colour and "
        "marker; a family shares a hue), a panel per benchmark and dataset it was measured in."
        + not_drawn(frame, is_util)
    )
    return Plot(
        "utilization",
        "Utilization versus codebook size",
        png(fig, stamp),
        caption=f"{caption} {stamp}",
        alt="line chart of utilization against codebook size",
    )


def rate_distortion_plot(frame: Any, stamp: str) -> Plot | None:
    """PSNR against bits per token, a line per quantizer (a panel per dataset)."""
    is_psnr = frame["metric"].str.lower().eq("psnr")
    points = rate_distortion_points(frame)
    if points is None:
        return None
    data, ceilings = points
    datasets = list(dict.fromkeys(data["dataset"]))
    styles = quantizer_styles(data["quantizer"])
    ncols = min(3, len(datasets))
    nrows = math.ceil(len(datasets) / ncols)
    fig = new_figure(max(6.5, 4.6 * ncols + 2.0), 4.2 * nrows + 0.4)
    axes = fig.subplots(nrows, ncols, squeeze=False)
    for ax in axes.flat[len(datasets) :]:
        ax.set_axis_off()
    for ax, dataset in zip(axes.flat, datasets, strict=False):
        sub = data[data["dataset"] == dataset].sort_values("bits")
        quantizer_lines(ax, sub, "bits", styles)
        if dataset in ceilings:
            ax.axhline(ceilings[dataset], color="#374151", ls="--", lw=1.2, label="no quantizer (ceiling)")
        ax.set_xlabel("bits per token")
        ax.set_ylabel("PSNR [dB]")
        ax.set_title(f"rate-distortion · {dataset or 'data'}", fontsize=9)
    legend_outside(fig, axes, "quantizer")
    fig.suptitle("Rate-distortion: bits per token versus reconstruction PSNR")
    caption = (
        "Eval PSNR of the fixed autoencoder with each quantizer as its bottleneck, against the "
        "bits each token carries; up and to the left is better. The dashed line is the same "
        "autoencoder trained with no quantizer (the ceiling), where the run holds it."
        + not_drawn(frame, is_psnr)
    )
    return Plot(
        "rate_distortion",
        "Rate-distortion (bits per token versus PSNR)",
        png(fig, stamp),
        caption=f"{caption} {stamp}",
        alt="line chart of PSNR against bits per token",
    )


def reconstruction_plots(frame: Any, stamp: str) -> list[Plot]:
    """Strips of eval images: the originals on top, then the reconstructions of each quantizer
    setting (figures per dataset, ``MAX_RECON_ROWS`` settings each: every setting is drawn).
    Originals that differ between settings get their own strips."""
    figures = []
    for dataset, decoded in reconstruction_strips(frame):
        names = list(decoded)
        pages = paginate(names, MAX_RECON_ROWS)
        label = dataset or "images"
        for page, chosen in enumerate(pages):
            part = (
                f" ({page + 1} of {len(pages)}: settings {page * MAX_RECON_ROWS + 1}-"
                f"{page * MAX_RECON_ROWS + len(chosen)} of {len(names)})"
                if len(pages) > 1
                else ""
            )
            figures.append(_reconstruction_page({n: decoded[n] for n in chosen}, label, part, stamp, page))
    return figures


def _reconstruction_page(decoded: dict[str, tuple], label: str, part: str, stamp: str, page: int) -> Plot:
    """One figure of reconstruction strips: the shared originals on top, then each setting's."""
    import numpy as np

    first = next(iter(decoded.values()))[0]
    shared = all(o.shape == first.shape and np.allclose(o, first, atol=1 / 255) for o, _ in decoded.values())
    grid = [("original", first)] if shared else []
    for name, (orig, recon) in decoded.items():
        if not shared:
            grid.append((f"{name}\n(original)", orig))
        grid.append((name, recon))
    height, width = first.shape[:2]
    panel_w = min(9.0, max(4.0, width / 40))
    panel_h = max(0.6, panel_w * height / max(width, 1))
    fig = new_figure(panel_w + 2.2, panel_h * len(grid) + 0.8)
    axes = fig.subplots(len(grid), 1, squeeze=False)[:, 0]
    for ax, (name, img) in zip(axes, grid, strict=True):
        ax.set_xticks([])
        ax.set_yticks([])
        ax.grid(False)
        if img.shape[-1] == 1:
            ax.imshow(img[..., 0], cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        else:
            ax.imshow(np.clip(img, 0, 1), interpolation="nearest")
        ax.set_ylabel(name, rotation=0, ha="right", va="center", fontsize=8)
    fig.suptitle(f"Reconstructions of eval samples · {label}{part}")
    caption = (
        "Top strip: eval images; below, their reconstructions through the fixed autoencoder with each "
        "quantizer setting as its bottleneck"
        + (f"; this page shows{part[:-1].replace(' (', ' ')}" if part else "")
        + "."
    )
    return Plot(
        f"reconstructions-{label}" + (f"-{page + 1}" if page else ""),
        f"Reconstructions · {label}{part}",
        png(fig, stamp),
        caption=f"{caption} {stamp}",
        alt=f"reconstructed {label} images per quantizer",
    )


def convergence_plots(frame: Any, stamp: str) -> list[Plot]:
    """Training curves (held-out figures against steps), a panel per codebook size, per benchmark.

    Read from the ``train_steps`` rows' ``curve``; one line per cell (quantizer and seed), so that a
    reader sees whether each figure had stopped moving when training ended. More than
    ``MAX_CURVE_PANELS`` codebook sizes continue on further figures.
    """
    rows = frame[(frame["metric"] == "train_steps") & frame["status"].eq("ok")]
    out: list[Plot] = []
    for bench in dict.fromkeys(rows["benchmark"]):
        sub = rows[rows["benchmark"] == bench]
        data = curve_points(sub)
        if data is None:
            continue
        metrics = [m for m in CURVE_METRICS if m in set(data["metric"])]
        if "psnr" in metrics:
            metrics = [m for m in metrics if m != "loss"]
        all_sizes = list(dict.fromkeys(data.sort_values("Kn")["K"]))
        styles = quantizer_styles(data["quantizer"])
        pages = paginate(all_sizes, MAX_CURVE_PANELS)
        for page, sizes in enumerate(pages):
            fig = new_figure(max(6.5, 3.0 * len(sizes) + 2.0), 2.6 * len(metrics) + 0.6)
            axes = fig.subplots(len(metrics), len(sizes), squeeze=False)
            for i, metric in enumerate(metrics):
                for j, k in enumerate(sizes):
                    ax = axes[i][j]
                    cell = data[(data["metric"] == metric) & (data["K"] == k)]
                    for (q, seed, _ds), line in cell.groupby(["quantizer", "seed", "dataset"], sort=True):
                        first = seed == cell[cell["quantizer"] == q]["seed"].min()
                        ax.plot(
                            line["step"],
                            line["value"],
                            color=styles[q].color,
                            marker=styles[q].marker,
                            ms=4,
                            lw=1.2,
                            alpha=0.85,
                            label=q if first else None,
                        )
                    if i == 0:
                        ax.set_title(k, fontsize=9)
                    if j == 0:
                        ax.set_ylabel(CURVE_METRICS[metric])
                    if i == len(metrics) - 1:
                        ax.set_xlabel("training steps")
                    if metric == "utilization":
                        ax.set_ylim(-0.02, 1.05)
            legend_outside(fig, axes, "quantizer")
            part = f" ({page + 1} of {len(pages)}: {sizes[0]} ... {sizes[-1]})" if len(pages) > 1 else ""
            fig.suptitle(f"Training curves · {bench}: held-out figures against steps{part}")
            caption = (
                "Held-out figures (a split carved from the train data) measured during training, one line "
                "per cell and seed, a marker at each evaluation; a curve that still climbs at its last "
                "point did not converge (see the convergence table)."
            )
            alt = f"line charts of held-out figures against steps, {bench}"
            name = f"curves_{bench}" + (f"-{page + 1}" if page else "")
            out.append(
                Plot(
                    name,
                    f"Training curves ({bench}){part}",
                    png(fig, stamp),
                    caption=f"{caption} {stamp}",
                    alt=alt,
                )
            )
    return out


def run_plots(frame: Any, stamp: str) -> list[Plot]:
    """Every figure that the run's rows support, in reading order."""
    out = [
        f
        for f in (
            throughput_plot(frame, stamp),
            utilization_plot(frame, stamp),
            rate_distortion_plot(frame, stamp),
        )
        if f is not None
    ]
    return out + convergence_plots(frame, stamp) + reconstruction_plots(frame, stamp)


__all__ = [
    "MAX_CURVE_PANELS",
    "MAX_RECON_ROWS",
    "convergence_plots",
    "log2_axis",
    "rate_distortion_plot",
    "reconstruction_plots",
    "run_plots",
    "throughput_plot",
    "utilization_plot",
]
