"""Step arithmetic for the timeline: pure functions over a sorted array of recorded steps."""

from __future__ import annotations

import numpy as np


def big_jump(n_rows: int) -> int:
    """Rows per Shift+arrow: 5% of the run, at least 10."""
    return max(10, n_rows // 20)


def row_at_or_before(steps: np.ndarray, step: int) -> int | None:
    """Index of the last recorded step <= ``step`` (the first one when ``step`` precedes all)."""
    if len(steps) == 0:
        return None
    i = int(np.searchsorted(steps, step, side="right")) - 1
    return max(i, 0)


def snap(steps: np.ndarray, step: int | None) -> int | None:
    """The recorded step the cursor shows for ``step`` (None: the latest)."""
    if len(steps) == 0:
        return None
    if step is None:
        return int(steps[-1])
    return int(steps[row_at_or_before(steps, step)])


def advance(steps: np.ndarray, step: int | None, rows: int, loop: bool) -> tuple[int | None, bool]:
    """Move ``rows`` recorded rows from ``step``; returns (new step, still playing)."""
    if len(steps) == 0:
        return None, False
    i = row_at_or_before(steps, int(steps[-1]) if step is None else step) or 0
    j = i + rows
    if 0 <= j < len(steps):
        return int(steps[j]), True
    if loop:
        return int(steps[0] if rows > 0 else steps[-1]), True
    return int(steps[-1] if rows > 0 else steps[0]), False
