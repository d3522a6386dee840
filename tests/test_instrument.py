"""instrument(): in-place class swap, the way back, and every way to get it wrong."""

import copy
import io
import warnings

import models  # tests/models.py (pytest's pythonpath)
import pytest
import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from bnviz.hooks import Probe, instrument
from bnviz.hooks.batchnorm import ORIGINAL


def test_swaps_in_place_and_detach_restores():
    torch.manual_seed(0)
    model = models.SmallCNN()
    before = {n: (type(m), m) for n, m in model.named_modules()}
    params = dict(model.named_parameters())
    buffers = dict(model.named_buffers())
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    ins = instrument(model)
    for name, (cls, mod) in before.items():
        now = model.get_submodule(name) if name else model
        assert now is mod
        if cls in (nn.BatchNorm1d, nn.BatchNorm2d):
            assert type(now) in ORIGINAL and isinstance(now, cls) and isinstance(now, _BatchNorm)
    assert all(p is params[n] for n, p in model.named_parameters())
    assert all(b is buffers[n] for n, b in model.named_buffers())
    assert [li.path for li in ins.layers] == ["bn1", "bn2", "bn3"]
    model(models.cnn_batch()).sum().backward()
    opt.step()
    ins.detach()
    assert {n: type(m) for n, m in model.named_modules()} == {n: c for n, (c, _) in before.items()}
    ins.detach()  # idempotent


def test_context_manager_and_reinstrument():
    model = models.SigmoidMLP()
    with instrument(model) as ins:
        assert ins.attached
        with pytest.raises(RuntimeError, match="already instrumented"):
            instrument(model)
    assert not ins.attached and type(model.body[1]) is nn.BatchNorm1d
    instrument(model).detach()


def test_layers_in_forward_order_with_nesting_and_reuse():
    model = models.ReusedBN()
    ins = instrument(model)
    assert [li.path for li in ins.layers] == ["norms.shared", "norms.last"]
    model(torch.randn(6, 10))
    assert [li.path for li in ins.layers] == ["norms.shared", "norms.last"]
    assert [li.index for li in ins.layers] == [0, 1]

    class Backwards(nn.Module):
        def __init__(self):
            super().__init__()
            self.late = nn.BatchNorm1d(4)
            self.early = nn.BatchNorm1d(4)

        def forward(self, x):
            return self.late(self.early(x))

    m = Backwards()
    ins = instrument(m)
    assert [li.path for li in ins.layers] == ["late", "early"]  # registration order until a forward
    m(torch.randn(5, 4))
    assert [li.path for li in ins.layers] == ["early", "late"]
    assert ins.order == [1, 0]


def test_layer_table_keys():
    model = models.SmallCNN()
    table = instrument(model, probes=2).layer_table()
    assert list(table[0]) == [
        "index",
        "path",
        "kind",
        "num_features",
        "eps",
        "momentum",
        "affine",
        "track_running_stats",
        "activation",
        "activation_source",
        "zone_rule",
        "zone_threshold",
        "probe_channels",
        "calls_per_forward",
        "frozen",
        "activation_via",
        "activation_seen",
        "zone_input",
    ]
    assert table[0]["kind"] == "BatchNorm2d" and table[2]["kind"] == "BatchNorm1d"
    assert table[0]["probe_channels"] == [2, 6]


def test_no_bn_is_an_error_but_probes_are_enough():
    with pytest.raises(ValueError, match="no BatchNorm"):
        instrument(nn.Sequential(nn.Linear(3, 3), nn.ReLU()))
    ins = instrument(models.ProbeMLP())
    assert [li.kind for li in ins.layers] == ["Probe", "Probe"]


def test_lazy_unmaterialised_is_an_error():
    model = nn.Sequential(nn.Conv2d(3, 4, 1), nn.LazyBatchNorm2d())
    with pytest.raises(ValueError, match="run one forward pass"):
        instrument(model)
    model(torch.randn(2, 3, 4, 4))
    assert [li.kind for li in instrument(model).layers] == ["BatchNorm2d"]


def test_bad_activation_override_and_probes():
    model = models.SmallCNN()
    with pytest.raises(ValueError, match="'bn1'"):
        instrument(model, activations={"bn_1": "relu"})
    with pytest.raises(ValueError, match="'tanh'"):
        instrument(model, activations={"bn1": "tahn"})
    with pytest.raises(ValueError, match="outside"):
        instrument(model, probes={"bn1": [99]})
    with pytest.raises(ValueError, match="kernel"):
        instrument(model, kernel="fast")
    ins = instrument(model, activations={"bn1": "tanh"}, probes={"bn1": [1, 3]})
    li = ins.layers[0]
    assert (li.activation, li.activation_source, li.zone_rule) == ("tanh", "user", "saturated")
    assert li.probe_channels == [1, 3] and len(ins.layers[1].probe_channels) == 2


def test_inside_torch_func_transform_is_an_error():
    model = models.SigmoidMLP()

    def f(x):
        instrument(model)
        return x

    with pytest.raises(RuntimeError, match="torch.func"):
        torch.func.vmap(f)(torch.randn(2, 3))


def test_torch_utilities_still_work():
    torch.manual_seed(0)
    model = models.SmallCNN()
    ins = instrument(model)
    # swa_utils.update_bn recomputes running statistics of every _BatchNorm
    loader = [(models.cnn_batch(seed=s),) for s in range(3)]
    plain = copy.deepcopy(model)  # a deep copy is torch's classes again
    assert type(plain.bn1) is nn.BatchNorm2d
    torch.optim.swa_utils.update_bn(loader, model)
    torch.optim.swa_utils.update_bn(loader, plain)
    assert torch.equal(model.bn1.running_var, plain.bn1.running_var)
    # convert_sync_batchnorm replaces the modules (it drops instrumentation, as documented)
    synced = nn.SyncBatchNorm.convert_sync_batchnorm(copy.deepcopy(model))
    assert type(synced.bn1) is nn.SyncBatchNorm
    ins.detach()
    # replace_all_batch_norm_modules_ works on an instrumented model
    ins = instrument(model)
    torch.func.replace_all_batch_norm_modules_(model)
    assert model.bn1.running_mean is None and not model.bn1.track_running_stats
    model(models.cnn_batch())
    ins.detach()


def test_save_load_and_optimizer_state_survive():
    torch.manual_seed(0)
    model = models.SmallCNN()
    opt = torch.optim.Adam(model.parameters())
    ins = instrument(model)
    model(models.cnn_batch()).sum().backward()
    opt.step()
    buf = io.BytesIO()
    torch.save({"model": model.state_dict(), "opt": opt.state_dict()}, buf)
    buf.seek(0)
    ckpt = torch.load(buf)
    ins.detach()
    fresh = models.SmallCNN()
    fresh.load_state_dict(ckpt["model"])
    assert all(torch.equal(a, b) for a, b in zip(fresh.state_dict().values(), model.state_dict().values()))
    assert opt.state[model.bn1.weight]["step"] == 1


def test_probe_is_identity_and_pickles_without_sink():
    p = Probe(4)
    x = torch.randn(3, 4)
    assert p(x) is x
    ins = instrument(nn.Sequential(p))
    ins.set_sink(object())
    clone = copy.deepcopy(ins.model)
    assert "_bnviz_sink" not in vars(clone[0])
    ins.detach()
    assert "_bnviz_index" not in vars(p)


def test_no_warning_in_normal_use():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        instrument(models.SmallCNN()).detach()
