"""Seaborn figures of one run: throughput, utilization versus codebook size, rate-distortion, and
reconstructions of a few eval images.

Figures are drawn on ``matplotlib.figure.Figure`` objects (the Agg canvas; pyplot is never
touched), each stamped with its run, suite and environment fingerprint. Error and skipped rows
are left out of the plots and listed in the caption instead, never drawn as zeros. Every quantizer
is drawn: each gets its own colour and marker (``_palette``; a family shares a hue), lines carry
markers so that a one-point line shows, legends sit outside the axes, and figures with more
quantizers than fit are split into pages that say which part they show.
"""

from __future__ import annotations

import io
import math
from typing import Any

from vqbench.reports._palette import quantizer_styles
from vqbench.reports.document import Figure

_SIZE_KEYS = ("size", "num_vectors", "batch_size")
#: Reconstruction strips per figure; more quantizer settings continue on further pages.
MAX_RECON_ROWS = 10
#: Codebook sizes (panels) per training-curves figure; more continue on further pages.
MAX_CURVE_PANELS = 6


def log2_axis(axis: Any, values: Any = None) -> None:
    """A base-2 log axis whose ticks read ``2^k`` as plain text (math text is off for user labels).

    ``values`` (the sizes drawn) become the ticks, and a single value gets room on either side."""
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

    scale = axis.axes.set_xscale if axis is axis.axes.xaxis else axis.axes.set_yscale
    scale("log", base=2)
    if values is not None:
        ticks = sorted({float(v) for v in values if v and v == v and v > 0})
        if ticks:
            axis.set_major_locator(FixedLocator(ticks))
            limits = axis.axes.set_xlim if axis is axis.axes.xaxis else axis.axes.set_ylim
            limits(ticks[0] / 2**0.5, ticks[-1] * 2**0.5)
    axis.set_minor_locator(NullLocator())
    axis.set_major_formatter(FuncFormatter(lambda v, _pos: _power_label(v)))


def _power_label(value: float) -> str:
    if value <= 0:
        return ""
    k = math.log2(value)
    return f"2^{round(k)}" if abs(k - round(k)) < 1e-9 else f"{value:g}"


def _legend_outside(fig: Any, axes: Any, title: str | None = None) -> None:
    """One legend for the whole figure, right of the axes (never over the data or the title)."""
    handles: dict[str, Any] = {}
    for ax in getattr(axes, "flat", [axes]):
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            handles.setdefault(label, handle)
        if ax.get_legend() is not None:
            ax.get_legend().remove()
    if handles:
        fig.legend(
            list(handles.values()),
            list(handles.keys()),
            loc="outside right upper",
            fontsize=8,
            title=title,
            title_fontsize=8,
            frameon=False,
        )


def _new_figure(width: float, height: float) -> Any:
    import seaborn as sns
    from matplotlib.figure import Figure as MplFigure

    # labels carry user text (quantizer names, file paths): "$" must not start mathtext
    sns.set_theme(rc={"text.parse_math": False}, style="whitegrid", context="notebook", font_scale=0.9)
    return MplFigure(figsize=(width, height), dpi=110, layout="constrained")


def _png(fig: Any, stamp: str) -> bytes:
    fig.supxlabel(stamp, x=0.995, ha="right", fontsize=7, color="#6b7280")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", facecolor="white")
    return buf.getvalue()


def _excluded(frame: Any, mask: Any) -> str:
    bad = frame[mask & frame["status"].ne("ok")]
    if bad.empty:
        return ""
    names = sorted({f"{q} ({s})" for q, s in zip(bad["quantizer"], bad["status"], strict=True)})
    return " Not drawn: " + ", ".join(names[:12]) + (" ..." if len(names) > 12 else "") + "."


def _label(frame: Any) -> Any:
    """quantizer, plus its config where one quantizer appears with several configs."""
    multi = frame.groupby("quantizer")["config_label"].transform("nunique") > 1
    return [
        f"{q}\n{c}" if m and c else q
        for q, c, m in zip(frame["quantizer"], frame["config_label"], multi, strict=True)
    ]


def _size(ext: dict) -> float:
    for key in _SIZE_KEYS:
        value = ext.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    return 0.0


