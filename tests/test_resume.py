"""bnviz.record(..., resume=True) after a restart from a checkpoint; the reader joins the segments."""

import copy

import numpy as np
import pytest
import torch
from models import small_cnn

import bnviz
from bnviz.store import open_run
from bnviz.store.segments import JoinedRun, segment_path

STEPS, CHECKPOINT = 8, 4  # the checkpoint holds the state after steps 0..3


def batch(step):
    g = torch.Generator().manual_seed(step)
    return torch.randn(8, 3, 6, 6, generator=g) * (1 + 0.1 * step)


def train(model, opt, rec, steps, checkpoints=None):
    for step in steps:
        loss = model(batch(step)).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        rec.log(loss=loss)
        rec.step(step)
        if step == 2:  # an eval pass after step 2, at step 3
            model.eval()
            with torch.no_grad():
                model(batch(100))
            model.train()
        if checkpoints is not None and step + 1 == CHECKPOINT:
            checkpoints.append(copy.deepcopy((model.state_dict(), opt.state_dict())))


def fresh():
    model = small_cnn()
    return model, torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)


def test_a_resumed_run_reads_as_the_uninterrupted_one(tmp_path):
    ref_model, ref_opt = fresh()
    with bnviz.record(ref_model, tmp_path / "ref.h5") as rec:
        train(ref_model, ref_opt, rec, range(STEPS))

    path = tmp_path / "run.h5"
    model, opt = fresh()
    checkpoints = []
    with bnviz.record(model, path, resume=True) as rec:  # nothing there yet: a plain start
        train(model, opt, rec, range(6), checkpoints)  # "preempted" after step 5
    model, opt = fresh()
    state, opt_state = checkpoints[0]
    model.load_state_dict(state)
    opt.load_state_dict(opt_state)
    with bnviz.record(model, path, resume=True, start_step=CHECKPOINT) as rec:
        train(model, opt, rec, range(CHECKPOINT, STEPS))
    assert segment_path(path, 1).exists() and segment_path(path, 1).name == "run.resume1.h5"

    with open_run(tmp_path / "ref.h5") as ref, open_run(path) as run:
        assert isinstance(run, JoinedRun) and len(run.segments) == 2
        assert list(run.steps) == list(ref.steps)
        assert list(run.phases) == list(ref.phases)
        assert run.meta["run_name"] == "run"
        for layer in ref.layers:
            # steps 4 and 5 of the first attempt are superseded by the resumed ones, which
            # retrained them from the checkpoint: every value equals the uninterrupted run's
            np.testing.assert_array_equal(run.summary_layer(layer.path), ref.summary_layer(layer.path))
            np.testing.assert_array_equal(run.channels(layer.path, "pre_mean"), ref.channels(layer.path, "pre_mean"))
            np.testing.assert_array_equal(
                run.quantiles(layer.path, "post", [1, 5, 2]), ref.quantiles(layer.path, "post", [1, 5, 2])
            )
        np.testing.assert_array_equal(run.channel_steps, ref.channel_steps)
        np.testing.assert_array_equal(run.hist_steps, ref.hist_steps)
        for row, step in enumerate(ref.hist_steps):
            h, r = run.hist("1", "pre", row), ref.hist("1", "pre", row)
            if step < CHECKPOINT:
                np.testing.assert_array_equal(h.counts, r.counts)
            # a segment sets its own histogram ranges (each row carries its range): same values, other bins
            assert h.counts.sum() + h.under + h.over == r.counts.sum() + r.under + r.over
        for name in ("loss",):
            np.testing.assert_array_equal(run.scalar(name)[0], ref.scalar(name)[0])
            np.testing.assert_array_equal(run.scalar(name)[1], ref.scalar(name)[1])
        assert run.snapshot(5)["1"]["pre_mean"] == ref.snapshot(5)["1"]["pre_mean"]
        assert run.writer_state == "closed"
    with open_run(segment_path(path, 1)) as seg:  # a segment alone is a complete run too
        assert seg.meta["segment"] == 1 and seg.meta["segment_start"] == CHECKPOINT
        assert list(seg.steps[seg.rows("train")]) == list(range(CHECKPOINT, STEPS))


def test_resume_without_start_step_goes_on_after_the_last_step_or_from_the_first_rec_step(tmp_path):
    path = tmp_path / "run.h5"
    for steps in (range(3), None, range(1, 3)):
        model, opt = fresh()
        with bnviz.record(model, path, resume=True) as rec:
            if steps is None:  # no step number given: counts on from the last recorded step
                for step in range(2):
                    model(batch(step)).pow(2).mean().backward()
                    rec.step()
            else:
                train(model, opt, rec, steps)
    with open_run(path) as run:
        assert len(run.segments) == 3
        # attempt 1: train 0, 1, 2 and an eval at 3; attempt 2 went on after the last train step: 3, 4;
        # attempt 3's first rec.step(1) went back to 1: its rows supersede those from 1 on
        assert list(run.steps[run.rows("train")]) == [0, 1, 2]
        assert list(run.steps[run.rows("eval")]) == [3]
        second = run.segments[1]
        assert list(second.steps) == [3, 4] and second.meta["segment_start"] == 3
        assert run.segments[2].meta["segment_start"] == 1


