"""Every sampled statistic against the full-tensor truth (tests/truth.py: own hooks, numpy).

The bounds are statistical: what an unbiased sample of the recorded size gives. Per-channel zone
fractions: mean |error| within 1.25 x the binomial standard error of s samples; quantiles: the
share of the true values below the recorded quantile (its rank) within a few standard errors of
q; histograms: each bin's share within a few standard errors. The shapes are the ones where a
sampler aligned with the image grid fails: power-of-two batches and images, padded convs, inputs
whose border differs from their centre.
"""

import numpy as np
import pytest
import torch
import truth
from torch import nn

from bnviz.hooks import instrument
from bnviz.hooks.engine import StatsEngine
from bnviz.store import schema

SF = {n: i for i, n in enumerate(schema.SUMMARY_FIELDS)}
CF = {n: i for i, n in enumerate(schema.CHANNEL_FIELDS)}
TENSOR = {name: i for i, name in enumerate(schema.TENSORS)}
INTERIOR = slice(1, -1)  # quantile levels other than min and max
S, P = 64, 256


def conv_net(channels=16, seed=0):
    """Padded convs, each BN followed by its activation; random γ/β spread the zone fractions."""
    torch.manual_seed(seed)
    c = channels
    model = nn.Sequential(
        nn.Conv2d(3, c, 3, padding=1, bias=False),
        nn.BatchNorm2d(c),
        nn.ReLU(),
        nn.Conv2d(c, c, 3, padding=1, bias=False),
        nn.BatchNorm2d(c),
        nn.Tanh(),
        nn.Conv2d(c, c, 5, padding=2),
        nn.BatchNorm2d(c),
        nn.ReLU(),
    )
    _spread_affine(model)
    return model


def mlp(seed=0, width=48):
    torch.manual_seed(seed)
    model = nn.Sequential(
        nn.Linear(20, width),
        nn.BatchNorm1d(width),
        nn.ReLU(),
        nn.Linear(width, width),
        nn.BatchNorm1d(width),
        nn.Sigmoid(),
    )
    _spread_affine(model)
    return model


def _spread_affine(model):
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.weight.uniform_(0.3, 2.5)
                m.bias.uniform_(-1.5, 1.5)


def record_one(model, x, samples=S, pool=P, activations=None):
    """One recorded training forward: the engine's row and the truth of the same forward."""
    ins = instrument(model, probes=3, activations=activations)
    engine = StatsEngine(ins, capacity_rows=2, samples=samples, pool=pool)
    seen = truth.Truth(model)
    with torch.no_grad():
        model(x)
    engine.end_step(0)
    block = engine.take_block().wait()
    seen.remove()
    ins.detach()
    return block, ins.layer_table(), seen


def check_layer(block, li, d, samples=S, pool=P, ratio=1.25):
    """Every sampled quantity of one layer against the truth; returns the measured error ratios."""
    L = li["index"]
    ys, xh = truth.per_channel(d["y"]), truth.xhat(d)
    xs = truth.per_channel(d["x"])
    m = ys.shape[1]
    s = min(samples, m)
    out = {}
    for field, values in (("sat_y", ys), ("sat_xhat", xh)):
        f = truth.zone_fraction(values, li["zone_rule"], li["zone_threshold"])
        got = block.channels[L][0, CF[field]]
        se = truth.binomial_se(f, s, m)
        err = got - f
        out[field] = truth.mean_abs_ratio(err, se)
        assert np.mean(np.abs(err)) <= ratio * np.mean(se) + 1e-6, (li["path"], field, out[field])
        assert abs(block.summary[0, L, SF[field]] - f.mean()) <= 4 * np.sqrt(np.mean(se**2) / len(f)) + 1e-6
    f = truth.zone_fraction(ys, li["zone_rule"], li["zone_threshold"])
    zone_ch = block.summary[0, L, SF["zone_channels"]]
    assert (f >= 1.0).mean() <= zone_ch <= (f >= 0.9).mean(), (li["path"], zone_ch)

    taken = min(pool, s * len(f))
    for name, values in (("pre", xs), ("xhat", xh), ("post", ys)):
        got = block.quantiles[0, L, TENSOR[name]]
        err = truth.rank_error(values, got, schema.QUANTILES)[INTERIOR]
        se = truth.rank_se(schema.QUANTILES, taken)[INTERIOR]
        out[f"q_{name}"] = truth.mean_abs_ratio(err, se)
        assert np.all(np.abs(err) <= 4 * se + 1 / taken), (li["path"], name, err)
        if name == "post":  # a probe channel's quantiles: its own s samples
            for k, c in enumerate(li["probe_channels"]):
                perr = truth.rank_error(ys[c], block.probes[0, L, k], schema.QUANTILES)[INTERIOR]
                assert np.all(np.abs(perr) <= 4 * truth.rank_se(schema.QUANTILES, s)[INTERIOR] + 1 / s), (c, perr)
        lo, hi = block.hist_range[0, L, TENSOR[name]]
        want = truth.histogram_shares(values, lo, hi, schema.HIST_BINS)
        counts = block.hist_counts[0, L, TENSOR[name]].astype(np.float64)
        n_samples = counts.sum()
        assert n_samples == s * len(f)
        got_h = counts[:-1] / n_samples  # bins, under, over (non-finite: none here)
        se = np.sqrt(want * (1 - want) / n_samples)
        err = got_h - want
        out[f"hist_{name}"] = truth.mean_abs_ratio(err[want > 0], se[want > 0])
        assert np.all(np.abs(err) <= 5 * se + 2 / n_samples), (li["path"], name)
        assert np.mean(np.abs(err[want > 0])) <= ratio * np.mean(se[want > 0]) + 1e-9, (li["path"], name)
    return out


