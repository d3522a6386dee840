"""bnviz.record end to end: a real training loop writes a file that the reader opens."""

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import warnings

import numpy as np
import pytest
import torch
from models import small_cnn
from torch import nn

import bnviz
from bnviz.store import RecordingWarning, open_run


def train(model, rec, steps, *, opt=None, eval_at=(), call_step=True, seed=0):
    g = torch.Generator().manual_seed(seed)
    opt = opt or torch.optim.SGD(model.parameters(), lr=0.1)
    for step in range(steps):
        x = torch.randn(16, 3, 8, 8, generator=g) * (1 + step * 0.1) + step * 0.05
        loss = model(x).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        rec.log(loss=loss)
        if step in eval_at:
            model.eval()
            with torch.no_grad():
                model(torch.randn(16, 3, 8, 8, generator=g))
            model.train()
        if call_step:
            rec.step()


def test_stored_channel_statistics_match_an_independent_computation(tmp_path):
    model = small_cnn()
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    seen = {id(m): [] for m in bns}

    def capture(module, args, output):
        # first train forward of each step: what the recorder keeps
        seen[id(module)].append((args[0].detach().double().clone(), output.detach().double().clone()))

    handles = [m.register_forward_hook(capture) for m in bns]
    path = tmp_path / "run.h5"
    with bnviz.record(model, path, channel_every=1, hist_every=1, flush_every=4) as rec:
        states = []
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        g = torch.Generator().manual_seed(0)
        for step in range(6):
            x = torch.randn(16, 3, 8, 8, generator=g) + step
            # the recorded gamma/beta are those the forward used, running stats those before it
            states.append(
                {
                    id(m): (
                        m.weight.detach().clone(),
                        m.bias.detach().clone(),
                        m.running_mean.clone(),
                        m.running_var.clone(),
                    )
                    for m in bns
                }
            )
            model(x).pow(2).mean().backward()
            opt.step()
            opt.zero_grad()
            rec.step()
    for h in handles:
        h.remove()

    with open_run(path) as run:
        assert list(run.channel_steps) == list(range(6))
        for m in bns:
            layer = next(l for l in run.layers if l.num_features == m.num_features)
            for step, (x, y) in enumerate(seen[id(m)]):
                x_np, y_np = x.numpy(), y.numpy()
                axes = (0, 2, 3)
                np.testing.assert_allclose(
                    run.channels(layer.path, "pre_mean", step), x_np.mean(axes), rtol=1e-4, atol=1e-5
                )
                np.testing.assert_allclose(
                    run.channels(layer.path, "pre_var", step), x_np.var(axes), rtol=1e-3, atol=1e-5
                )
                np.testing.assert_allclose(
                    run.channels(layer.path, "post_mean", step), y_np.mean(axes), rtol=1e-3, atol=1e-4
                )
                np.testing.assert_allclose(
                    run.channels(layer.path, "post_var", step), y_np.var(axes), rtol=1e-3, atol=1e-4
                )
                w, b, rm, rv = (t.numpy() for t in states[step][id(m)])
                np.testing.assert_array_equal(run.channels(layer.path, "gamma", step), w)
                np.testing.assert_array_equal(run.channels(layer.path, "beta", step), b)
                np.testing.assert_array_equal(run.channels(layer.path, "running_mean", step), rm)
                np.testing.assert_array_equal(run.channels(layer.path, "running_var", step), rv)


def test_run_metadata_phases_and_scalars(tmp_path):
    model = small_cnn()
    path = tmp_path / "run.h5"
    with bnviz.record(model, path, run_name="trial 1", meta={"lr": 0.1, "note": "ünïcode"}) as rec:
        train(model, rec, 10, eval_at=(4,))
    with open_run(path) as run:
        assert run.meta["run_name"] == "trial 1"
        assert run.meta["user_meta"] == {"lr": 0.1, "note": "ünïcode"}
        assert run.meta["model_class"] == "Sequential"
        assert run.writer_state == "closed"
        assert [l.path for l in run.layers] == ["1", "4", "9"]
        assert [l.activation for l in run.layers] == ["relu", "sigmoid", "none"]
        train_rows, eval_rows = run.rows("train"), run.rows("eval")
        assert list(run.steps[train_rows]) == list(range(10))
        # the eval pass ran after step 4's optimizer step, before rec.step(): it belongs to step 4
        assert list(run.steps[eval_rows]) == [4]
        assert np.all(np.diff(run.steps) >= 0)
        steps, loss = run.scalar("loss")
        assert list(steps) == list(range(10)) and np.all(np.isfinite(loss))
    assert not any(type(m).__module__.startswith("bnviz") for m in model.modules())


def test_optimizer_hook_counts_steps_and_every_k(tmp_path):
    model = small_cnn()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    with bnviz.record(model, tmp_path / "run.h5", optimizer=opt, every=3) as rec:
        train(model, rec, 10, opt=opt, call_step=False)
        assert rec.current_step == 10
    with open_run(tmp_path / "run.h5") as run:
        assert list(run.steps) == [0, 3, 6, 9]


def test_exception_inside_the_block_closes_the_file_and_reraises(tmp_path):
    model = small_cnn()
    with pytest.raises(ZeroDivisionError):
        with bnviz.record(model, tmp_path / "run.h5") as rec:
            train(model, rec, 3)
            1 / 0  # noqa: B018
    with open_run(tmp_path / "run.h5") as run:
        assert run.writer_state == "closed"
        assert list(run.steps) == [0, 1, 2]
    assert isinstance(model[1], nn.BatchNorm2d) and type(model[1]) is nn.BatchNorm2d