def throughput_figure(frame: Any, stamp: str) -> Figure | None:
    """Bars of the throughput rate per quantizer, one panel per operation (and device), hue = backend."""
    import seaborn as sns
    from matplotlib.ticker import EngFormatter

    is_bench = frame["benchmark"] == "throughput"
    rates = frame[is_bench & frame["status"].eq("ok") & frame["unit"].str.endswith("/s")]
    if rates.empty:
        return None
    metric = rates["base_metric"].value_counts().index[0]
    preferred = [m for m in ("vectors_per_s",) if m in set(rates["base_metric"])]
    metric = preferred[0] if preferred else metric
    data = rates[rates["base_metric"] == metric].copy()
    unit = data["unit"].iloc[0]
    data["operation"] = data["operation"].replace("", "all")
    data["size"] = [_size(e) for e in data["ext"]]
    # the largest size measured for each bar
    data["order"] = range(len(data))
    data = (
        data.sort_values("size")
        .groupby(["quantizer", "config_label", "backend", "device", "operation"], as_index=False)
        .last()
        .sort_values("order")
    )
    data["label"] = _label(data)
    ops = list(
        dict.fromkeys(
            o
            for o in ("forward", "train", "train_step", "encode", "decode", "all")
            if o in set(data["operation"])
        )
    )
    ops += [o for o in dict.fromkeys(data["operation"]) if o not in ops]
    devices = list(dict.fromkeys(data["device"]))
    n_labels = data["label"].nunique()
    fig = _new_figure(max(6.0, min(4.0 * len(ops), 16.0)), (2.2 + 0.28 * n_labels) * len(devices) + 0.6)
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
    _legend_outside(fig, axes, "backend")
    fig.suptitle(f"Throughput: {metric} by operation, backend and device")
    caption = (
        f"{metric} [{unit}] per quantizer; panels by operation and device, colours by backend; "
        "each bar is the median at the largest size measured." + _excluded(frame, is_bench)
    )
    return Figure(
        "throughput",
        "Throughput by operation, backend and device",
        _png(fig, stamp),
        caption=f"{caption} {stamp}",
        alt=f"bar chart of {metric}",
    )


def _quantizer_lines(ax, data, x: str, styles) -> None:
    """One line per quantizer of ``data`` (value against ``x``), in its style, with markers."""
    for quantizer in sorted(set(data["quantizer"])):
        line = data[data["quantizer"] == quantizer].sort_values(x)
        style = styles[quantizer]
        ax.plot(line[x], line["value"], color=style.color, marker=style.marker, ms=6, lw=1.6, label=quantizer)


def utilization_figure(frame: Any, stamp: str) -> Figure | None:
    """Codebook utilization against codebook size (log2 axis): a line per quantizer, a panel per
    benchmark and dataset it was measured in."""
    is_util = frame["base_metric"] == "utilization"
    data = frame[is_util & frame["status"].eq("ok") & frame["codebook_size"].notna()].copy()
    if data.empty:
        return None
    data["codebook_size"] = data["codebook_size"].astype(float)
    data["measured"] = [
        f"{b}" + (f" · {d}" if d else "") for b, d in zip(data["benchmark"], data["dataset"], strict=True)
    ]
    data = data.groupby(["quantizer", "measured", "codebook_size"], as_index=False)["value"].mean()
    panels = list(dict.fromkeys(data["measured"]))
    styles = quantizer_styles(data["quantizer"])
    fig = _new_figure(max(7.5, 4.4 * len(panels) + 2.0), 4.6)
    axes = fig.subplots(1, len(panels), squeeze=False, sharey=True)[0]
    for ax, panel in zip(axes, panels, strict=True):
        sub = data[data["measured"] == panel]
        _quantizer_lines(ax, sub, "codebook_size", styles)
        log2_axis(ax.xaxis, sub["codebook_size"])
        ax.set_ylim(-0.02, 1.05)
        ax.set_title(panel, fontsize=9)
        ax.set_xlabel("codebook size (codes per codebook)")
    axes[0].set_ylabel("utilization (codes used / codebook size)")
    _legend_outside(fig, axes, "quantizer")
    fig.suptitle("Codebook utilization versus codebook size")
    caption = (
        "Fraction of codes used at least once over the whole eval split, a line per quantizer (colour and "
        "marker; a family shares a hue), a panel per benchmark and dataset it was measured in."
        + _excluded(frame, is_util)
    )
    return Figure(
        "utilization",
        "Utilization versus codebook size",
        _png(fig, stamp),
        caption=f"{caption} {stamp}",
        alt="line chart of utilization against codebook size",
    )


def _bits_per_token(frame: Any) -> dict[tuple, float]:
    bits: dict[tuple, float] = {}
    rows = frame[(frame["metric"] == "bits_per_token") & frame["status"].eq("ok")]
    for cell, dataset, value in zip(rows["cell_id"], rows["dataset"], rows["value"], strict=True):
        bits[(cell, dataset)] = float(value)
    return bits


