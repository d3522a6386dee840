"""Min/max/mean per bucket: a long series drawn from a few thousand points without losing spikes."""

from __future__ import annotations

import numpy as np


def decimate(x, y, n_buckets: int):
    """Split the series into ``n_buckets`` consecutive buckets of (nearly) equal length.

    Returns ``(xb, lo, hi, mean)``, each of length min(len(y), n_buckets): the x of each
    bucket's first point, and the minimum, maximum and mean of its non-NaN values. A bucket
    whose values are all NaN gives NaN in all three, so a plot shows a gap there. A series no
    longer than ``n_buckets`` comes back unchanged (lo == hi == mean == y)."""
    if n_buckets < 1:
        raise ValueError(f"n_buckets must be >= 1, got {n_buckets}")
    x = np.asarray(x, np.float64)
    y = np.asarray(y, np.float64)
    if x.shape != y.shape or y.ndim != 1:
        raise ValueError(f"x and y must be 1-D of the same length, got {x.shape} and {y.shape}")
    if len(y) <= n_buckets:
        return x.copy(), y.copy(), y.copy(), y.copy()
    starts = np.arange(n_buckets, dtype=np.int64) * len(y) // n_buckets
    valid = ~np.isnan(y)
    lo = np.fmin.reduceat(y, starts)
    hi = np.fmax.reduceat(y, starts)
    count = np.add.reduceat(valid, starts)
    total = np.add.reduceat(np.where(valid, y, 0.0), starts)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = total / count
    return x[starts], lo, hi, mean