CONV_SHAPES = [(16, 64), (64, 32), (128, 8), (32, 16), (64, 16)]


@pytest.mark.parametrize("batch,size", CONV_SHAPES)
def test_conv_net_at_power_of_two_shapes_matches_the_full_tensor(batch, size):
    g = torch.Generator().manual_seed(batch + size)
    model = conv_net()
    block, table, seen = record_one(model, truth.image_batch(batch, 3, size, g))
    for li in table:
        check_layer(block, li, seen.bn[li["path"]])


@pytest.mark.parametrize("batch", [128, 96, 256])
def test_mlp_matches_the_full_tensor(batch):
    model = mlp()
    x = torch.randn(batch, 20, generator=torch.Generator().manual_seed(batch)) + 0.5
    block, table, seen = record_one(model, x)
    for li in table:
        check_layer(block, li, seen.bn[li["path"]])


def test_fewer_values_than_samples_are_computed_exactly():
    # M = N x spatial <= S: every value is taken once; the fractions and quantiles are the truth's
    model = conv_net(channels=8)
    x = truth.image_batch(4, 3, 4, torch.Generator().manual_seed(1))  # M = 64 = S
    block, table, seen = record_one(model, x)
    for li in table:
        d = seen.bn[li["path"]]
        ys = truth.per_channel(d["y"])
        f = truth.zone_fraction(ys, li["zone_rule"], li["zone_threshold"])
        np.testing.assert_allclose(block.channels[li["index"]][0, CF["sat_y"]], f, atol=1e-6)
        for k, c in enumerate(li["probe_channels"]):
            np.testing.assert_allclose(
                block.probes[0, li["index"], k], np.quantile(ys[c], schema.QUANTILES), rtol=1e-5, atol=1e-5
            )
    one = mlp()
    one.eval()  # N = 1 in eval: one value per channel, exact
    block, table, seen = record_one(one, torch.randn(1, 20))
    for li in table:
        ys = truth.per_channel(seen.bn[li["path"]]["y"])
        f = truth.zone_fraction(ys, li["zone_rule"], li["zone_threshold"])
        np.testing.assert_allclose(block.channels[li["index"]][0, CF["sat_y"]], f, atol=1e-6)


@pytest.mark.parametrize("kind", ["3d", "5d", "channels_last", "strided", "half"])
def test_other_inputs_are_estimated_without_bias(kind):
    torch.manual_seed(3)
    g = torch.Generator().manual_seed(3)
    if kind == "3d":
        model = nn.Sequential(nn.Conv1d(3, 16, 3, padding=1), nn.BatchNorm1d(16), nn.ReLU())
        x = truth.image_batch(32, 3, 32, g)[:, :, 5]  # (32, 3, 32): a border and a centre along L
    elif kind == "5d":
        model = nn.Sequential(nn.Conv3d(3, 16, 3, padding=1), nn.BatchNorm3d(16), nn.ReLU())
        x = truth.image_batch(16, 3, 16, g).unsqueeze(2).repeat(1, 1, 8, 1, 1)  # (16, 3, 8, 16, 16)
    else:
        model = nn.Sequential(nn.BatchNorm2d(16), nn.ReLU())
        x = truth.image_batch(64, 16, 16, g)
        if kind == "channels_last":
            x = x.contiguous(memory_format=torch.channels_last)
        elif kind == "strided":
            x = truth.image_batch(64, 16, 32, g)[:, :, ::2, 1::2]
        else:
            model = model.half()
            x = x.half()
    _spread_affine(model)
    block, table, seen = record_one(model, x)
    for li in table:
        # half precision: y is rounded to half after the sampled y is taken in float32
        check_layer(block, li, seen.bn[li["path"]], ratio=1.3 if kind == "half" else 1.25)


def test_sampled_positions_cover_images_and_pixels():
    # the direct look at the failure mode: where the samples of one channel land
    from bnviz.hooks.sampling import sample_index

    for n, size in ((64, 32), (128, 8), (16, 64), (64, 16)):
        hw = size * size
        idx, s = sample_index(n, 4, hw, S, "cpu")
        flat = idx[1].numpy() - 1 * hw  # channel 1
        image, pixel = flat // (4 * hw), flat % (4 * hw)
        assert s == S and len(set(flat)) == S  # distinct positions
        # spread over the image and the batch as random draws are (not all on one pixel)
        for values, count in ((pixel, hw), (image, n)):
            assert len(set(values)) >= 0.8 * count * (1 - (1 - 1 / count) ** S)
        border = (pixel // size == 0) | (pixel // size == size - 1) | (pixel % size == 0) | (pixel % size == size - 1)
        share = (4 * size - 4) / hw
        assert abs(border.mean() - share) <= 4 * np.sqrt(share * (1 - share) / S) + 1 / S
        other = idx[2].numpy() - 2 * hw
        assert (other != flat).mean() > 0.9  # each channel its own positions: independent errors