def rate_distortion_figure(frame: Any, stamp: str) -> Figure | None:
    """PSNR against bits per token, a line per quantizer (a panel per dataset)."""
    is_psnr = frame["metric"].str.lower().eq("psnr")
    psnr = frame[is_psnr & frame["status"].eq("ok")].copy()
    if psnr.empty:
        return None
    known = _bits_per_token(frame)
    bits = []
    for cell, dataset, ext, cfg, size in zip(
        psnr["cell_id"], psnr["dataset"], psnr["ext"], psnr["cfg"], psnr["codebook_size"], strict=True
    ):
        value = known.get((cell, dataset), ext.get("bits_per_token"))
        if value is None and size is not None and size == size:
            books = cfg.get("num_codebooks") or cfg.get("num_quantizers") or 1
            value = math.log2(size) * books if isinstance(books, int) else None
        bits.append(value)
    psnr["bits"] = bits
    is_ceiling = [bool(e.get("ceiling")) for e in psnr["ext"]]
    ceilings = psnr[is_ceiling].groupby("dataset")["value"].mean().to_dict()
    psnr = psnr[psnr["bits"].notna() & ~_bool_series(is_ceiling, psnr.index)]
    if psnr.empty:
        return None
    psnr["bits"] = psnr["bits"].astype(float)
    data = psnr.groupby(["quantizer", "dataset", "bits"], as_index=False)["value"].mean()
    datasets = list(dict.fromkeys(data["dataset"]))
    styles = quantizer_styles(data["quantizer"])
    ncols = min(3, len(datasets))
    nrows = math.ceil(len(datasets) / ncols)
    fig = _new_figure(max(6.5, 4.6 * ncols + 2.0), 4.2 * nrows + 0.4)
    axes = fig.subplots(nrows, ncols, squeeze=False)
    for ax in axes.flat[len(datasets) :]:
        ax.set_axis_off()
    for ax, dataset in zip(axes.flat, datasets, strict=False):
        sub = data[data["dataset"] == dataset].sort_values("bits")
        _quantizer_lines(ax, sub, "bits", styles)
        if dataset in ceilings:
            ax.axhline(ceilings[dataset], color="#374151", ls="--", lw=1.2, label="no quantizer (ceiling)")
        ax.set_xlabel("bits per token")
        ax.set_ylabel("PSNR [dB]")
        ax.set_title(f"rate-distortion · {dataset or 'data'}", fontsize=9)
    _legend_outside(fig, axes, "quantizer")
    fig.suptitle("Rate-distortion: bits per token versus reconstruction PSNR")
    caption = (
        "Eval PSNR of the fixed autoencoder with each quantizer as its bottleneck, against the "
        "bits each token carries; up and to the left is better. The dashed line is the same "
        "autoencoder trained with no quantizer (the ceiling), where the run holds it."
        + _excluded(frame, is_psnr)
    )
    return Figure(
        "rate_distortion",
        "Rate-distortion (bits per token versus PSNR)",
        _png(fig, stamp),
        caption=f"{caption} {stamp}",
        alt="line chart of PSNR against bits per token",
    )


def _bool_series(values: list[bool], index: Any) -> Any:
    """A boolean pandas Series on ``index``."""
    import pandas as pd

    return pd.Series(values, index=index, dtype=bool)


def _strips(ext: dict) -> tuple[Any, Any] | None:
    """(originals, reconstructions) as float images (H, W, C) in [0, 1] from a row's extra:
    ``reconstructions_png`` (a base64 PNG, originals on the top half) or ``samples`` (encode_samples)."""
    import base64

    import numpy as np

    if isinstance(ext.get("reconstructions_png"), str):
        from matplotlib.image import imread

        try:
            img = imread(
                io.BytesIO(base64.b64decode(ext["reconstructions_png"], validate=True)), format="png"
            )
        except (ValueError, OSError, SyntaxError):
            return None
        img = np.asarray(img, dtype=np.float32)
        if img.ndim == 2:
            img = img[..., None]
        img = img[..., :3] if img.shape[-1] in (3, 4) else img[..., :1]
        half = img.shape[0] // 2
        if half == 0:
            return None
        return img[:half], img[half : 2 * half]
    if isinstance(ext.get("samples"), dict):
        from vqbench.results import decode_samples

        try:
            orig, recon = decode_samples(ext["samples"])
        except (TypeError, ValueError):
            return None

        def strip(images: Any) -> Any:
            return np.concatenate(list(images.transpose(0, 2, 3, 1)), axis=1).astype(np.float32) / 255.0

        return strip(orig), strip(recon)
    return None


