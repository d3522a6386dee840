"""Recording inside torch.compile graphs: no graph break per layer, training identical to the
compiled plain model, no recompiles of bnviz's own and no dynamo warnings, and the rows eager
recording records (to float rounding), also for eval passes, changing shapes, a layer that runs
twice, momentum=None, Probes, BN subclasses and frozen BN (recorded from a forward pre-hook),
activations measured at their own input (residual blocks), BN layers side by side in parallel
branches and a SyncBatchNorm in a process group of one."""

import copy
import logging

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


class TimmStack(nn.Module):
    """A frozen BN stem, then nine conv + timm-style BatchNormAct2d layers (BN subclasses, recorded
    from a forward pre-hook): more layers than dynamo's recompile limit (8)."""

    def __init__(self, depth: int = 9):
        super().__init__()
        self.stem, self.stem_bn = nn.Conv2d(3, 8, 3, padding=1, bias=False), models.FrozenBatchNorm2d(8)
        with torch.no_grad():
            self.stem_bn.running_var.uniform_(0.5, 2.0)
        acts = (nn.SiLU, nn.ReLU, nn.Identity)
        self.convs = nn.ModuleList(nn.Conv2d(8, 8, 3, padding=1, bias=False) for _ in range(depth))
        self.bns = nn.ModuleList(models.BatchNormAct2d(8, act_layer=acts[i % 3]) for i in range(depth))
        self.head = nn.Linear(8, 4)

    def forward(self, x):
        x = self.stem_bn(self.stem(x))
        for conv, bn in zip(self.convs, self.bns):
            x = bn(conv(x))
        return self.head(x.mean(dim=(2, 3)))


class BasicBlock(nn.Module):
    """torchvision's: one ReLU module called twice, its second input ``bn2(...) + identity``, which
    bnviz samples for bn2's zone (measure.py)."""

    def __init__(self, c: int):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c)
        self.conv2, self.bn2 = nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out += x
        return self.relu(out)


class ResidualNet(nn.Module):
    """A conv-BN-ReLU stem and four BasicBlocks (nine BN layers, four activations measured at their input)."""

    def __init__(self, blocks: int = 4):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU())
        self.blocks = nn.Sequential(*(BasicBlock(8) for _ in range(blocks)))
        self.head = nn.Linear(8, 4)

    def forward(self, x):
        return self.head(self.blocks(self.stem(x)).mean(dim=(2, 3)))


class Branches(nn.Module):
    """Inception-style: two conv-BN branches of one input, concatenated, then the sum of two more
    (zones measured at the ReLU after the add). Their BN layers sit side by side in the graph, so
    the compiler may run their bnviz operators in either order."""

    def __init__(self):
        super().__init__()
        self.a = nn.Sequential(nn.Conv2d(3, 4, 1, bias=False), nn.BatchNorm2d(4), nn.ReLU())
        self.b = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4), nn.Tanh())
        self.c, self.bn_c = nn.Conv2d(8, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8)
        self.d, self.bn_d = nn.Conv2d(8, 8, 1, bias=False), nn.BatchNorm2d(8)
        self.relu = nn.ReLU()
        self.head = nn.Linear(8, 4)

    def forward(self, x):
        y = torch.cat([self.a(x), self.b(x)], 1)
        z = self.relu(self.bn_c(self.c(y)) + self.bn_d(self.d(y)))
        return self.head(z.mean(dim=(2, 3)))


class DynamoLog(logging.Handler):
    """What torch's loggers (dynamo's recompile-limit warning among them) say at WARNING and above."""

    def __init__(self):
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record):
        self.messages.append(record.getMessage())


@pytest.fixture
def dynamo_log():
    log, torch_logger = DynamoLog(), logging.getLogger("torch")
    torch_logger.addHandler(log)
    yield log
    torch_logger.removeHandler(log)


def train(make, data, *, record, backend=None, sizes=(16,), lr=0.1):
    """(losses, state_dict, recorded Block, unique compiled graphs). ``sizes``: batch size per step,
    cycled (a changing shape). One eval forward before the engine attaches, so the first-forward
    observation (eager only) sees the model in every variant alike."""
    torch.manual_seed(0)
    model = make()
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
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
@pytest.mark.parametrize(
    "make", [models.SmallCNN, TimmStack, ResidualNet, Branches], ids=["bn", "subclasses", "residual", "branches"]
)
def test_inductor_recording_is_the_plain_compiled_training_and_the_eager_rows(make, dynamo_log):
    # inductor's training rounds unlike eager's: at lr=0.1 the residual net's weights part by 0.3%
    # within the five steps (the plain runs alike), so the rows are compared where training agrees
    plain = train(make, cnn_input, record=False, backend="inductor", lr=0.01)
    plain_log, dynamo_log.messages = dynamo_log.messages, []
    recorded = train(make, cnn_input, record=True, backend="inductor", lr=0.01)
    assert dynamo_log.messages == plain_log == []  # no recompile-limit warning, nor any other
    assert_same_training(plain, recorded)
    assert recorded[3] == plain[3]  # no graph or recompile of bnviz's own
    assert_same_rows(recorded, train(make, cnn_input, record=True, lr=0.01))


