"""Realistic-looking recordings without torch: for tests, demos and the viewer benchmark.

``write_synthetic_run`` models each BN layer's channels as normal distributions whose batch
mean and variance evolve over training, derives every stored quantity from that model the way
BN does (post-BN moments from gamma, beta and the batch or running statistics, saturation as
the normal's mass in the activation's zone, running statistics as an EMA), and writes it
through ``RunWriter`` in big blocks. Pathologies can be switched on one by one (PATHOLOGIES);
``pathology_layers`` tells which layer shows which.

Big runs compute the per-channel model on every ``detail``-th row only (plus every channel,
histogram and NaN-onset row) and interpolate the per-layer tier in between, so 100 layers x
100k steps write in about a minute.
"""

from __future__ import annotations

from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

from bnviz.store import layout, schema
from bnviz.store.block import Block
from bnviz.store.writer import RunWriter

PATHOLOGIES = ("drift", "saturation", "dead_relu", "gamma_collapse", "small_batch", "nan")
EPS = 1e-5
MOMENTUM = 0.1
TANH_THRESHOLD = 2.0
HIST_SAMPLES = 4096
DEAD_FRACTION = 0.25
NAN_AT = 0.7  # fraction of the run at which the "nan" pathology starts
SCALAR_NAMES = ("loss", "lr", "accuracy")
# Normal quantiles for schema.QUANTILES; min and max of a few thousand samples sit near +-3.5 sd.
_Z = np.array([NormalDist().inv_cdf(q) if 0 < q < 1 else 3.5 * (2 * q - 1) for q in schema.QUANTILES])


def pathology_layers(n_layers: int) -> dict:
    """Which layer index shows each pathology (the "nan" one spreads to the layers after it)."""
    spread = {name: (i + 1) * n_layers // (len(PATHOLOGIES) + 1) for i, name in enumerate(PATHOLOGIES)}
    return {name: min(n_layers - 1, idx) for name, idx in spread.items()}


def _phi(x):
    """Standard normal CDF (Abramowitz-Stegun 7.1.26, |error| < 1.5e-7), NaN-preserving."""
    z = np.abs(x) / np.sqrt(2.0)
    t = 1.0 / (1.0 + 0.3275911 * z)
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))))
    erf = 1.0 - poly * np.exp(-z * z)
    return 0.5 * (1.0 + np.sign(x) * erf)


def _zone_mass(mean, sd, is_tanh):
    """Mass of N(mean, sd^2) in the activation's zone: y <= 0 for ReLU, |y| > T for tanh."""
    with np.errstate(divide="ignore", invalid="ignore"):
        dead = _phi(-mean / sd)
        sat = _phi((-TANH_THRESHOLD - mean) / sd) + _phi((mean - TANH_THRESHOLD) / sd)
    return np.where(is_tanh, sat, dead)


@dataclass
class _Model:
    """Fixed per-layer and per-channel parameters of the synthetic run."""

    n_layers: int
    widths: np.ndarray  # (L,)
    starts: np.ndarray  # (L,) first flat channel of each layer
    lid: np.ndarray  # (N,) layer of each flat channel
    z: np.ndarray  # (N,) standardised pattern of channel means
    w: np.ndarray  # (N,) channel variance pattern, mean 1 per layer
    gamma0: np.ndarray
    beta0: np.ndarray
    dead: np.ndarray  # (N,) bool, channels the dead_relu pathology kills
    is_tanh: np.ndarray  # (L,) bool
    probe_idx: np.ndarray  # (L, K) flat channel index of each probe
    level: np.ndarray  # (L,) pre-BN mean level
    spread: np.ndarray  # (L,) spread of channel means
    var0: np.ndarray  # (L,)
    drift: np.ndarray  # (L,) mean drift over the whole run
    growth: np.ndarray  # (L,) relative variance growth over the run
    noise: np.ndarray  # (L,) batch-to-batch noise of the mean
    gamma_trend: np.ndarray  # (L,) log gamma change over the run
    n: np.ndarray  # (L,) values per channel per batch
    nan_layer: int  # first NaN layer, or n_layers
    sat_layer: int
    dead_layer: int


