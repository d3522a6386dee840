"""The first recorded forward may be anything a framework does first: it never ends the recording
and leaves nothing behind in torch or in the model."""

import copy

import pytest
import torch
from test_attribution import inert
from torch import nn

import bnviz
from bnviz.hooks import instrument
from bnviz.store import open_run


def mlp():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 2))


def train(model, opt, steps=3):
    for _ in range(steps):
        loss = model(torch.randn(16, 4)).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()


@pytest.mark.parametrize("context", [torch.inference_mode, torch.no_grad])
@pytest.mark.parametrize("phase", ["train", "eval"])
def test_a_sanity_check_pass_without_autograd_first(tmp_path, context, phase):
    model = mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    path = tmp_path / "run.h5"
    with bnviz.record(model, path, optimizer=opt):
        model.train(phase == "train")
        with context():
            model(torch.randn(4, 4))
        model.train()
        train(model, opt)
    run = open_run(path)
    assert len(run.steps) == 3 + (phase == "eval") and run.layers[0].activation == "relu"


def test_a_failed_first_forward_leaves_no_mode_and_the_next_one_is_observed():
    model = mlp()
    ins = instrument(model)
    with pytest.raises(RuntimeError):
        model(torch.randn(4, 5))  # wrong width
    assert torch.overrides._get_current_function_mode_stack() == []
    model(torch.randn(4, 4))
    assert ins.layers[0].activation == "relu" and not model._forward_pre_hooks and not model._forward_hooks


def test_save_and_copy_before_the_first_forward_carry_nothing_of_bnviz(tmp_path):
    model = mlp()
    ins = instrument(model)
    torch.save(model, tmp_path / "m.pt")
    for other in (copy.deepcopy(model), torch.load(tmp_path / "m.pt", weights_only=False)):
        assert type(other[1]) is nn.BatchNorm1d and not vars(other[1]).keys() & {"_bnviz_sink", "_bnviz_index"}
        assert not other._forward_hooks and all(inert(h) for h in other._forward_pre_hooks.values())
        other(torch.randn(4, 4))
    model(torch.randn(4, 4))  # the original is still observed
    assert ins.layers[0].activation == "relu"
    # a file saved by bnviz's process loads in one without bnviz
    code = (
        "import torch, sys; sys.modules['bnviz'] = None; "
        f"m = torch.load({str(tmp_path / 'm.pt')!r}, weights_only=False); m(torch.randn(4, 4)); print('ok')"
    )
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "ok", out.stderr


def test_a_block_first_computed_under_inference_mode_does_not_end_the_recording(tmp_path):
    """The engine's scratch memory is written in place at every block: created inside
    inference_mode (an eval loop that flushes), it must still take training rows after it."""
    model = mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    path = tmp_path / "run.h5"
    with bnviz.record(model, path, flush_every=2) as rec:
        model.eval()
        with torch.inference_mode():
            for _ in range(3):
                model(torch.randn(8, 4))
                rec.step()
        model.train()
        for _ in range(6):
            train(model, opt, steps=1)
            rec.step()
    assert len(open_run(path).steps) == 9
