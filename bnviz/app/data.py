"""The numbers each view draws, as named columns: the one place the app reads a Run.

Pure numpy over ``bnviz.store`` (no Qt), so the screen, the CSV export and the tests all see
the same values. Every table is a dict of equal-length 1-D arrays (``step`` first).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from bnviz.analysis.drift import band_drift
from bnviz.analysis.findings import Thresholds
from bnviz.analysis.ranks import aligned_rows, channel_divergence, iid_spread, rank_divergence
from bnviz.store.ranks import rank_of
from bnviz.store.schema import PHASE_NAMES, QUANTILE_NAMES, SUMMARY_FIELDS, TENSORS

Table = dict[str, np.ndarray]

_PHASE_CODES = {name: code for code, name in PHASE_NAMES.items()}
BANDS = ("q15", "q50", "q85", "m2s", "m1s", "p1s", "p2s")


def phase_mask(phases: np.ndarray, phase: str) -> np.ndarray:
    """Rows of ``phase`` ("all", "train" or "eval")."""
    if phase == "all":
        return np.ones(len(phases), bool)
    return np.asarray(phases) == _PHASE_CODES[phase]


def _layer_summary(run, layer: str, fields: tuple[str, ...], mask: np.ndarray) -> Table:
    block = np.asarray(run.summary_layer(layer))[mask]  # one read for every field of the layer
    out: Table = {"step": np.asarray(run.steps)[mask]}
    for f in fields:
        out[f] = block[:, SUMMARY_FIELDS.index(f)].astype(np.float64)
    return out


def drift_table(run, layer: str, phase: str = "train") -> Table:
    """Pre/post-BN moments with their spread over channels, and pooled percentile bands."""
    mask = phase_mask(run.phases, phase)
    fields = tuple(f for f in SUMMARY_FIELDS if f.startswith(("pre_", "post_")))
    out = _layer_summary(run, layer, fields, mask)
    for tensor in ("pre", "post"):
        q = np.asarray(run.quantiles(layer, tensor), dtype=np.float64)[mask]
        for name in BANDS:
            out[f"{tensor}_{name}"] = q[:, QUANTILE_NAMES.index(name)]
    return out


def gamma_beta_table(run, layer: str, phase: str = "train") -> Table:
    fields = (
        "gamma_mean",
        "gamma_abs_min",
        "gamma_abs_max",
        "beta_mean",
        "beta_abs_max",
        "sat_y",
        "sat_xhat",
        "zone_channels",
    )
    return _layer_summary(run, layer, fields, phase_mask(run.phases, phase))


def train_eval_table(run, layer: str, phase: str = "all") -> Table:
    fields = ("run_mean_gap", "run_var_logratio", "pre_mean", "pre_var")
    out = _layer_summary(run, layer, fields, phase_mask(run.phases, phase))
    out["phase"] = np.asarray(run.phases)[phase_mask(run.phases, phase)].astype(np.float64)
    return out


def channel_matrix(run, layer: str, metric: str, phase: str = "all") -> tuple[np.ndarray, np.ndarray]:
    """(steps (Rc,), values (Rc, C)) of one per-channel field on the channel schedule."""
    mask = phase_mask(run.channel_phases, phase)
    steps = np.asarray(run.channel_steps)[mask]
    values = np.asarray(run.channels(layer, metric), dtype=np.float64)
    return steps, values[mask] if len(values) == len(mask) else values[: len(steps)]


def channel_table(run, layer: str, channel: int, fields: tuple[str, ...], phase: str = "all") -> Table:
    """Several per-channel fields of one channel over the channel schedule."""
    out: Table = {}
    for f in fields:
        steps, m = channel_matrix(run, layer, f, phase)
        out.setdefault("step", steps)
        out[f] = m[:, channel] if 0 <= channel < m.shape[1] else np.full(len(steps), np.nan)
    return out


def at_steps(channel: Table, steps: np.ndarray, index: int) -> Table:
    """One channel's columns (from ``channel_table``) at the given summary steps, each value the
    last one recorded at or before that step, named ``channel<index>_<field>``: per-channel data
    in the same CSV as the layer's columns, under one step column."""
    cs = channel["step"]
    i = np.clip(np.searchsorted(cs, steps, side="right") - 1, 0, max(len(cs) - 1, 0))
    return {
        f"channel{index}_{k}": (v[i] if len(cs) else np.full(len(steps), np.nan))
        for k, v in channel.items()
        if k != "step"
    }


