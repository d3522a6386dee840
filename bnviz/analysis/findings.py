"""Findings: the problems a recording shows, ranked so the worst is read first.

``findings(run)`` looks at every layer of an open run (``bnviz.store.open_run``) and returns a
list of ``Finding`` sorted by severity. Every test it applies has its threshold in ``Thresholds``
(documented there, overridable: ``bnviz info RUN --threshold drift=2``).

Severity is in [0, 1]: the kind's weight (``WEIGHTS``: non-finite values first, drift last)
times a factor in [0.5, 1) that grows with how far the value is past its threshold (for
channel findings: with the share of the layer's channels affected).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any

import numpy as np

from bnviz.analysis.drift import band_drift, early_rows, nanmedian, rolling_median
from bnviz.analysis.ranks import divergence_by_layer
from bnviz.analysis.zones import running_gap, running_var_logratio, zone_bounds, zone_mass
from bnviz.store.schema import PHASE_TRAIN, SUMMARY_FIELDS

WEIGHTS = {
    "nonfinite": 1.0,
    "dead": 0.9,
    "saturated": 0.9,
    "gamma_beta_zone": 0.8,
    "train_eval": 0.8,
    "small_batch": 0.75,
    "ranks_disagree": 0.75,
    "gamma_collapse": 0.7,
    "drift": 0.7,
}
KINDS = tuple(WEIGHTS)


@dataclass(frozen=True)
class Thresholds:
    """Every limit the findings use. Rows are recorded training rows (eval rows never count)."""

    # drift: band drift (bnviz.analysis.drift) of the BN input x (for a probe: the probed
    # values), smoothed by a running median over drift_window rows.
    drift: float = 1.0
    drift_window: int = 5
    # The first early_fraction of the rows are the reference for drift (the start of training:
    # a larger window already holds the drift it should measure); the last late_fraction
    # describe the state training ended in.
    early_fraction: float = 0.02
    late_fraction: float = 0.2
    # dead / saturated: a channel is dead on a row when at least dead_fraction of its sampled y
    # lies in the dead zone of the following ReLU-like activation (y <= 0), saturated when at
    # least saturated_fraction lies in the saturated zone of a sigmoid/tanh-like one; it is
    # reported when that holds on zone_persist of its rows, or of its late rows.
    dead_fraction: float = 0.95
    saturated_fraction: float = 0.3
    zone_persist: float = 0.5
    # gamma_beta_zone: at the channel's last row, γ and β alone (x̂ unit normal) put as much of
    # its outputs in the zone (dead_fraction / saturated_fraction) as above.
    # gamma_collapse: at the last row |γ| < gamma_collapse and < gamma_collapse_ratio x its
    # first recorded |γ|.
    gamma_collapse: float = 0.05
    gamma_collapse_ratio: float = 0.1
    # train_eval: over the late rows, the median of run_mean_gap (|batch mean - running mean| in
    # running standard deviations) or of run_var_logratio exceeds these: eval-mode outputs
    # (normalised with the running statistics) differ from what training saw.
    running_gap: float = 0.5
    running_var_logratio: float = 0.5
    # small_batch: the median number of values per channel in a training batch (N x spatial
    # size) is below this; BN's batch statistics are then mostly noise.
    min_batch_values: float = 8.0
    # ranks_disagree (distributed jobs without SyncBatchNorm): the median over training of the
    # per-channel spread of the ranks' batch means, in global batch standard deviations
    # (bnviz.analysis.ranks.channel_divergence), exceeds rank_divergence and rank_iid_factor x
    # what independent sampling of the same data gives: the ranks normalise differently.
    rank_divergence: float = 0.1
    rank_iid_factor: float = 3.0

    @classmethod
    def parse(cls, items: list[str] | tuple[str, ...] = ()) -> Thresholds:
        """Defaults with ``name=value`` overrides (as given on the command line)."""
        types = {f.name: f.type for f in fields(cls)}
        changes: dict[str, Any] = {}
        for item in items:
            name, sep, text = item.partition("=")
            name = name.strip().replace("-", "_")
            if not sep or name not in types:
                raise ValueError(f"unknown threshold {item!r}: expected NAME=VALUE with NAME one of {', '.join(types)}")
            try:
                changes[name] = int(text) if types[name] == "int" else float(text)
            except ValueError:
                raise ValueError(f"threshold {name}={text!r} is not a number") from None
        return replace(cls(), **changes)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Finding:
    severity: float  # 0..1, see the module docstring
    kind: str  # one of KINDS
    layer: str  # layer path
    channels: tuple[int, ...]  # affected channels; () for a layer-wide finding
    first_step: int | None  # step range where it shows
    last_step: int | None
    message: str  # one line, for people
    value: float  # the measured value the threshold was applied to

    def to_dict(self) -> dict:
        d = asdict(self)
        d["channels"] = list(self.channels)
        return d


def findings(run, thresholds: Thresholds | None = None) -> list[Finding]:
    """Every finding in ``run``, most severe first (ties: forward layer order, then kind)."""
    thr = thresholds or Thresholds()
    train = np.flatnonzero(np.asarray(run.phases) == PHASE_TRAIN)
    ch_train = np.flatnonzero(np.asarray(run.channel_phases) == PHASE_TRAIN)
    out: list[Finding] = []
    nonfinite = _nonfinite(run, thr)
    if nonfinite:
        out.append(nonfinite)
    # Layers are passed to the reader as LayerInfo, never by name: names need not be unique.
    for layer in run.layers:
        if len(train):
            summary = run.summary_layer(layer, train)  # (R, F_S): one read per layer
            field = lambda name: np.asarray(summary[:, SUMMARY_FIELDS.index(name)], np.float64)  # noqa: E731, B023
            out += _drift(run, layer, train, thr)
            out += _small_batch(run, layer, field("n"), train, thr)
            out += _train_eval(run, layer, field("run_mean_gap"), field("run_var_logratio"), train, ch_train, thr)
        if len(ch_train):
            out += _channel_findings(run, layer, ch_train, thr)
    out += _ranks_disagree(run, thr)
    order = {layer.path: i for i, layer in enumerate(run.layers)}
    out.sort(key=lambda f: (-f.severity, order.get(f.layer, -1), KINDS.index(f.kind)))
    return out


def _excess_severity(kind: str, excess: float) -> float:
    """Weight x [0.5, 1): 0.5 at the threshold, approaching 1 far beyond it."""
    return WEIGHTS[kind] * (1.0 - 0.5 / max(1.0, excess))


def _share_severity(kind: str, share: float) -> float:
    return WEIGHTS[kind] * (0.5 + 0.5 * min(1.0, share))


def _span(steps: np.ndarray, mask) -> tuple[int | None, int | None]:
    idx = np.flatnonzero(mask)
    if not len(idx):
        return None, None
    return int(steps[idx[0]]), int(steps[idx[-1]])


def _late(n: int, thr: Thresholds) -> slice:
    return slice(n - early_rows(n, thr.late_fraction), n)


def _channel_list(channels: np.ndarray, limit: int = 8) -> str:
    shown = ", ".join(str(c) for c in channels[:limit])
    return shown + (f" and {len(channels) - limit} more" if len(channels) > limit else "")


def _nonfinite(run, thr: Thresholds) -> Finding | None:
    """The first row and layer with NaN/Inf batch statistics: where the trouble started.

    The count is a sum, finite whatever the data; it is NaN only where the layer did not run in
    that row (a layer skipped, the partial row of an interrupted step): absent, not non-finite."""
    counts = np.asarray(run.summary_all("nonfinite_channels", slice(None)), dtype=np.float64)
    with np.errstate(invalid="ignore"):
        bad = counts > 0
    rows = np.flatnonzero(bad.any(axis=1))
    if not len(rows):
        return None
    steps = np.asarray(run.steps)
    first = rows[0]
    layer = run.layers[int(np.flatnonzero(bad[first])[0])]
    n_layers = int(bad.any(axis=0).sum())
    step = int(steps[first])
    channels = _nonfinite_channels(run, layer, step)
    where = f" (channels {_channel_list(channels)})" if len(channels) else ""
    later = f"; {n_layers - 1} more layers follow" if n_layers > 1 else ""
    return Finding(
        WEIGHTS["nonfinite"],
        "nonfinite",
        layer.path,
        tuple(int(c) for c in channels),
        step,
        int(steps[rows[-1]]),
        f"first non-finite batch statistics at step {step} in {layer.path}{where}{later}",
        float(n_layers),
    )


def _nonfinite_channels(run, layer, step: int) -> np.ndarray:
    ch_rows = np.flatnonzero(np.asarray(run.channel_steps) == step)
    if not len(ch_rows):
        return np.zeros(0, int)
    rows = ch_rows[:1]
    mean = run.channels(layer, "pre_mean", rows)[0]
    var = run.channels(layer, "pre_var", rows)[0]
    return np.flatnonzero(~(np.isfinite(mean) & np.isfinite(var)))


def _drift(run, layer, train: np.ndarray, thr: Thresholds) -> list[Finding]:
    drift = rolling_median(band_drift(run.quantiles(layer, "pre", train), thr.early_fraction), thr.drift_window)
    if not np.isfinite(drift).any():
        return []
    peak = int(np.nanargmax(drift))
    value = float(drift[peak])
    if value <= thr.drift:
        return []
    steps = np.asarray(run.steps)[train]
    first, last = _span(steps, drift > thr.drift)
    if layer.kind == "Probe":
        what, after = "the probed values'", ""
    else:
        post = rolling_median(band_drift(run.quantiles(layer, "post", train), thr.early_fraction), thr.drift_window)
        what = "the BN input's"
        after = f"; the BN output's moved {np.nanmax(post):.1f}" if np.isfinite(post).any() else ""
    return [
        Finding(
            _excess_severity("drift", value / thr.drift),
            "drift",
            layer.path,
            (),
            first,
            last,
            f"{what} 15/50/85th percentiles moved {value:.1f} early band widths from where "
            f"they started (peak at step {int(steps[peak])}){after}",
            value,
        )
    ]


def _ranks_disagree(run, thr: Thresholds) -> list[Finding]:
    runs = getattr(run, "ranks", [run])
    out = []
    for path, d in divergence_by_layer(runs).items():
        limit = max(thr.rank_divergence, thr.rank_iid_factor * d["iid"])
        if not d["median"] > limit:
            continue
        out.append(
            Finding(
                _excess_severity("ranks_disagree", d["median"] / limit),
                "ranks_disagree",
                path,
                (),
                None,
                None,
                f"the {len(runs)} ranks' batch means differ by {d['median']:.2f} batch std "
                f"(median; random sampling alone gives {d['iid']:.2f}): each rank normalises "
                f"differently (unshuffled shards or small per-rank batches; SyncBatchNorm helps)",
                d["median"],
            )
        )
    return out


def _small_batch(run, layer, n: np.ndarray, train: np.ndarray, thr: Thresholds) -> list[Finding]:
    med = float(nanmedian(n))
    if not med < thr.min_batch_values:
        return []
    first, last = _span(np.asarray(run.steps)[train], n < thr.min_batch_values)
    return [
        Finding(
            _excess_severity("small_batch", thr.min_batch_values / max(med, 1.0)),
            "small_batch",
            layer.path,
            (),
            first,
            last,
            f"BN normalises over only {med:g} values per channel (median batch); its batch "
            f"statistics are noisy and eval-mode outputs will differ",
            med,
        )
    ]


def _train_eval(
    run, layer, gap: np.ndarray, logratio: np.ndarray, train: np.ndarray, ch_train: np.ndarray, thr: Thresholds
) -> list[Finding]:
    if layer.kind == "Probe" or not layer.track_running_stats:
        return []
    late = _late(len(train), thr)
    gap_late, lr_late = float(nanmedian(gap[late])), float(nanmedian(logratio[late]))
    # the value reported is whichever of the two is further past its threshold
    excess, value = max((gap_late / thr.running_gap, gap_late), (lr_late / thr.running_var_logratio, lr_late))
    if not excess > 1.0:
        return []
    steps = np.asarray(run.steps)[train]
    past_warmup = np.arange(len(train)) >= early_rows(len(train), thr.early_fraction)
    exceeds = (rolling_median(gap, thr.drift_window) > thr.running_gap) | (
        rolling_median(logratio, thr.drift_window) > thr.running_var_logratio
    )
    first, last = _span(steps, exceeds & past_warmup)
    channels = _train_eval_channels(run, layer, ch_train, thr)
    which = f" (worst channels {_channel_list(channels)})" if len(channels) else ""
    return [
        Finding(
            _excess_severity("train_eval", excess),
            "train_eval",
            layer.path,
            tuple(int(c) for c in channels),
            first,
            last,
            f"running statistics are far from the batch statistics late in training: mean gap "
            f"{gap_late:.2f} running std, |log variance ratio| {lr_late:.2f}; eval outputs "
            f"will differ from training{which}",
            value,
        )
    ]


def _train_eval_channels(run, layer, ch_train: np.ndarray, thr: Thresholds) -> np.ndarray:
    if not len(ch_train):
        return np.zeros(0, int)
    rows = ch_train[_late(len(ch_train), thr)]
    get = lambda f: run.channels(layer, f, rows)  # noqa: E731
    eps = layer.eps or 0.0
    gap = nanmedian(running_gap(get("pre_mean"), get("running_mean"), get("running_var"), eps), axis=0)
    lr = nanmedian(running_var_logratio(get("pre_var"), get("running_var"), eps), axis=0)
    bad = (gap > thr.running_gap) | (lr > thr.running_var_logratio)
    return np.flatnonzero(bad)


def _channel_findings(run, layer, ch_train: np.ndarray, thr: Thresholds) -> list[Finding]:
    """dead / saturated, gamma_beta_zone and gamma_collapse: the per-channel tier's findings."""
    steps = np.asarray(run.channel_steps)[ch_train]
    out = []
    # "bound" (no activation follows) marks values far outside a normalised range: no zone to die in.
    zone = (
        layer.zone_rule in ("dead", "saturated")
        and layer.zone_threshold is not None
        and layer.activation not in ("none", "unknown")
    )
    if zone:
        out += _zone(run, layer, ch_train, steps, thr)
    if layer.affine and layer.kind != "Probe":
        gamma = run.channels(layer, "gamma", ch_train)
        beta = run.channels(layer, "beta", ch_train)
        if zone and layer.zone_input == "y":  # γ, β alone decide the zone only if the activation receives y
            out += _gamma_beta_zone(layer, gamma, beta, steps, thr)
        out += _gamma_collapse(layer, gamma, steps, thr)
    return out


