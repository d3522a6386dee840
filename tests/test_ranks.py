"""Joining a distributed job's rank files, and the divergence maths, on files written without torch
(plus the training side's naming of rank files, which needs no process group)."""

import math

import numpy as np
import pytest

from bnviz.analysis.ranks import (
    aligned_rows,
    channel_divergence,
    divergence_by_layer,
    global_batch_stats,
    iid_spread,
    rank_divergence,
)
from bnviz.store import open_run
from bnviz.store.ranks import (
    RankFilesError,
    job_path,
    open_ranks,
    rank_of,
    rank_path,
    rank_problems,
    refresh_ranks,
    world_size_of,
)
from bnviz.store.synthetic import write_synthetic_run


def rank_meta(rank, world=3, job="master:127.0.0.1:29500"):
    return {"rank": rank, "world_size": world, "local_rank": rank, "dist_backend": "nccl", "job_id": job}


def write_job(base, world=3, steps=40, skip=(), **kw):
    for r in range(world):
        if r not in skip:
            write_synthetic_run(
                rank_path(base, r), layers=2, channels=4, steps=steps, seed=r, meta=rank_meta(r, world), **kw
            )


def close_all(runs):
    for r in runs:
        r.close()


def test_naming_rule_round_trips():
    assert rank_path("out/run.h5", 0).as_posix() == "out/run.h5"
    assert rank_path("out/run.h5", 12).as_posix() == "out/run.rank12.h5"
    assert rank_path("my.run.h5", 1).name == "my.run.rank1.h5"
    assert rank_path("run", 2).name == "run.rank2"
    for name in ("out/run.h5", "my.run.h5", "run"):
        for r in (0, 1, 7):
            assert job_path(rank_path(name, r)) == rank_path(name, 0)
    assert job_path("run.rank0.h5").name == "run.rank0.h5"  # rank 0 never carries a suffix


def test_open_ranks_from_any_rank_file_gives_rank_0_first(tmp_path):
    base = tmp_path / "run.h5"
    write_job(base)
    with open_run(base) as run:
        runs = open_ranks(run)
        assert runs[0] is run and [rank_of(r) for r in runs] == [0, 1, 2]
        assert [r.path.name for r in runs] == ["run.h5", "run.rank1.h5", "run.rank2.h5"]
        assert world_size_of(run) == 3 and refresh_ranks(runs) is False
        close_all(runs[1:])
    with open_run(tmp_path / "run.rank2.h5") as run:
        runs = open_ranks(run)
        assert runs[2] is run and [rank_of(r) for r in runs] == [0, 1, 2]
        close_all(runs[:2])


def test_a_single_process_run_is_its_own_job(tmp_path):
    write_synthetic_run(tmp_path / "run.h5", layers=1, channels=2, steps=5)
    with open_run(tmp_path / "run.h5") as run:
        assert open_ranks(run) == [run] and rank_of(run) == 0 and world_size_of(run) == 1
        assert run.join_ranks() is None and run.ranks == [run] and run.rank_problems == {}


def test_missing_unreadable_and_foreign_rank_files_are_named(tmp_path):
    base = tmp_path / "run.h5"
    write_job(base, world=4, skip=(1, 2, 3))
    (tmp_path / "run.rank2.h5").write_bytes(b"not hdf5")
    write_synthetic_run(
        tmp_path / "run.rank3.h5", layers=2, channels=4, steps=5, meta=rank_meta(3, 4, job="master:127.0.0.1:29501")
    )
    with open_run(base) as run:
        with pytest.raises(RankFilesError) as err:
            open_ranks(run)
        text = str(err.value)
        assert "rank 1: run.rank1.h5 is missing" in text and "before its first flush" in text
        assert "rank 2: run.rank2.h5 cannot be read" in text
        assert "rank 3: run.rank3.h5 is from another job" in text and "29501" in text
        assert "strict=False" in text and err.value.problems.keys() == {1, 2, 3}
        assert open_ranks(run, strict=False) == [run]
        assert rank_problems(run).keys() == {1, 2, 3}
        run.join_ranks()
        assert run.ranks == [run] and run.rank_problems.keys() == {1, 2, 3}


def test_a_job_where_rank_0_alone_recorded_is_that_file_with_no_rank_missing(tmp_path):
    base = tmp_path / "run.h5"
    write_synthetic_run(base, layers=2, channels=4, steps=5, meta={**rank_meta(0, 4), "recorded_ranks": "zero"})
    write_synthetic_run(  # a stray file of the same name and job: not looked for
        tmp_path / "run.rank1.h5", layers=2, channels=4, steps=5, meta={**rank_meta(1, 4), "recorded_ranks": "zero"}
    )
    with open_run(base) as run:
        assert run.meta["recorded_ranks"] == "zero" and world_size_of(run) == 4
        assert run.ranks == [run] and run.rank_problems == {}
        assert open_ranks(run) == [run] and rank_problems(run) == {}


