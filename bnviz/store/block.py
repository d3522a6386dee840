"""One flush worth of recorded rows, in host memory: what the training side hands the writer.

Plain numpy arrays, laid out as in ``schema``: L layers, K probe channels, NQ quantiles,
NB = HIST_BINS + len(HIST_EXTRA). Every tier has its own row count; any may be zero.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Block:
    # summary tier: (r,) step, phase, wall time; (r, L, F_S) fields; (r, L, 3, NQ) quantiles of
    # pre / xhat / post; (r, L, K, NQ) quantiles of y for each probe channel.
    summary_step: np.ndarray
    summary_phase: np.ndarray
    summary_time: np.ndarray
    summary: np.ndarray
    quantiles: np.ndarray
    probes: np.ndarray
    # channel tier: (rc,) step, phase; one (rc, F_C, C_l) array per layer.
    channel_step: np.ndarray
    channel_phase: np.ndarray
    channels: list[np.ndarray]
    # histogram tier: (rh,) step, phase; (rh, L, 3, NB) int32 counts; (rh, L, 3, 2) float32 lo/hi.
    hist_step: np.ndarray
    hist_phase: np.ndarray
    hist_counts: np.ndarray
    hist_range: np.ndarray
    # user scalars: (rs,) step; (rs, MAX_SCALARS) float64, NaN where a scalar was not logged.
    scalar_step: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    scalar_values: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.float64))
    # every scalar name known so far, in slot order
    scalar_names: list[str] = field(default_factory=list)
    # steps the recorder could not record (writer fell behind) since the previous block
    dropped_steps: int = 0