def test_bad_targets_fail_before_training(tmp_path):
    model = small_cnn()
    with pytest.raises(FileNotFoundError, match="does not exist"):
        bnviz.record(model, tmp_path / "missing" / "run.h5")
    (tmp_path / "old.h5").write_bytes(b"an earlier run")
    with pytest.raises(FileExistsError, match="overwrite=True"):
        bnviz.record(model, tmp_path / "old.h5")
    assert (tmp_path / "old.h5").read_bytes() == b"an earlier run"
    assert type(model[1]) is nn.BatchNorm2d  # nothing left instrumented


def test_write_failure_warns_once_and_training_goes_on(tmp_path, monkeypatch):
    from bnviz.store import writer as writer_mod

    calls = {"n": 0}
    real_append = writer_mod.RunWriter.append

    def failing_append(self, block):
        calls["n"] += 1
        if calls["n"] > 1:
            raise OSError(28, "No space left on device")
        real_append(self, block)

    monkeypatch.setattr(writer_mod.RunWriter, "append", failing_append)
    model = small_cnn()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with bnviz.record(model, tmp_path / "run.h5", flush_every=2) as rec:
            train(model, rec, 12)
    ours = [w for w in caught if issubclass(w.category, RecordingWarning)]
    assert len(ours) == 1 and "No space left" in str(ours[0].message)
    with open_run(tmp_path / "run.h5") as run:
        assert list(run.steps) == [0, 1]


CRASH_SCRIPT = textwrap.dedent("""
    import sys, time, torch
    from torch import nn
    import bnviz
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 1))
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    with bnviz.record(model, sys.argv[1], flush_every=4, channel_every=1, hist_every=1) as rec:
        for step in range(100000):
            model(torch.randn(32, 8)).pow(2).mean().backward()
            opt.step(); opt.zero_grad(); rec.step()
            time.sleep(0.002)
""")


def wait_for_rows(path, n, timeout=60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists():
            try:
                with open_run(path) as run:
                    if len(run.steps) >= n:
                        return len(run.steps)
            except Exception:  # noqa: BLE001 - the file may not be complete yet
                pass
        time.sleep(0.05)
    raise AssertionError(f"{path} never reached {n} rows")


@pytest.mark.slow
@pytest.mark.parametrize("rows_before_kill", [4, 40])
def test_sigkilled_training_leaves_every_flushed_step_readable(tmp_path, rows_before_kill):
    path = tmp_path / "run.h5"
    proc = subprocess.Popen([sys.executable, "-c", CRASH_SCRIPT, str(path)])
    try:
        seen = wait_for_rows(path, rows_before_kill)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    with open_run(path) as run:
        steps = run.steps
        assert len(steps) >= seen
        assert list(steps) == list(range(len(steps)))
        assert run.writer_state == "writer gone"
        for field in ("pre_mean", "running_var"):
            assert np.all(np.isfinite(run.channels("1", field, slice(None))))
        assert run.hist_steps[-1] <= steps[-1]


def test_the_file_says_how_distributions_were_sampled(tmp_path):
    model = small_cnn()
    with bnviz.record(model, tmp_path / "run.h5") as rec:
        train(model, rec, 2)
    with open_run(tmp_path / "run.h5") as run:
        engine = run.meta["engine"]
        assert engine["samples_per_channel"] >= 1 and engine["pooled_per_layer"] >= 1


def test_a_failing_writer_releases_the_model_at_once_even_where_warnings_are_errors(tmp_path, monkeypatch):
    from bnviz.store import writer as writer_mod

    def failing_append(self, block):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(writer_mod.RunWriter, "append", failing_append)
    model = small_cnn()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with bnviz.record(model, tmp_path / "run.h5", flush_every=2) as rec:
            train(model, rec, 8)  # must not raise
            assert not rec.recording
            assert type(model[1]) is nn.BatchNorm2d  # detached without waiting for close()
    assert not [t for t in threading.enumerate() if t.name == "bnviz-writer"]


def test_bad_scalars_are_skipped_with_one_warning_each(tmp_path):
    model = small_cnn()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with bnviz.record(model, tmp_path / "run.h5") as rec:
            for _ in range(3):
                rec.log(loss=1.0, vector=torch.ones(3), text="high")
                rec.step()
    ours = [str(w.message) for w in caught if issubclass(w.category, RecordingWarning)]
    assert len(ours) == 2 and any("'vector'" in m for m in ours) and any("'text'" in m for m in ours)
    with open_run(tmp_path / "run.h5") as run:
        assert run.scalar_names == ["loss"]
        assert list(run.scalar("loss")[1]) == [1.0, 1.0, 1.0]


def test_an_optimizer_without_step_hooks_is_refused_and_leaves_the_model_as_it_was(tmp_path):
    class OldOptimizer:
        pass

    model = small_cnn()
    with pytest.raises(TypeError, match="OldOptimizer"):
        bnviz.record(model, tmp_path / "run.h5", optimizer=OldOptimizer())
    assert type(model[1]) is nn.BatchNorm2d


def test_probes_record_evenly_spread_channels_as_documented(tmp_path):
    # bnviz.record's docstring: an int k gives the centres of k equal segments (1: the middle).
    # small_cnn's layers have 8, 6 and 4 channels.
    expected = {1: [[4], [3], [2]], 2: [[2, 6], [1, 4], [1, 3]]}
    x = torch.randn(4, 3, 8, 8)
    for k, channels in expected.items():
        model = small_cnn()
        with bnviz.record(model, tmp_path / f"p{k}.h5", probes=k) as rec:
            model(x)
            rec.step()
        with open_run(tmp_path / f"p{k}.h5") as run:
            assert [list(li.probe_channels) for li in run.layers] == channels