def test_a_rank_file_of_a_bigger_earlier_job_is_refused(tmp_path):
    base = tmp_path / "run.h5"
    write_job(base, world=2, skip=(1,))
    write_synthetic_run(tmp_path / "run.rank1.h5", layers=2, channels=4, steps=5, meta=rank_meta(1, 4))
    with open_run(base) as run:
        with pytest.raises(RankFilesError, match="job of 4 ranks, not 2"):
            open_ranks(run)


def test_aligned_rows_keep_the_steps_every_rank_recorded(tmp_path):
    base = tmp_path / "run.h5"
    write_job(base, world=2, steps=30, eval_every=10)
    # a third rank killed early: 17 steps only
    write_synthetic_run(
        rank_path(base, 2), layers=2, channels=4, steps=17, seed=2, eval_every=10, meta=rank_meta(2, 3)
    )  # another world size on purpose: open it by hand
    runs = [open_run(rank_path(base, r)) for r in range(3)]
    try:
        steps, rows = aligned_rows(runs)
        assert list(steps) == list(range(17))
        for run, r in zip(runs, rows):
            assert list(run.steps[r]) == list(steps) and np.all(run.phases[r] == 0)
        steps, rows = aligned_rows(runs, phase="eval")
        assert list(steps) == [9]
        steps, rows = aligned_rows(runs[:2], phase=None)
        # a step with a train and an eval row counts once, with its last row
        assert list(steps) == list(range(30)) and runs[0].phases[rows[0][9]] == 1
    finally:
        close_all(runs)


def test_rank_divergence_is_the_normalised_spread_across_ranks(tmp_path):
    base = tmp_path / "run.h5"
    write_job(base)
    with open_run(base) as run:
        runs = open_ranks(run)
        layer = run.layers[1].path
        steps, spread = rank_divergence(runs, "pre_mean", layer)
        mean = np.stack([r.summary(layer, "pre_mean") for r in runs]).astype(np.float64)
        var = np.stack([r.summary(layer, "pre_var") for r in runs]).astype(np.float64)
        assert list(steps) == list(range(40))
        np.testing.assert_allclose(spread, (mean.max(0) - mean.min(0)) / np.sqrt(var.mean(0)))
        _, rel = rank_divergence(runs, "pre_var", layer)
        np.testing.assert_allclose(rel, (var.max(0) - var.min(0)) / var.mean(0), rtol=1e-6)
        _, raw = rank_divergence(runs, "sat_y", layer)
        sat = np.stack([r.summary(layer, "sat_y") for r in runs]).astype(np.float64)
        np.testing.assert_allclose(raw, sat.max(0) - sat.min(0))
        with pytest.raises(KeyError, match="unknown summary field"):
            rank_divergence(runs, "pre_meen", layer)
        close_all(runs[1:])


def test_global_batch_stats_equal_those_of_the_union_of_batches():
    rng = np.random.default_rng(0)
    sizes = [7, 50, 13]  # unequal per-rank batches, as SyncBatchNorm allows
    batches = [rng.normal(r, 1 + r, size=(n, 5)) for r, n in enumerate(sizes)]
    mean, var = global_batch_stats([b.mean(0) for b in batches], [b.var(0) for b in batches], sizes)
    union = np.concatenate(batches)
    np.testing.assert_allclose(mean, union.mean(0), rtol=1e-12)
    np.testing.assert_allclose(var, union.var(0), rtol=1e-12)


@pytest.mark.parametrize("world", [2, 4])
def test_iid_spread_is_the_sampling_noise_of_rank_means(world):
    assert iid_spread(2, 1) == pytest.approx(2 / math.sqrt(math.pi), rel=1e-6)  # E|X1 - X2|
    rng = np.random.default_rng(1)
    n = 64
    means = rng.normal(0.0, 3.0, size=(20000, world, n)).mean(-1) / 3.0  # 20000 trials, sigma 3
    observed = (means.max(1) - means.min(1)).mean()
    assert observed == pytest.approx(iid_spread(world, n), rel=0.02)
    assert iid_spread(1, n) == 0.0


def test_record_before_init_process_group_takes_the_rank_from_torchrun_variables(tmp_path, monkeypatch):
    torch = pytest.importorskip("torch")
    import bnviz

    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setenv("TORCHELASTIC_RUN_ID", "job42")
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", "29400")
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.BatchNorm1d(3))
    with bnviz.record(model, tmp_path / "run.h5") as rec:
        model(torch.randn(8, 4))
        rec.step()
    assert not (tmp_path / "run.h5").exists()
    with open_run(tmp_path / "run.rank1.h5") as run:
        assert (run.meta["rank"], run.meta["world_size"], run.meta["local_rank"]) == (1, 2, 1)
        assert run.meta["dist_backend"] == "not initialised"
        assert run.meta["job_id"] == "torchelastic:job42 master:127.0.0.1:29400"
        with pytest.raises(RankFilesError, match="rank 0: run.h5 is missing"):
            open_ranks(run)
    monkeypatch.setenv("BNVIZ_JOB_ID", "mine")
    monkeypatch.setenv("RANK", "0")
    with bnviz.record(model, tmp_path / "run.h5") as rec:
        model(torch.randn(8, 4))
        rec.step()
    with open_run(tmp_path / "run.h5") as run:
        assert run.meta["job_id"] == "mine" and run.meta["rank"] == 0
        with pytest.raises(RankFilesError, match="rank 1: run.rank1.h5 is from another job"):
            open_ranks(run)  # rank 1's file, recorded above, has the other job id
    monkeypatch.setenv("RANK", "2")
    with pytest.raises(ValueError, match="rank 2 outside 0..1"):
        bnviz.record(model, tmp_path / "run.h5")