def _make_model(rng, n_layers, widths, probes, pathologies) -> _Model:
    L = n_layers
    where = pathology_layers(L)
    starts = np.concatenate([[0], np.cumsum(widths)[:-1]])
    lid = np.repeat(np.arange(L), widths)
    z = rng.standard_normal(lid.size)
    w = rng.lognormal(0.0, 0.3, lid.size)
    for s, c in zip(starts, widths):  # exact mean 0 / sd 1 and mean 1 per layer
        seg = slice(s, s + c)
        z[seg] = (z[seg] - z[seg].mean()) / (z[seg].std() or 1.0)
        w[seg] /= w[seg].mean()
    depth = np.arange(L) / max(1, L - 1)
    m = _Model(
        n_layers=L,
        widths=widths,
        starts=starts,
        lid=lid,
        z=z,
        w=w,
        gamma0=1.0 + 0.1 * rng.standard_normal(lid.size),
        beta0=0.05 * rng.standard_normal(lid.size),
        dead=np.zeros(lid.size, bool),
        is_tanh=np.zeros(L, bool),
        probe_idx=starts[:, None] + (np.arange(probes)[None, :] * widths[:, None]) // max(1, probes),
        level=0.5 * rng.standard_normal(L) + 0.3 * depth,
        spread=0.2 + 0.3 * rng.random(L),
        var0=np.exp(rng.normal(0.0, 0.5, L)) * (1 + depth),
        drift=0.2 * rng.standard_normal(L),
        growth=0.3 * rng.random(L),
        noise=np.full(L, 0.02),
        gamma_trend=0.2 * rng.standard_normal(L),
        n=(32 * np.maximum(1, 32 >> (4 * np.arange(L) // L)) ** 2).astype(float),
        nan_layer=L,
        sat_layer=-1,
        dead_layer=-1,
    )
    if "drift" in pathologies:
        m.drift[where["drift"]] = 3.0
        m.growth[where["drift"]] = 4.0
    if "saturation" in pathologies:
        m.sat_layer = where["saturation"]
        m.is_tanh[m.sat_layer] = True
        m.gamma_trend[m.sat_layer] = np.log(4.0)
    if "dead_relu" in pathologies:
        m.dead_layer = where["dead_relu"]
        s, c = starts[m.dead_layer], widths[m.dead_layer]
        m.dead[s + rng.permutation(c)[: max(1, int(DEAD_FRACTION * c))]] = True
    if "gamma_collapse" in pathologies:
        m.gamma_trend[where["gamma_collapse"]] = -5.0
    if "small_batch" in pathologies:
        m.n[where["small_batch"]] = 2.0
        m.noise[where["small_batch"]] = 0.6
    if "nan" in pathologies:
        m.nan_layer = where["nan"]
    return m


class _Generator:
    """Produces Blocks of consecutive rows; keeps the running-statistics EMA between blocks."""

    def __init__(self, model: _Model, steps, probes, channel_every, hist_every, detail, scalars, rng):
        self.m, self.steps, self.K = model, steps, probes
        self.channel_every, self.hist_every, self.detail = channel_every, hist_every, detail
        self.scalars, self.rng = scalars, rng
        self.ema_mean = None  # (L,) EMA of the layer's batch mean level, updated on train rows
        self.ema_var = None
        self.updates = 0

    def layer_series(self, step, phase):
        """Per row and layer: mean level, variance level, gamma scale, beta shift, and the EMAs
        as they stand when the row is recorded."""
        m, r = self.m, len(step)
        u = (step / max(1, self.steps - 1))[:, None]
        mean = m.level + m.drift * u + m.noise * self.rng.standard_normal((r, m.n_layers))
        var = m.var0 * (1 + m.growth * u) * np.exp(0.1 * m.noise * self.rng.standard_normal((r, m.n_layers)))
        gscale = np.exp(m.gamma_trend * u)
        bshift = 0.1 * u * np.ones(m.n_layers)
        ema_m, ema_v = np.empty_like(mean), np.empty_like(var)
        for i in range(r):
            if self.ema_mean is None:
                self.ema_mean, self.ema_var = mean[i].copy(), var[i].copy()
            if phase[i] == schema.PHASE_TRAIN:
                self.ema_mean += MOMENTUM * (mean[i] - self.ema_mean)
                self.ema_var += MOMENTUM * (var[i] * m.n / np.maximum(m.n - 1, 1) - self.ema_var)
            ema_m[i], ema_v[i] = self.ema_mean, self.ema_var
        return mean, var, gscale, bshift, ema_m, ema_v

    def channel_state(self, step, phase, series):
        """Per detail row and flat channel: every CHANNEL_FIELDS quantity, plus x-hat moments."""
        m = self.m
        mean, var, gscale, bshift, ema_m, ema_v = (a[:, m.lid] for a in series)
        u = (step / max(1, self.steps - 1))[:, None]
        bm = mean + m.spread[m.lid] * m.z
        bv = var * m.w
        rm = ema_m + m.spread[m.lid] * m.z
        rv = ema_v * m.w
        gamma = m.gamma0 * gscale
        beta = m.beta0 + bshift - 3.0 * np.minimum(1.0, 2.0 * u) * m.dead
        train = (phase == schema.PHASE_TRAIN)[:, None]
        inv = np.where(train, 1 / np.sqrt(bv + EPS), 1 / np.sqrt(rv + EPS))
        xh_mean = np.where(train, 0.0, (bm - rm) * inv)
        xh_var = bv * inv * inv
        post_mean = gamma * xh_mean + beta
        post_var = gamma * gamma * xh_var
        tanh = m.is_tanh[m.lid]
        grad_scale = 0.05 * np.exp(-2 * u) * (1 + 10 * m.noise[m.lid])
        s = {
            "pre_mean": bm,
            "pre_var": bv,
            "post_mean": post_mean,
            "post_var": post_var,
            "gamma": gamma,
            "beta": beta,
            "running_mean": rm,
            "running_var": rv,
            "sat_y": _zone_mass(post_mean, np.sqrt(post_var), tanh),
            "sat_xhat": _zone_mass(xh_mean, np.sqrt(xh_var), tanh),
            "grad_gamma": grad_scale * self.rng.standard_normal(bm.shape),
            "grad_beta": grad_scale * self.rng.standard_normal(bm.shape),
            "used_mean": np.where(train, bm, rm),
            "used_var": np.where(train, bv, rv),
            "xhat_mean": xh_mean,
            "xhat_var": xh_var,
        }
        broken = (step >= NAN_AT * self.steps)[:, None] & (m.lid >= m.nan_layer)
        if broken.any():
            for key in s:
                s[key] = np.where(broken, np.nan, s[key])
        return s

    def layer_rows(self, s):
        """Per detail row: summary (r, L, F_S), quantiles (r, L, 3, NQ), probes (r, L, K, NQ)."""
        m = self.m

        def red(fn, x):
            return fn.reduceat(x, m.starts, axis=1)

        def mean(x):
            return red(np.add, x) / m.widths

        def sd(x):
            return np.sqrt(np.maximum(mean(x * x) - mean(x) ** 2, 0.0))

        gamma, beta = s["gamma"], s["beta"]
        f = {
            "n": np.broadcast_to(m.n, gamma.shape[:1] + m.n.shape),
            "gamma_mean": mean(gamma),
            "gamma_abs_min": red(np.minimum, np.abs(gamma)),
            "gamma_abs_max": red(np.maximum, np.abs(gamma)),
            "beta_mean": mean(beta),
            "beta_abs_max": red(np.maximum, np.abs(beta)),
            "run_mean_gap": mean(np.abs(s["pre_mean"] - s["running_mean"]) / np.sqrt(s["running_var"] + EPS)),
            "run_var_logratio": mean(np.abs(np.log((s["pre_var"] + EPS) / (s["running_var"] + EPS)))),
            "used_mean_gap": mean(np.abs(s["pre_mean"] - s["used_mean"]) / np.sqrt(s["used_var"] + EPS)),
            "sat_y": mean(s["sat_y"]),
            "sat_xhat": mean(s["sat_xhat"]),
            "zone_channels": mean((s["sat_y"] >= 0.99).astype(float)),
            "nonfinite_channels": red(np.add, (~np.isfinite(s["pre_mean"] + s["pre_var"])).astype(float)),
            "grad_gamma_norm": np.sqrt(red(np.add, s["grad_gamma"] ** 2)),
            "grad_beta_norm": np.sqrt(red(np.add, s["grad_beta"] ** 2)),
        }
        for t in ("pre", "post"):
            f |= {
                f"{t}_mean": mean(s[f"{t}_mean"]),
                f"{t}_mean_sd": sd(s[f"{t}_mean"]),
                f"{t}_mean_min": red(np.minimum, s[f"{t}_mean"]),
                f"{t}_mean_max": red(np.maximum, s[f"{t}_mean"]),
                f"{t}_var": mean(s[f"{t}_var"]),
                f"{t}_var_min": red(np.minimum, s[f"{t}_var"]),
                f"{t}_var_max": red(np.maximum, s[f"{t}_var"]),
            }
        summary = np.stack([f[name] for name in schema.SUMMARY_FIELDS], axis=-1)
        # pooled over channels: a mixture of normals, summarised by its mean and variance
        pooled = [
            (mean(s[f"{t}_mean"]), mean(s[f"{t}_var"]) + sd(s[f"{t}_mean"]) ** 2) for t in ("pre", "xhat", "post")
        ]
        quantiles = np.stack([mu[..., None] + np.sqrt(v)[..., None] * _Z for mu, v in pooled], axis=2)
        pm, pv = s["post_mean"][:, m.probe_idx], s["post_var"][:, m.probe_idx]
        probes = pm[..., None] + np.sqrt(pv)[..., None] * _Z
        return summary, quantiles, probes, pooled

    def hist(self, pooled):
        """Poisson-noised histograms of the pooled normals: (r, L, 3, NB) counts, (r, L, 3, 2) ranges."""
        r, L = pooled[0][0].shape
        counts = np.zeros((r, L, len(schema.TENSORS), layout.NB), np.int32)
        ranges = np.zeros((r, L, len(schema.TENSORS), 2), np.float32)
        for ti, (mu, v) in enumerate(pooled):
            sd = np.sqrt(v)
            if schema.TENSORS[ti] == "xhat":
                lo, hi = np.full_like(mu, schema.XHAT_RANGE[0]), np.full_like(mu, schema.XHAT_RANGE[1])
            else:
                lo, hi = mu - 4 * sd, mu + 4 * sd
            edges = lo[..., None] + (hi - lo)[..., None] * np.linspace(0, 1, schema.HIST_BINS + 1)
            cdf = _phi((edges - mu[..., None]) / sd[..., None])
            expected = np.concatenate([np.diff(cdf, axis=-1), cdf[..., :1], 1 - cdf[..., -1:]], axis=-1)
            bad = ~np.isfinite(expected).all(axis=-1)
            expected = np.where(bad[..., None], 0.0, expected) * HIST_SAMPLES
            c = self.rng.poisson(expected)
            counts[:, :, ti, :-1] = c
            counts[:, :, ti, -1] = np.where(bad, HIST_SAMPLES, 0)
            ranges[:, :, ti, 0], ranges[:, :, ti, 1] = lo, hi
        return counts, ranges

    def block(self, step, phase, time):
        r = len(step)
        series = self.layer_series(step, phase)
        ch_rows = np.flatnonzero(step % self.channel_every == 0)
        hist_rows = np.flatnonzero(step % self.hist_every == 0)
        onset = int(np.ceil(NAN_AT * self.steps))
        nan_rows = np.flatnonzero((step == onset) | (step == onset - 1))
        detail = np.unique(np.concatenate([np.arange(0, r, self.detail), [0, r - 1], ch_rows, hist_rows, nan_rows]))
        s = self.channel_state(step[detail], phase[detail], [a[detail] for a in series])
        summary_d, quant_d, probes_d, pooled = self.layer_rows(s)
        summary, quantiles, probes = (_interpolate(a, detail, r) for a in (summary_d, quant_d, probes_d))
        pos = {row: i for i, row in enumerate(detail)}
        ch_sel = [pos[i] for i in ch_rows]
        flat = np.stack([s[name][ch_sel] for name in schema.CHANNEL_FIELDS], axis=1)
        channels = [flat[:, :, a : a + c] for a, c in zip(self.m.starts, self.m.widths)]
        h_sel = [pos[i] for i in hist_rows]
        counts, ranges = self.hist([(mu[h_sel], v[h_sel]) for mu, v in pooled])
        block = Block(
            summary_step=step,
            summary_phase=phase.astype(np.int8),
            summary_time=time,
            summary=summary.astype(np.float32),
            quantiles=quantiles.astype(np.float32),
            probes=probes.astype(np.float32),
            channel_step=step[ch_rows],
            channel_phase=phase[ch_rows].astype(np.int8),
            channels=[c.astype(np.float32) for c in channels],
            hist_step=step[hist_rows],
            hist_phase=phase[hist_rows].astype(np.int8),
            hist_counts=counts,
            hist_range=ranges,
        )
        if self.scalars:
            u = step / max(1, self.steps - 1)
            values = np.full((r, schema.MAX_SCALARS), np.nan)
            train = phase == schema.PHASE_TRAIN
            noise = self.rng.standard_normal(r)
            values[train, 0] = (2.3 * np.exp(-3 * u) + 0.1 + 0.05 * noise)[train]
            values[train, 1] = (0.05 * (1 + np.cos(np.pi * u)))[train]
            values[~train, 2] = np.clip(0.1 + 0.8 * (1 - np.exp(-4 * u)) + 0.01 * noise, 0, 1)[~train]
            block.scalar_step, block.scalar_values = step, values
            block.scalar_names = list(SCALAR_NAMES)
        return block


def _interpolate(values, rows, r):
    """Rows 0..r-1 from the values at sorted ``rows`` (which include 0 and r-1), linearly."""
    if len(rows) == r:
        return values
    right = np.clip(np.searchsorted(rows, np.arange(r), side="right"), 1, len(rows) - 1)
    left = right - 1
    w = ((np.arange(r) - rows[left]) / (rows[right] - rows[left])).astype(np.float32)
    values = values.astype(np.float32, copy=False)
    out = values[left]
    out += (values[right] - out) * w.reshape((-1,) + (1,) * (values.ndim - 1))
    return out


def layer_table(widths, probes: int, names=None, pathologies=()) -> list[dict]:
    """A layer table (docs/architecture.md) for the synthetic model."""
    L = len(widths)
    sat = pathology_layers(L)["saturation"] if "saturation" in pathologies else -1
    names = names or [f"layer{1 + i * 4 // L}.{i}.bn{1 + i % 2}" for i in range(L)]
    table = []
    for i, (name, c) in enumerate(zip(names, widths)):
        tanh = i == sat
        table.append(
            {
                "index": i,
                "path": name,
                "kind": "BatchNorm2d",
                "num_features": int(c),
                "eps": EPS,
                "momentum": MOMENTUM,
                "affine": True,
                "track_running_stats": True,
                "activation": "tanh" if tanh else "relu",
                "activation_source": "module",
                "zone_rule": "saturated" if tanh else "dead",
                "zone_threshold": TANH_THRESHOLD if tanh else 0.0,
                "probe_channels": [int(k * c // max(1, probes)) for k in range(probes)],
            }
        )
    return table


def synthetic_blocks(
    *,
    layers=8,
    channels=32,
    steps=500,
    flush_rows=64,
    pathologies=(),
    seed=0,
    eval_every=0,
    scalars=True,
    probes=4,
    channel_every=1,
    hist_every=1,
    layer_names=None,
    detail=None,
):
    """(layer table, meta, iterator of Blocks of ``flush_rows`` rows): the parts of
    ``write_synthetic_run``, for callers that drive a RunWriter themselves."""
    unknown = set(pathologies) - set(PATHOLOGIES)
    if unknown:
        raise ValueError(f"unknown pathologies {sorted(unknown)}; choose from {PATHOLOGIES}")
    widths = np.array([channels] * layers if np.isscalar(channels) else list(channels), int)
    if len(widths) != layers:
        raise ValueError(f"channels has {len(widths)} widths for {layers} layers")
    rng = np.random.default_rng(seed)
    model = _make_model(rng, layers, widths, probes, set(pathologies))
    detail = detail or max(1, int(widths.sum()) // 512)
    gen = _Generator(model, steps, probes, channel_every, hist_every, detail, scalars, rng)
    table = layer_table(widths, probes, layer_names, pathologies)
    schedule = {"every": 1, "channel_every": channel_every, "hist_every": hist_every, "flush_steps": flush_rows}
    meta = {
        "model_class": "SyntheticNet",
        "run_name": f"synthetic-{seed}",
        "schedule": schedule,
        "user_meta": {"synthetic": True, "pathologies": sorted(pathologies), "seed": seed},
    }
    step = np.arange(steps, dtype=np.int64)
    phase = np.zeros(steps, np.int8)
    if eval_every:
        evals = step[eval_every - 1 :: eval_every]
        order = np.argsort(np.concatenate([step, evals]), kind="stable")
        step = np.concatenate([step, evals])[order]
        phase = np.concatenate([phase, np.ones(len(evals), np.int8)])[order]
    time = 1.7e9 + 0.15 * np.arange(len(step))
    blocks = (
        gen.block(step[a : a + flush_rows], phase[a : a + flush_rows], time[a : a + flush_rows])
        for a in range(0, len(step), flush_rows)
    )
    return table, meta, blocks


def write_synthetic_run(
    path,
    *,
    layers=8,
    channels=32,
    steps=500,
    flush_rows=64,
    pathologies=(),
    seed=0,
    eval_every=0,
    scalars=True,
    probes=4,
    channel_every=1,
    hist_every=1,
    layer_names=None,
    detail=None,
    overwrite=False,
    meta=None,
) -> list[dict]:
    """Write a synthetic run of ``steps`` training steps to ``path``; returns its layer table.

    ``channels``: an int (every layer) or one width per layer. ``eval_every=k`` adds an eval
    row after every k-th step. ``detail``: compute the per-channel model every this many rows
    (default: exact for small models, coarser as layers x channels grows). ``meta`` entries
    override the generated run metadata."""
    table, run_meta, blocks = synthetic_blocks(
        layers=layers,
        channels=channels,
        steps=steps,
        flush_rows=flush_rows,
        pathologies=pathologies,
        seed=seed,
        eval_every=eval_every,
        scalars=scalars,
        probes=probes,
        channel_every=channel_every,
        hist_every=hist_every,
        layer_names=layer_names,
        detail=detail,
    )
    with RunWriter(path, layers=table, meta={**run_meta, **(meta or {})}, probes=probes, overwrite=overwrite) as writer:
        for block in blocks:
            writer.append(block)
    return table