def rows_in_range(table: Table, step_range: tuple[int, int] | None, key: str = "step") -> Table:
    """The rows of ``table`` whose ``key`` column lies in ``step_range`` (inclusive; None: all)."""
    if step_range is None or key not in table:
        return table
    steps = np.asarray(table[key])
    keep = (steps >= step_range[0]) & (steps <= step_range[1])
    return {k: (np.asarray(v)[keep] if len(v) == len(steps) else v) for k, v in table.items()}


def matrix_table(steps: np.ndarray, values: np.ndarray, prefix: str) -> Table:
    """A (R, C) matrix as CSV columns ``prefix0, prefix1, ...``."""
    out: Table = {"step": steps}
    for c in range(values.shape[1]):
        out[f"{prefix}{c}"] = values[:, c]
    return out


@dataclass
class Hist:
    tensor: str
    step: int
    edges: np.ndarray  # (NB+1,)
    density: np.ndarray  # counts / (total finite in range * bin width): comparable across ranges
    under: int
    over: int
    nonfinite: int
    total: int


def hist_row(run, step: int | None) -> int | None:
    """The histogram row shown for a cursor at ``step``: the last one at or before it."""
    steps = np.asarray(run.hist_steps)
    if len(steps) == 0:
        return None
    if step is None:
        return len(steps) - 1
    return max(int(np.searchsorted(steps, step, side="right")) - 1, 0)


def distribution(run, layer: str, step: int | None, tensors=TENSORS) -> list[Hist]:
    row = hist_row(run, step)
    if row is None:
        return []
    out = []
    for t in tensors:
        h = run.hist(layer, t, row)
        counts = np.asarray(h.counts, dtype=np.float64)
        edges = np.asarray(h.edges, dtype=np.float64)
        inside = counts.sum()
        width = np.diff(edges)
        with np.errstate(invalid="ignore", divide="ignore"):
            density = counts / (inside * width) if inside > 0 else np.zeros_like(counts)
        out.append(
            Hist(
                t,
                int(run.hist_steps[row]),
                edges,
                density,
                int(h.under),
                int(h.over),
                int(h.nonfinite),
                int(inside + h.under + h.over + h.nonfinite),
            )
        )
    return out


def distribution_table(hists: list[Hist]) -> Table:
    out: Table = {}
    for h in hists:
        out[f"{h.tensor}_lo"] = h.edges[:-1]
        out[f"{h.tensor}_hi"] = h.edges[1:]
        out[f"{h.tensor}_density"] = h.density
    return out


HISTORY_BINS = 128  # the common value grid histograms of different ranges are re-binned onto


