"""BN maths about where a channel's outputs land: the activation's zone and the running statistics.

Pure numpy on per-channel arrays of any shape (rows x channels, usually), so the app, the
findings and the tests share one definition.
"""

from __future__ import annotations

import math

import numpy as np


def zone_bounds(zone_rule: str, zone_threshold: float) -> tuple[float, float]:
    """The activation's zone as (lo, hi): y <= lo or y >= hi (an infinite bound: that side has none).

    The rules of the layer table (hooks/zone_rules.py): "dead": y <= T (the ReLU family);
    "saturated" (sigmoid, tanh, hardtanh) and "bound" (no activation): |y| >= T.
    """
    t = float(zone_threshold)
    if zone_rule == "dead":
        return t, math.inf
    if zone_rule in ("saturated", "bound"):
        return -abs(t), abs(t)
    raise ValueError(f"unknown zone rule {zone_rule!r}")


def normal_cdf(x: np.ndarray) -> np.ndarray:
    """Standard normal CDF, vectorised (Abramowitz-Stegun 7.1.26, |error| < 1.5e-7); ±inf map to 0/1."""
    x = np.asarray(x, dtype=np.float64)
    z = np.abs(x) / math.sqrt(2.0)
    t = 1.0 / (1.0 + 0.3275911 * z)
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))))
    with np.errstate(over="ignore", invalid="ignore"):
        erf = 1.0 - poly * np.exp(-z * z)
    return 0.5 * (1.0 + np.sign(x) * np.where(np.isinf(x), 1.0, erf))


def zone_mass(gamma: np.ndarray, beta: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Share of y = γ·x̂ + β in the zone (y <= lo or y >= hi) when x̂ is unit normal.

    x̂ is the channel's normalised input, about N(0, 1) in training, so this is what γ and β
    alone do to the channel: Φ((lo - β)/|γ|) + Φ((β - hi)/|γ|). γ = 0 puts every output at β.
    """
    g = np.abs(np.asarray(gamma, dtype=np.float64))
    b = np.asarray(beta, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        below, above = (lo - b) / g, (b - hi) / g
    # γ = 0 with β exactly on an edge gives 0/0: the output sits on the edge, in the zone.
    mass = normal_cdf(np.where(np.isnan(below) & ~np.isnan(b), np.inf, below)) + normal_cdf(above)
    return np.where(np.isfinite(g) & np.isfinite(b), np.minimum(mass, 1.0), np.nan)


def running_gap(batch_mean: np.ndarray, running_mean: np.ndarray, running_var: np.ndarray, eps: float) -> np.ndarray:
    """|batch mean - running mean| in running standard deviations: how differently eval normalises.

    The per-channel form of the summary field ``run_mean_gap``.
    """
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.abs(np.asarray(batch_mean, np.float64) - running_mean) / np.sqrt(
            np.asarray(running_var, np.float64) + eps
        )


def running_var_logratio(batch_var: np.ndarray, running_var: np.ndarray, eps: float) -> np.ndarray:
    """|log((batch var + eps) / (running var + eps))|: the per-channel form of ``run_var_logratio``.

    Training normalises with the biased batch variance, running_var holds the unbiased one, so
    with n values per channel this is at least log(n / (n - 1)) even when nothing drifts.
    """
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.abs(np.log((np.asarray(batch_var, np.float64) + eps) / (np.asarray(running_var, np.float64) + eps)))
