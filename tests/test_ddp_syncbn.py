"""SyncBatchNorm on CPU, as far as torch allows there (its synced path only runs on GPUs), and
``convert_sync_batchnorm`` after ``bnviz.record`` started (it drops bnviz's layers)."""

import warnings

import numpy as np
import pytest
import torch
import torch.distributed as dist
from models import small_cnn
from torch import nn

import bnviz
from bnviz.store import RecordingWarning, open_run

STEPS = 6


def train(model, rec=None, steps=STEPS, convert_at=None, inputs=None):
    """SGD on fixed data; ``convert_at``: step before which the model is converted to SyncBatchNorm."""
    g = torch.Generator().manual_seed(0)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for step in range(steps):
        if step == convert_at:
            assert nn.SyncBatchNorm.convert_sync_batchnorm(model) is model
        x = torch.randn(16, 3, 8, 8, generator=g) + step * 0.1
        if inputs is not None:
            inputs.append(x)
        loss = model(x).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        if rec is not None:
            rec.step()
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def assert_same_state(a, b):
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def no_bnviz_left(model):
    return not any(type(m).__module__.startswith("bnviz") for m in model.modules())


@pytest.mark.slow
def test_convert_first_then_record_is_recorded_and_bit_identical(tmp_path):
    plain = train(nn.SyncBatchNorm.convert_sync_batchnorm(small_cnn()))
    model = nn.SyncBatchNorm.convert_sync_batchnorm(small_cnn())
    first = model[0]
    seen = []
    model[1].register_forward_hook(lambda m, args, out: seen.append(args[0].detach().double()))
    with bnviz.record(model, tmp_path / "run.h5", channel_every=1) as rec:
        state = train(model, rec)
    assert_same_state(state, plain)
    assert no_bnviz_left(model) and model[0] is first
    with open_run(tmp_path / "run.h5") as run:
        assert [l.kind for l in run.layers] == ["SyncBatchNorm"] * 3
        assert list(run.steps) == list(range(STEPS))
        for step, x in enumerate(seen):
            np.testing.assert_allclose(
                run.channels("1", "pre_mean", step), x.mean((0, 2, 3)).numpy(), rtol=1e-4, atol=1e-5
            )


@pytest.mark.slow
def test_convert_after_record_warns_and_records_the_new_layers(tmp_path):
    plain = small_cnn()
    expected = train(plain, convert_at=0)
    model = small_cnn()
    with pytest.warns(
        RecordingWarning,
        match=r"layers 1, 4, 9 were replaced.*step 0 were not recorded"
        r".*convert the model first, then call bnviz.record",
    ):
        with bnviz.record(model, tmp_path / "run.h5", channel_every=1) as rec:
            state = train(model, rec, convert_at=0)
    assert_same_state(state, expected)
    assert no_bnviz_left(model) and all(type(model[i]) is nn.SyncBatchNorm for i in (1, 4, 9))
    with open_run(tmp_path / "run.h5") as run:
        assert run.writer_state == "closed"
        assert [l.kind for l in run.layers] == ["SyncBatchNorm"] * 3
        assert [l.activation for l in run.layers] == ["relu", "sigmoid", "none"]
        assert list(run.steps) == list(range(1, STEPS))
        assert np.all(np.isfinite(run.channels("1", "pre_mean")))


def test_convert_after_the_file_exists_keeps_its_rows_and_goes_on(tmp_path):
    expected = train(small_cnn(), convert_at=3)
    model = small_cnn()
    with pytest.warns(RecordingWarning, match="keeps the old layer kinds"):
        with bnviz.record(model, tmp_path / "run.h5", flush_every=2, channel_every=1) as rec:
            state = train(model, rec, convert_at=3)
    assert_same_state(state, expected)
    with open_run(tmp_path / "run.h5") as run:
        assert [l.kind for l in run.layers] == ["BatchNorm2d", "BatchNorm2d", "BatchNorm1d"]
        assert list(run.steps) == [0, 1, 2, 4, 5]
        assert np.all(np.isfinite(run.summary_all("pre_mean")))


def test_layers_removed_after_the_file_exists_stop_recording_not_training(tmp_path):
    model = small_cnn()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with bnviz.record(model, tmp_path / "run.h5", flush_every=1) as rec:
            for step in range(4):
                if step == 2:
                    model[4] = nn.Identity()
                model(torch.randn(8, 3, 8, 8)).pow(2).mean().backward()
                opt.step()
                opt.zero_grad()
                rec.step()
            assert not rec.recording
    ours = [str(w.message) for w in caught if issubclass(w.category, RecordingWarning)]
    assert len(ours) == 1 and "stopped recording" in ours[0] and "no longer match" in ours[0]
    assert no_bnviz_left(model)
    with open_run(tmp_path / "run.h5") as run:
        # step 2 keeps what the layers still in the model recorded
        assert list(run.steps) == [0, 1, 2]
        assert np.isfinite(run.summary("1", "pre_mean", 2)) and np.isnan(run.summary("4", "pre_mean", 2))


@pytest.fixture
def world_of_one():
    """A real (gloo, in-process) default process group of one rank."""
    dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
    yield
    dist.destroy_process_group()


def test_world_of_one_records_an_ordinary_file(tmp_path, world_of_one):
    model = small_cnn()
    with bnviz.record(model, tmp_path / "run.h5") as rec:
        train(model, rec, steps=2)
    with open_run(tmp_path / "run.h5") as run:
        assert "rank" not in run.meta and "world_size" not in run.meta
        assert list(run.steps) == [0, 1]


@pytest.mark.parametrize("track", [True, False])
def test_recorded_syncbatchnorm_raises_torchs_error_on_cpu(tmp_path, world_of_one, track):
    plain = nn.SyncBatchNorm(4, track_running_stats=track)
    model = nn.SyncBatchNorm(4, track_running_stats=track)
    x = torch.randn(8, 4, 3, 3)
    with pytest.raises(ValueError, match="expected input tensor to be on GPU") as expected:
        plain(x)
    with bnviz.record(model, tmp_path / "run.h5"):
        with pytest.raises(ValueError) as recorded:
            model(x)
    assert str(recorded.value) == str(expected.value)
    assert_same_state(model.state_dict(), plain.state_dict())  # torch counts the batch before it raises


def test_syncbatchnorm_in_eval_is_recorded_in_a_process_group(tmp_path, world_of_one):
    model = nn.SyncBatchNorm(4).eval()
    x = torch.randn(8, 4, 3, 3)
    with bnviz.record(model, tmp_path / "run.h5") as rec:
        assert torch.equal(model(x), nn.SyncBatchNorm(4).eval()(x))
        rec.step()
    with open_run(tmp_path / "run.h5") as run:
        np.testing.assert_allclose(run.summary(0, "pre_mean", 0), x.mean((0, 2, 3)).mean(), atol=1e-6)
        np.testing.assert_allclose(run.channels(0, "used_var", 0), np.ones(4))  # the running variance
