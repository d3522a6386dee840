"""Which activation follows each BN, and the zone rules."""

import math

import models  # tests/models.py (pytest's pythonpath)
import pytest
import torch
from torch import nn

from bnviz.hooks import instrument
from bnviz.hooks.zone_rules import ZONES, check_activation


def detected(model, x):
    ins = instrument(model)
    model(x)
    return {li.path: (li.activation, li.activation_source) for li in ins.layers}


def test_module_activations_including_inplace_relu():
    got = detected(models.SmallCNN(), models.cnn_batch())
    assert got == {"bn1": ("relu", "module"), "bn2": ("relu", "module"), "bn3": ("none", "none")}


def test_sigmoid_mlp_and_reuse():
    assert set(detected(models.SigmoidMLP(), torch.randn(6, 20)).values()) == {("sigmoid", "module")}
    got = detected(models.ReusedBN(), torch.randn(6, 10))
    assert got == {"norms.shared": ("sigmoid", "functional"), "norms.last": ("none", "none")}


def test_functional_calls_views_dropout_and_residual():
    got = detected(models.FunctionalActivations(), models.cnn_batch())
    assert got == {
        "bn_relu": ("relu", "functional"),
        "bn_gelu": ("none", "none"),  # a functional gelu after dropout: its input is not observable later
        "bn_res": ("none", "none"),  # the same after the residual add
        "bn_tanh": ("tanh", "functional"),  # through a view, as a Tensor method
        "bn_leaky": ("leaky_relu", "functional"),
        "bn_relu6": ("relu6", "functional"),
    }


def test_what_lies_between_is_recorded():
    model = models.FunctionalActivations()
    ins = instrument(model)
    model(models.cnn_batch())
    got = {li.path: (li.activation_via, li.activation_seen, li.zone_input) for li in ins.layers}
    assert got["bn_gelu"] == ("dropout", "gelu (functional)", "none")
    assert got["bn_res"] == ("add", "relu (functional)", "none")
    assert got["bn_relu"] == ("", "relu", "y") and got["bn_tanh"] == ("", "tanh", "y")
    leaky = next(li for li in ins.layers if li.path == "bn_leaky")
    assert (leaky.zone_rule, leaky.zone_threshold) == ("bound", 6.0)  # slope 0.2: its gradient never vanishes


def test_bn_after_activation_gets_the_one_after():
    assert detected(models.BNAfterActivation(), torch.randn(5, 12)) == {"bn": ("none", "none")}
    model = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.BatchNorm1d(6), nn.Tanh(), nn.Linear(6, 2))
    assert detected(model, torch.randn(5, 4)) == {"2": ("tanh", "module")}


@pytest.mark.parametrize(
    "act,name",
    [
        (nn.ReLU6(), "relu6"),
        (nn.Hardtanh(), "hardtanh"),
        (nn.ELU(), "elu"),
        (nn.GELU(), "gelu"),
        (nn.SiLU(), "silu"),
        (nn.LeakyReLU(), "leaky_relu"),
        (nn.Sigmoid(), "sigmoid"),
        (nn.Tanh(), "tanh"),
        (nn.Mish(), "unknown"),
    ],
)
def test_module_families(act, name):
    model = nn.Sequential(nn.Linear(4, 6), nn.BatchNorm1d(6), act)
    assert detected(model, torch.randn(5, 4)) == {"1": (name, "module")}


def test_layer_not_run_stays_unknown_and_user_override_wins():
    class Skips(nn.Module):
        def __init__(self):
            super().__init__()
            self.used, self.unused = nn.BatchNorm1d(3), nn.BatchNorm1d(3)

        def forward(self, x):
            return torch.relu(self.used(x))

    m = Skips()
    ins = instrument(m, activations={"used": "tanh"})
    m(torch.randn(4, 3))
    got = {li.path: (li.activation, li.activation_source) for li in ins.layers}
    assert got == {"used": ("tanh", "user"), "unused": ("unknown", "none")}
    assert ins.version == 1


def test_observation_only_on_first_forward():
    model = models.SmallCNN()
    ins = instrument(model)
    model(models.cnn_batch())
    assert ins.observed and torch.overrides._get_current_function_mode_stack() == []
    assert not model._forward_pre_hooks and not model._forward_hooks
    assert not model.relu1._forward_pre_hooks and not model.bn1._forward_hooks


def test_zone_thresholds_are_five_percent_of_max_derivative():
    rule, t = ZONES["sigmoid"]
    s = torch.sigmoid(torch.tensor(t, dtype=torch.float64))
    assert rule == "saturated" and math.isclose(float(s * (1 - s)), 0.05 * 0.25, rel_tol=1e-12)
    rule, t = ZONES["tanh"]
    assert rule == "saturated" and math.isclose(1 - math.tanh(t) ** 2, 0.05, rel_tol=1e-12)
    assert ZONES["relu"] == ("dead", 0.0) and ZONES["none"] == ("bound", 6.0)
    with pytest.raises(ValueError, match="'sigmoid'"):
        check_activation("sigmod", "x")