def _zone_kind(layer) -> str:
    return "dead" if layer.zone_rule == "dead" else "saturated"


def _zone_fraction(layer, thr: Thresholds) -> float:
    return thr.dead_fraction if layer.zone_rule == "dead" else thr.saturated_fraction


def _zone(run, layer, ch_train, steps, thr: Thresholds) -> list[Finding]:
    fraction = _zone_fraction(layer, thr)
    with np.errstate(invalid="ignore"):
        in_zone = run.channels(layer, "sat_y", ch_train) >= fraction
    n_rows, n_ch = in_zone.shape
    late = in_zone[_late(n_rows, thr)]
    flagged = np.flatnonzero((in_zone.mean(axis=0) >= thr.zone_persist) | (late.mean(axis=0) >= thr.zone_persist))
    if not len(flagged):
        return []
    kind = _zone_kind(layer)
    share = len(flagged) / n_ch
    first, last = _span(steps, in_zone[:, flagged].any(axis=1))
    return [
        Finding(
            _share_severity(kind, share),
            kind,
            layer.path,
            tuple(int(c) for c in flagged),
            first,
            last,
            f"{len(flagged)} of {n_ch} channels {kind} (>= {fraction:.0%} of outputs in "
            f"{layer.activation}'s {kind} zone): {_channel_list(flagged)}",
            share,
        )
    ]


