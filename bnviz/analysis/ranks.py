"""How far the ranks of a distributed job disagree about BN statistics (numpy only).

Without SyncBatchNorm each rank normalises with its own batch statistics. ``rank_divergence``
measures, per step, the spread across ranks of a layer's summary field; ``channel_divergence``
the per-channel spread of the batch means in units of the global batch standard deviation,
averaged over channels, which is what differs between the ranks' normalisations.
``iid_spread`` is what that channel spread is on average from sampling alone (every rank's
batch drawn from the same data): far above it, the ranks see systematically different data.
``global_batch_stats`` combines the ranks' local statistics the way SyncBatchNorm does.
Runs are aligned by step: only steps that every rank recorded (in the given phase) count.
"""

from __future__ import annotations

import functools
import math

import numpy as np

from bnviz.store import schema

# Mean fields are divided by the standard deviation from their variance field; variance
# fields are given relative to their mean over ranks; other fields are plain max - min.
MEAN_SCALE = {"pre_mean": "pre_var", "post_mean": "post_var"}
RELATIVE = ("pre_var", "post_var")


def aligned_rows(runs, phase: str | None = "train", tier: str = "summary"):
    """(steps, [row indices per run]): the steps every run recorded in ``phase`` on ``tier``
    ("summary" or "channels"), ascending; each run's last row of that phase at each step."""
    if tier not in ("summary", "channels"):
        raise ValueError(f"tier must be 'summary' or 'channels', got {tier!r}")
    per_run = []
    for run in runs:
        steps, rows = (
            (run.steps, run.rows(phase)) if tier == "summary" else (run.channel_steps, run.channel_rows(phase))
        )
        s = steps[rows]
        last = np.r_[s[1:] != s[:-1], True] if len(s) else np.zeros(0, bool)
        per_run.append((s[last], rows[last]))
    common = per_run[0][0] if per_run else np.zeros(0, np.int64)
    for s, _ in per_run[1:]:
        common = np.intersect1d(common, s)
    return common, [r[np.searchsorted(s, common)] for s, r in per_run]


def rank_divergence(runs, field: str, layer, phase: str | None = "train"):
    """(steps, spread) of summary ``field`` of ``layer`` across ``runs`` (one per rank).

    spread = max - min over ranks; for pre_mean / post_mean divided by the square root of the
    ranks' mean pre_var / post_var (units of the batch standard deviation), for pre_var /
    post_var by the ranks' mean (a relative spread). NaN where any rank has NaN."""
    if field not in schema.SUMMARY_FIELDS:
        raise KeyError(f"unknown summary field {field!r}; one of {schema.SUMMARY_FIELDS}")
    steps, rows = aligned_rows(runs, phase)
    values = np.stack([run.summary(layer, field, r) for run, r in zip(runs, rows)]).astype(np.float64)
    spread = values.max(0) - values.min(0)
    if field in MEAN_SCALE:
        var = np.stack([run.summary(layer, MEAN_SCALE[field], r) for run, r in zip(runs, rows)])
        with np.errstate(divide="ignore", invalid="ignore"):
            spread = spread / np.sqrt(var.astype(np.float64).mean(0))
    elif field in RELATIVE:
        with np.errstate(divide="ignore", invalid="ignore"):
            spread = spread / values.mean(0)
    return steps, spread


def global_batch_stats(means, variances, counts):
    """The mean and biased variance of the union of the ranks' batches (what SyncBatchNorm
    normalises with), from each rank's batch mean, biased variance and value count.

    means, variances: (W, ...) with the rank first; counts: (W,) or broadcastable to means."""
    means = np.asarray(means, np.float64)
    variances = np.asarray(variances, np.float64)
    counts = np.asarray(counts, np.float64)
    counts = counts.reshape(counts.shape + (1,) * (means.ndim - counts.ndim))
    total = counts.sum(0)
    mean = (counts * means).sum(0) / total
    var = (counts * (variances + (means - mean) ** 2)).sum(0) / total
    return mean, var


def channel_divergence(runs, layer, phase: str | None = "train"):
    """(steps, spread): per channel (max - min over ranks of the batch mean) / global batch
    standard deviation, averaged over the layer's channels, at the channel-tier steps every
    rank recorded. The global statistics weight each rank by its value count (summary ``n``)."""
    steps, rows = aligned_rows(runs, phase, tier="channels")
    means = np.stack([run.channels(layer, "pre_mean", r) for run, r in zip(runs, rows)])
    variances = np.stack([run.channels(layer, "pre_var", r) for run, r in zip(runs, rows)])
    counts = np.stack([_counts_at(run, layer, steps, phase) for run in runs])  # (W, S)
    _, var = global_batch_stats(means, variances, counts[..., None])
    with np.errstate(divide="ignore", invalid="ignore"):
        spread = (means.max(0) - means.min(0)) / np.sqrt(var)
    return steps, spread.mean(-1) if spread.size else np.zeros(len(steps))


def _counts_at(run, layer, steps, phase):
    s, rows = aligned_rows([run], phase)
    n = run.summary(layer, "n", rows[0])
    return n[np.searchsorted(s, steps)]


def iid_spread(world_size: int, n) -> float | np.ndarray:
    """Expected (max - min) / sigma of ``world_size`` batch means of ``n`` values each drawn from
    one distribution: E[range of world_size standard normals] / sqrt(n)."""
    return _expected_range(int(world_size)) / np.sqrt(np.asarray(n, np.float64))


@functools.cache
def _expected_range(w: int) -> float:
    # E[R] = integral of 1 - Phi(x)^w - (1 - Phi(x))^w over x (the range of w standard normals)
    if w < 2:
        return 0.0
    x = np.linspace(-10.0, 10.0, 4001)
    phi = 0.5 * (1.0 + np.array([math.erf(v / math.sqrt(2.0)) for v in x]))
    y = 1.0 - phi**w - (1.0 - phi) ** w
    return float(np.sum((y[1:] + y[:-1]) * np.diff(x)) / 2.0)


def divergence_by_layer(runs, phase: str | None = "train") -> dict:
    """{layer path: {"median", "max", "iid", "steps"}}: each layer's ``channel_divergence`` over
    the channel-tier steps every rank recorded, and ``iid`` the ``iid_spread`` to compare it with
    (for ``bnviz info`` and findings). NaN without common steps; {} for fewer than two runs."""
    if len(runs) < 2:
        return {}
    out = {}
    for layer in runs[0].layers:
        steps, spread = channel_divergence(runs, layer.path, phase)
        n = np.nanmedian(_counts_at(runs[0], layer.path, steps, phase)) if len(steps) else math.nan
        finite = spread[np.isfinite(spread)]
        out[layer.path] = {
            "median": float(np.median(finite)) if finite.size else math.nan,
            "max": float(finite.max()) if finite.size else math.nan,
            "iid": float(iid_spread(len(runs), n)),
            "steps": int(len(steps)),
        }
    return out
