"""The own BN classes are torch's BN, bit for bit, on the recording path (checklist: torch's test_nn BN cases)."""

import copy
import io
import pickle

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from bnviz.hooks import batchnorm
from bnviz.hooks.batchnorm import MODE_BATCH, MODE_RUNNING, MODE_SYNC


class RecordAll:
    """A sink that records every forward, keeping what the layer reported."""

    def __init__(self):
        self.puts = []

    def wants(self, index, training):
        return True

    def put(self, index, x, mean, invstd, mode):
        self.puts.append((mode, mean, invstd))


def own(module, kernel="native"):
    m = copy.deepcopy(module)
    batchnorm.swap_in(m, 0, kernel)
    sink = RecordAll()
    batchnorm.set_sink(m, sink)
    return m, sink


def run(m, x, grad, steps):
    """`steps` forward/backward passes; returns outputs, input grads and the module's state."""
    outs, grads = [], []
    for _ in range(steps):
        xi = x.detach().clone().requires_grad_(x.dtype.is_floating_point)
        out = m(xi)
        if out.requires_grad:
            out.backward(grad.to(out.dtype))
            grads.append(xi.grad)
        outs.append(out.detach())
    state = {k: v.detach().clone() for k, v in m.state_dict().items()}
    pgrads = {k: p.grad.clone() for k, p in m.named_parameters() if p.grad is not None}
    return outs, grads, state, pgrads


def assert_same(a, b):
    (oa, ga, sa, pa), (ob, gb, sb, pb) = a, b
    for x, y in zip(oa + ga, ob + gb, strict=True):
        assert x.dtype == y.dtype and x.shape == y.shape and x.stride() == y.stride()
        assert torch.equal(x, y)
    assert list(sa) == list(sb) and all(torch.equal(sa[k], sb[k]) for k in sa)
    assert list(pa) == list(pb) and all(torch.equal(pa[k], pb[k]) for k in pa)


def make(cls, c=3, **kw):
    torch.manual_seed(0)
    m = cls(c, **kw)
    if m.affine:
        with torch.no_grad():
            m.weight.uniform_(0.5, 1.5)
            if m.bias is not None:
                m.bias.uniform_(-0.5, 0.5)
    return m


def data(shape, dtype=torch.float32, seed=1):
    g = torch.Generator().manual_seed(seed)
    x = (torch.randn(shape, generator=g) * 2 + 0.5).to(dtype)
    return x, torch.randn(shape, generator=g)


CASES = {
    "1d-2d": (nn.BatchNorm1d, (16, 3), {}),
    "1d-3d": (nn.BatchNorm1d, (8, 3, 7), {}),
    "2d": (nn.BatchNorm2d, (4, 3, 5, 5), {}),
    "3d": (nn.BatchNorm3d, (2, 3, 3, 4, 4), {}),
    "sync-cpu": (nn.SyncBatchNorm, (4, 3, 5, 5), {}),
    "momentum-none": (nn.BatchNorm2d, (4, 3, 5, 5), {"momentum": None}),
    "momentum-0": (nn.BatchNorm2d, (4, 3, 5, 5), {"momentum": 0.0}),
    "momentum-1": (nn.BatchNorm2d, (4, 3, 5, 5), {"momentum": 1.0}),
    "no-track": (nn.BatchNorm2d, (4, 3, 5, 5), {"track_running_stats": False}),
    "no-affine": (nn.BatchNorm2d, (4, 3, 5, 5), {"affine": False}),
    "no-bias": (nn.BatchNorm2d, (4, 3, 5, 5), {"bias": False}),
    "eps-big": (nn.BatchNorm1d, (16, 3), {"eps": 0.5}),
}


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("training", [True, False])
def test_same_as_torch(case, training):
    cls, shape, kw = CASES[case]
    ref = make(cls, **kw)
    ref.train(training)
    m, sink = own(ref)
    x, g = data(shape)
    assert_same(run(m, x, g, 3), run(ref, x, g, 3))
    assert len(sink.puts) == 3
    if training or not ref.track_running_stats:
        assert sink.puts[0][0] == MODE_BATCH
    else:
        assert sink.puts[0][0] == MODE_RUNNING


