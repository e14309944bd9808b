"""Step detection: the points where a figure's history moves to a new level and stays there."""

from __future__ import annotations

import math

from vqbench.reports.statistics import MAD_TO_SIGMA, median


def step_changes(
    values: list[float], threshold: float = 0.10, noise_k: float = 3.0, min_size: int = 2, max_depth: int = 3
) -> list[int]:
    """Indices where a series steps to a new level (binary segmentation on medians).

    Each segment's best split is the one with the least absolute deviation from the two sides'
    medians; it counts when those medians differ by more than ``threshold`` (relative) and
    ``noise_k`` robust sigmas of the residuals. The last point may form a segment alone, so
    that tonight's step shows.
    """
    vals = [float(v) for v in values if v is not None and not math.isnan(v)]
    if len(vals) != len(values) or len(vals) < 3:
        return []

    def best_split(lo: int, hi: int) -> int | None:
        """The split with the least absolute deviation from the segments' medians, if significant."""
        seg = vals[lo:hi]
        best: tuple[float, int] | None = None
        for i in range(1, len(seg)):
            left, right = seg[:i], seg[i:]
            if len(left) < min_size or (len(right) < min_size and hi != len(vals)):
                continue
            ml, mr = median(left), median(right)
            cost = sum(abs(v - ml) for v in left) + sum(abs(v - mr) for v in right)
            if best is None or cost < best[0]:
                best = (cost, i)
        if best is None:
            return None
        i = best[1]
        left, right = seg[:i], seg[i:]
        ml, mr = median(left), median(right)
        sigma = MAD_TO_SIGMA * median([abs(v - ml) for v in left] + [abs(v - mr) for v in right])
        diff = abs(mr - ml)
        if diff > threshold * max(abs(ml), 1e-30) and diff > noise_k * sigma:
            return lo + i
        return None

    found: list[int] = []

    def recurse(lo: int, hi: int, depth: int) -> None:
        if depth > max_depth or hi - lo < 2:
            return
        split = best_split(lo, hi)
        if split is None:
            return
        found.append(split)
        recurse(lo, split, depth + 1)
        recurse(split, hi, depth + 1)

    recurse(0, len(vals), 1)
    return sorted(found)


def lasting_steps(values: list[float], threshold: float, noise_k: float, min_history: int) -> list[int]:
    """The step changes the gate counts: those with ``min_history`` points on each side (a lone
    point is not a step)."""
    return [
        i
        for i in step_changes(values, threshold, noise_k, min_size=min_history)
        if len(values) - i >= min_history
    ]


__all__ = ["lasting_steps", "step_changes"]
