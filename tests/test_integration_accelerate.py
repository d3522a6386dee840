"""The Accelerate recipe of docs/integrations/accelerate.md with the real Accelerator (CPU)."""

import warnings

import pytest
import torch
import torch.nn.functional as F

# a real framework: seconds to import and train; CI runs them (pytest -m 'not slow' skips)
pytestmark = pytest.mark.slow

accelerate = pytest.importorskip("accelerate")

from models import small_cnn  # noqa: E402

import bnviz  # noqa: E402
from bnviz.store import RecordingWarning, open_run  # noqa: E402

BATCHES, ACCUMULATE = 8, 2


def train(path=None):
    acc = accelerate.Accelerator(cpu=True, gradient_accumulation_steps=ACCUMULATE)
    model = small_cnn()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    g = torch.Generator().manual_seed(3)
    data = torch.utils.data.TensorDataset(
        torch.randn(BATCHES * 4, 3, 6, 6, generator=g), torch.randn(BATCHES * 4, 4, generator=g)
    )
    model, opt, loader = acc.prepare(model, opt, torch.utils.data.DataLoader(data, batch_size=4))
    assert type(opt).__name__ == "AcceleratedOptimizer"
    updates = []
    rec = bnviz.record(acc.unwrap_model(model), path, optimizer=opt) if path else None
    with warnings.catch_warnings():
        warnings.simplefilter("error", RecordingWarning)
        for x, y in loader:
            with acc.accumulate(model):
                loss = F.mse_loss(model(x), y)
                acc.backward(loss)
                opt.step()
                opt.zero_grad()
                if acc.sync_gradients:
                    updates.append(len(updates))
                if rec is not None:
                    rec.log(loss=loss)
        if rec is not None:
            rec.close()
    return acc.unwrap_model(model), updates


def test_an_accelerated_optimizer_counts_its_real_updates_and_training_is_unchanged(tmp_path):
    model, updates = train(tmp_path / "run.h5")
    twin, _ = train()
    for (name, a), b in zip(model.state_dict().items(), twin.state_dict().values()):
        assert torch.equal(a, b), name
    assert updates == list(range(BATCHES // ACCUMULATE))
    with open_run(tmp_path / "run.h5") as run:
        assert list(run.steps) == updates  # one row per optimizer update, not per micro-batch
        assert list(run.scalar("loss")[0]) == updates
