"""bnviz.integrations.fastai with the real fastai Learner (installed without torchvision)."""

import warnings

import pytest
import torch
import torch.nn.functional as F

# a real framework: seconds to import and train; CI runs them (pytest -m 'not slow' skips)
pytestmark = pytest.mark.slow

with warnings.catch_warnings():  # fastai's imports warn about pandas options
    warnings.simplefilter("ignore")
    pytest.importorskip("fastai.learner")
    from fastai.callback.core import Callback
    from fastai.callback.training import GradientAccumulation
    from fastai.data.core import DataLoaders
    from fastai.data.load import DataLoader
    from fastai.learner import Learner
    from fastai.optimizer import SGD

    from bnviz.integrations.fastai import BnvizCallback
from models import small_cnn  # noqa: E402

from bnviz.store import RecordingWarning, open_run  # noqa: E402


class Counter(Callback):
    """fastai's own events, counted independently."""

    def __init__(self):
        self.steps, self.validations = 0, []

    def after_step(self):
        self.steps += 1

    def before_validate(self):
        self.validations.append(self.steps)


def fit(callbacks):
    g = torch.Generator().manual_seed(4)
    items = [(torch.randn(3, 6, 6, generator=g), torch.randn(4, generator=g)) for _ in range(32)]
    dls = DataLoaders(DataLoader(items[:24], bs=4), DataLoader(items[24:], bs=4), device="cpu")
    learn = Learner(
        dls, small_cnn(), loss_func=F.mse_loss, opt_func=SGD, lr=0.05, cbs=[GradientAccumulation(n_acc=8), *callbacks]
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        warnings.simplefilter("error", RecordingWarning)
        with learn.no_bar(), learn.no_logging():
            learn.fit(2)
    return learn.model


def test_rows_follow_fastais_optimizer_steps_and_training_is_unchanged(tmp_path):
    counter = Counter()
    model = fit([BnvizCallback(tmp_path / "run.h5"), counter])
    twin = fit([])
    for (name, a), b in zip(model.state_dict().items(), twin.state_dict().values()):
        assert torch.equal(a, b), name
    # 6 batches of 4 per epoch, gradients accumulated over 8 samples: 3 optimizer steps per epoch
    assert counter.steps == 6 and counter.validations == [3, 6]
    with open_run(tmp_path / "run.h5") as run:
        assert list(run.steps[run.rows("train")]) == list(range(counter.steps))
        assert sorted(set(run.steps[run.rows("eval")])) == counter.validations
        assert list(run.scalar("loss")[0]) == list(range(counter.steps))
