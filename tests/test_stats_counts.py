"""stats' per-layer reductions and zone counts against plain numpy on the same values: segment sums
and maxima over layers of unequal width (NaN propagating), zone counts of both rule kinds with
padding, values on the thresholds and non-finite values; histogram counts of overflowing and non-finite
values."""

import numpy as np
import pytest
import torch

from bnviz.hooks import stats

SIZES = [3, 1, 8, 5]


@pytest.mark.parametrize("slices", [True, False])  # the CPU's way and the GPU's
def test_segment_sum_and_max_equal_numpy_per_layer(slices):
    g = torch.Generator().manual_seed(0)
    v = torch.randn(2, 4, sum(SIZES), generator=g)
    layer_id = torch.repeat_interleave(torch.arange(len(SIZES)), torch.tensor(SIZES))
    v[1, 2, 3] = torch.nan  # the one-channel layer: its sum and max are NaN, its neighbours' are not
    edges = np.cumsum([0, *SIZES])
    a = v.numpy()
    sums = stats.segment_sum(v, SIZES, layer_id, slices).numpy()
    maxs = stats.segment_max(v, SIZES, layer_id, slices).numpy()
    for layer in range(len(SIZES)):
        part = a[..., edges[layer] : edges[layer + 1]]
        np.testing.assert_allclose(sums[..., layer], part.sum(-1), rtol=1e-6, atol=1e-6)
        np.testing.assert_array_equal(maxs[..., layer], part.max(-1))
    assert np.isnan(sums[1, 2, 1]) and not np.isnan(sums[1, 2, [0, 2, 3]]).any()


@pytest.mark.parametrize("padded", [False, True])
def test_zone_counts_equal_numpy_for_dead_and_saturated_rules(padded):
    g = torch.Generator().manual_seed(1)
    s = 16
    v = torch.randn(3, 4, s, generator=g) * 2
    v[0, 0, :4] = torch.tensor([0.0, -0.0, 1.5, -1.5])  # on the thresholds: in the zone
    v[1, 1, :3] = torch.tensor([torch.nan, torch.inf, -torch.inf])
    # channels 0, 1: rule "dead" v <= 0; channels 2, 3: |v| >= 1.5
    below = torch.tensor([0.0, 0.0, -1.5, -1.5]).view(4, 1)
    above = torch.tensor([torch.nan, torch.nan, 1.5, 1.5]).view(4, 1)
    valid = (torch.arange(s) < torch.tensor([16, 9, 16, 5]).view(4, 1)).float() if padded else None
    out = torch.empty_like(v)
    got = stats.zone_counts(v, below, above, valid, out).numpy()
    a = v.numpy()
    dead = a <= 0
    saturated = np.abs(a) >= 1.5
    truth = np.concatenate([dead[:, :2], saturated[:, 2:]], 1)  # NaN is in neither
    if padded:
        truth &= valid.numpy().astype(bool)
    np.testing.assert_array_equal(got, truth.sum(-1).astype(np.float32))
    assert got.dtype == np.float32


@pytest.mark.parametrize("alias", [False, True])  # the sources in place in u: a group's uneven rows
@pytest.mark.parametrize("nonfinite", [False, True])  # the CPU's pass skipped, or not
def test_histogram_counts_overflow_as_over_and_only_inf_nan_as_nonfinite(alias, nonfinite):
    bins = 8
    values = [-0.99, -0.5, 0.0, 0.49, -3.0, 1e38, 0.99, 2.0]  # 1e38 * scale overflows float32: still over
    if nonfinite:
        values[-2:] = [float("inf"), float("nan")]
    v = torch.tensor(values).view(1, 1, -1)
    u, scratch = torch.empty_like(v), torch.empty_like(v)
    slot = torch.empty(v.shape, dtype=torch.int32)
    if alias:
        u.copy_(v)
    lo, hi = torch.tensor([[-1.0]], dtype=torch.float64), torch.tensor([[1.0]], dtype=torch.float64)
    layer_id = torch.zeros(1, dtype=torch.long)
    counts = stats.histogram([u if alias else v], u, scratch, slot, None, torch.zeros(1), layer_id, lo, hi, 1, bins)
    a = np.array(values)
    finite = np.isfinite(a)
    edges = np.linspace(-1.0, 1.0, bins + 1)
    truth = np.histogram(a[finite & (a >= -1) & (a < 1)], edges)[0]
    expected = [*truth, (a[finite] < -1).sum(), (a[finite] >= 1).sum(), (~finite).sum()]
    np.testing.assert_array_equal(counts[0, 0].numpy(), expected)
