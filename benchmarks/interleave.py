"""Interleaved timing by chunks of steps: what a variant costs per step on average, load-robust.

Recording does part of its work only every few steps (a block of rows computed at an end_step,
a flush handed to the writer), so a per-step median leaves that work out and flatters it. Here
each variant runs ``chunk`` consecutive steps at a time, variants take turns chunk by chunk in
rotating order, and a ratio pairs a chunk with the base variant's chunk of the same turn: the
mean over a chunk counts every step, the pairing cancels the machine's slow drifts. Choose
``chunk`` to span the periodic work several times (``rows_per_compute`` steps, a flush).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def interleaved_chunks(
    steps: dict[str, Callable[[], None]], chunk: int, turns: int, clock: Callable[[], float] = time.perf_counter
) -> dict[str, list[float]]:
    """Mean seconds per step of each of ``turns`` chunks of ``chunk`` steps, per variant."""
    names = list(steps)
    times: dict[str, list[float]] = {n: [] for n in names}
    for turn in range(turns):
        k = turn % len(names)
        for name in names[k:] + names[:k]:
            step = steps[name]
            t = clock()
            for _ in range(chunk):
                step()
            times[name].append((clock() - t) / chunk)
    return times


def quartiles(values) -> tuple[float, float, float]:
    """(median, first quartile, third quartile)."""
    v = sorted(values)
    return statistics.median(v), v[len(v) // 4], v[(3 * len(v)) // 4]


def ratios(times: dict[str, list[float]], base: str) -> dict[str, tuple[float, float, float]]:
    """Per variant: quartiles of (its chunk / the base's chunk of the same turn)."""
    return {n: quartiles([t / b for t, b in zip(ts, times[base])]) for n, ts in times.items() if n != base}


def differences_us(times: dict[str, list[float]], base: str) -> dict[str, tuple[float, float, float]]:
    """Per variant: quartiles of (its chunk - the base's chunk of the same turn), microseconds per step."""
    return {n: quartiles([(t - b) * 1e6 for t, b in zip(ts, times[base])]) for n, ts in times.items() if n != base}


def describe(q: tuple[float, float, float], digits: int = 3) -> str:
    m, lo, hi = q
    return f"{m:.{digits}f} (quartiles {lo:.{digits}f}-{hi:.{digits}f})"