def test_reported_batch_statistics_are_the_kernels():
    ref = make(nn.BatchNorm2d)
    m, sink = own(ref)
    x, _ = data((4, 3, 5, 5))
    m(x)
    _, mean, invstd = sink.puts[0]
    var = x.double().var((0, 2, 3), correction=0)
    torch.testing.assert_close(mean.double(), x.double().mean((0, 2, 3)), rtol=1e-6, atol=1e-6)
    torch.testing.assert_close((1 / invstd.double() ** 2 - m.eps), var, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("track", [True, False])
def test_training_syncbatchnorm_in_a_process_group_runs_torchs_forward(monkeypatch, track):
    # torch syncs GPU tensors only: stand in for an initialised job and for what a synced forward saved
    calls = []
    torch_forward = nn.SyncBatchNorm.forward
    monkeypatch.setattr(nn.SyncBatchNorm, "forward", lambda m, x: calls.append(x) or torch_forward(m, x))
    monkeypatch.setattr(batchnorm, "_torch_decides", lambda m: m.training)
    synced = (torch.randn(3), torch.rand(3), torch.tensor([16.0, 16.0]))
    monkeypatch.setattr(batchnorm, "synced_statistics", lambda out: synced if out.requires_grad else None)
    ref = make(nn.SyncBatchNorm, track_running_stats=track)
    m, sink = own(ref)
    x, g = data((4, 3, 5, 5))
    assert_same(run(m, x, g, 2), run(ref, x, g, 2))
    assert len(calls) == 4 and [p[0] for p in sink.puts] == [MODE_SYNC] * 2
    assert sink.puts[0][1] is synced[0] and sink.puts[0][2] is synced[1]

    # no autograd, so no saved statistics: a synced forward is left out, an unsynced one is local
    sink.puts.clear()
    for world_synced, expected in ((True, []), (False, [(MODE_BATCH, None, None)])):
        monkeypatch.setattr(batchnorm, "_synced", lambda m: world_synced)  # noqa: B023
        with torch.no_grad():
            assert torch.equal(m(x), torch_forward(copy.deepcopy(ref), x))
        assert sink.puts == expected
        sink.puts.clear()
    m.eval()  # torch never syncs in eval: the own path, which reports the kernel's statistics
    m(x)
    assert len(calls) == 6 and sink.puts[0][0] == (MODE_RUNNING if track else MODE_BATCH)


def test_track_running_stats_flipped_after_construction():
    ref = make(nn.BatchNorm2d)
    ref.track_running_stats = False
    m, _ = own(ref)
    x, g = data((4, 3, 5, 5))
    assert_same(run(m, x, g, 2), run(ref, x, g, 2))
    ref.eval(), m.eval()
    assert_same(run(m, x, g, 1), run(ref, x, g, 1))


@pytest.mark.parametrize("layout", ["channels_last", "transposed", "sliced"])
def test_memory_layouts(layout):
    ref = make(nn.BatchNorm2d, 6)
    m, _ = own(ref)
    x, g = data((4, 6, 5, 5))
    if layout == "channels_last":
        x = x.contiguous(memory_format=torch.channels_last)
    elif layout == "transposed":
        x = x.transpose(2, 3)
    else:
        x = x[:, :, 1:, ::2]
        g = g[:, :, 1:, ::2]
    assert_same(run(m, x, g, 2), run(ref, x, g, 2))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_input_with_float_module(dtype):
    ref = make(nn.BatchNorm2d)
    m, _ = own(ref)
    x, g = data((4, 3, 5, 5), dtype)
    assert_same(run(m, x, g, 2), run(ref, x, g, 2))


def test_float64_module():
    ref = make(nn.BatchNorm1d).double()
    m, _ = own(ref)
    x, g = data((16, 3), torch.float64)
    assert_same(run(m, x, g, 2), run(ref, x, g, 2))


def test_autocast_cpu():
    torch.manual_seed(0)
    ref = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
    inst = copy.deepcopy(ref)
    batchnorm.swap_in(inst[1], 0, "native")
    batchnorm.set_sink(inst[1], RecordAll())
    x, _ = data((4, 3, 6, 6))
    outs = []
    for model in (ref, inst):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = model(x)
        out.float().sum().backward()
        outs.append((out, [p.grad for p in model.parameters()], [b.clone() for b in model.buffers()]))
    (o1, g1, b1), (o2, g2, b2) = outs
    assert o1.dtype == torch.bfloat16 and torch.equal(o1, o2)
    assert all(torch.equal(a, b) for a, b in zip(g1 + b1, g2 + b2))


def test_empty_batch():
    ref = make(nn.BatchNorm2d)
    m, sink = own(ref)
    x, g = data((0, 3, 5, 5))
    assert_same(run(m, x, g, 2), run(ref, x, g, 2))


def run_error(module, x):
    try:
        module(x)
    except Exception as e:  # noqa: BLE001 - the point is to compare whatever torch raises
        return type(e), str(e), {k: v.clone() for k, v in module.state_dict().items()}
    raise AssertionError("no error")


@pytest.mark.parametrize("case", ["rank", "one-value", "channels", "eps-zero", "eps-negative-eval", "dtype"])
def test_same_errors_and_no_state_change(case):
    cls, x, kw = {
        "rank": (nn.BatchNorm2d, torch.randn(4, 3), {}),
        "one-value": (nn.BatchNorm1d, torch.randn(1, 3), {}),
        "channels": (nn.BatchNorm2d, torch.randn(4, 4, 2, 2), {}),
        "eps-zero": (nn.BatchNorm2d, torch.randn(4, 3, 2, 2), {"eps": 0.0}),
        "eps-negative-eval": (nn.BatchNorm2d, torch.randn(4, 3, 2, 2), {"eps": -1.0}),
        "dtype": (nn.BatchNorm2d, torch.randn(4, 3, 2, 2, dtype=torch.float64), {}),
    }[case]
    ref = make(cls, **kw)
    if case == "eps-negative-eval":
        ref.eval()
    m, sink = own(ref)
    got, want = run_error(m, x), run_error(ref, x)
    assert got[:2] == want[:2]
    assert all(torch.equal(got[2][k], want[2][k]) for k in want[2])
    assert not sink.puts


def test_sync_batchnorm_zero_channels_error():
    ref = nn.SyncBatchNorm(3)
    m, _ = own(ref)
    x = torch.randn(4, 0, 2, 2)
    assert run_error(m, x)[:2] == run_error(ref, x)[:2]


def test_isinstance_and_classes():
    for cls in (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm):
        m = cls(3)
        batchnorm.swap_in(m, 0, "native")
        assert isinstance(m, cls) and isinstance(m, _BatchNorm) and type(m) is not cls
        batchnorm.swap_out(m)
        assert type(m) is cls and not any(k.startswith("_bnviz") for k in vars(m))


def test_state_dict_pickle_deepcopy_and_dtype():
    ref = make(nn.BatchNorm2d)
    m, _ = own(ref)
    x, _ = data((4, 3, 5, 5))
    m(x), ref(x)
    sd, sd_ref = m.state_dict(), ref.state_dict()
    assert list(sd) == list(sd_ref) and sd._metadata == sd_ref._metadata
    # pickling / copying gives torch's class without the sink, same state
    for clone in (copy.deepcopy(m), pickle.loads(pickle.dumps(m))):
        assert type(clone) is nn.BatchNorm2d and "_bnviz_sink" not in vars(clone)
        assert all(torch.equal(a, b) for a, b in zip(clone.state_dict().values(), sd.values()))
    buf = io.BytesIO()
    torch.save(m, buf)
    buf.seek(0)
    assert type(torch.load(buf, weights_only=False)) is nn.BatchNorm2d
    # the instrumented module itself is unchanged by the copies, and .to(dtype) keeps the objects
    w = m.weight
    m.to(torch.float64)
    assert m.weight is w and w.dtype == torch.float64 and type(m) is batchnorm.BatchNorm2d


def test_loads_old_checkpoint_without_num_batches_tracked():
    ref = make(nn.BatchNorm2d)
    old = ref.state_dict()
    del old["num_batches_tracked"]
    old._metadata[""]["version"] = 1
    m, _ = own(make(nn.BatchNorm2d))
    m.num_batches_tracked.fill_(5)
    m.load_state_dict(old)
    assert m.num_batches_tracked.item() == 5  # torch keeps the module's own counter for version-1 files


def test_lazy_batchnorm_after_materialisation():
    lazy = nn.LazyBatchNorm2d()
    x, g = data((4, 3, 5, 5))
    lazy(x)
    assert type(lazy) is nn.BatchNorm2d
    ref = copy.deepcopy(lazy)
    m, _ = own(lazy)
    assert_same(run(m, x, g, 2), run(ref, x, g, 2))


def test_reference_kernel_agrees_with_torch():
    ref = make(nn.BatchNorm2d)
    m, sink = own(ref, kernel="reference")
    x, g = data((4, 3, 5, 5))
    a, b = run(m, x, g, 3), run(ref, x, g, 3)
    for u, v in zip(a[0] + a[1], b[0] + b[1]):
        torch.testing.assert_close(u, v, rtol=1e-5, atol=1e-5)
    for k in b[2]:
        torch.testing.assert_close(a[2][k], b[2][k], rtol=1e-5, atol=1e-6)
    for k in b[3]:
        torch.testing.assert_close(a[3][k], b[3][k], rtol=1e-5, atol=1e-5)
    ref.eval()
    batchnorm.set_sink(m, None)
    m.eval()
    torch.testing.assert_close(m(x), ref(x), rtol=1e-5, atol=1e-5)


def test_functional_batch_norm_unchanged_by_the_module():
    # the module path must not depend on anything F.batch_norm does not: same numbers from the functional API
    ref = make(nn.BatchNorm2d)
    m, _ = own(ref)
    x, _ = data((4, 3, 5, 5))
    rm, rv = ref.running_mean.clone(), ref.running_var.clone()
    want = F.batch_norm(x, rm, rv, ref.weight, ref.bias, True, 0.1, ref.eps)
    assert torch.equal(m(x), want) and torch.equal(m.running_mean, rm) and torch.equal(m.running_var, rv)
