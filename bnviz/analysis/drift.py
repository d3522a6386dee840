"""Distribution drift: how far a layer's values move away from where training started.

**Band drift** is the measure behind the BN paper's Figure 1. At each recorded row it is the
largest distance of the 15th, 50th or 85th percentile from its early-training value, in units of
the early 15-85 band width: 0 means the band sits where it started, 1 means some percentile moved
by a whole early band width. "Early" is the median over the first ``early_fraction`` of the rows
(at least one row), so one noisy first batch does not define the reference.
"""

from __future__ import annotations

import math
import warnings

import numpy as np

from bnviz.store.schema import QUANTILE_NAMES

BAND = tuple(QUANTILE_NAMES.index(n) for n in ("q15", "q50", "q85"))
# Below this fraction of the percentiles' magnitude a band counts as collapsed, so a constant
# layer does not turn float noise into infinite drift.
_MIN_REL_WIDTH = 1e-6


def nanmedian(a: np.ndarray, axis: int | None = None) -> np.ndarray:
    """np.nanmedian that returns NaN for all-NaN slices without a warning."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmedian(a, axis=axis)


def early_rows(n_rows: int, early_fraction: float) -> int:
    """How many leading rows define the early-training reference."""
    return min(n_rows, max(1, math.ceil(early_fraction * n_rows)))


def band_drift(quantiles: np.ndarray, early_fraction: float = 0.02) -> np.ndarray:
    """(R, NQ) quantiles in ``schema.QUANTILES`` order -> (R,) band drift (NaN where unknown)."""
    q = np.asarray(quantiles, dtype=np.float64)
    if q.shape[0] == 0:
        return np.zeros(0)
    band = q[:, BAND]
    band = np.where(np.isfinite(band), band, np.nan)
    ref = nanmedian(band[: early_rows(len(band), early_fraction)], axis=0)
    if not np.all(np.isfinite(ref)):
        return np.full(len(band), np.nan)
    width = max(ref[2] - ref[0], _MIN_REL_WIDTH * max(1.0, float(np.abs(ref).max())))
    dist = np.abs(band - ref)
    out = np.full(len(band), np.nan)
    ok = np.isfinite(dist).all(axis=1)
    out[ok] = dist[ok].max(axis=1) / width
    return out


def rolling_median(x: np.ndarray, window: int) -> np.ndarray:
    """Centred running median over ``window`` rows (odd; NaN ignored), the same length as ``x``.

    Findings use it so that one unusual batch is not reported as drift.
    """
    x = np.asarray(x, dtype=np.float64)
    if window <= 1 or len(x) == 0:
        return x.copy()
    half = window // 2
    windows = np.sort(
        np.lib.stride_tricks.sliding_window_view(np.pad(x, half, mode="edge"), 2 * half + 1), axis=1
    )  # NaN sorts last
    k = np.isfinite(windows).sum(axis=1)
    lo = np.take_along_axis(windows, np.maximum(k - 1, 0)[:, None] // 2, axis=1)[:, 0]
    hi = np.take_along_axis(windows, (k // 2)[:, None], axis=1)[:, 0]
    return np.where(k > 0, (lo + hi) / 2, np.nan)
