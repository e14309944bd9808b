"""Numbers as people read them: SI prefixes, binary sizes, short times, signed deltas and ratios."""

from __future__ import annotations

import math

_SI = ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k"))
_BYTES = ((2**40, "TiB"), (2**30, "GiB"), (2**20, "MiB"), (2**10, "KiB"))


def _sig(value: float, digits: int = 3) -> str:
    if value == 0:
        return "0"
    mag = math.floor(math.log10(abs(value)))
    decimals = max(0, digits - 1 - mag)
    text = f"{value:.{decimals}f}"
    return text


def fmt_value(value: float | None, unit: str = "") -> str:
    """``value`` with a readable scale for its unit (``12.3 M`` vectors/s, ``4.1 ms``, ``2.0 MiB``)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    value = float(value)
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    if unit in ("B", "bytes"):
        for size, name in _BYTES:
            if abs(value) >= size:
                return f"{_sig(value / size)} {name}"
        return f"{value:.0f} B"
    if unit == "s":
        for scale, name in ((1.0, "s"), (1e-3, "ms"), (1e-6, "µs")):
            if abs(value) >= scale:
                return f"{_sig(value / scale)} {name}"
        return f"{_sig(value / 1e-9)} ns"
    if abs(value) >= 1e4:
        for scale, prefix in _SI:
            if abs(value) >= scale:
                return f"{_sig(value / scale)} {prefix}"
    if abs(value) < 1e-3 and value != 0:
        return f"{value:.3g}"
    if float(value).is_integer() and abs(value) < 1e4:
        return f"{int(value)}"
    return _sig(value, 4)


def fmt_delta(rel: float | None, absolute: float | None = None, unit: str = "") -> str:
    """A change as ``+12.3%`` (relative) or ``+0.02 unit`` when no relative change exists."""
    if rel is not None and not math.isnan(rel) and not math.isinf(rel):
        return f"{rel * 100:+.1f}%"
    if absolute is None or math.isnan(absolute):
        return "n/a"
    sign = "+" if absolute >= 0 else "-"
    return f"{sign}{fmt_value(abs(absolute), unit)}{(' ' + unit) if unit and unit not in ('s', 'B') else ''}"


def fmt_ratio(ratio: float | None) -> str:
    """A ratio to a baseline as ``0.84×``."""
    if ratio is None or math.isnan(ratio) or math.isinf(ratio):
        return "n/a"
    return f"{ratio:.3g}×"


__all__ = ["fmt_delta", "fmt_ratio", "fmt_value"]
