"""Recording changes nothing: instrumented training is bit-identical to plain training on CPU."""

import models  # tests/models.py (pytest's pythonpath)
import pytest
import torch

from bnviz.hooks import instrument
from bnviz.hooks.engine import StatsEngine

STEPS = 30


def cnn_data(step):
    g = torch.Generator().manual_seed(step)
    return torch.randn(8, 3, 8, 8, generator=g), torch.randint(0, 10, (8,), generator=g)


def mlp_data(step):
    g = torch.Generator().manual_seed(step)
    return torch.randn(16, 20, generator=g), torch.randint(0, 5, (16,), generator=g)


def train(make, data, record, compile_backend=None):
    torch.manual_seed(0)
    model = make()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    engine = None
    if record:
        ins = instrument(model, probes=2)
        engine = StatsEngine(ins, capacity_rows=16)
    run = torch.compile(model, backend=compile_backend) if compile_backend else model
    losses, blocks = [], []
    for step in range(STEPS):
        x, y = data(step)
        loss = torch.nn.functional.cross_entropy(run(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.detach())
        if step % 10 == 9:
            model.eval()
            with torch.no_grad():
                losses.append(run(data(100 + step)[0]).sum())
            model.train()
        if engine is not None:
            engine.end_step(step)
            if engine.rows_pending >= 8:
                blocks.append(engine.take_block().wait())
    if engine is not None:
        engine.finish()
        blocks.append(engine.take_block().wait())
        ins.detach()
    return torch.stack(losses), model.state_dict(), blocks


def assert_identical(a, b):
    assert torch.equal(a[0], b[0])
    assert list(a[1]) == list(b[1])
    assert all(torch.equal(a[1][k], b[1][k]) for k in a[1])


@pytest.mark.slow
@pytest.mark.parametrize("make,data", [(models.SmallCNN, cnn_data), (models.SigmoidMLP, mlp_data)])
def test_training_bit_identical(make, data):
    plain = train(make, data, record=False)
    recorded = train(make, data, record=True)
    assert_identical(plain, recorded)
    blocks = recorded[2]
    rows = sum(len(b.summary_step) for b in blocks)
    assert rows == STEPS + 3 and sum(b.dropped_steps for b in blocks) == 0


@pytest.mark.slow
# Raised inside dynamo at the first-forward observer's hooks on the compiled model (not our code).
@pytest.mark.filterwarnings("ignore:The .grad attribute of a Tensor that is not a leaf:UserWarning")
def test_compiled_training_bit_identical():
    """Each recording BN layer runs outside the graph (one graph break per layer while recording)."""
    torch._dynamo.reset()
    plain = train(models.SigmoidMLP, mlp_data, record=False, compile_backend="aot_eager")
    torch._dynamo.reset()
    recorded = train(models.SigmoidMLP, mlp_data, record=True, compile_backend="aot_eager")
    assert_identical(plain, recorded)
    assert sum(len(b.summary_step) for b in recorded[2]) == STEPS + 3