def test_resume_refuses_another_model_and_overwrite(tmp_path):
    path = tmp_path / "run.h5"
    model, opt = fresh()
    with bnviz.record(model, path) as rec:
        train(model, opt, rec, range(2))
    other = torch.nn.Sequential(torch.nn.Linear(3, 5), torch.nn.BatchNorm1d(5))
    with pytest.raises(ValueError, match=r"BN layers .* differ .*missing now: 1, 4, 9; new: 1"):
        bnviz.record(other, path, resume=True)
    assert type(other[1]) is torch.nn.BatchNorm1d and not segment_path(path, 1).exists()
    with pytest.raises(ValueError, match="choose one"):
        bnviz.record(model, path, resume=True, overwrite=True)


def test_resume_refuses_a_recording_of_another_format_version_before_training(tmp_path):
    import h5py

    path = tmp_path / "run.h5"
    model, opt = fresh()
    with bnviz.record(model, path) as rec:
        train(model, opt, rec, range(2))
    with h5py.File(path, "r+") as f:  # as an older bnviz wrote it
        f.attrs["format_version"] = "1.2"
    with pytest.raises(ValueError, match=r"run.h5 is in format 1.2 and this bnviz writes 1\.3; .* share a format"):
        bnviz.record(model, path, resume=True)
    assert not segment_path(path, 1).exists() and type(model[1]) is torch.nn.BatchNorm2d
    with open_run(path) as run:  # the first attempt's rows, as they were
        assert list(run.steps) == [0, 1]


def test_a_reader_left_open_sees_a_new_segment_on_refresh(tmp_path):
    path = tmp_path / "run.h5"
    model, opt = fresh()
    for start, stop in ((0, 3), (2, 4)):
        with bnviz.record(model, path, resume=True, start_step=start) as rec:
            train(model, opt, rec, range(start, stop))
    run = open_run(path)
    assert list(run.steps[run.rows("train")]) == [0, 1, 2, 3] and not run.refresh()
    with bnviz.record(model, path, resume=True, start_step=3) as rec:
        train(model, opt, rec, range(3, 6))
    assert run.refresh()
    assert len(run.segments) == 3 and list(run.steps[run.rows("train")]) == [0, 1, 2, 3, 4, 5]
    run.close()


def test_a_refresh_tries_a_segment_being_written_once_and_waits_only_at_opening(tmp_path, monkeypatch):
    """The viewer refreshes every second on its window's thread: a new segment that a live writer
    holds but that cannot be read yet must not cost it the opening's retries (1.5 s of waits)."""
    from bnviz.store import reader

    path = tmp_path / "run.h5"
    model, opt = fresh()
    with bnviz.record(model, path) as rec:
        train(model, opt, rec, range(2))
    whole = path.read_bytes()
    segment_path(path, 1).write_bytes(whole[: len(whole) // 2])  # cut short, as if mid-write
    monkeypatch.setattr(reader, "being_written", lambda p: True)  # and its writer alive
    waits = []
    monkeypatch.setattr(reader.time, "sleep", waits.append)
    run = open_run(path)
    assert len(waits) == reader.OPEN_ATTEMPTS - 1 and len(run.segments) == 1  # opening waits for it
    waits.clear()
    assert not run.refresh() and waits == [] and len(run.segments) == 1  # a refresh does not
    segment_path(path, 1).unlink()
    run.close()


def test_every_rank_of_a_resumed_job_joins_its_own_segments(tmp_path, monkeypatch):
    path = tmp_path / "run.h5"
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("BNVIZ_JOB_ID", "job-7")
    for start, stop in ((0, 3), (2, 5)):
        for rank in (0, 1):
            monkeypatch.setenv("RANK", str(rank))
            model, opt = fresh()
            with bnviz.record(model, path, resume=True, start_step=start) as rec:
                train(model, opt, rec, range(start, stop))
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "run.h5",
        "run.rank1.h5",
        "run.rank1.resume1.h5",
        "run.resume1.h5",
    ]
    with open_run(path) as run:
        assert [type(r).__name__ for r in run.ranks] == ["JoinedRun", "JoinedRun"] and not run.rank_problems
        for r in run.ranks:
            assert list(r.steps[r.rows("train")]) == [0, 1, 2, 3, 4]
