"""Colour limits of heatmaps, without Qt: automatic (robust percentiles), the user's own, and a
logarithmic scale for positive data. The screen, the colour bar and exports all use these."""

from __future__ import annotations

import math

import numpy as np

AUTO_PERCENTILES = (1.0, 99.0)  # one outlier must not wash out the map


def robust_limits(values: np.ndarray, signed: bool) -> tuple[float, float]:
    """The 1st and 99th percentiles of the finite values (symmetric about 0 when ``signed``)."""
    finite = values[np.isfinite(values)]
    lo, hi = (float(v) for v in np.percentile(finite, AUTO_PERCENTILES)) if len(finite) else (0.0, 1.0)
    if signed:
        lim = max(abs(lo), abs(hi)) or 1.0
        return -lim, lim
    return (lo, hi) if hi > lo else (lo, lo + 1.0)


def log_possible(values: np.ndarray, signed: bool) -> bool:
    """A log colour scale means something for unsigned data with positive values."""
    return not signed and bool((np.asarray(values)[np.isfinite(values)] > 0).any())


def shown_values(values: np.ndarray, log: bool) -> np.ndarray:
    """What the colours encode: the values, or their log10; on a log scale values <= 0 take the
    colour of the smallest positive value (they are data, not the NaN colour)."""
    if not log:
        return values
    v = np.asarray(values, np.float64)
    positive = v[np.isfinite(v) & (v > 0)]
    floor = float(positive.min()) if len(positive) else 1.0
    with np.errstate(invalid="ignore"):
        return np.where(np.isfinite(v), np.log10(np.maximum(v, floor)), v)


def colour_levels(
    values: np.ndarray, signed: bool, manual: tuple[float, float] | None, log: bool
) -> tuple[float, float]:
    """The colour bar's (low, high) in the units of ``shown_values``: the user's limits if given
    (on a log scale their log10; a limit <= 0 there falls back to the automatic one), else the
    robust percentiles of what is shown."""
    auto = robust_limits(shown_values(values, log), signed and not log)
    if manual is None:
        return auto
    lo, hi = manual
    if log:
        lo = math.log10(lo) if lo > 0 else auto[0]
        hi = math.log10(hi) if hi > 0 else auto[1]
    return (lo, hi) if hi > lo else (lo, lo + (abs(lo) or 1.0) * 1e-6)


def check_limits(lo: float, hi: float) -> tuple[float, float]:
    """Manual limits as given by a user or a layout: two finite numbers, low below high."""
    lo, hi = float(lo), float(hi)
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise ValueError(f"colour limits ({lo}, {hi}) must be finite numbers")
    if not lo < hi:
        raise ValueError(f"colour limits ({lo}, {hi}): the low limit must be below the high one")
    return lo, hi
