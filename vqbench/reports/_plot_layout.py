"""The layout of report plots: a new Agg figure, its PNG with the run stamp, log-2 axes, one
legend outside the axes, quantizer lines with markers, and pages of what does not fit one figure.

Figures are ``matplotlib.figure.Figure`` objects (pyplot is never touched); math text is off,
since labels carry user text (quantizer names, file paths).
"""

from __future__ import annotations

import io
import math
from typing import Any


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
    axis.set_major_formatter(FuncFormatter(lambda v, _pos: power_label(v)))


def power_label(value: float) -> str:
    """``2^k`` for a power of two, else the value as ``%g`` ("" for values <= 0)."""
    if value <= 0:
        return ""
    k = math.log2(value)
    return f"2^{round(k)}" if abs(k - round(k)) < 1e-9 else f"{value:g}"


def legend_outside(fig: Any, axes: Any, title: str | None = None) -> None:
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


def new_figure(width: float, height: float) -> Any:
    """An empty figure of ``width`` x ``height`` inches in the reports' seaborn theme."""
    import seaborn as sns
    from matplotlib.figure import Figure as MplFigure

    # labels carry user text (quantizer names, file paths): "$" must not start mathtext
    sns.set_theme(rc={"text.parse_math": False}, style="whitegrid", context="notebook", font_scale=0.9)
    return MplFigure(figsize=(width, height), dpi=110, layout="constrained")


def png(fig: Any, stamp: str) -> bytes:
    """The figure as PNG bytes, with ``stamp`` (run, suite, environment) at its bottom right."""
    fig.supxlabel(stamp, x=0.995, ha="right", fontsize=7, color="#6b7280")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", facecolor="white")
    return buf.getvalue()


def quantizer_lines(ax: Any, data: Any, x: str, styles: Any) -> None:
    """One line per quantizer of ``data`` (value against ``x``), in its style, with markers."""
    for quantizer in sorted(set(data["quantizer"])):
        line = data[data["quantizer"] == quantizer].sort_values(x)
        style = styles[quantizer]
        ax.plot(line[x], line["value"], color=style.color, marker=style.marker, ms=6, lw=1.6, label=quantizer)


def paginate(items: list, per_page: int) -> list[list]:
    """``items`` in pages of ``per_page`` (the last one holds the rest)."""
    return [items[i : i + per_page] for i in range(0, len(items), per_page)]


__all__ = ["legend_outside", "log2_axis", "new_figure", "paginate", "png", "power_label", "quantizer_lines"]
