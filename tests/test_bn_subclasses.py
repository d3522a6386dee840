"""BN layers bnviz cannot swap for its own class: timm-style subclasses and frozen BN."""

import copy
import pickle
import warnings

import numpy as np
import torch
import torch.nn.functional as F
from models import BatchNormAct2d, FrozenBatchNorm2d, TimmStyleNet
from torch import nn

import bnviz
from bnviz.hooks import foreign
from bnviz.store import RecordingWarning, open_run

STEPS = 4


def data(step):
    g = torch.Generator().manual_seed(100 + step)
    return torch.randn(6, 3, 5, 5, generator=g), torch.randint(0, 3, (6,), generator=g)


def train(model, rec=None):
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    torch.manual_seed(7)  # the dropout inside bn1
    for step in range(STEPS):
        x, y = data(step)
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if rec is not None:
            rec.step()


def inputs_of(model, names):
    """The input each named layer sees in the first step (an independent capture on a twin)."""
    seen = {}
    handles = [
        model.get_submodule(n).register_forward_pre_hook(lambda m, a, n=n: seen.setdefault(n, a[0].detach().clone()))
        for n in names
    ]
    torch.manual_seed(7)
    model(data(0)[0])
    for h in handles:
        h.remove()
    return seen


def test_timm_style_and_frozen_bn_are_recorded_and_training_is_bit_identical(tmp_path):
    model, twin, probe = TimmStyleNet(), TimmStyleNet(), TimmStyleNet()
    x = inputs_of(probe, ["stem_bn", "bn1"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with bnviz.record(model, tmp_path / "run.h5") as rec:
            train(model, rec)
    train(twin)
    for (name, a), b in zip(model.state_dict().items(), twin.state_dict().values()):
        assert torch.equal(a, b), name

    with open_run(tmp_path / "run.h5") as run:
        assert list(run.steps) == list(range(STEPS))
        layers = {li.path: li for li in run.layers}
        assert list(layers) == ["stem_bn", "bn1", "bn2"]
        assert [li.kind for li in run.layers] == ["FrozenBatchNorm2d", "BatchNormAct2d", "BatchNormAct2d"]
        assert (layers["bn1"].activation, layers["bn1"].activation_source) == ("silu", "fused")
        assert (layers["bn2"].activation, layers["bn2"].activation_source) == ("tanh", "functional")
        assert layers["stem_bn"].activation == "relu" and layers["stem_bn"].extra["frozen"] is True
        assert layers["bn1"].extra["frozen"] is False and layers["bn1"].momentum == 0.1

        # frozen BN, step 0: normalised with its running statistics, whatever module.training says
        f = probe.stem_bn
        ch = {
            k: run.channels("stem_bn", k, 0)
            for k in ("pre_mean", "used_mean", "used_var", "gamma", "post_mean", "grad_gamma")
        }
        np.testing.assert_allclose(ch["pre_mean"], x["stem_bn"].mean(dim=(0, 2, 3)), rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(ch["used_mean"], f.running_mean.numpy())
        np.testing.assert_array_equal(ch["used_var"], f.running_var.numpy())
        np.testing.assert_array_equal(ch["gamma"], f.weight.numpy())
        y = x["stem_bn"] * f.weight.view(1, -1, 1, 1) / (f.running_var.view(1, -1, 1, 1) + f.eps).sqrt()
        y = y + (f.bias - f.running_mean * f.weight / (f.running_var + f.eps).sqrt()).view(1, -1, 1, 1)
        np.testing.assert_allclose(ch["post_mean"], y.mean(dim=(0, 2, 3)), rtol=1e-4, atol=1e-5)
        assert np.isnan(ch["grad_gamma"]).all()  # buffers: no gradient

        # the BN subclass, step 0, training: batch statistics of its input, running stats before the update
        xb = x["bn1"]
        np.testing.assert_allclose(run.channels("bn1", "pre_mean", 0), xb.mean(dim=(0, 2, 3)), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(run.channels("bn1", "pre_var", 0), xb.var(dim=(0, 2, 3), unbiased=False), rtol=1e-4)
        np.testing.assert_array_equal(run.channels("bn1", "running_mean", 0), np.zeros(8, np.float32))
        assert np.isfinite(run.channels("bn1", "grad_gamma", 0)).all()
    # detached: nothing of bnviz is left on the modules
    for m in (model.stem_bn, model.bn1, model.bn2):
        assert not m._forward_pre_hooks and not foreign.is_attached(m)
        assert not [k for k in m.__dict__ if k.startswith("_bnviz")]
    assert not hasattr(model.stem_bn, "num_features")
    assert type(model.bn1) is BatchNormAct2d and type(model.stem_bn) is FrozenBatchNorm2d


def test_an_eval_pass_of_a_subclass_uses_the_running_statistics(tmp_path):
    model = TimmStyleNet()
    with bnviz.record(model, tmp_path / "run.h5") as rec:
        train(model, rec)
        model.eval()
        with torch.no_grad():
            model(data(9)[0])
    with open_run(tmp_path / "run.h5") as run:
        row = run.channel_rows("eval")[-1]
        np.testing.assert_array_equal(run.channels("bn1", "used_mean", row), model.bn1.running_mean.numpy())
        np.testing.assert_array_equal(run.channels("bn1", "used_var", row), model.bn1.running_var.numpy())


def test_a_copy_or_pickle_made_while_recording_carries_nothing_of_bnviz(tmp_path):
    model = TimmStyleNet()
    with bnviz.record(model, tmp_path / "run.h5") as rec:
        train(model, rec)
        ema = copy.deepcopy(model)  # timm's ModelEmaV2 does this
        restored = pickle.loads(pickle.dumps(model))
        for other in (ema, restored):
            other.train()
            other(data(0)[0])  # reports nothing: not the recorded modules
        rec.step()
    with open_run(tmp_path / "run.h5") as run:
        assert list(run.steps) == list(range(STEPS))
    for other in (ema, restored):
        assert not foreign.is_attached(other.bn1)


class Doubling(nn.BatchNorm1d):
    """A subclass whose forward normalises something other than its input."""

    def forward(self, x):
        return super().forward(x * 2)


def test_a_subclass_that_does_not_normalise_its_input_is_named_in_a_warning(tmp_path):
    model = nn.Sequential(nn.Linear(4, 3), Doubling(3), nn.ReLU())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with bnviz.record(model, tmp_path / "run.h5") as rec:
            model(torch.randn(8, 4))
            rec.step()
    msgs = [str(w.message) for w in caught if issubclass(w.category, RecordingWarning)]
    assert len(msgs) == 1 and "1 (Doubling)" in msgs[0]
