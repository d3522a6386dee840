"""StatsEngine: every recorded statistic against an independent numpy computation on the same tensors."""

import copy
import math

import models  # tests/models.py (pytest's pythonpath)
import numpy as np
import pytest
import torch
from torch import nn

from bnviz.hooks import instrument
from bnviz.hooks.batchnorm import MODE_BATCH, MODE_SYNC
from bnviz.hooks.engine import StatsEngine
from bnviz.store import schema

S, P = 32, 64
SF = {n: i for i, n in enumerate(schema.SUMMARY_FIELDS)}
CF = {n: i for i, n in enumerate(schema.CHANNEL_FIELDS)}


class Capture:
    """Keeps what each BN/Probe layer saw on its first call: input, output, parameters before the call."""

    def __init__(self, ins):
        self.seen = {}
        self.handles = []
        for li in ins.layers:
            self.handles.append(li.module.register_forward_pre_hook(self._pre(li.path)))
            self.handles.append(li.module.register_forward_hook(self._post(li.path)))

    def _pre(self, path):
        def hook(m, args):
            if path not in self.seen:
                get = lambda n: None if getattr(m, n, None) is None else getattr(m, n).detach().double().numpy().copy()  # noqa: E731
                self.seen[path] = {
                    "x": args[0].detach().double().numpy().copy(),
                    "training": m.training,
                    **{n: get(n) for n in ("weight", "bias", "running_mean", "running_var")},
                }

        return hook

    def _post(self, path):
        def hook(m, args, out):
            d = self.seen[path]
            if "y" not in d:
                d["y"] = out.detach().double().numpy().copy()
                d["half"] = out.dtype in (torch.float16, torch.bfloat16)

        return hook

    def reset(self):
        self.seen = {}


M32 = 0xFFFFFFFF


def mix(x):
    """The documented 32-bit hash (docs/format.md, Sampled quantities)."""
    for _ in range(2):
        x = (((x >> 16) ^ x) * 0x45D9F3B) & M32
    return (x >> 16) ^ x


def salt(*sizes):
    out = 0
    for v in sizes:
        out = (out * 1_000_003 + v) & M32
    return out


def stratified(m, s, rows, seed):
    """The documented positions: row r, stratum k of the rotated 0..m-1, a hashed offset inside."""
    k, r = np.arange(s, dtype=np.int64), np.arange(rows, dtype=np.int64)[:, None]
    lo, size = k * m // s, (k + 1) * m // s - k * m // s
    h_row = mix((r + seed) & M32)
    offset = np.floor(mix(h_row ^ mix((k + 0x9E3779B9) & M32)) * 2.0**-32 * size).astype(np.int64)
    return (np.floor(h_row * 2.0**-32 * m).astype(np.int64) + lo + offset) % m


