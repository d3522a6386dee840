"""Rows computed as a block equal rows computed one at a time, in every situation the row rules
have a case for: smaller last batches, changing image sizes, eval passes inside a step, gradient
accumulation, a layer run twice per step, Probes, residual zones, frozen / subclassed BN and a
buffer too small for a flush (the per-row numbers themselves are checked against independent
oracles in test_engine.py and test_estimator_truth.py)."""

import dataclasses

import models  # tests/models.py (pytest's pythonpath)
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from bnviz.hooks import Probe, instrument, row_stats
from bnviz.hooks.engine import StatsEngine

STEPS = 13


class Residual(nn.Module):
    """conv-BN-ReLU, conv-BN, + identity, ReLU: the second BN's zone is taken after the add."""

    def __init__(self):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(3, 6, 3, padding=1, bias=False), nn.BatchNorm2d(6)
        self.conv2, self.bn2 = nn.Conv2d(6, 6, 3, padding=1, bias=False), nn.BatchNorm2d(6)
        self.relu = nn.ReLU()
        self.head = nn.Linear(6, 3)

    def forward(self, x):
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.relu(self.bn2(self.conv2(x)) + x)
        return self.head(x.mean((2, 3)))


class ProbedMLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1, self.probe, self.fc2 = nn.Linear(10, 12), Probe(12), nn.Linear(12, 3)
        self.bn = nn.BatchNorm1d(12, affine=False)

    def forward(self, x):
        return self.fc2(torch.tanh(self.bn(self.probe(self.fc1(x)))))


def mlp_data(i):
    g = torch.Generator().manual_seed(i)
    n = 16 if i % 7 else 5  # a smaller last batch now and then
    return torch.randn(n, 10, generator=g) * (1 + i / 4), torch.randint(0, 3, (n,), generator=g)


def image_data(i):
    g = torch.Generator().manual_seed(i)
    hw = 8 if i % 5 else 12  # the image size changes
    return torch.randn(8, 3, hw, hw, generator=g) * (1 + i / 4), torch.randint(0, 3, (8,), generator=g)


def reused_data(i):
    g = torch.Generator().manual_seed(i)
    return torch.randn(8, 10, generator=g), torch.randint(0, 10, (8,), generator=g)


MODELS = {
    "probed mlp": (ProbedMLP, mlp_data),
    "small cnn": (lambda: models.SmallCNN(classes=3), image_data),
    "residual": (Residual, image_data),
    "layer twice per step": (models.ReusedBN, reused_data),
    "frozen and subclassed": (models.TimmStyleNet, lambda i: (image_data(i)[0], image_data(i)[1] % 2)),
}
SCHEDULES = {  # name: (engine settings, forwards per optimizer step)
    "every row": (dict(capacity_rows=16), 1),
    "tiers, gradient accumulation": (dict(capacity_rows=16, every=2, channel_every=2, hist_every=3), 2),
    "buffer full": (dict(capacity_rows=3), 1),  # eval rows come when it is full: dropped
}


def record(make, data, schedule, rows_per_compute, accumulate):
    torch.manual_seed(0)
    model = make()
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    ins = instrument(model, probes=2)
    engine = StatsEngine(ins, rows_per_compute=rows_per_compute, **schedule)
    blocks = []
    for step in range(STEPS):
        for k in range(accumulate):
            x, y = data(step * accumulate + k)
            F.cross_entropy(model(x), y).backward()
        if step % 4 == 2:  # an eval pass inside the step
            model.eval()
            with torch.no_grad():
                model(data(1000 + step)[0])
            model.train()
        opt.step()
        opt.zero_grad()
        engine.end_step(step)
        if step % 3 == 2:
            blocks.append(engine.take_block().wait())
    engine.finish()
    blocks.append(engine.take_block().wait())
    ins.detach()
    return blocks


def fields(block):
    out = {}
    for f in dataclasses.fields(block):
        if f.name != "summary_time":  # the wall clock
            value = getattr(block, f.name)
            out[f.name] = value if isinstance(value, list) else [value]
    return out


@pytest.mark.parametrize("schedule", list(SCHEDULES))
@pytest.mark.parametrize("model", list(MODELS))
def test_a_block_of_rows_records_what_its_rows_one_at_a_time_record(model, schedule):
    make, data = MODELS[model]
    settings, accumulate = SCHEDULES[schedule]
    one = record(make, data, settings, 1, accumulate)
    phases = np.concatenate([b.summary_phase for b in one])
    assert (phases == 0).sum() >= STEPS // 2
    if schedule == "buffer full":
        assert sum(b.dropped_steps for b in one) > 0
    else:
        assert (phases == 1).any()
    for rows_per_compute in (3, None):
        block = record(make, data, settings, rows_per_compute, accumulate)
        assert len(block) == len(one)
        for a, b in zip(one, block):
            fa, fb = fields(a), fields(b)
            assert fa.keys() == fb.keys()
            for name in fa:
                for x, y in zip(fa[name], fb[name]):
                    np.testing.assert_array_equal(x, y, err_msg=f"{name}, rows_per_compute={rows_per_compute}")


def test_sticky_ranges_speculating_equals_the_sequential_rule():
    g = torch.Generator().manual_seed(3)
    H, L, P = 40, 4, 32
    # rows whose spread grows now and then (widening events), NaN-padded like excluded values
    scale = torch.cumprod(1 + (torch.rand(H, generator=g) < 0.15).double() * 0.8, 0)
    pooled = torch.randn(2, H, L, P, generator=g, dtype=torch.float64) * scale.view(1, H, 1, 1)
    pooled[:, :, 3] = torch.nan  # a layer absent in every row: its range stays unset
    pooled[:, 5:9, 2] = torch.nan  # absent for a while
    pooled = pooled.sort(-1).values
    extremes = torch.stack([pooled.nan_to_num(torch.inf).amin(-1), pooled.nan_to_num(-torch.inf).amax(-1)], -1)
    extremes[~torch.isfinite(extremes)] = torch.nan
    start = torch.full((2, 2, L), torch.nan, dtype=torch.float64)
    spec, spec_last = row_stats.sticky_ranges(start, extremes, pooled, speculate=True)
    seq, seq_last = row_stats.sticky_ranges(start, extremes, pooled, speculate=False)
    torch.testing.assert_close(spec, seq, rtol=0, atol=0, equal_nan=True)
    torch.testing.assert_close(spec_last, seq_last, rtol=0, atol=0, equal_nan=True)
    widened = (spec[1:, :, 1, :3] > spec[:-1, :, 1, :3]).flatten(1).any(1).sum()
    assert 3 <= widened <= H - 5  # the case is not trivial: the range moved, and not on every row
    assert torch.isnan(spec[:, :, :, 3]).all()


def test_rows_per_compute_must_be_positive():
    with pytest.raises(ValueError, match="rows_per_compute"):
        StatsEngine(instrument(models.SmallCNN()), capacity_rows=4, rows_per_compute=0)