def _gamma_beta_zone(layer, gamma, beta, steps, thr: Thresholds) -> list[Finding]:
    lo, hi = zone_bounds(layer.zone_rule, layer.zone_threshold)
    fraction = _zone_fraction(layer, thr)
    with np.errstate(invalid="ignore"):
        pushed = zone_mass(gamma, beta, lo, hi) >= fraction
    flagged = np.flatnonzero(pushed[-1])
    if not len(flagged):
        return []
    share = len(flagged) / pushed.shape[1]
    first, last = _span(steps, pushed[:, flagged].any(axis=1))
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = beta[-1, flagged] / np.abs(gamma[-1, flagged])
    kind = _zone_kind(layer)
    return [
        Finding(
            _share_severity("gamma_beta_zone", share),
            "gamma_beta_zone",
            layer.path,
            tuple(int(c) for c in flagged),
            first,
            last,
            f"γ and β alone put >= {fraction:.0%} of the outputs of {len(flagged)} of {pushed.shape[1]} "
            f"channels in {layer.activation}'s {kind} zone (β/|γ| {np.nanmin(ratio):.2g} to "
            f"{np.nanmax(ratio):.2g}): {_channel_list(flagged)}",
            share,
        )
    ]


def _gamma_collapse(layer, gamma, steps, thr: Thresholds) -> list[Finding]:
    g = np.abs(np.asarray(gamma, dtype=np.float64))
    with np.errstate(invalid="ignore"):
        collapsed = (g[-1] < thr.gamma_collapse) & (g[-1] < thr.gamma_collapse_ratio * g[0])
    flagged = np.flatnonzero(collapsed)
    if not len(flagged):
        return []
    share = len(flagged) / g.shape[1]
    with np.errstate(invalid="ignore"):
        first, last = _span(steps, (g[:, flagged] < thr.gamma_collapse).any(axis=1))
    return [
        Finding(
            _share_severity("gamma_collapse", share),
            "gamma_collapse",
            layer.path,
            tuple(int(c) for c in flagged),
            first,
            last,
            f"γ collapsed toward 0 in {len(flagged)} of {g.shape[1]} channels (|γ| at most "
            f"{np.nanmax(g[-1, flagged]):.2g} at the end, from at least {np.nanmin(g[0, flagged]):.2g}"
            f"); they pass almost nothing on: {_channel_list(flagged)}",
            share,
        )
    ]
