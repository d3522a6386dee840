"""Recording inside torch.compile graphs: no graph break per layer, training identical to the
compiled plain model, no recompiles of bnviz's own, and the rows eager recording records (to float
rounding), also for eval passes, changing shapes, a layer that runs twice, momentum=None, Probes
and a SyncBatchNorm in a process group of one."""

import models
import numpy as np
import pytest
import torch
import torch.distributed as dist
from torch import nn
from torch._dynamo.utils import counters

from bnviz.hooks import instrument
from bnviz.hooks.engine import StatsEngine

STEPS = 5
# dynamo's own warning where a layer runs outside the graph (as torch's BN does for momentum=None)
GRAD_WARNING = "ignore:The .grad attribute of a Tensor that is not a leaf:UserWarning"
EVAL_AT = 2  # an eval pass inside this step


def mlp_input(step, n):
    return torch.randn(n, 20, generator=torch.Generator().manual_seed(step))


def cnn_input(step, n):
    return torch.randn(n, 3, 8, 8, generator=torch.Generator().manual_seed(step))


def train(make, data, *, record, backend=None, sizes=(16,)):
    """(losses, state_dict, recorded Block, unique compiled graphs). ``sizes``: batch size per step,
    cycled (a changing shape). One eval forward before the engine attaches, so the first-forward
    observation (eager only) sees the model in every variant alike."""
    torch.manual_seed(0)
    model = make()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    ins = instrument(model, probes=2) if record else None
    torch._dynamo.reset()
    counters.clear()
    run = torch.compile(model, backend=backend) if backend else model
    model.eval()
    with torch.no_grad():
        model(data(99, 4))
    model.train()
    engine = StatsEngine(ins, capacity_rows=32) if record else None
    losses = []
    for step in range(STEPS):
        out = run(data(step, sizes[step % len(sizes)]))
        loss = out.square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.detach())
        if step == EVAL_AT:
            model.eval()
            with torch.no_grad():
                losses.append(run(data(100, 8)).sum())
            model.train()
        if engine is not None:
            engine.end_step(step)
    block = None
    if engine is not None:
        assert engine.error is None
        engine.finish()
        block = engine.take_block().wait()
        ins.detach()
    return torch.stack(losses), model.state_dict(), block, counters["stats"]["unique_graphs"]


def assert_same_training(a, b):
    assert torch.equal(a[0], b[0])
    assert all(torch.equal(a[1][k], b[1][k]) for k in a[1])


def assert_same_rows(compiled, eager):
    """The compiled recording holds the eager recording's rows, to float rounding (the compiled
    kernel's batch statistics round differently)."""
    c, e = compiled[2], eager[2]
    assert list(c.summary_step) == list(e.summary_step) == [0, 1, 2, 2, 3, 4]
    assert list(c.summary_phase) == [0, 0, 0, 1, 0, 0]
    for name in ("summary", "quantiles", "probes", "hist_range"):
        np.testing.assert_allclose(getattr(c, name), getattr(e, name), rtol=1e-4, atol=2e-5, err_msg=name)
    for a, b in zip(c.channels, e.channels):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=2e-5)
    assert np.abs(c.hist_counts - e.hist_counts).sum() <= 2  # a value on a bin edge may move


@pytest.mark.slow
# inductor imports torch.utils.mkldnn, which uses the deprecated torch.jit.script_method
@pytest.mark.filterwarnings("ignore:`torch.jit.script_method` is deprecated:DeprecationWarning")
def test_inductor_recording_is_the_plain_compiled_training_and_the_eager_rows():
    plain = train(models.SmallCNN, cnn_input, record=False, backend="inductor")
    recorded = train(models.SmallCNN, cnn_input, record=True, backend="inductor")
    assert_same_training(plain, recorded)
    assert recorded[3] == plain[3]  # no graph or recompile of bnviz's own
    assert_same_rows(recorded, train(models.SmallCNN, cnn_input, record=True))


def test_one_graph_without_breaks_while_recording():
    model = models.SmallCNN()
    ins = instrument(model)
    model(cnn_input(0, 8))  # the first forward is observed eagerly
    engine = StatsEngine(ins, capacity_rows=4)
    explained = torch._dynamo.explain(model)(cnn_input(0, 8))
    assert explained.graph_break_count == 0 and explained.graph_count == 1
    targets = [str(n.target) for g in explained.graphs for n in g.graph.nodes if n.op == "call_function"]
    assert [t for t in targets if "bnviz" in t] == ["bnviz.begin.default", "bnviz.report.default"] * 3
    assert engine.rows_pending == 0  # tracing recorded nothing
    ins.detach()


class MomentumNone(models.SigmoidMLP):
    """Cumulative running averages (momentum=None): torch's own BN breaks the graph here."""

    def __init__(self):
        super().__init__()
        for m in self.modules():
            if isinstance(m, nn.BatchNorm1d):
                m.momentum = None


@pytest.mark.parametrize(
    "make,data,sizes",
    [
        (models.SigmoidMLP, mlp_input, (16, 16, 12)),  # a last smaller batch: one dynamic recompile
        (
            models.SmallCNN,
            lambda step, n: torch.randn(n, 3, 8 + 4 * (step % 2), 8, generator=torch.Generator().manual_seed(step)),
            (8,),
        ),
        (models.ReusedBN, lambda step, n: torch.randn(n, 10, generator=torch.Generator().manual_seed(step)), (16,)),
        (models.ProbeMLP, mlp_input, (16,)),
        pytest.param(MomentumNone, mlp_input, (16,), marks=pytest.mark.filterwarnings(GRAD_WARNING)),
    ],
    ids=["last-batch-smaller", "image-size-changes", "layer-runs-twice", "probes", "momentum-none"],
)
def test_compiled_rows_are_the_eager_rows(make, data, sizes):
    plain = train(make, data, record=False, backend="aot_eager", sizes=sizes)
    recorded = train(make, data, record=True, backend="aot_eager", sizes=sizes)
    assert_same_training(plain, recorded)
    assert recorded[3] == plain[3]
    assert_same_rows(recorded, train(make, data, record=True, sizes=sizes))


def sync_mlp():
    return nn.SyncBatchNorm.convert_sync_batchnorm(models.SigmoidMLP())


def test_syncbatchnorm_is_recorded_under_compile():
    recorded = train(sync_mlp, mlp_input, record=True, backend="aot_eager")
    assert_same_training(train(sync_mlp, mlp_input, record=False, backend="aot_eager"), recorded)
    assert_same_rows(recorded, train(sync_mlp, mlp_input, record=True))


@pytest.fixture
def world_of_one():
    dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
    yield
    dist.destroy_process_group()


def test_syncbatchnorm_eval_in_a_group_of_one_is_recorded_under_compile(world_of_one):
    """(Training a SyncBatchNorm in a process group needs a GPU: torch raises on CPU.)"""
    blocks = []
    for backend in ("aot_eager", None):
        torch._dynamo.reset()
        torch.manual_seed(0)
        model = sync_mlp().eval()
        ins = instrument(model)
        engine = StatsEngine(ins, capacity_rows=4)
        run = torch.compile(model, backend=backend) if backend else model
        with torch.no_grad():
            run(mlp_input(0, 16))
        engine.end_step(0)
        blocks.append(engine.take_block().wait())
        ins.detach()
    assert list(blocks[0].summary_phase) == [1]
    np.testing.assert_allclose(blocks[0].summary, blocks[1].summary, rtol=1e-5, atol=1e-6)
