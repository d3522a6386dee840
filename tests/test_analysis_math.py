"""The pure maths under the findings: band drift, the activation's zone, running-statistics gaps."""

from statistics import NormalDist

import numpy as np
import pytest

from bnviz.analysis.drift import band_drift, rolling_median
from bnviz.analysis.zones import normal_cdf, running_gap, running_var_logratio, zone_bounds, zone_mass
from bnviz.store.schema import QUANTILES


def normal_quantiles(mean, sd):
    """(R, NQ) quantiles of N(mean, sd^2) per row, in schema order (min/max at +-3.5 sd)."""
    z = np.array([NormalDist().inv_cdf(q) if 0 < q < 1 else 3.5 * (2 * q - 1) for q in QUANTILES])
    return np.asarray(mean, float)[:, None] + np.asarray(sd, float)[:, None] * z


def test_band_drift_is_zero_for_a_still_distribution_and_scale_free():
    q = normal_quantiles(np.full(50, 3.0), np.full(50, 2.0))
    assert np.allclose(band_drift(q), 0.0)
    moved = normal_quantiles(np.linspace(0, 5, 50), np.ones(50))
    scaled = normal_quantiles(10 * np.linspace(0, 5, 50), 10 * np.ones(50))
    assert np.allclose(band_drift(moved), band_drift(scaled))


def test_band_drift_counts_early_band_widths():
    # The 15-85 band of a unit normal is 2 * 1.0364 wide; moving the mean by one width is drift 1.
    width = 2 * NormalDist().inv_cdf(0.85)
    mean = np.r_[np.zeros(10), np.full(90, width)]
    d = band_drift(normal_quantiles(mean, np.ones(100)), early_fraction=0.1)
    assert np.allclose(d[:10], 0.0)
    assert np.allclose(d[10:], 1.0)


def test_band_drift_sees_a_widening_band_with_a_still_median():
    sd = np.r_[np.ones(10), np.full(40, 3.0)]
    d = band_drift(normal_quantiles(np.zeros(50), sd))
    # q85 moves from 1.0364 to 3.109: two early half-widths = one early band width
    assert d[-1] == pytest.approx(1.0)


def test_band_drift_keeps_nan_rows_and_survives_an_all_nan_start():
    q = normal_quantiles(np.zeros(20), np.ones(20))
    q[15] = np.nan
    d = band_drift(q)
    assert np.isnan(d[15]) and np.isfinite(np.delete(d, 15)).all()
    assert np.isnan(band_drift(np.full((5, len(QUANTILES)), np.nan))).all()
    assert band_drift(np.zeros((0, len(QUANTILES)))).shape == (0,)


def test_band_drift_of_a_constant_layer_is_finite():
    q = np.zeros((10, len(QUANTILES)))
    q[5:] = 1e-3
    assert np.isfinite(band_drift(q)).all()


def test_rolling_median_removes_a_single_spike_but_keeps_a_step():
    x = np.zeros(21)
    x[10] = 100.0
    assert rolling_median(x, 5).max() == 0.0
    step = np.r_[np.zeros(10), np.ones(10)]
    assert np.array_equal(rolling_median(step, 5), step)


def test_normal_cdf_matches_the_standard_library():
    x = np.linspace(-7, 7, 141)
    expected = np.array([NormalDist().cdf(v) for v in x])
    assert np.abs(normal_cdf(x) - expected).max() < 2e-7
    assert normal_cdf(np.array([-np.inf, np.inf])).tolist() == [0.0, 1.0]


def test_zone_bounds_follow_the_layer_table_rules():
    assert zone_bounds("dead", 0.0) == (0.0, np.inf)
    assert zone_bounds("saturated", 2.0) == (-2.0, 2.0)
    assert zone_bounds("bound", 6.0) == (-6.0, 6.0)
    with pytest.raises(ValueError, match="unknown zone rule"):
        zone_bounds("sideways", 1.0)


def test_zone_mass_is_the_normal_mass_beyond_the_edges():
    # ReLU: y = x̂ + beta is dead for x̂ <= -beta
    assert zone_mass(1.0, 0.0, *zone_bounds("dead", 0.0)) == pytest.approx(0.5, abs=1e-7)
    assert zone_mass(1.0, -2.0, *zone_bounds("dead", 0.0)) == pytest.approx(NormalDist().cdf(2.0), abs=1e-7)
    # tanh-like zone |y| >= 2 with gamma 4: both tails count
    expected = 2 * NormalDist().cdf(-0.5)
    assert zone_mass(-4.0, 0.0, *zone_bounds("saturated", 2.0)) == pytest.approx(expected, abs=1e-7)
    # gamma = 0: every output is beta
    assert zone_mass(0.0, -1.0, *zone_bounds("dead", 0.0)) == 1.0
    assert zone_mass(0.0, 1.0, *zone_bounds("dead", 0.0)) == 0.0
    assert np.isnan(zone_mass(np.nan, 0.0, 0.0, np.inf))


def test_running_gap_and_log_ratio_per_channel():
    gap = running_gap(np.array([1.0, 0.0]), np.array([0.0, 0.0]), np.array([4.0, 1.0]), eps=0.0)
    assert np.allclose(gap, [0.5, 0.0])
    lr = running_var_logratio(np.array([1.0, 2.0]), np.array([2.0, 2.0]), eps=0.0)
    assert np.allclose(lr, [np.log(2.0), 0.0])
