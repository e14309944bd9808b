"""Robust statistics of a figure's history: medians, noise estimates and the samples test.

Noise is estimated robustly, so that one odd run does not widen or narrow a band: 1.4826 x the
median absolute deviation (MAD), which equals the standard deviation for normal data, and a
stored interquartile range / 1.349, which does too. Timing noise is multiplicative, so timing
figures are measured on the log scale.
"""

from __future__ import annotations

import math

#: MAD x this is the standard deviation of normal data.
MAD_TO_SIGMA = 1.4826
#: IQR x this is the standard deviation of normal data.
IQR_TO_SIGMA = 1 / 1.349


def median(values: list[float]) -> float:
    """The median of ``values`` (the mean of the middle two for an even count)."""
    ordered = sorted(values)
    n = len(ordered)
    mid = n // 2
    return ordered[mid] if n % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def noise_sigma(values: list[float], spreads: list[float]) -> float:
    """The history's noise, as a robust standard deviation (0 when nothing tells)."""
    sigma = 0.0
    if len(values) >= 3:
        med = median(values)
        sigma = MAD_TO_SIGMA * median([abs(v - med) for v in values])
    good = [s for s in spreads if s is not None and not math.isnan(s)]
    if good:
        sigma = max(sigma, median(good) * IQR_TO_SIGMA)
    return sigma


def log_noise_sigma(values: list[float], spreads: list[float], level: float) -> float:
    """Relative noise (sigma of log values) of positive figures: the larger of 1.4826 x MAD of the
    log values and the median stored IQR / 1.349 relative to ``level``."""
    sigma = 0.0
    if len(values) >= 3:
        logs = [math.log(v) for v in values]
        med = median(logs)
        sigma = MAD_TO_SIGMA * median([abs(v - med) for v in logs])
    good = [s for s in spreads if s is not None and not math.isnan(s)]
    if good and level > 0:
        sigma = max(sigma, median(good) * IQR_TO_SIGMA / level)
    return sigma


def log_mad_sigma(values: list[float]) -> float:
    """1.4826 x the median absolute deviation of the log values (0 for fewer than 3)."""
    if len(values) < 3 or min(values) <= 0:
        return 0.0
    logs = [math.log(v) for v in values]
    med = median(logs)
    return MAD_TO_SIGMA * median([abs(v - med) for v in logs])


def slower_p_value(tonight: list[float], history: list[float]) -> float:
    """One-sided Mann-Whitney U p-value that tonight's samples are larger (1.0 without samples)."""
    if len(tonight) < 3 or len(history) < 3:
        return 1.0
    from scipy.stats import mannwhitneyu

    return float(mannwhitneyu(tonight, history, alternative="greater").pvalue)


__all__ = [
    "IQR_TO_SIGMA",
    "MAD_TO_SIGMA",
    "log_mad_sigma",
    "log_noise_sigma",
    "median",
    "noise_sigma",
    "slower_p_value",
]