def distribution_history(
    run, layer: str, tensor: str, phase: str = "train", max_rows: int = 1000, bins: int = HISTORY_BINS
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(steps (R,), edges (bins + 1,), density (R, bins)): ``tensor``'s histogram rows through
    time (at most ``max_rows``, evenly thinned) re-binned onto one grid over every row's range.

    A layer's pre/post range widens during a run, so rows differ in their bins: each row's
    cumulative count is interpolated at the common edges (values spread evenly within a bin) and
    turned back into counts. Density, as in ``distribution``: counts / (in-range total * width).
    """
    rows = np.flatnonzero(phase_mask(run.hist_phases, phase))
    rows = rows[:: max(1, math.ceil(len(rows) / max_rows))]
    empty = (np.zeros(0, np.int64), np.linspace(0, 1, bins + 1), np.zeros((0, bins)))
    if not len(rows):
        return empty
    counts, ranges = run.hist_block(layer, tensor, rows)
    counts = counts[:, :-3].astype(np.float64)  # below / above / non-finite are not bins
    ok = np.isfinite(ranges).all(axis=1) & (ranges[:, 1] > ranges[:, 0])
    if not ok.any():
        return empty
    edges = np.linspace(ranges[ok, 0].min(), ranges[ok, 1].max(), bins + 1)
    density = np.full((len(rows), bins), np.nan)
    width = np.diff(edges)
    for i in np.flatnonzero(ok):
        own = np.linspace(ranges[i, 0], ranges[i, 1], counts.shape[1] + 1)
        cum = np.concatenate([[0.0], np.cumsum(counts[i])])
        total = cum[-1]
        if total > 0:
            density[i] = np.diff(np.interp(edges, own, cum)) / (total * width)
    return np.asarray(run.hist_steps)[rows], edges, density


def history_table(steps: np.ndarray, edges: np.ndarray, density: np.ndarray) -> Table:
    """The step x bin density as CSV columns "bin<j>@<centre value>"."""
    centres = (edges[:-1] + edges[1:]) / 2
    out: Table = {"step": steps}
    for j, c in enumerate(centres):
        out[f"bin{j}@{c:.4g}"] = density[:, j]
    return out


LAYERS_SHOWN = 24  # the across-layers view draws at most this many layers


def layers_table(run, names: list[str], metric: str, phase: str = "train") -> Table:
    """One summary statistic of several layers over steps: ``step`` and a column per layer."""
    mask = phase_mask(run.phases, phase)
    out: Table = {"step": np.asarray(run.steps)[mask]}
    block = np.asarray(run.summary_all(metric), dtype=np.float64)[mask]  # one read, every layer
    index = {li.path: i for i, li in enumerate(run.layers)}
    for name in names[:LAYERS_SHOWN]:
        if name in index:
            out[name] = block[:, index[name]]
    return out


def layer_series(run, name: str, metric: str, phase: str = "train") -> tuple[np.ndarray, np.ndarray]:
    """(steps, values) of one layer's summary statistic: the chunks of that layer only."""
    rows = np.flatnonzero(phase_mask(run.phases, phase))
    return np.asarray(run.steps)[rows], np.asarray(run.summary(name, metric, rows), dtype=np.float64)


OVERVIEW_LABELS = {
    "drift": "band drift of pre-BN x (early band widths)",
    "saturation": "fraction of y in the activation's zone",
    "dead": "fraction of channels ≥99% in the zone",
    "gamma": "mean γ",
    "nonfinite": "channels with NaN/Inf statistics",
}
_OVERVIEW_FIELD = {
    "saturation": "sat_y",
    "dead": "zone_channels",
    "gamma": "gamma_mean",
    "nonfinite": "nonfinite_channels",
}


def overview_matrix(
    run, metric: str, phase: str = "train", max_columns: int = 2000, progress=None
) -> tuple[np.ndarray, np.ndarray]:
    """(steps (R',), values (R', L)): one metric for every layer, at most ``max_columns`` rows.

    ``progress(done, total)`` is called per layer so a caller can keep its window responsive.
    """
    mask = phase_mask(run.phases, phase)
    rows = np.flatnonzero(mask)
    stride = max(1, math.ceil(len(rows) / max_columns))
    rows = rows[::stride]
    steps = np.asarray(run.steps)[rows]
    names = [li.path for li in run.layers]
    out = np.full((len(rows), len(names)), np.nan)
    for j, name in enumerate(names):
        if metric == "drift":
            q = np.asarray(run.quantiles(name, "pre"), dtype=np.float64)[mask]
            out[:, j] = band_drift(q)[::stride]
        else:
            out[:, j] = np.asarray(run.summary(name, _OVERVIEW_FIELD[metric]), dtype=np.float64)[rows]
        if progress is not None:
            progress(j + 1, len(names))
    return steps, out


def scalar_series(run, name: str) -> tuple[np.ndarray, np.ndarray]:
    steps, values = run.scalar(name)
    return np.asarray(steps), np.asarray(values, dtype=np.float64)


def nan_steps(steps: np.ndarray, *columns: np.ndarray) -> np.ndarray:
    """Steps where any of ``columns`` is NaN/Inf: the views mark them."""
    bad = np.zeros(len(steps), bool)
    for c in columns:
        bad |= ~np.isfinite(c)
    return np.asarray(steps)[bad]


# --- the activation that follows the layer -------------------------------------------------


def activation(name: str, y: np.ndarray) -> np.ndarray | None:
    """The activation's curve f(y), or None when unknown/none."""
    y = np.asarray(y, dtype=np.float64)
    erf = np.vectorize(math.erf, otypes=[float])
    curves = {
        "relu": lambda: np.maximum(y, 0),
        "leaky_relu": lambda: np.where(y > 0, y, 0.01 * y),
        "relu6": lambda: np.clip(y, 0, 6),
        "hardtanh": lambda: np.clip(y, -1, 1),
        "elu": lambda: np.where(y > 0, y, np.expm1(np.minimum(y, 0))),
        "gelu": lambda: 0.5 * y * (1 + erf(y / math.sqrt(2))),
        "silu": lambda: y / (1 + np.exp(-y)),
        "sigmoid": lambda: 1 / (1 + np.exp(-y)),
        "tanh": lambda: np.tanh(y),
    }
    f = curves.get(name)
    return None if f is None else f()


# --- ranks of a distributed job --------------------------------------------------------------


@dataclass
class RankData:
    """What the Ranks view draws for one job: each rank's layer-mean batch mean over its own
    steps, and the spreads across ranks (``bnviz.analysis.ranks``) over the steps all recorded."""

    ranks: list[int]  # rank numbers, in the order of ``runs``
    pre_mean: list[tuple[np.ndarray, np.ndarray]]  # (steps, values) per rank
    mean_spread: tuple[np.ndarray, np.ndarray]  # rank_divergence("pre_mean"): in batch std
    var_spread: tuple[np.ndarray, np.ndarray]  # rank_divergence("pre_var"): relative
    channel_spread: tuple[np.ndarray, np.ndarray]  # channel_divergence, on the channel tier
    iid: float  # what sampling alone gives (iid_spread)
    flag: float  # above this the findings report the layer


def rank_data(runs, layer: str, phase: str = "train", thresholds=None) -> RankData:
    """The Ranks view's series for ``layer`` of a job's runs (``run.ranks``, rank 0 first)."""
    thr = thresholds or Thresholds()
    ph = None if phase == "all" else phase
    per_rank = []
    for run in runs:
        steps, (rows,) = aligned_rows([run], ph)
        per_rank.append((steps, np.asarray(run.summary(layer, "pre_mean", rows), np.float64)))
    empty = (np.zeros(0, np.int64), np.zeros(0))
    if len(runs) < 2:
        return RankData([rank_of(r) for r in runs], per_rank, empty, empty, empty, math.nan, math.nan)
    steps0, (rows0,) = aligned_rows(runs[:1], ph)
    n = np.asarray(runs[0].summary(layer, "n", rows0), np.float64)
    iid = float(iid_spread(len(runs), np.nanmedian(n))) if len(n) else math.nan
    return RankData(
        [rank_of(r) for r in runs],
        per_rank,
        rank_divergence(runs, "pre_mean", layer, ph),
        rank_divergence(runs, "pre_var", layer, ph),
        channel_divergence(runs, layer, ph),
        iid,
        max(thr.rank_divergence, thr.rank_iid_factor * iid),
    )


def rank_table(d: RankData) -> Table:
    """``RankData`` as CSV columns on every step any rank recorded; NaN where a series has no
    value at that step (a rank that stopped early, steps without channel rows)."""
    series = {f"rank{r}_pre_mean": s for r, s in zip(d.ranks, d.pre_mean)}
    if len(d.ranks) > 1:
        series.update(pre_mean_spread=d.mean_spread, pre_var_spread=d.var_spread, channel_spread=d.channel_spread)
    steps = np.unique(np.concatenate([np.asarray(s, np.int64) for s, _ in series.values()]))
    out: Table = {"step": steps}
    for name, (s, v) in series.items():
        col = np.full(len(steps), np.nan)
        col[np.searchsorted(steps, s)] = v
        out[name] = col
    if len(d.ranks) > 1:
        out["channel_spread_iid"] = np.full(len(steps), d.iid)
    return out
