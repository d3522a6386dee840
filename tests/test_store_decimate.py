"""Decimated series keep every spike and every NaN gap of the full series."""

import numpy as np
import pytest

from bnviz.store import open_run
from bnviz.store.decimate import decimate
from bnviz.store.synthetic import NAN_AT, pathology_layers, write_synthetic_run


def test_spikes_survive_a_thousandfold_reduction():
    rng = np.random.default_rng(0)
    y = rng.standard_normal(1_000_000)
    y[123_457], y[876_543] = 50.0, -40.0
    x, lo, hi, mean = decimate(np.arange(len(y)), y, 1000)
    assert len(x) == len(lo) == len(hi) == len(mean) == 1000
    assert hi.max() == 50.0 and lo.min() == -40.0
    assert x[np.argmax(hi)] <= 123_457 < x[np.argmax(hi) + 1]
    # buckets tile the series: min/max/mean per bucket equal a direct computation
    starts = np.append(x.astype(int), len(y))
    k = 417
    part = y[starts[k] : starts[k + 1]]
    assert (lo[k], hi[k]) == (part.min(), part.max()) and mean[k] == pytest.approx(part.mean())


def test_all_nan_buckets_stay_nan_and_partial_ones_ignore_nan():
    y = np.arange(100, dtype=float)
    y[20:40] = np.nan  # buckets 2 and 3 of 10 are gaps
    y[45] = np.nan  # bucket 4 keeps its other values
    x, lo, hi, mean = decimate(np.arange(100) * 10, y, 10)
    assert np.isnan(lo[2:4]).all() and np.isnan(hi[2:4]).all() and np.isnan(mean[2:4]).all()
    assert (lo[4], hi[4]) == (40, 49)
    assert mean[4] == pytest.approx(np.mean([v for v in range(40, 50) if v != 45]))
    np.testing.assert_array_equal(x, np.arange(10) * 100)


def test_short_series_come_back_unchanged():
    y = np.array([1.0, np.nan, 3.0])
    x, lo, hi, mean = decimate([5, 6, 7], y, 10)
    np.testing.assert_array_equal(lo, y)
    np.testing.assert_array_equal(mean, y)
    with pytest.raises(ValueError):
        decimate([1], [1.0], 0)


def test_run_decimated_shows_the_nan_onset_as_a_gap(tmp_path):
    steps = 2000
    write_synthetic_run(
        tmp_path / "r.h5",
        layers=7,
        channels=4,
        steps=steps,
        pathologies=("nan",),
        flush_rows=256,
        channel_every=50,
        hist_every=50,
    )
    layer = pathology_layers(7)["nan"]
    with open_run(tmp_path / "r.h5") as run:
        x, lo, hi, mean = run.decimated(layer, "pre_mean", 100)
        gap = np.isnan(mean)
        assert len(x) == 100 and gap.any() and not gap.all()
        assert x[gap].min() >= NAN_AT * steps - steps / 100
        x2, *_ = run.decimated(layer, "pre_mean", 10, rows=run.rows("train")[:500])
        assert x2[0] == 0 and x2[-1] < 500