BLOCK_OPS = ["bnviz.begin.default", "bnviz.report.default", "bnviz.zone_input.default"] * 2


@pytest.mark.parametrize(
    "make,ops",
    [
        (models.SmallCNN, ["bnviz.begin.default", "bnviz.report.default"] * 3),
        (TimmStack, ["bnviz.observe.default"] * 10),
        # the stem's ReLU follows its BN directly; each block's ReLU module runs twice, measured each time
        (ResidualNet, ["bnviz.begin.default", "bnviz.report.default"] + BLOCK_OPS * 4),
    ],
    ids=["bn", "subclasses-and-frozen", "residual-blocks"],
)
def test_one_graph_without_breaks_while_recording(make, ops):
    model = make()
    ins = instrument(model)
    model(cnn_input(0, 8))  # the first forward is observed eagerly
    engine = StatsEngine(ins, capacity_rows=4)
    explained = torch._dynamo.explain(model)(cnn_input(0, 8))
    assert explained.graph_break_count == 0 and explained.graph_count == 1
    targets = [str(n.target) for g in explained.graphs for n in g.graph.nodes if n.op == "call_function"]
    assert [t for t in targets if "bnviz" in t] == ops
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
        (TimmStack, cnn_input, (8, 8, 6)),
        (ResidualNet, cnn_input, (8, 8, 6)),
        (Branches, cnn_input, (8, 8, 6)),
    ],
    ids=[
        "last-batch-smaller",
        "image-size-changes",
        "layer-runs-twice",
        "probes",
        "momentum-none",
        "subclasses-and-frozen",
        "residual-blocks",
        "parallel-branches",
    ],
)
def test_compiled_rows_are_the_eager_rows(make, data, sizes, dynamo_log):
    plain = train(make, data, record=False, backend="aot_eager", sizes=sizes)
    plain_log, dynamo_log.messages = dynamo_log.messages, []
    recorded = train(make, data, record=True, backend="aot_eager", sizes=sizes)
    assert dynamo_log.messages == plain_log  # no recompile-limit warning of bnviz's own
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


def test_compiled_subclass_layers_are_found_by_their_running_statistics():
    """bnviz::observe finds a layer by its running statistics' storage: a deep copy of the model
    (an EMA model) records nothing, and a layer whose buffers were replaced (module.to) is found again."""
    model = TimmStack()
    ins = instrument(model)
    model(cnn_input(0, 8))
    engine = StatsEngine(ins, capacity_rows=4)
    torch.compile(copy.deepcopy(model), backend="aot_eager")(cnn_input(1, 8))
    engine.end_step(0)
    assert engine.rows_pending == 0
    run = torch.compile(model, backend="aot_eager")
    run(cnn_input(1, 8))
    engine.end_step(1)
    for bn in model.bns:
        bn.running_mean = bn.running_mean.clone()
    run(cnn_input(2, 8))
    engine.end_step(2)
    engine.finish()
    block = engine.take_block().wait()
    assert list(block.summary_step) == [1, 2]
    assert not np.isnan(block.summary[:, :, 0]).any()  # every layer of both rows
    ins.detach()


@pytest.mark.parametrize("make", [models.SmallCNN, TimmStack, ResidualNet], ids=["bn", "subclasses", "residual"])
def test_attaching_and_detaching_a_recorder_recompiles_nothing(make):
    """The graph never reads the sink: one graph serves the model with and without a recorder."""
    model = make()
    ins = instrument(model)
    model(cnn_input(0, 8))
    torch._dynamo.reset()
    counters.clear()
    run = torch.compile(model, backend="aot_eager")
    run(cnn_input(1, 8))  # no recorder yet
    engine = StatsEngine(ins, capacity_rows=4)
    run(cnn_input(2, 8))
    engine.end_step(0)
    ins.set_sink(None)
    run(cnn_input(3, 8))
    assert counters["stats"]["unique_graphs"] == 1
    assert engine.rows_pending == 1
    engine.finish()
    assert not np.isnan(engine.take_block().wait().summary[:, :, 0]).any()
    ins.detach()


def test_an_empty_batch_is_traced_without_bnviz_operators_and_records_nothing():
    """An empty input is never recorded (as in eager mode); its size is known while tracing, so
    its graph holds torch's computation alone, and a following batch is recorded as usual."""
    model = models.SmallCNN().eval()
    ins = instrument(model)
    model(cnn_input(0, 8))
    engine = StatsEngine(ins, capacity_rows=4)
    explained = torch._dynamo.explain(model)(cnn_input(1, 0))
    assert explained.graph_break_count == 0 and explained.graph_count == 1
    targets = [str(n.target) for g in explained.graphs for n in g.graph.nodes if n.op == "call_function"]
    assert not [t for t in targets if "bnviz" in t]
    torch._dynamo.reset()
    run = torch.compile(model, backend="aot_eager")
    with torch.no_grad():
        assert run(cnn_input(1, 0)).shape == (0, 10)
        engine.end_step(0)
        assert engine.rows_pending == 0
        run(cnn_input(2, 8))
    engine.end_step(1)
    assert engine.rows_pending == 1
    ins.detach()
