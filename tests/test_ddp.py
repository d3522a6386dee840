"""bnviz.record in a real 2-process DistributedDataParallel job on CPU (gloo), started the way
torchrun starts it: env:// rendezvous on 127.0.0.1 with RANK, WORLD_SIZE, LOCAL_RANK set per process.

Each rank trains on different data: uninstrumented, instrumented before wrapping in DDP and
instrumented after wrapping. The ranks dump their parameters and every BN input they saw, and
the test checks the recordings against those.
"""

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import torch

from bnviz.analysis.ranks import channel_divergence, global_batch_stats, iid_spread, rank_divergence
from bnviz.store import open_run
from bnviz.store.ranks import RankFilesError, open_ranks, rank_of

pytestmark = pytest.mark.slow  # process groups of several ranks

WORLD = 2
STEPS = 6
LAYERS = ("1", "4", "9")  # paths of the BN layers of the worker's model

COMMON = textwrap.dedent("""
    import datetime, os, sys, time
    import numpy as np, torch, torch.distributed as dist
    from torch import nn
    from torch.nn.parallel import DistributedDataParallel as DDP
    import bnviz

    torch.set_num_threads(1)
    dist.init_process_group("gloo", timeout=datetime.timedelta(seconds=60))
    rank = dist.get_rank()
    out = sys.argv[1]

    def make():
        torch.manual_seed(0)
        return nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
            nn.Conv2d(8, 6, 3, padding=1), nn.BatchNorm2d(6), nn.Sigmoid(),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(6, 4), nn.BatchNorm1d(4))

    def batch(step):
        # every rank its own data, of a different mean and scale
        g = torch.Generator().manual_seed(1000 * rank + step)
        return torch.randn(16, 3, 8, 8, generator=g) * (1 + rank) + 0.5 * rank
""")

TRAIN = COMMON + textwrap.dedent(
    """
    def train(variant):
        model = make()
        bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        inputs = {i: [] for i in range(len(bns))}
        for i, m in enumerate(bns):
            m.register_forward_hook(lambda mod, args, res, i=i: inputs[i].append(args[0].detach().clone()))
        kw = dict(channel_every=1, hist_every=1, flush_every=4)
        rec = bnviz.record(model, f"{out}/before.h5", **kw) if variant == "before" else None
        ddp = DDP(model)
        if variant == "after":
            rec = bnviz.record(ddp, f"{out}/after.h5", **kw)
        opt = torch.optim.SGD(ddp.parameters(), lr=0.1)
        for step in range(%(steps)d):
            loss = ddp(batch(step)).pow(2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            if rec:
                rec.log(loss=loss)
                rec.step()
        if rec:
            rec.close()
        state = {f"{variant}/state/{k}": v.detach().numpy().copy() for k, v in model.state_dict().items()}
        params = {f"{variant}/param/{k}": v.detach().numpy().copy() for k, v in model.named_parameters()}
        seen = {f"{variant}/input/{i}": torch.stack(v).numpy() for i, v in inputs.items()}
        return {**state, **params, **seen}

    result = {}
    for variant in ("plain", "before", "after"):
        result.update(train(variant))
    np.savez(f"{out}/rank{rank}.npz", **result)
    dist.destroy_process_group()
"""
    % {"steps": STEPS}
)

