"""The zone reported for a BN layer is measured on what its activation really receives.

Each model is a block as torchvision / transformers write it; the truth is the activation
module's own input (tests/truth.py hooks), compared with the recorded per-channel zone fractions
within the binomial bound of tests/test_estimator_truth.py.
"""

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import truth
from torch import nn

from bnviz.hooks import instrument
from bnviz.hooks.engine import StatsEngine
from bnviz.store import schema

CF = {n: i for i, n in enumerate(schema.CHANNEL_FIELDS)}
C = 16


class BasicBlock(nn.Module):
    """torchvision's: one ReLU module called twice, ``out += identity``, a downsample BN."""

    def __init__(self, cin=8, c=C, downsample=True):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(cin, c, 3, padding=1, bias=False), nn.BatchNorm2d(c)
        self.relu = nn.ReLU(inplace=True)
        self.conv2, self.bn2 = nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c)
        self.downsample = nn.Sequential(nn.Conv2d(cin, c, 1, bias=False), nn.BatchNorm2d(c)) if downsample else None

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out += identity
        return self.relu(out)


class Bottleneck(nn.Module):
    def __init__(self, c=C):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(c, c // 2, 1, bias=False), nn.BatchNorm2d(c // 2)
        self.conv2, self.bn2 = nn.Conv2d(c // 2, c // 2, 3, padding=1, bias=False), nn.BatchNorm2d(c // 2)
        self.conv3, self.bn3 = nn.Conv2d(c // 2, c, 1, bias=False), nn.BatchNorm2d(c)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        out += x
        return self.relu(out)


class FunctionalResidual(nn.Module):
    def __init__(self, c=C):
        super().__init__()
        self.conv, self.bn = nn.Conv2d(c, c, 3, padding=1), nn.BatchNorm2d(c)

    def forward(self, x):
        return F.relu(self.bn(self.conv(x)) + x)


class InvertedResidual(nn.Module):
    """MobileNetV2: expand, depthwise, linear bottleneck (no activation), residual add."""

    def __init__(self, c=C):
        super().__init__()
        h = 2 * c
        self.conv = nn.Sequential(
            nn.Conv2d(c, h, 1, bias=False),
            nn.BatchNorm2d(h),
            nn.ReLU6(inplace=True),
            nn.Conv2d(h, h, 3, padding=1, groups=h, bias=False),
            nn.BatchNorm2d(h),
            nn.ReLU6(inplace=True),
            nn.Conv2d(h, c, 1, bias=False),
            nn.BatchNorm2d(c),
        )

    def forward(self, x):
        return x + self.conv(x)


class RegNetYLayer(nn.Module):
    """transformers' RegNetYLayer: conv-bn-act twice, squeeze-excitation, conv-bn, shortcut, act."""

    def __init__(self, cin=8, c=C):
        super().__init__()
        self.a = nn.Sequential(nn.Conv2d(cin, c, 1, bias=False), nn.BatchNorm2d(c), nn.ReLU())
        self.b = nn.Sequential(nn.Conv2d(c, c, 3, padding=1, groups=4, bias=False), nn.BatchNorm2d(c), nn.ReLU())
        self.se = nn.Sequential(
            nn.AdaptiveAvgPool2d(1), nn.Conv2d(c, 4, 1), nn.ReLU(), nn.Conv2d(4, c, 1), nn.Sigmoid()
        )
        self.c = nn.Sequential(nn.Conv2d(c, c, 1, bias=False), nn.BatchNorm2d(c))
        self.shortcut = nn.Sequential(nn.Conv2d(cin, c, 1, bias=False), nn.BatchNorm2d(c))
        self.activation = nn.ReLU()

    def forward(self, x):
        residual = x
        h = self.b(self.a(x))
        h = self.c(h * self.se(h))
        h += self.shortcut(residual)
        return self.activation(h)


class MBConv(nn.Module):
    """EfficientNet: expand-bn-SiLU, depthwise-bn-SiLU, SE, project-bn, drop path, residual add."""

    def __init__(self, c=C):
        super().__init__()
        h = 2 * c
        self.expand = nn.Sequential(nn.Conv2d(c, h, 1, bias=False), nn.BatchNorm2d(h), nn.SiLU())
        self.dw = nn.Sequential(nn.Conv2d(h, h, 3, padding=1, groups=h, bias=False), nn.BatchNorm2d(h), nn.SiLU())
        self.se = nn.Sequential(
            nn.AdaptiveAvgPool2d(1), nn.Conv2d(h, 4, 1), nn.SiLU(), nn.Conv2d(4, h, 1), nn.Sigmoid()
        )
        self.project = nn.Sequential(nn.Conv2d(h, c, 1, bias=False), nn.BatchNorm2d(c))

    def forward(self, x):
        h = self.dw(self.expand(x))
        h = self.project(h * self.se(h))
        keep = (torch.rand(x.shape[0], 1, 1, 1, generator=torch.Generator().manual_seed(0)) > 0.2).float()
        return x + h * keep / 0.8


class ReshapeAs(nn.Module):
    """A BatchNorm1d over (N * T, C) whose output is reshaped back before its GELU module."""

    def __init__(self, c=C):
        super().__init__()
        self.bn, self.act = nn.BatchNorm1d(c), nn.GELU()

    def forward(self, x):  # x (N, T, C)
        return self.act(self.bn(x.reshape(-1, x.shape[-1])).reshape_as(x))


def record(model, x, steps=1):
    ins = instrument(model)
    engine = StatsEngine(ins, capacity_rows=4)
    seen = truth.Truth(model)
    with torch.no_grad():
        for step in range(steps):
            seen.reset()
            model(x)
            engine.end_step(step)
    block = engine.take_block().wait()
    seen.remove()
    return block, {li.path: li for li in ins.layers}, seen, ins


def assert_zone_matches(block, li, received, row=-1):
    """Recorded sat_y of layer ``li`` against the truth on the tensor its activation received."""
    values = truth.per_channel(received)
    f = truth.zone_fraction(values, li.zone_rule, li.zone_threshold)
    got = block.channels[li.index][row, CF["sat_y"]]
    se = truth.binomial_se(f, min(64, values.shape[1]), values.shape[1])
    assert np.mean(np.abs(got - f)) <= 1.25 * np.mean(se) + 1e-6, (li.path, got, f)
    return f


def images(n=32, c=8, size=16, seed=0):
    return truth.image_batch(n, c, size, torch.Generator().manual_seed(seed))


def table(layers):
    return {p: (li.activation, li.activation_via, li.zone_input) for p, li in layers.items()}


def test_basic_block_zone_is_taken_after_the_residual_add():
    torch.manual_seed(0)
    block, layers, seen, _ = record(BasicBlock(), images())
    assert table(layers) == {
        "bn1": ("relu", "", "y"),
        "bn2": ("relu", "add", "activation"),
        "downsample.1": ("relu", "add", "activation"),
    }
    first, after_add = seen.act["relu"]  # the shared ReLU module: its two calls
    assert_zone_matches(block, layers["bn1"], first)
    f = assert_zone_matches(block, layers["bn2"], after_add)
    assert_zone_matches(block, layers["downsample.1"], after_add)
    assert np.isnan(block.channels[layers["bn2"].index][-1, CF["sat_xhat"]]).all()  # x-hat is not what relu sees
    # the identity of a block inside a stage: the previous block's ReLU output (>= 0)
    torch.manual_seed(0)
    block, layers, seen, _ = record(BasicBlock(cin=C, downsample=False), (4 * images(c=C) + 1).relu())
    assert table(layers)["bn2"] == ("relu", "add", "activation")
    f = assert_zone_matches(block, layers["bn2"], seen.act["relu"][1])
    y_only = truth.zone_fraction(truth.per_channel(seen.bn["bn2"]["y"]), "dead", 0.0)
    assert y_only.mean() > 0.45 and f.mean() < y_only.mean() - 0.1  # what the old attribution reported
    assert abs(block.summary[0, layers["bn2"].index, schema.SUMMARY_FIELDS.index("sat_y")] - f.mean()) < 0.05


def test_bottleneck_and_regnet():
    torch.manual_seed(1)
    block, layers, seen, _ = record(Bottleneck(), images(c=C, seed=1))
    assert table(layers)["bn3"] == ("relu", "add", "activation")
    assert table(layers)["bn1"] == ("relu", "", "y")
    assert_zone_matches(block, layers["bn3"], seen.act["relu"][-1])
    torch.manual_seed(2)
    block, layers, seen, _ = record(RegNetYLayer(), images(seed=2))
    assert table(layers) == {
        "a.1": ("relu", "", "y"),
        "b.1": ("relu", "", "y"),
        "c.1": ("relu", "add", "activation"),
        "shortcut.1": ("relu", "add", "activation"),
    }
    for path in ("c.1", "shortcut.1"):
        assert_zone_matches(block, layers[path], seen.act["activation"][0])


def test_functional_relu_after_an_add_makes_no_zone_claim():
    torch.manual_seed(3)
    _, layers, _, _ = record(FunctionalResidual(), images(c=C, seed=3))
    li = layers["bn"]
    assert (li.activation, li.activation_via, li.activation_seen, li.zone_input) == (
        "none",
        "add",
        "relu (functional)",
        "none",
    )
    assert li.zone_rule == "bound"  # no activation's zone: only "far outside a normalised range"


def test_linear_bottleneck_and_mbconv_have_no_activation_after_the_add():
    torch.manual_seed(4)
    _, layers, _, _ = record(InvertedResidual(), images(c=C, seed=4))
    assert table(layers) == {"conv.1": ("relu6", "", "y"), "conv.4": ("relu6", "", "y"), "conv.7": ("none", "", "y")}
    torch.manual_seed(5)
    block, layers, seen, _ = record(MBConv(), images(c=C, seed=5))
    assert table(layers) == {"expand.1": ("silu", "", "y"), "dw.1": ("silu", "", "y"), "project.1": ("none", "", "y")}
    li = layers["expand.1"]
    assert li.zone_rule == "dead" and -4.0 < li.zone_threshold < -3.9  # SiLU's gradient vanishes far below 0
    assert_zone_matches(block, li, seen.act["expand.2"][0])


def test_reshape_as_keeps_the_values():
    torch.manual_seed(6)
    x = torch.randn(16, 8, C) * 2 + 0.3
    block, layers, seen, _ = record(ReshapeAs(), x)
    li = layers["bn"]
    assert (li.activation, li.activation_via, li.zone_input) == ("gelu", "", "y")
    assert_zone_matches(block, li, seen.bn["bn"]["y"])


class LayerDrop(nn.Module):
    """The second block is skipped in the first forward (stochastic depth at its extreme)."""

    def __init__(self):
        super().__init__()
        self.first = nn.Sequential(nn.Linear(8, C), nn.BatchNorm1d(C), nn.ReLU())
        self.dropped = nn.Sequential(nn.Linear(C, C), nn.BatchNorm1d(C), nn.Tanh())
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        h = self.first(x)
        return self.dropped(h) if self.calls > 1 else h


def test_a_layer_skipped_in_the_first_forward_is_detected_when_it_first_runs():
    torch.manual_seed(7)
    model = LayerDrop()
    block, layers, seen, ins = record(model, torch.randn(64, 8), steps=2)
    assert table(layers)["dropped.1"] == ("tanh", "", "y")
    assert [li.path for li in ins.layers] == ["first.1", "dropped.1"]
    assert np.isnan(block.summary[0, 1]).all()  # not run in the first row
    assert_zone_matches(block, layers["dropped.1"], seen.bn["dropped.1"]["y"])
    assert not model._forward_pre_hooks and not model._forward_hooks  # every layer seen: no hook left


def test_the_layer_table_once_written_no_longer_changes():
    model = LayerDrop()
    ins = instrument(model)
    engine = StatsEngine(ins, capacity_rows=4)
    model(torch.randn(8, 8))
    written = engine.layer_table()
    model(torch.randn(8, 8))
    assert engine.layer_table() == written and written[1]["activation"] == "unknown"
    assert not model._forward_pre_hooks and not model._forward_hooks


@pytest.mark.parametrize("make", [BasicBlock, RegNetYLayer])
def test_models_with_measured_activations_save_and_copy_without_bnviz(make, tmp_path):
    model = make()
    ins = instrument(model)
    StatsEngine(ins, capacity_rows=2)
    for when in ("before", "after"):
        if when == "after":
            model(images())
        for copied in (copy.deepcopy(model), _reload(model, tmp_path / f"{when}.pt")):
            assert not any(type(m).__module__.startswith("bnviz") for m in copied.modules())
            assert not any(k.startswith("_bnviz") for m in copied.modules() for k in vars(m))
            assert not copied._forward_hooks and all(inert(h) for h in copied._forward_pre_hooks.values())
            copied(images())  # runs as a plain model
    ins.detach()
    assert not any(type(m).__module__.startswith("bnviz") for m in model.modules())


def inert(hook):
    """The observer's hook as a copy or a saved model carries it: ``{}.get``, a no-op of Python's own."""
    return getattr(hook, "__self__", None) == {} and hook.__name__ == "get"


def _reload(model, path):
    torch.save(model, path)
    return torch.load(path, weights_only=False)