def samples(a):
    """(C, s) values at the documented positions of an (N, C, *spatial) array."""
    n, c = a.shape[:2]
    flat = a.reshape(n, c, -1)
    hw = flat.shape[2]
    m = n * hw
    p = stratified(m, min(S, m), c, salt(n, c, hw))
    return flat[p // hw, np.arange(c)[:, None], p % hw]


def in_zone(v, rule, t):
    return np.abs(v) >= t if rule in ("saturated", "bound") else v <= t


def pooled(a):
    """The layer's pooled subset of its (C, s) samples (channel-major), as documented."""
    flat = a.reshape(-1)
    c, s = a.shape
    vals = flat[stratified(flat.size, min(P, flat.size), 1, salt(c, s))[0]]
    return vals[np.isfinite(vals)]


def expected(d, li):
    x, y = d["x"], d["y"]
    dims = (0,) + tuple(range(2, x.ndim))
    eps = li.eps
    mean, var = x.mean(dims), x.var(dims)
    g = d["weight"] if d["weight"] is not None else np.ones_like(mean)
    b = d["bias"] if d["bias"] is not None else np.zeros_like(mean)
    nan = np.full_like(mean, np.nan)
    if li.kind == "Probe":
        um, uvar = mean, var
    elif "global" in d:  # a synced SyncBatchNorm: (global mean, global biased variance)
        um, uvar = d["global"]
    elif d["training"] or d["running_mean"] is None:
        um, uvar = mean, var
    else:
        um, uvar = d["running_mean"], d["running_var"]
    uinv = 1 / np.sqrt(uvar + eps)
    used_mean, used_var = (nan, nan) if li.kind == "Probe" else (um, uvar)
    xs = samples(x)
    xh = (xs - um[:, None]) * uinv[:, None]
    # documented: sampled y = gamma * x-hat + beta from the sampled x (a Probe: y = x) ...
    ys = xs if li.kind == "Probe" else g[:, None] * xh + b[:, None]
    # ... which is the layer's actual output at those positions, to rounding
    tol = 1e-2 if d["half"] else 1e-5
    np.testing.assert_allclose(ys, samples(y), rtol=tol, atol=tol)
    rm = d["running_mean"] if d["running_mean"] is not None else nan
    rv = d["running_var"] if d["running_var"] is not None else nan
    ch = {
        "pre_mean": mean,
        "pre_var": var,
        "post_mean": y.mean(dims),
        "post_var": y.var(dims),
        "gamma": d["weight"] if d["weight"] is not None else nan,
        "beta": d["bias"] if d["bias"] is not None else nan,
        "running_mean": rm,
        "running_var": rv,
        "sat_y": in_zone(ys, li.zone_rule, li.zone_threshold).mean(1),
        "sat_xhat": in_zone(xh, li.zone_rule, li.zone_threshold).mean(1),
        "used_mean": used_mean,
        "used_var": used_var,
    }
    summ = {
        "n": x.size // x.shape[1],
        "pre_mean": mean.mean(),
        "pre_mean_sd": mean.std(),
        "pre_mean_min": mean.min(),
        "pre_mean_max": mean.max(),
        "pre_var": var.mean(),
        "pre_var_min": var.min(),
        "pre_var_max": var.max(),
        "post_mean": ch["post_mean"].mean(),
        "post_mean_sd": ch["post_mean"].std(),
        "post_mean_min": ch["post_mean"].min(),
        "post_mean_max": ch["post_mean"].max(),
        "post_var": ch["post_var"].mean(),
        "post_var_min": ch["post_var"].min(),
        "post_var_max": ch["post_var"].max(),
        "gamma_mean": ch["gamma"].mean(),
        "gamma_abs_min": np.abs(ch["gamma"]).min(),
        "gamma_abs_max": np.abs(ch["gamma"]).max(),
        "beta_mean": ch["beta"].mean(),
        "beta_abs_max": np.abs(ch["beta"]).max(),
        "run_mean_gap": (np.abs(mean - rm) / np.sqrt(rv + eps)).mean(),
        "run_var_logratio": np.abs(np.log((var + eps) / (rv + eps))).mean(),
        "sat_y": ch["sat_y"].mean(),
        "sat_xhat": ch["sat_xhat"].mean(),
        "zone_channels": (ch["sat_y"] >= 0.99).mean(),
        "nonfinite_channels": 0.0,
        "used_mean_gap": (np.abs(mean - used_mean) / np.sqrt(used_var + eps)).mean(),
    }
    quant = [np.quantile(pooled(v), schema.QUANTILES) for v in (xs, xh, ys)]
    probes = [np.quantile(ys[c], schema.QUANTILES) for c in li.probe_channels]
    return ch, summ, np.stack(quant), np.stack(probes), (xs, xh, ys)


def histogram(v, lo, hi):
    """numpy twin of the documented binning, in float32: u = v * scale + (1 - lo * scale)."""
    v = v.astype(np.float32).reshape(-1)
    lo, hi = np.float32(lo), np.float32(hi)
    out = np.zeros(schema.HIST_BINS + 3, np.int64)
    fin = np.isfinite(v)
    out[-1] = (~fin).sum()
    scale = np.float32(schema.HIST_BINS) / (hi - lo)
    u = v[fin] * scale + (np.float32(1) - lo * scale)
    out[-3] = (u < 1).sum()
    out[-2] = (u >= schema.HIST_BINS + 1).sum()
    inside = u[(u >= 1) & (u < schema.HIST_BINS + 1)]
    np.add.at(out, np.trunc(inside).astype(int) - 1, 1)
    return out


def close(a, b, rtol=1e-4, atol=1e-5):
    np.testing.assert_allclose(np.asarray(a, np.float64), np.asarray(b, np.float64), rtol=rtol, atol=atol)


def check_row(block, r, seen, ins, grads=None, atol=2e-5):
    for li in ins.layers:
        ch, summ, quant, probes, (xs, xh, ys) = expected(seen[li.path], li)
        L = li.index
        for name, value in summ.items():
            got = block.summary[r, L, SF[name]]
            if np.isnan(value):
                assert np.isnan(got), (li.path, name)
            else:
                np.testing.assert_allclose(got, value, rtol=2e-4, atol=atol, err_msg=f"{li.path} {name}")
        key = (block.summary_step[r], block.summary_phase[r])
        rc = list(zip(block.channel_step, block.channel_phase)).index(key) if len(block.channels[0]) else None
        if rc is not None:
            for name, value in ch.items():
                np.testing.assert_allclose(
                    block.channels[L][rc, CF[name]],
                    value,
                    rtol=2e-4,
                    atol=atol,
                    equal_nan=True,
                    err_msg=f"{li.path} {name}",
                )
        close(block.quantiles[r, L], quant, atol=1e-5)
        close(block.probes[r, L], probes, atol=1e-5)
        if grads is not None:
            gw, gb = grads[li.path]
            close(block.summary[r, L, SF["grad_gamma_norm"]], np.linalg.norm(gw))
            close(block.summary[r, L, SF["grad_beta_norm"]], np.linalg.norm(gb))
            if rc is not None:
                close(block.channels[L][rc, CF["grad_gamma"]], gw)
        if len(block.hist_step):
            h = list(zip(block.hist_step, block.hist_phase)).index(key)
            for t, v in enumerate((xs, xh, ys)):
                lo, hi = block.hist_range[h, L, t]
                want = histogram(v, lo, hi)
                got = block.hist_counts[h, L, t]
                # the bin offset is added to (v * scale) in float32: at a bin edge rounding may move a value
                assert got.sum() == want.sum() == v.size
                assert np.abs(got - want).sum() <= 2, (li.path, t, got - want)


def train_step(model, opt, x, engine, step, cap):
    cap.reset()
    opt.zero_grad()
    model(x).float().pow(2).mean().backward()
    grads = {
        p: (m.weight.grad.double().numpy().copy(), m.bias.grad.double().numpy().copy())
        for p, m in model.named_modules()
        if getattr(m, "weight", None) is not None and isinstance(m, nn.modules.batchnorm._BatchNorm)
    }
    opt.step()
    engine.end_step(step)
    return grads


@pytest.mark.parametrize(
    "make,batch",
    [
        (models.SmallCNN, models.cnn_batch),
        (models.SigmoidMLP, lambda seed=0: torch.randn(12, 20, generator=torch.Generator().manual_seed(seed))),
    ],
)
def test_train_and_eval_rows_match_numpy(make, batch):
    torch.manual_seed(0)
    model = make()
    ins = instrument(model, probes=2)
    engine = StatsEngine(ins, capacity_rows=8, samples=S, pool=P)
    cap = Capture(ins)
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    grads = train_step(model, opt, batch(seed=0), engine, 0, cap)
    seen0 = cap.seen
    cap.reset()
    model.eval()
    with torch.no_grad():
        model(batch(seed=1))
    seen_eval = cap.seen
    model.train()
    grads1 = train_step(model, opt, batch(seed=2), engine, 1, cap)
    block = engine.take_block().wait()
    assert list(block.summary_step) == [0, 1, 1] and list(block.summary_phase) == [0, 1, 0]
    check_row(block, 0, seen0, ins, grads)
    check_row(block, 1, seen_eval, ins)
    check_row(block, 2, cap.seen, ins, grads1)


def test_probe_model_and_half_input():
    torch.manual_seed(0)
    model = models.ProbeMLP()
    ins = instrument(model)
    engine = StatsEngine(ins, capacity_rows=4, samples=S, pool=P)
    cap = Capture(ins)
    model(torch.randn(40, 20))
    engine.end_step(0)
    b = engine.take_block().wait()
    check_row(b, 0, cap.seen, ins)
    assert np.isnan(b.summary[0, :, SF["gamma_mean"]]).all()
    close(b.summary[0, :, SF["pre_var"]], b.summary[0, :, SF["post_var"]], rtol=1e-6)

    bn = nn.Sequential(nn.Linear(6, 5), nn.BatchNorm1d(5), nn.Tanh())
    ins = instrument(bn)
    engine = StatsEngine(ins, capacity_rows=4, samples=S, pool=P)
    cap = Capture(ins)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        bn(torch.randn(50, 6))
    engine.end_step(0)
    b = engine.take_block().wait()
    assert b.summary.dtype == np.float32
    # post moments are those of gamma * x-hat + beta before y is rounded to bfloat16
    check_row(b, 0, cap.seen, ins, atol=3e-3)


def test_nonfinite_values_are_counted_not_dropped():
    bn = nn.BatchNorm1d(3)
    ins = instrument(nn.Sequential(bn))
    engine = StatsEngine(ins, capacity_rows=2, samples=S, pool=P)
    x = torch.randn(10, 3)
    x[2, 1] = float("inf")
    ins.model(x)
    engine.end_step(0)
    b = engine.take_block().wait()
    assert b.summary[0, 0, SF["nonfinite_channels"]] == 1
    assert b.hist_counts[0, 0, 0, -1] == 1  # the inf in pre
    assert b.hist_counts[0, 0, 0].sum() == 30
    assert np.isfinite(b.quantiles[0, 0, 0]).all()  # quantiles over the finite values


def test_a_constant_channel_has_variance_zero_and_an_overflowing_one_inf_in_every_row():
    """Eval rows take the batch variance from a pass of torch's CPU BatchNorm kernel with eps 0,
    whose inverse std is 0 (not inf) where the variance is 0: read back naively, a dead ReLU
    channel's variance was recorded as infinite and the channel counted as non-finite."""
    bn = nn.BatchNorm2d(3)
    ins = instrument(nn.Sequential(bn))
    engine = StatsEngine(ins, capacity_rows=4, samples=S, pool=P)
    x = torch.randn(6, 3, 4, 4, generator=torch.Generator().manual_seed(0))
    x[:, 0] = 0.0  # what a dead ReLU hands on
    x[:, 2] *= 1e20  # squares beyond float32
    for phase, step in ((0, 0), (1, 1)):
        bn.train(phase == 0)
        with torch.no_grad():
            ins.model(x)
        engine.end_step(step)
    b = engine.take_block().wait()
    assert list(b.summary_phase) == [0, 1]
    truth = x.double().var(dim=(0, 2, 3), unbiased=False).float().numpy()  # 0, ~1, inf
    for row in range(2):
        var = b.channels[0][row, CF["pre_var"]]
        assert var[0] == 0.0 if row == 1 else 0.0 <= var[0] < 1e-9  # train: 1 / invstd^2 - eps, rounded
        close(var[1], truth[1], rtol=1e-5)
        assert var[2] == truth[2] == np.inf
        assert b.summary[row, 0, SF["nonfinite_channels"]] == 1  # the overflowing channel only


def test_row_schedule_every_tiers_and_reuse():
    torch.manual_seed(0)
    model = models.ReusedBN()
    ins = instrument(model)
    engine = StatsEngine(ins, capacity_rows=16, every=2, channel_every=2, hist_every=3, samples=S, pool=P)
    calls = []
    engine_put = engine.put
    engine.put = lambda i, *a: (calls.append(i), engine_put(i, *a))
    for step in range(8):
        model.zero_grad()
        model(torch.randn(6, 10)).sum().backward()
        model(torch.randn(6, 10))  # a second forward in the same step is not recorded
        if step == 4:
            model.eval()
            model(torch.randn(6, 10))
            model(torch.randn(6, 10))
            model.train()
        engine.end_step(step)
    b = engine.take_block().wait()
    assert list(b.summary_step) == [0, 2, 4, 4, 6] and list(b.summary_phase) == [0, 0, 0, 1, 0]
    assert list(b.channel_step) == [0, 4, 4] and list(b.channel_phase) == [0, 0, 1]
    assert list(b.hist_step) == [0, 4, 6] and list(b.hist_phase) == [0, 1, 0]
    assert len(calls) == 2 * 5  # shared module recorded once per row, plus "last"
    # the phase switch inside step 4 closes the train row, and its gradients still arrive
    assert np.isfinite(b.summary[2, :, SF["grad_gamma_norm"]]).all()
    assert b.hist_counts.dtype == np.int32 and b.hist_counts.shape == (3, 2, 3, schema.HIST_BINS + 3)


def test_full_buffer_drops_and_counts_and_layers_not_run_are_nan():
    class Branch(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.BatchNorm1d(3), nn.BatchNorm1d(3)

        def forward(self, x, use_b=False):
            return self.b(x) if use_b else self.a(x)

    model = Branch()
    ins = instrument(model)
    engine = StatsEngine(ins, capacity_rows=2, samples=S, pool=P)
    for step in range(5):
        model(torch.randn(4, 3), use_b=step == 1)
        engine.end_step(step)
    assert engine.rows_pending == 2 and engine.dropped_steps == 3
    b = engine.take_block().wait()
    assert b.dropped_steps == 3 and list(b.summary_step) == [0, 1]
    assert np.isnan(b.summary[0, 1]).all() and np.isfinite(b.summary[0, 0, SF["pre_mean"]])
    assert engine.rows_pending == 0 and engine.dropped_steps == 0
    model(torch.randn(4, 3))
    engine.finish()
    assert list(engine.take_block().wait().summary_step) == [5]


def test_histogram_range_is_sticky_and_widens():
    bn = nn.BatchNorm1d(2, affine=False)
    ins = instrument(nn.Sequential(bn))
    engine = StatsEngine(ins, capacity_rows=8, samples=S, pool=P)
    g = torch.Generator().manual_seed(0)
    for step, scale in enumerate([1.0, 0.5, 1.0, 10.0]):
        ins.model(torch.randn(40, 2, generator=g) * scale)
        engine.end_step(step)
    b = engine.take_block().wait()
    lo, hi = b.hist_range[:, 0, 0, 0], b.hist_range[:, 0, 0, 1]
    q = b.quantiles[0, 0, 0]
    spread = q[-1] - q[0]
    close(lo[0], q[0] - 0.1 * spread, rtol=1e-5)
    close(hi[0], q[-1] + 0.1 * spread, rtol=1e-5)
    assert lo[1] == lo[0] and hi[1] == hi[0] and lo[2] <= lo[0]  # never narrowed
    assert lo[3] < lo[0] and hi[3] > hi[0] and b.hist_counts[3, 0, 0, -3:-1].sum() == 0  # widened to fit
    assert (b.hist_range[:, 0, 1] == schema.XHAT_RANGE).all()


def test_engine_close_restores_plain_forward():
    model = models.SigmoidMLP()
    ins = instrument(model)
    engine = StatsEngine(ins, capacity_rows=2)
    engine.close()
    model(torch.randn(4, 20))
    assert engine.rows_pending == 0
    with pytest.raises(ValueError, match="probes"):
        StatsEngine(ins, capacity_rows=2, probes=3)
    assert math.isfinite(ins.layers[0].zone_threshold)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_no_host_sync_between_flushes_on_cuda():
    torch.manual_seed(0)
    model = models.SmallCNN().cuda()
    ins = instrument(model)
    engine = StatsEngine(ins, capacity_rows=16)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x = models.cnn_batch().cuda()

    def step(i):
        opt.zero_grad()
        model(x).sum().backward()
        opt.step()
        engine.end_step(i)

    step(0)  # first forward: activation detection, buffers and index caches are made
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for i in range(1, 4):
            step(i)
        model.eval()
        with torch.no_grad():
            model(x)
        model.train()
        step(4)
        pending = engine.take_block()
    finally:
        torch.cuda.set_sync_debug_mode(0)
    block = pending.wait()
    assert list(block.summary_phase) == [0, 0, 0, 0, 1, 0]
    assert np.isfinite(block.summary[:, :, SF["pre_mean"]]).all()


def test_a_failing_report_never_stops_training():
    model = models.SigmoidMLP()
    plain = copy.deepcopy(model)
    ins = instrument(model)
    engine = StatsEngine(ins, capacity_rows=4)

    def broken(*args):
        raise ValueError("boom")

    engine.put = broken
    x = torch.randn(8, 20)
    assert torch.equal(model(x), plain(x))  # the forward went on, with torch's result
    assert engine.rows_pending == 0
    with pytest.raises(RuntimeError, match="boom"):
        engine.end_step(0)


def test_functorch_transforms_on_an_instrumented_model_are_not_recorded():
    model = models.SigmoidMLP()
    ins = instrument(model)
    engine = StatsEngine(ins, capacity_rows=4)
    params = dict(model.named_parameters())
    buffers = {k: v.clone() for k, v in model.named_buffers()}
    x = torch.randn(3, 8, 20)
    model.eval()
    out = torch.func.vmap(lambda xi: torch.func.functional_call(model, (params, buffers), (xi,)))(x)
    assert out.shape == (3, 8, 5) and engine.rows_pending == 0


@pytest.mark.parametrize("layout", ["channels_last", "strided"])
def test_samples_follow_logical_positions_in_any_layout(layout):
    torch.manual_seed(0)
    model = nn.Sequential(nn.BatchNorm2d(4), nn.ReLU())
    ins = instrument(model)
    engine = StatsEngine(ins, capacity_rows=2, samples=S, pool=P)
    cap = Capture(ins)
    x = torch.randn(6, 4, 10, 10) * 3 + 1
    x = x.contiguous(memory_format=torch.channels_last) if layout == "channels_last" else x[:, :, ::2, 1:]
    model(x)
    engine.end_step(0)
    check_row(engine.take_block().wait(), 0, cap.seen, ins)


def test_synced_rows_normalise_with_the_global_statistics():
    # A synced SyncBatchNorm reports the global mean / invstd (MODE_SYNC); torch syncs no CPU tensor,
    # so each layer's report is made here, as from rank 0 of a job whose rank 1 saw another batch.
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4), nn.Tanh(), nn.Conv2d(4, 5, 1), nn.BatchNorm2d(5), nn.ReLU()
    )
    ins = instrument(model, probes=2)
    engine = StatsEngine(ins, capacity_rows=4, samples=S, pool=P)
    model(torch.randn(8, 3, 6, 6))  # step 0: activations detected
    engine.end_step(0)
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for li in ins.layers:
            li.module.weight.uniform_(0.5, 2.0, generator=g)
            li.module.bias.uniform_(-1.0, 1.0, generator=g)
    seen = {}
    for li, mode in zip(ins.layers, (MODE_SYNC, MODE_BATCH)):
        m = li.module
        c = m.num_features
        x = torch.randn(8, c, 6, 6, generator=g) * 2 + 1
        other = torch.randn(8, c, 6, 6, generator=g) * 0.5 - 1
        d = {
            "x": x.double().numpy(),
            "training": True,
            "half": False,
            **{
                n: getattr(m, n).detach().double().numpy().copy()
                for n in ("weight", "bias", "running_mean", "running_var")
            },
        }
        um, uvar = x.double().mean((0, 2, 3)), x.double().var((0, 2, 3), correction=0)
        assert engine.wants(m._bnviz_index, True)
        if mode == MODE_SYNC:
            both = torch.cat([x, other]).double()
            um, uvar = both.mean((0, 2, 3)), both.var((0, 2, 3), correction=0)
            d["global"] = (um.numpy(), uvar.numpy())
            engine.put(m._bnviz_index, x, um.float(), (uvar + m.eps).rsqrt().float(), MODE_SYNC)
        else:
            engine.put(m._bnviz_index, x, None, None, MODE_BATCH)
        xhat = (d["x"] - um.numpy()[:, None, None]) / np.sqrt(uvar.numpy()[:, None, None] + m.eps)
        d["y"] = d["weight"][:, None, None] * xhat + d["bias"][:, None, None]
        seen[li.path] = d
    engine.end_step(1)
    b = engine.take_block().wait()
    check_row(b, 1, seen, ins)
    synced, local = ins.layers[0].index, ins.layers[1].index
    # this rank's batch lies well off the global one: y is not centred on beta
    assert b.summary[1, synced, SF["used_mean_gap"]] > 0.5 and b.summary[1, local, SF["used_mean_gap"]] == 0
    assert np.abs(b.channels[synced][1, CF["post_mean"]] - seen["1"]["bias"]).min() > 0.1
