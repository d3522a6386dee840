"""BN maths about where a channel's outputs land: the activation's zone and the running statistics.

Pure numpy on per-channel arrays of any shape (rows x channels, usually), so the app, the
findings and the tests share one definition.
"""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np


def zone_bounds(zone_rule: str, zone_threshold: float, activation: str = "") -> tuple[float, float]:
    """The activation's zone as (lo, hi): y <= lo or y >= hi (an infinite bound: that side has none).

    "dead": y <= T (the ReLU family); "saturated": |y| >= T (sigmoid, tanh); "bound": y <= 0 or
    y >= T (ReLU6), y <= -T or y >= T for hardtanh.
    """
    t = float(zone_threshold)
    if zone_rule == "dead":
        return t, math.inf
    if zone_rule == "saturated" or (zone_rule == "bound" and activation == "hardtanh"):
        return -abs(t), abs(t)
    if zone_rule == "bound":
        return 0.0, t
    raise ValueError(f"unknown zone rule {zone_rule!r}")


def zone_edge(gamma: np.ndarray, beta: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """How far β/|γ| lies past the zone edge, in units of x̂ (about unit normal per channel).

    y = γ·x̂ + β lands in y <= lo for a share Φ((lo - β)/|γ|) of a unit-normal x̂, and in y >= hi
    for Φ((β - hi)/|γ|); this returns the larger argument, so at least Φ(value) of the outputs
    are in the zone. γ = 0 gives ±inf: every output is β.
    """
    g = np.abs(np.asarray(gamma, dtype=np.float64))
    b = np.asarray(beta, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.fmax((lo - b) / g, (b - hi) / g)


def pushed_into_zone(gamma: np.ndarray, beta: np.ndarray, lo: float, hi: float,
                     fraction: float) -> np.ndarray:
    """True where γ and β alone put at least ``fraction`` of a unit-normal x̂ into the zone."""
    edge = zone_edge(gamma, beta, lo, hi)
    with np.errstate(invalid="ignore"):
        return edge >= NormalDist().inv_cdf(fraction)


def running_gap(batch_mean: np.ndarray, running_mean: np.ndarray, running_var: np.ndarray,
                eps: float) -> np.ndarray:
    """|batch mean - running mean| in running standard deviations: how differently eval normalises.

    The per-channel form of the summary field ``run_mean_gap``.
    """
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.abs(np.asarray(batch_mean, np.float64) - running_mean) / np.sqrt(
            np.asarray(running_var, np.float64) + eps)


def running_var_logratio(batch_var: np.ndarray, running_var: np.ndarray, eps: float) -> np.ndarray:
    """|log((batch var + eps) / (running var + eps))|: the per-channel form of ``run_var_logratio``.

    Training normalises with the biased batch variance, running_var holds the unbiased one, so
    with n values per channel this is at least log(n / (n - 1)) even when nothing drifts.
    """
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.abs(np.log((np.asarray(batch_var, np.float64) + eps) / (np.asarray(running_var, np.float64) + eps)))