def test_divergence_by_layer_summarises_each_layer(tmp_path):
    base = tmp_path / "run.h5"
    write_job(base, world=2, steps=30, channel_every=3)
    with open_run(base) as run:
        runs = open_ranks(run)
        table = divergence_by_layer(runs)
        assert list(table) == [l.path for l in run.layers]
        for layer, row in table.items():
            steps, spread = channel_divergence(runs, layer)
            assert row["steps"] == len(steps) == 10
            assert row["median"] == pytest.approx(np.median(spread))
            assert row["max"] == pytest.approx(spread.max())
            n = run.summary(layer, "n", 0)
            assert row["iid"] == pytest.approx(iid_spread(2, n))
        assert divergence_by_layer(runs[:1]) == {}
        with pytest.raises(ValueError, match="tier must be"):
            aligned_rows(runs, tier="hist")
        close_all(runs[1:])


def test_findings_flag_layers_whose_ranks_normalise_differently(tmp_path):
    from bnviz.analysis.findings import findings
    from bnviz.analysis.runinfo import describe

    # different seeds: each rank's synthetic channels have their own means
    write_job(tmp_path / "apart.h5", world=2, steps=30)
    with open_run(tmp_path / "apart.h5") as run:
        flagged = [f for f in findings(run) if f.kind == "ranks_disagree"]
        assert sorted(f.layer for f in flagged) == sorted(l.path for l in run.layers)
        assert all(f.value > 0.1 for f in flagged)
        assert describe(run)["ranks"] == {"world_size": 2, "recorded": "all", "present": [0, 1], "problems": {}}
    # the same data on both ranks: nothing to flag
    for r in range(2):
        write_synthetic_run(
            rank_path(tmp_path / "same.h5", r), layers=2, channels=4, steps=30, seed=7, meta=rank_meta(r, 2)
        )
    with open_run(tmp_path / "same.h5") as run:
        assert not [f for f in findings(run) if f.kind == "ranks_disagree"]
    (tmp_path / "same.rank1.h5").unlink()
    with open_run(tmp_path / "same.h5") as run:
        info = describe(run)
        assert info["ranks"]["present"] == [0] and "same.rank1.h5 is missing" in info["ranks"]["problems"]["1"]


def test_record_with_ranks_zero_records_on_rank_0_only_and_says_so(tmp_path, monkeypatch):
    torch = pytest.importorskip("torch")
    import bnviz
    from bnviz.hooks.recorder import NotRecording

    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("BNVIZ_JOB_ID", "job7")
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.BatchNorm1d(3))
    with pytest.raises(ValueError, match="ranks='some': choose 'all'"):
        bnviz.record(model, tmp_path / "run.h5", ranks="some")
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for rank in (1, 0):  # every rank of the job runs the same script
        monkeypatch.setenv("RANK", str(rank))
        with pytest.raises(ValueError, match="flush_every"):  # refused alike on every rank
            bnviz.record(model, tmp_path / "run.h5", ranks="zero", flush_every=0)
        with bnviz.record(model, tmp_path / "run.h5", ranks="zero", optimizer=opt, start_step=3) as rec:
            assert isinstance(rec, NotRecording) == (rank == 1) and rec.recording == (rank == 0)
            assert type(model[1]).__module__.startswith("bnviz") == (rank == 0)  # rank 1: not instrumented
            for _ in range(2):  # steps 3 and 4, counted by the optimizer's hook
                model(torch.randn(8, 4)).sum().backward()
                opt.step()
                rec.log(loss=1.0)
            assert rec.current_step == 5
            rec.step(9)  # the loop's own step counter
            rec.step(2)  # a step number gone by: nothing changes
            assert rec.current_step == 10
        opt.step()  # closed: no hook counts it any more
        assert rec.current_step == 10 and type(model[1]) is torch.nn.BatchNorm1d
        assert sorted(p.name for p in tmp_path.iterdir()) == ([] if rank == 1 else ["run.h5"])
    with open_run(tmp_path / "run.h5") as run:
        assert (run.meta["rank"], run.meta["world_size"], run.meta["recorded_ranks"]) == (0, 2, "zero")
        assert list(run.steps) == [3, 4] and run.rank_problems == {} and run.ranks == [run]
    with bnviz.record(model, tmp_path / "all.h5") as rec:  # the default: every rank its own file
        model(torch.randn(8, 4))
        rec.step()
    with open_run(tmp_path / "all.h5") as run:
        assert run.meta["recorded_ranks"] == "all" and run.rank_problems.keys() == {1}
    with pytest.raises(ValueError, match="recorded with ranks='all'.*pass ranks='all'"):
        bnviz.record(model, tmp_path / "all.h5", resume=True, ranks="zero")  # the job's files would not join