def reconstruction_figures(frame: Any, stamp: str) -> list[Figure]:
    """Strips of eval images: the originals on top, then the reconstructions of each quantizer
    setting (figures per dataset, ``MAX_RECON_ROWS`` settings each: every setting is drawn).
    Originals that differ between settings get their own strips."""
    has = frame["ext"].map(
        lambda e: isinstance(e.get("reconstructions_png"), str) or isinstance(e.get("samples"), dict)
    )
    rows = frame[frame["status"].eq("ok") & has]
    figures = []
    for dataset, group in rows.groupby("dataset", sort=False):
        decoded: dict[str, tuple] = {}
        for quantizer, label, ext in zip(
            group["quantizer"], group["config_label"], group["ext"], strict=True
        ):
            name = f"{quantizer[:24]}\n{label[:28]}".strip()
            if name in decoded:
                continue
            got = _strips(ext)
            if got is not None:
                decoded[name] = got
        if not decoded:
            continue
        names = list(decoded)
        pages = [names[i : i + MAX_RECON_ROWS] for i in range(0, len(names), MAX_RECON_ROWS)]
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


def _reconstruction_page(decoded: dict[str, tuple], label: str, part: str, stamp: str, page: int) -> Figure:
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
    fig = _new_figure(panel_w + 2.2, panel_h * len(grid) + 0.8)
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
    return Figure(
        f"reconstructions-{label}" + (f"-{page + 1}" if page else ""),
        f"Reconstructions · {label}{part}",
        _png(fig, stamp),
        caption=f"{caption} {stamp}",
        alt=f"reconstructed {label} images per quantizer",
    )


_CURVE_METRICS = {"psnr": "held-out PSNR [dB]", "utilization": "held-out utilization", "loss": "held-out MSE"}


def convergence_figures(frame: Any, stamp: str) -> list[Figure]:
    """Training curves (held-out figures against steps), a panel per codebook size, per benchmark.

    Read from the ``train_steps`` rows' ``curve``; one line per cell (quantizer and seed), so that a
    reader sees whether each figure had stopped moving when training ended. More than
    ``MAX_CURVE_PANELS`` codebook sizes continue on further figures.
    """
    rows = frame[(frame["metric"] == "train_steps") & frame["status"].eq("ok")]
    out: list[Figure] = []
    for bench in dict.fromkeys(rows["benchmark"]):
        sub = rows[rows["benchmark"] == bench]
        points = []
        for quantizer, size, seed, dataset, ext in zip(
            sub["quantizer"], sub["codebook_size"], sub["seed"], sub["dataset"], sub["ext"], strict=True
        ):
            curve = ext.get("curve") or {}
            steps = curve.get("step") or []
            for key in _CURVE_METRICS:
                for step, value in zip(steps, curve.get(key) or [], strict=False):
                    if value is not None:
                        k = "no quantizer" if size != size or size is None else f"K = {_size_label(size)}"
                        points.append(
                            {
                                "quantizer": quantizer,
                                "K": k,
                                "seed": seed,
                                "dataset": dataset,
                                "step": step,
                                "metric": key,
                                "value": value,
                                "Kn": size if size == size else 0,
                            }
                        )
        if not points:
            continue
        import pandas as pd

        data = pd.DataFrame(points)
        metrics = [m for m in _CURVE_METRICS if m in set(data["metric"])]
        if "psnr" in metrics:
            metrics = [m for m in metrics if m != "loss"]
        all_sizes = list(dict.fromkeys(data.sort_values("Kn")["K"]))
        styles = quantizer_styles(data["quantizer"])
        pages = [all_sizes[i : i + MAX_CURVE_PANELS] for i in range(0, len(all_sizes), MAX_CURVE_PANELS)]
        for page, sizes in enumerate(pages):
            fig = _new_figure(max(6.5, 3.0 * len(sizes) + 2.0), 2.6 * len(metrics) + 0.6)
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
                        ax.set_ylabel(_CURVE_METRICS[metric])
                    if i == len(metrics) - 1:
                        ax.set_xlabel("training steps")
                    if metric == "utilization":
                        ax.set_ylim(-0.02, 1.05)
            _legend_outside(fig, axes, "quantizer")
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
                Figure(
                    name,
                    f"Training curves ({bench}){part}",
                    _png(fig, stamp),
                    caption=f"{caption} {stamp}",
                    alt=alt,
                )
            )
    return out


def _size_label(size: float) -> str:
    k = int(size)
    return f"2^{k.bit_length() - 1}" if k > 0 and k & (k - 1) == 0 else str(k)


def run_figures(frame: Any, stamp: str) -> list[Figure]:
    """Every figure that the run's rows support, in reading order."""
    out = [
        f
        for f in (
            throughput_figure(frame, stamp),
            utilization_figure(frame, stamp),
            rate_distortion_figure(frame, stamp),
        )
        if f is not None
    ]
    return out + convergence_figures(frame, stamp) + reconstruction_figures(frame, stamp)


__all__ = [
    "convergence_figures",
    "rate_distortion_figure",
    "reconstruction_figures",
    "run_figures",
    "throughput_figure",
    "utilization_figure",
]
