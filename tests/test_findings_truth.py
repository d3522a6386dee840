"""Findings from a real recording agree with the full-tensor truth (tests/truth.py).

Constructed channels at a power-of-two shape (batch 128, 8x8, padded conv, dark image border):
truly dead / saturated ones, and alive ones whose corner pixel is always dead (the old grid
sampler put every sample on that pixel and reported them as dead).
"""

import numpy as np
import pytest
import torch
import truth
from torch import nn

import bnviz
from bnviz.analysis.findings import findings
from bnviz.store import open_run

C = 16
DEAD = [1, 6, 11]
SATURATED = [2, 9]
STEPS = 6


def model():
    torch.manual_seed(0)
    m = nn.Sequential(
        nn.Conv2d(3, C, 3, padding=1, bias=False),
        nn.BatchNorm2d(C),
        nn.ReLU(),
        nn.Conv2d(C, C, 3, padding=1, bias=False),
        nn.BatchNorm2d(C),
        nn.Tanh(),
    )
    with torch.no_grad():
        for conv in (m[0], m[3]):
            conv.weight.uniform_(0.0, 1.0)  # a smoothing filter: the zero-padded border is the darkest
        m[1].bias.zero_()
        m[1].bias[DEAD] = -4.0
        m[4].weight.fill_(1.2)
        m[4].weight[SATURATED] = 4.0
    return m


def test_dead_and_saturated_findings_only_where_the_truth_has_them(tmp_path):
    net = model()
    seen = truth.Truth(net)
    fractions = {"1": [], "4": []}
    path = tmp_path / "run.h5"
    with bnviz.record(net, path, channel_every=1) as rec:
        for step in range(STEPS):
            seen.reset()
            with torch.no_grad():
                net(truth.image_batch(128, 3, 8, torch.Generator().manual_seed(step)))
            rec.step()
            for layer, (rule, t) in (("1", ("dead", 0.0)), ("4", ("saturated", 2.1783))):
                y = seen.bn[layer]["y"]
                fractions[layer].append(
                    (
                        truth.zone_fraction(truth.per_channel(y), rule, t),
                        truth.zone_fraction(truth.per_channel(y[:, :, :1, :1]), rule, t),
                    )
                )
    run = open_run(path)
    found = {(f.kind, f.layer): set(f.channels) for f in findings(run) if f.kind in ("dead", "saturated")}
    for layer, kind, limit, expected in (("1", "dead", 0.95, DEAD), ("4", "saturated", 0.3, SATURATED)):
        true_all = np.median([f for f, _ in fractions[layer]], axis=0)
        corner = np.median([c for _, c in fractions[layer]], axis=0)
        assert set(np.flatnonzero(true_all >= limit)) == set(expected)  # the construction holds
        if kind == "dead":  # alive channels whose corner pixel is always dead: the old sampler's trap
            assert ((corner >= limit) & (true_all < 0.8)).sum() >= 8, (corner, true_all)
        assert found.get((kind, layer), set()) == set(expected), (layer, found)


def _layer_drop_run(path, interrupt):
    torch.manual_seed(1)

    class Drop(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU())
            self.b = nn.Sequential(nn.Linear(8, 8), nn.BatchNorm1d(8), nn.ReLU())
            self.step = 0

        def forward(self, x):
            h = self.a(x)
            if interrupt and self.step == 3:
                raise KeyboardInterrupt  # the user stops training in the middle of a forward
            return self.b(h) if self.step % 2 else h

    net = Drop()
    with bnviz.record(net, path, channel_every=1) as rec:
        for step in range(6):
            net.step = step
            try:
                net(torch.randn(16, 4))
            except KeyboardInterrupt:
                break
            rec.step()
    return open_run(path)


@pytest.mark.parametrize("interrupt", [False, True])
def test_absent_layers_and_a_partial_row_are_not_nonfinite(tmp_path, interrupt):
    run = _layer_drop_run(tmp_path / "run.h5", interrupt)
    assert np.isnan(run.summary_all("nonfinite_channels", slice(None))).any()  # rows where "b" did not run
    assert not [f for f in findings(run) if f.kind == "nonfinite"]


def test_real_non_finite_values_are_still_found(tmp_path):
    torch.manual_seed(2)
    net = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU())
    path = tmp_path / "nan.h5"
    with bnviz.record(net, path, channel_every=1) as rec:
        for step in range(3):
            x = torch.randn(16, 4)
            if step == 2:
                x[0, 0] = float("nan")
            with torch.no_grad():
                net(x)
            rec.step()
    got = [f for f in findings(open_run(path)) if f.kind == "nonfinite"]
    assert len(got) == 1 and got[0].first_step == 2