CRASH = COMMON + textwrap.dedent("""
    model = make()
    ddp = DDP(model)
    opt = torch.optim.SGD(ddp.parameters(), lr=0.01)
    with bnviz.record(ddp, f"{out}/run.h5", flush_every=4, channel_every=1, hist_every=1) as rec:
        for step in range(100000):
            ddp(batch(step)).pow(2).mean().backward()
            opt.step(); opt.zero_grad(); rec.step()
            time.sleep(0.002)
""")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(script: str, out, world: int = WORLD, **extra_env):
    """Start ``world`` processes as torchrun would (env:// rendezvous on the loopback address)."""
    path = out / "worker.py"
    path.write_text(script)
    port = str(free_port())
    procs = []
    for rank in range(world):
        env = {
            **os.environ,
            "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": port,
            "RANK": str(rank),
            "WORLD_SIZE": str(world),
            "LOCAL_RANK": str(rank),
            "LOCAL_WORLD_SIZE": str(world),
            "GLOO_SOCKET_IFNAME": "lo",
            "OMP_NUM_THREADS": "1",
            **extra_env,
        }
        procs.append(
            subprocess.Popen(
                [sys.executable, str(path), str(out)],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    return procs


def finish(procs, timeout=120.0):
    outputs = []
    for p in procs:
        try:
            _, err = p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
            raise
        outputs.append((p.returncode, err))
    return outputs


@pytest.fixture(scope="module")
def job(tmp_path_factory):
    out = tmp_path_factory.mktemp("ddp")
    for rank, (code, err) in enumerate(finish(launch(TRAIN, out))):
        assert code == 0, f"rank {rank} failed:\n{err}"
    dumps = [dict(np.load(out / f"rank{r}.npz")) for r in range(WORLD)]
    return out, dumps


def test_instrumented_ddp_trains_bit_identically_before_or_after_wrapping(job):
    _, dumps = job
    for d in dumps:
        plain = {k.split("/", 1)[1]: v for k, v in d.items() if k.startswith("plain/state/")}
        assert plain
        for variant in ("before", "after"):
            for key, value in plain.items():
                np.testing.assert_array_equal(d[f"{variant}/{key}"], value, err_msg=f"{variant} {key}")
    # DDP kept the parameters of both ranks equal, though their data differed
    for key in (k for k in dumps[0] if "/param/" in k):
        np.testing.assert_array_equal(dumps[0][key], dumps[1][key])


def test_the_recording_holds_every_rank_with_its_own_file(job):
    out, _ = job
    assert sorted(p.name for p in out.glob("*.h5")) == ["after.h5", "after.rank1.h5", "before.h5", "before.rank1.h5"]
    for name in ("before", "after"):
        with open_run(out / f"{name}.h5") as run:
            runs = open_ranks(run)
            assert [rank_of(r) for r in runs] == [0, 1] and runs[0] is run
            assert [rank_of(r) for r in run.ranks] == [0, 1] and run.rank_problems == {}
            metas = [r.meta for r in runs]
            assert [m["world_size"] for m in metas] == [WORLD, WORLD]
            assert [m["local_rank"] for m in metas] == [0, 1]
            assert {m["dist_backend"] for m in metas} == {"gloo"}
            assert metas[0]["job_id"] == metas[1]["job_id"] and "master:127.0.0.1:" in metas[0]["job_id"]
            for r in runs:
                # the same layer paths whether instrumented before or after wrapping in DDP
                assert [l.path for l in r.layers] == list(LAYERS)
                assert r.meta["model_class"] == "Sequential"
                assert list(r.steps) == list(range(STEPS)) and r.writer_state == "closed"
                assert list(r.scalar("loss")[0]) == list(range(STEPS))
            runs[1].close()


def local_stats(x):
    axes = (0, *range(2, x.ndim))
    x = x.astype(np.float64)
    return x.mean(axes), x.var(axes)


@pytest.mark.parametrize("name", ["before", "after"])
def test_each_rank_records_its_local_batch_statistics(job, name):
    out, dumps = job
    with open_run(out / f"{name}.h5") as run:
        runs = open_ranks(run)
        for rank, r in enumerate(runs):
            for i, layer in enumerate(LAYERS):
                seen = dumps[rank][f"{name}/input/{i}"]  # (steps, N, C, ...) what the layer got
                for step in range(STEPS):
                    mean, var = local_stats(seen[step])
                    np.testing.assert_allclose(r.channels(layer, "pre_mean", step), mean, rtol=1e-4, atol=1e-5)
                    np.testing.assert_allclose(r.channels(layer, "pre_var", step), var, rtol=1e-3, atol=1e-6)
        # the ranks' statistics differ as their data do: rank 1's input has twice the scale
        for layer in LAYERS:
            a, b = (r.channels(layer, "pre_mean") for r in runs)
            assert not np.array_equal(a, b)
        ratio = runs[1].channels("1", "pre_var") / runs[0].channels("1", "pre_var")
        assert 3.0 < np.median(ratio) < 5.0
        # ... while DDP's buffer broadcast hands every rank rank 0's running statistics, and its
        # all-reduce the same averaged gamma / beta gradients
        for field in ("running_mean", "running_var", "grad_gamma", "grad_beta"):
            np.testing.assert_array_equal(runs[0].channels("1", field), runs[1].channels("1", field))
        runs[1].close()


def test_divergence_across_ranks_and_global_statistics_match_the_data(job):
    out, dumps = job
    with open_run(out / "before.h5") as run:
        runs = open_ranks(run)
        layer, i = "1", 0
        x = [dumps[r][f"before/input/{i}"] for r in range(WORLD)]
        steps, spread = channel_divergence(runs, layer)
        assert list(steps) == list(range(STEPS))
        for step in range(STEPS):
            per_rank = [local_stats(x[r][step]) for r in range(WORLD)]
            union = np.concatenate([x[r][step] for r in range(WORLD)])
            g_mean, g_var = local_stats(union)  # what SyncBatchNorm would normalise with
            n = [x[r][step].size // x[r][step].shape[1] for r in range(WORLD)]
            recorded = [(r.channels(layer, "pre_mean", step), r.channels(layer, "pre_var", step)) for r in runs]
            mean, var = global_batch_stats([m for m, _ in recorded], [v for _, v in recorded], n)
            np.testing.assert_allclose(mean, g_mean, rtol=1e-4, atol=1e-5)
            np.testing.assert_allclose(var, g_var, rtol=1e-3)
            means = np.stack([m for m, _ in per_rank])
            expected = np.mean((means.max(0) - means.min(0)) / np.sqrt(g_var))
            assert spread[step] == pytest.approx(expected, rel=1e-3)
        # the ranks' data differ by construction: more than independent sampling explains
        n = runs[0].summary(layer, "n", 0)
        assert np.all(spread > 2 * iid_spread(WORLD, n))
        steps, s = rank_divergence(runs, "pre_mean", layer)
        assert list(steps) == list(range(STEPS)) and np.all(s > 0)
        runs[1].close()


def wait_for_rows(path, n, timeout=60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open_run(path) as run:
                if len(run.steps) >= n:
                    return len(run.steps)
        except Exception:  # noqa: BLE001 - not created yet, or mid-creation
            pass
        time.sleep(0.05)
    raise AssertionError(f"{path} never reached {n} rows")


def test_a_sigkilled_rank_leaves_every_flushed_step_readable(tmp_path):
    procs = launch(CRASH, tmp_path)
    try:
        seen = wait_for_rows(tmp_path / "run.rank1.h5", 12)
        os.kill(procs[1].pid, signal.SIGKILL)
        # rank 0's next all-reduce fails: its training raises, and the with-block closes its file
        codes = [code for code, _ in finish(procs, timeout=90)]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    assert codes[1] == -signal.SIGKILL and codes[0] != 0
    with open_run(tmp_path / "run.h5") as run:
        runs = open_ranks(run)
        killed = runs[1]
        assert len(killed.steps) >= seen
        assert list(killed.steps) == list(range(len(killed.steps)))
        assert killed.writer_state == "writer gone" and run.writer_state == "closed"
        assert np.all(np.isfinite(killed.channels("1", "pre_mean")))
        # rank 0 went at most one step further than the killed rank
        assert len(run.steps) >= len(killed.steps)
        killed.close()
    (tmp_path / "run.rank1.h5").unlink()
    with open_run(tmp_path / "run.h5") as run:
        with pytest.raises(RankFilesError, match=r"rank 1: run\.rank1\.h5 is missing"):
            open_ranks(run)
        assert open_ranks(run, strict=False) == [run]
        assert run.ranks == [run] and "run.rank1.h5 is missing" in run.rank_problems[1]


GPU_SYNC = COMMON + textwrap.dedent(
    """
    from bnviz.hooks.distributed import synced_statistics

    # deterministic kernels for training; warn_only: bnviz's own statistics may use others
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.benchmark = False
    dev = torch.device("cuda", rank %% torch.cuda.device_count())
    torch.cuda.set_device(dev)

    def train(variant):
        model = nn.SyncBatchNorm.convert_sync_batchnorm(make()).to(dev)
        got = {"x": [], "mean": [], "invstd": []}

        def capture(module, args, output):
            mean, invstd, _ = synced_statistics(output)
            got["x"].append(args[0].detach().cpu())
            got["mean"].append(mean.detach().cpu())
            got["invstd"].append(invstd.detach().cpu())

        model[1].register_forward_hook(capture)
        rec = bnviz.record(model, f"{out}/gpu.h5", channel_every=1, flush_every=4) if variant == "recorded" else None
        ddp = DDP(model, device_ids=[dev.index])
        opt = torch.optim.SGD(ddp.parameters(), lr=0.1)
        for step in range(%(steps)d):
            loss = ddp(batch(step).to(dev)).pow(2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            if rec:
                rec.step()
        if rec:
            rec.close()
        result = {f"{variant}/state/{k}": v.detach().cpu().numpy() for k, v in model.state_dict().items()}
        result.update({f"{variant}/{k}": torch.stack(v).numpy() for k, v in got.items()})
        return result

    result = {}
    for variant in ("plain", "recorded"):
        result.update(train(variant))
    np.savez(f"{out}/rank{rank}.npz", **result)
    dist.destroy_process_group()
"""
    % {"steps": STEPS}
)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="SyncBatchNorm syncs only on GPUs")
def test_syncbatchnorm_on_gpus_syncs_records_local_statistics_and_trains_identically(tmp_path):
    # gloo all-gathers CUDA tensors, so two ranks may share one GPU
    procs = launch(GPU_SYNC, tmp_path, CUBLAS_WORKSPACE_CONFIG=":4096:8")
    for rank, (code, err) in enumerate(finish(procs, timeout=300)):
        assert code == 0, f"rank {rank} failed:\n{err}"
    dumps = [dict(np.load(tmp_path / f"rank{r}.npz")) for r in range(WORLD)]
    for d in dumps:
        for key in (k for k in d if k.startswith("plain/state/")):
            np.testing.assert_array_equal(d[key.replace("plain/", "recorded/", 1)], d[key], err_msg=key)
    with open_run(tmp_path / "gpu.h5") as run:
        runs = open_ranks(run)
        assert [l.kind for l in run.layers] == ["SyncBatchNorm"] * 3
        for step in range(STEPS):
            xs = [d["recorded/x"][step] for d in dumps]
            g_mean, g_var = local_stats(np.concatenate(xs))
            for rank, (r, d) in enumerate(zip(runs, dumps)):
                # the layer normalised with the statistics of both ranks' batches ...
                np.testing.assert_allclose(d["recorded/mean"][step], g_mean, rtol=1e-4, atol=1e-5)
                np.testing.assert_allclose(d["recorded/invstd"][step], 1 / np.sqrt(g_var + 1e-5), rtol=1e-3)
                # ... and the recording holds this rank's own batch statistics
                mean, var = local_stats(xs[rank])
                np.testing.assert_allclose(r.channels("1", "pre_mean", step), mean, rtol=1e-4, atol=1e-5)
                np.testing.assert_allclose(r.channels("1", "pre_var", step), var, rtol=1e-3, atol=1e-6)
        runs[1].close()
