"""torch.jit.script / trace, torch.export and fuse_modules of an instrumented or recording model give
torch's plain BatchNorm graph (the same ops as the plain model, nothing of bnviz), equal outputs,
one warning while recording, and the model goes on recording afterwards."""

import re
import warnings

import numpy as np
import pytest
import torch
from models import TimmStyleNet, small_cnn
from torch import nn

import bnviz
from bnviz.hooks import Probe, instrument
from bnviz.store import RecordingWarning, open_run

# torch 2.13 deprecates TorchScript itself; bnviz still supports it for models that use it
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.*is deprecated:DeprecationWarning")

X = torch.randn(4, 3, 8, 8, generator=torch.Generator().manual_seed(1))


def with_probe():
    """small_cnn with a Probe after its first ReLU (seeded like small_cnn)."""
    m = small_cnn()
    m.insert(3, Probe(8))
    return m


@pytest.fixture(params=["instrumented", "recording"])
def subject(request, tmp_path):
    """(plain model, the same model instrumented or inside bnviz.record, recorder or None); eval
    mode, so every capture's repeated forwards leave the running statistics alone. One eager
    forward (step 0) has run."""
    plain, model = with_probe().eval(), with_probe().eval()
    if request.param == "instrumented":
        ins = instrument(model)
        model(X)
        yield plain, model, None
        ins.detach()
        return
    rec = bnviz.record(model, tmp_path / "run.h5")
    model(X)
    rec.step()
    yield plain, model, rec
    rec.close()


def ops(graph):
    return [n.kind() for n in graph.nodes()]


def capture_warnings(rec, fn):
    """fn() with its RecordingWarnings; exactly one when recording, none otherwise."""
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        out = fn()
    ours = [w for w in seen if issubclass(w.category, RecordingWarning)]
    assert len(ours) == (1 if rec is not None else 0), [str(w.message) for w in ours]
    if ours:
        assert "not in the recording" in str(ours[0].message)
    return out


def still_records(model, rec, tmp_path, layers=4):
    """After the capture, an eager forward is recorded again (every layer, step 1)."""
    model(X)
    if rec is None:
        return
    rec.step()
    rec.close()
    with open_run(tmp_path / "run.h5") as run:
        assert list(run.steps) == [0, 1] and len(run.layers) == layers
        assert not np.isnan(run.summary_all("pre_mean", run.rows())).any()


def without_sources(code: str) -> str:
    """Graph text without its "# /path/file.py:line" comments (a checkout may sit in a folder named bnviz)."""
    return re.sub(r"#.*", "", code)


def test_script_gives_torch_classes_and_the_model_keeps_recording(subject, tmp_path):
    plain, model, rec = subject
    scripted = capture_warnings(rec, lambda: torch.jit.script(model))
    graph = scripted.inlined_graph
    assert "bnviz" not in without_sources(str(graph)) and "bnviz" not in without_sources(scripted.code)
    assert ops(graph) == ops(torch.jit.script(plain).inlined_graph)
    assert torch.equal(scripted(X), plain(X))
    # while TorchScript compiled them the layers were torch's classes; the next call makes them ours
    model(X)
    assert type(model[1]).__module__ == "bnviz.hooks.batchnorm" and type(model[3]) is Probe
    assert model[1]._bnviz_index == 0 and (rec is None) == (model[1]._bnviz_sink is None)
    still_records(model, rec, tmp_path)


def test_trace_records_nothing_and_traces_the_plain_ops(subject, tmp_path):
    plain, model, rec = subject
    traced = capture_warnings(rec, lambda: torch.jit.trace(model, X))
    # the traced submodules keep bnviz's class names (types only; the ops are torch's)
    assert ops(traced.inlined_graph) == ops(torch.jit.trace(plain, X).inlined_graph)
    assert not [k for k in ops(traced.inlined_graph) if "bnviz" in k]
    assert torch.equal(traced(X), plain(X))
    still_records(model, rec, tmp_path)


def test_export_gives_the_plain_graph(subject, tmp_path):
    plain, model, rec = subject
    exported = capture_warnings(rec, lambda: torch.export.export(model, (X,)))

    def targets(ep):
        return [str(n.target) for n in ep.graph.nodes if n.op == "call_function"]

    assert targets(exported) == targets(torch.export.export(plain, (X,)))
    assert "bnviz" not in without_sources(exported.graph_module.code)
    assert torch.equal(exported.module()(X), plain(X))
    still_records(model, rec, tmp_path)


@pytest.mark.parametrize("inplace", [False, True])
def test_fuse_modules_fuses_conv_and_bn(inplace):
    plain, model = small_cnn().eval(), small_cnn().eval()
    ins = instrument(model)
    groups = [["0", "1", "2"], ["3", "4"]]  # conv+bn+relu, conv+bn
    fused = torch.ao.quantization.fuse_modules(model, groups, inplace=inplace)
    expected = torch.ao.quantization.fuse_modules(plain, groups)
    assert [type(m) for m in fused[:5]] == [type(m) for m in expected[:5]]  # the fused groups
    assert type(fused[1]) is nn.Identity and type(fused[0]).__module__.startswith("torch.")
    assert torch.equal(fused(X), expected(X))
    ins.detach()


def test_fuse_modules_qat_keeps_torch_classes():
    model = small_cnn().train()
    ins = instrument(model)
    fused = torch.ao.quantization.fuse_modules_qat(model, [["3", "4"]], inplace=True)
    bn = fused[3][1]
    assert type(bn) is nn.BatchNorm2d and bn.weight is ins.modules[1].weight  # same parameters
    ins.detach()


@pytest.mark.parametrize("capture", ["trace", "export"])
def test_bn_subclasses_and_frozen_bn_step_aside_too(capture, tmp_path):
    """Layers recorded from a forward pre-hook (foreign.py) record nothing while captured."""
    plain, model = TimmStyleNet().eval(), TimmStyleNet().eval()
    rec = bnviz.record(model, tmp_path / "run.h5")
    model(X)
    rec.step()
    if capture == "trace":
        captured = capture_warnings(rec, lambda: torch.jit.trace(model, X))
    else:
        captured = capture_warnings(rec, lambda: torch.export.export(model, (X,)).module())
    assert torch.equal(captured(X), plain(X))
    still_records(model, rec, tmp_path, layers=3)
