"""How bnviz.record numbers steps: wrapped optimizers, rec.step(n), rec.log alignment, warnings."""

import warnings

import numpy as np
import pytest
import torch
from models import small_cnn
from torch import nn

import bnviz
from bnviz.store import RecordingWarning, open_run


def batches(steps, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(8, 3, 6, 6, generator=g) for _ in range(steps)]


def ours(caught):
    return [str(w.message) for w in caught if issubclass(w.category, RecordingWarning)]


class Wrapped(torch.optim.Optimizer):
    """Like accelerate's AcceleratedOptimizer: an Optimizer subclass that skips Optimizer.__init__
    and forwards to the optimizer it holds."""

    def __init__(self, optimizer):
        self.optimizer = optimizer

    def step(self, closure=None):
        return self.optimizer.step(closure)

    def zero_grad(self, set_to_none=True):
        self.optimizer.zero_grad(set_to_none)


class Outer:
    def __init__(self, optimizer):
        self.optimizer = optimizer


@pytest.mark.parametrize("wrap", [lambda o: Wrapped(o), lambda o: Outer(Wrapped(o))], ids=["one", "two"])
def test_a_wrapped_optimizer_is_unwrapped_and_its_updates_counted(tmp_path, wrap):
    model = small_cnn()
    inner = torch.optim.SGD(model.parameters(), lr=0.1)
    opt = wrap(inner)
    with bnviz.record(model, tmp_path / "run.h5", optimizer=opt) as rec:
        for x in batches(5):
            model(x).pow(2).mean().backward()
            inner.step()
            inner.zero_grad()
        assert rec.current_step == 5
    with open_run(tmp_path / "run.h5") as run:
        assert list(run.steps) == [0, 1, 2, 3, 4]


def test_an_object_without_a_torch_optimizer_inside_is_refused_by_name(tmp_path):
    class Holder:
        optimizer = None

    model = small_cnn()
    with pytest.raises(TypeError, match=r"optimizer=Outer -> Holder: .*rec\.step\(\)"):
        bnviz.record(model, tmp_path / "run.h5", optimizer=Outer(Holder()))
    assert type(model[1]) is nn.BatchNorm2d and not (tmp_path / "run.h5").exists()


def test_rec_step_n_numbers_rows_with_the_loops_own_counter(tmp_path):
    model = small_cnn()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with bnviz.record(model, tmp_path / "run.h5") as rec:
            for n, x in zip([10, 11, 11, 15, 3, 16], batches(6)):
                model(x)
                rec.log(n=float(n))
                rec.step(n)
            assert rec.current_step == 17
    msgs = ours(caught)
    assert len(msgs) == 1 and "rec.step(3) after step 15" in msgs[0]
    with open_run(tmp_path / "run.h5") as run:
        # the repeated 11 and the backward 3 did not end a step: their forwards were the same step's
        assert list(run.steps) == [10, 11, 15, 16]
        steps, values = run.scalar("n")
        # a log before rec.step(n) belongs to the step n in progress; 11 and 3 were logged in the
        # steps that ended as 15 and 16, later values replacing earlier ones of the same step
        assert list(steps) == [10, 11, 15, 16] and list(values) == [10.0, 11.0, 15.0, 16.0]


@pytest.mark.parametrize("log_after_step", [False, True])
def test_rec_log_lands_on_its_own_step_before_or_after_opt_step(tmp_path, log_after_step):
    model = small_cnn()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    losses = []
    with bnviz.record(model, tmp_path / "run.h5", optimizer=opt) as rec:
        for i, x in enumerate(batches(6)):
            loss = model(x).pow(2).mean()
            losses.append(loss.item())
            opt.zero_grad()
            loss.backward()
            if not log_after_step:
                rec.log(loss=loss)
            opt.step()
            if log_after_step:
                rec.log(loss=loss)
            if i == 2:  # an eval pass after the step: its rows and its scalars carry the next step
                model.eval()
                with torch.no_grad():
                    model(x)
                model.train()
                rec.log(val=1.0)
    with open_run(tmp_path / "run.h5") as run:
        steps, values = run.scalar("loss")
        assert list(steps) == [0, 1, 2, 3, 4, 5]
        np.testing.assert_allclose(values, losses, rtol=1e-6)
        assert list(run.steps[run.rows("eval")]) == [3]
        assert list(run.scalar("val")[0]) == [3]


def test_many_forwards_and_no_step_warn_once(tmp_path):
    model = small_cnn()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with bnviz.record(model, tmp_path / "run.h5"):
            for x in batches(250):
                model(x)
    msgs = ours(caught)
    assert len(msgs) == 1 and "100 training forwards" in msgs[0] and "rec.step()" in msgs[0]
    with open_run(tmp_path / "run.h5") as run:
        assert list(run.steps) == [0]


@pytest.mark.slow
def test_stepping_and_eval_loops_do_not_warn(tmp_path):
    model = small_cnn()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with bnviz.record(model, tmp_path / "run.h5") as rec:
            for x in batches(120):
                model(x)
                rec.step()
            model.eval()
            with torch.no_grad():
                for x in batches(150):
                    model(x)


class Shared(nn.Module):
    """One BatchNorm2d applied to two branches, the other once."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.other = nn.BatchNorm2d(4)

    def forward(self, x):
        a = self.bn(self.conv(x))
        b = self.bn(self.conv(x * 2))
        return self.other(a + b)


def test_a_bn_called_twice_per_forward_is_said_in_a_warning_and_the_layer_table(tmp_path):
    torch.manual_seed(0)
    model = Shared()
    x = batches(1)[0]
    with torch.no_grad():
        first_call_mean = model.conv(x).mean(dim=(0, 2, 3))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with bnviz.record(model, tmp_path / "run.h5") as rec:
            model(x)
            rec.step()
    msgs = ours(caught)
    assert len(msgs) == 1 and "bn (2 calls)" in msgs[0] and "other" not in msgs[0]
    with open_run(tmp_path / "run.h5") as run:
        calls = {li.path: li.extra["calls_per_forward"] for li in run.layers}
        assert calls == {"bn": 2, "other": 1}
        # the recorded call is the first one: conv(x), not conv(2 x)
        np.testing.assert_allclose(run.channels("bn", "pre_mean", 0), first_call_mean.numpy(), rtol=1e-5, atol=1e-6)


def test_a_step_the_grad_scaler_skips_is_no_update_for_optimizer_but_counts_for_rec_step_n(tmp_path):
    def run(path, explicit):
        model = small_cnn()
        opt = torch.optim.SGD(model.parameters(), lr=0.05)
        scaler = torch.amp.GradScaler("cpu", init_scale=2.0**4)
        with bnviz.record(model, path, optimizer=None if explicit else opt) as rec:
            for step, x in enumerate(batches(4)):
                loss = model(x).pow(2).mean() * (float("inf") if step == 1 else 1.0)
                opt.zero_grad()
                scaler.scale(loss).backward()
                scaler.step(opt)  # step 1: inf gradients, the update is skipped
                scaler.update()
                if explicit:
                    rec.step(step)
        with open_run(path) as r:
            return list(r.steps)

    # the hook sees real updates only: the skipped step's forward joins the next update's step
    assert run(tmp_path / "hook.h5", explicit=False) == [0, 1, 2]
    # the loop's own counter (what Lightning and the HF Trainer do) keeps every step
    assert run(tmp_path / "own.h5", explicit=True) == [0, 1, 2, 3]
