"""The statistics of a block of R rows at once, from what the layers handed over (pure torch functions).

Batched over rows because on a short step the Python dispatch of a few hundred small operations,
not the arithmetic, was the cost of recording: R rows now cost about what one row did. The
definitions are in ``engine.py``'s docstring; the formulas here are the same, row for row, so a
block's numbers equal those of its rows computed one at a time.

Shapes: R rows, L layers, Ctot channels (all layers', concatenated), S samples per channel,
P pooled values per layer, NQ quantiles, K probe channels per layer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch

from bnviz.store import schema

from . import stats

NB = schema.HIST_BINS
RANGE_MARGIN = 0.1
RANGE_TOLERANCE = 0.01
ZONE_CHANNEL_FRACTION = 0.99


@dataclass
class Constants:
    """What the layers' structure fixes, on the device (built once, ``buffers.py``)."""

    layer_id: torch.Tensor  # (Ctot,) layer of each channel
    sizes: list[int]  # channels per layer
    counts: torch.Tensor  # (L,) the same, float
    eps: torch.Tensor  # (Ctot,) float64
    eps32: torch.Tensor
    has_weight: torch.Tensor  # (Ctot,) bool
    has_bias: torch.Tensor
    all_affine: bool
    probe_index: torch.Tensor  # (L * K,) channels of the probes
    probe_present: torch.Tensor  # (L, K, 1) probe slots that hold a channel
    quantiles: torch.Tensor  # (NQ,) float64
    xhat_lo: torch.Tensor  # (L,)
    xhat_hi: torch.Tensor


class Zone(NamedTuple):
    """The zone rule per channel (``zone_rules.py``) and where it is measured, as of a row's close."""

    below: torch.Tensor  # (Ctot, 1) in the zone: v <= below (rule "dead": t; |v| >= t: -t, or inf if t <= 0)
    above: torch.Tensor | None  # (Ctot, 1) or v >= above (|v| >= t: t; "dead" or t <= 0: NaN); None: all NaN
    at_activation: tuple[bool, ...]  # per layer: zone_input "activation"


class Inputs(NamedTuple):
    """What the layers handed over for R rows of one key (``buffers.Staging``)."""

    x: torch.Tensor  # (R, Ctot, S) sampled input, float32
    mean: torch.Tensor  # (R, Ctot) the kernel's batch mean
    q: torch.Tensor  # (R, Ctot) its invstd, or the variance where the mask ``q_is_var`` says so
    params: torch.Tensor  # (R, 4, Ctot) gamma, beta, running_mean, running_var before the forward
    grads: torch.Tensor  # (R, 2, Ctot) weight.grad, bias.grad at end_step (NaN: none)
    synced: torch.Tensor | None  # (R, 2, Ctot) global mean / invstd of a synced SyncBatchNorm
    activation: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None
    # ^ what the activation received at the sampled positions (R, Ctot, S), the channels that use it
    #   (Ctot, 1) and the channels with no measurement in these rows (Ctot,); None: no layer measured so


class Rows(NamedTuple):
    """The statistics of R rows, in the file's field order."""

    channels: torch.Tensor | None  # (R_c, F_C, Ctot) schema.CHANNEL_FIELDS of the channel rows
    summary: torch.Tensor  # (R, L, F_S) schema.SUMMARY_FIELDS
    quantiles: torch.Tensor  # (R, L, 3, NQ) of pre / x-hat / post
    probes: torch.Tensor  # (R, L, K, NQ)
    pre: torch.Tensor  # (R, Ctot, S) sampled x, for the histograms
    xy: torch.Tensor  # (2, R, Ctot, S) sampled x-hat / y (post), in ``Work``
    pooled_extremes: torch.Tensor  # (2, R, L, 2) pre / post pooled (min, max), float64: the histogram range
    pooled: torch.Tensor  # (2, R, L, P) pre / post pooled values, sorted, excluded ones NaN


def compute(inp: Inputs, c: Constants, mk: dict, zone: Zone, work, channel_rows=None) -> Rows:
    """``mk``: the per-channel masks of the rows' key (``RowMasks.for_key``); ``work``: ``buffers.Work``;
    ``channel_rows``: the rows (an index or a slice) whose per-channel statistics are wanted, or None."""
    L = c.counts.shape[0]
    lid, eps = c.layer_id, c.eps32
    R = inp.x.shape[0]
    mean = inp.mean
    # var from the kernel's invstd in float64: 1/invstd^2 - eps loses digits in float32 when var << eps
    q64 = inp.q.double()
    q = inp.q
    if mk["any_q_is_var"]:
        var = torch.where(mk["q_is_var"], q64, 1.0 / (q64 * q64) - c.eps).float()
        batch_inv = torch.where(mk["q_is_var"], torch.rsqrt(q + eps), q)
    else:
        var = (1.0 / (q64 * q64) - c.eps).float()
        batch_inv = q
    gamma, beta, rm, rv = inp.params.unbind(1)
    grad_gamma, grad_beta = inp.grads.unbind(1)
    if c.all_affine:
        g, b = gamma, beta
    else:
        g = torch.where(c.has_weight, gamma, 1.0)
        b = torch.where(c.has_bias, beta, 0.0)
    running, identity = mk["running"], mk["identity"]
    if mk["any_running"]:
        um = torch.where(running, rm, mean)
        uinv = torch.where(running, torch.rsqrt(rv + eps), batch_inv)
        uvar = torch.where(running, rv, var)
    else:
        um, uinv, uvar = mean, batch_inv, var
    if inp.synced is not None:
        sync = mk["sync"]
        g_mean, g_inv = inp.synced.unbind(1)
        g_inv64 = g_inv.double()
        um = torch.where(sync, g_mean, um)
        uinv = torch.where(sync, g_inv, uinv)
        uvar = torch.where(sync, (1.0 / (g_inv64 * g_inv64) - c.eps).float(), uvar)
    used_mean, used_var = um, uvar
    if mk["any_identity"]:
        used_mean, used_var = (torch.where(identity, torch.nan, t) for t in (um, uvar))
    post_mean = g * (mean - um) * uinv + b
    post_var = g * g * var * uinv * uinv
    if mk["any_identity"]:
        post_mean = torch.where(identity, mean, post_mean)
        post_var = torch.where(identity, var, post_var)

    shift = um * uinv
    xy = work.xy(R)
    factors = (uinv, shift, g, b, identity) if mk["any_identity"] else (uinv, shift, g, b)
    _normalise(inp.x, [t.unsqueeze(-1) for t in factors], mk["any_identity"], xy)
    sat_x, sat_y = _zone_fractions(xy, inp.activation, zone, mk, work)

    present = mk["present"]
    gap = (mean - rm).abs() * torch.rsqrt(rv + eps)
    used_gap = (mean - used_mean).abs() * uinv
    logratio = torch.log((var + eps) / (rv + eps)).abs()
    zone_ch = (sat_y >= ZONE_CHANNEL_FRACTION).float()
    nonfinite = (~torch.isfinite(mean) | ~torch.isfinite(var)).float()
    if not mk["all_present"]:
        zone_ch = torch.where(present, zone_ch, torch.nan)
        nonfinite = torch.where(present, nonfinite, torch.nan)
    channel_fields = {
        "pre_mean": mean,
        "pre_var": var,
        "post_mean": post_mean,
        "post_var": post_var,
        "gamma": gamma,
        "beta": beta,
        "running_mean": rm,
        "running_var": rv,
        "sat_y": sat_y,
        "sat_xhat": sat_x,
        "grad_gamma": grad_gamma,
        "grad_beta": grad_beta,
        "used_mean": used_mean,
        "used_var": used_var,
    }
    channels = None
    if channel_rows is not None:  # only the rows of the channel tier: a fraction of them
        channels = torch.stack([channel_fields[name][channel_rows] for name in schema.CHANNEL_FIELDS], 1)
        if not mk["all_present"]:
            channels = torch.where(present, channels, torch.nan)

    # field-major (F, R, Ctot): stacking whole tensors one after another is a copy each, where
    # interleaving them (R, F, Ctot) costs 2-3x as much
    averaged = [mean, var, post_mean, post_var, gamma, beta, gap, logratio, sat_y, sat_x, zone_ch, nonfinite, used_gap]
    sums = stats.segment_sum(torch.stack([*averaged, grad_gamma * grad_gamma, grad_beta * grad_beta]), c.sizes, lid)
    means = sums / c.counts  # (13 + 2, R, L)
    grad_norms = sums[13:].sqrt()
    spread = torch.stack([mean, post_mean]) - means[0:3:2].index_select(-1, lid)
    sd = (stats.segment_sum(spread * spread, c.sizes, lid) / c.counts).sqrt()
    extremes = torch.stack([mean, var, post_mean, post_var, gamma.abs()])
    maxs = stats.segment_max(torch.cat([extremes, beta.abs().unsqueeze(0), -extremes]), c.sizes, lid)
    mins = -maxs[6:]
    summary_fields = {
        "n": torch.full_like(means[0], torch.nan),
        "pre_mean": means[0],
        "pre_mean_sd": sd[0],
        "pre_mean_min": mins[0],
        "pre_mean_max": maxs[0],
        "pre_var": means[1],
        "pre_var_min": mins[1],
        "pre_var_max": maxs[1],
        "post_mean": means[2],
        "post_mean_sd": sd[1],
        "post_mean_min": mins[2],
        "post_mean_max": maxs[2],
        "post_var": means[3],
        "post_var_min": mins[3],
        "post_var_max": maxs[3],
        "gamma_mean": means[4],
        "gamma_abs_min": mins[4],
        "gamma_abs_max": maxs[4],
        "beta_mean": means[5],
        "beta_abs_max": maxs[5],
        "run_mean_gap": means[6],
        "run_var_logratio": means[7],
        "sat_y": means[8],
        "sat_xhat": means[9],
        "zone_channels": means[10],
        "nonfinite_channels": sums[11],
        "grad_gamma_norm": grad_norms[0],
        "grad_beta_norm": grad_norms[1],
        "used_mean_gap": means[12],
    }
    summary = torch.stack([summary_fields[name] for name in schema.SUMMARY_FIELDS], -1)
    if not mk["all_present"]:
        summary = torch.where(mk["present_l"].unsqueeze(-1), summary, torch.nan)

    # the pooled x-hat / y from the pooled x, as ``xy`` has them (same operations on the same values),
    # without reading ``xy`` again at scattered positions
    pool = mk["pool"]
    pooled = inp.x.new_empty((3, R, pool.numel()))
    torch.index_select(inp.x.flatten(1), 1, pool.view(-1), out=pooled[0])
    at = mk["pool_channel"]
    _normalise(pooled[0], [t.index_select(-1, at) for t in factors], mk["any_identity"], pooled[1:])
    pooled = pooled.view(3, R, *pool.shape)
    # finiteness (and padding) tested on the values each use takes, not on every sampled value
    pooled = torch.where(_counted(pooled, mk["pool_counted"]), pooled, torch.nan)
    pooled = stats.sort_last(pooled)  # (3, R, L, P), excluded values (NaN) last
    quant = stats.sorted_quantiles(pooled, c.quantiles)  # (3, R, L, NQ)
    K = c.probe_present.shape[1]
    probe_values = xy[1].index_select(1, c.probe_index)  # (R, L * K, S)
    probe = torch.where(
        _counted(probe_values, mk["valid"][c.probe_index] if mk["padded"] else None), probe_values, torch.nan
    )
    probe = stats.sorted_quantiles(stats.sort_last(probe), c.quantiles).view(R, L, K, -1)
    pre_post = pooled[0::2]  # a slice, not a list index (that would copy from the host)
    return Rows(
        channels=channels,
        summary=summary,
        quantiles=quant.permute(1, 2, 0, 3).float(),
        probes=torch.where(c.probe_present, probe, torch.nan).float(),
        pre=inp.x,
        xy=xy,
        pooled_extremes=torch.stack([quant[0::2, ..., 0], quant[0::2, ..., -1]], -1),
        pooled=pre_post,
    )


def _normalise(x, factors, any_identity: bool, out) -> None:
    """x-hat = x * invstd_used - mean_used * invstd_used and y = gamma x-hat + beta (a Probe: y = x)
    into ``out`` (2, ...); ``factors``: invstd_used, mean_used * invstd_used, gamma, beta (and, with
    ``any_identity``, is-a-Probe), per channel, broadcasting. Sampled and pooled values go
    through this one function, so a pooled value equals its sample's bit for bit."""
    uinv, shift, g, b = factors[:4]
    # broadcasting addcmul is slower on CPU than a multiply and an in-place add
    torch.mul(x, uinv, out=out[0]).sub_(shift)
    torch.mul(out[0], g, out=out[1]).add_(b)
    if any_identity:
        torch.where(factors[4], x, out[1], out=out[1])


def _counted(values, valid):
    """Values that count: finite (``v * 0 == 0``, two passes where isfinite takes four) and, where
    ``valid`` (broadcasting) is given, not padding."""
    finite = (values * 0) == 0
    return finite & valid if valid is not None else finite


def _zone_fractions(xy, activation, zone: Zone, mk: dict, work):
    """(R, Ctot) fractions of the sampled x-hat and y (or what the activation received) in the zone."""
    tests = work.zone_tests(xy.shape[1])
    valid = mk["valid_f"] if mk["padded"] else None
    if activation is None:
        counts = stats.zone_counts(xy, zone.below, zone.above, valid, tests)
    else:  # y, or what the activation really received
        received, use, missing = activation
        y = torch.where(use, received, xy[1], out=work.received(xy.shape[1]))
        counts = torch.stack([stats.zone_counts(v, zone.below, zone.above, valid, tests[0]) for v in (xy[0], y)])
    sat_x, sat_y = counts / mk["s"]
    if activation is not None:  # x-hat is not what such an activation receives: no x-hat zone
        sat_x = torch.where(use.squeeze(1) | missing, torch.nan, sat_x)
        sat_y = torch.where(missing, torch.nan, sat_y)
    return sat_x, sat_y


def sticky_ranges(start: torch.Tensor, extremes: torch.Tensor, pooled: torch.Tensor, speculate: bool):
    """Each histogram row's pre / post range (H, 2, 2, L) (pre/post, lo/hi, L) and the range after the last.

    The rule (``stats.widen_range``) is sequential: a row widens the range it found when more than
    RANGE_TOLERANCE of its pooled values fall outside, and its histogram uses the widened range.
    ``start`` (2, 2, L) is the range before the first row (float64 from then on, as the pooled
    quantiles); ``extremes`` (2, H, L, 2) and ``pooled`` (2, H, L, P) are the rows' pooled values.
    ``speculate``: test every remaining row against the current range at once and step to the first
    that widens it (a host sync per widening, right when they are rare: on the CPU); else one row
    at a time without syncs.
    """
    H = pooled.shape[1]
    ranges = start.new_empty((H,) + start.shape, dtype=torch.float64)  # the quantiles' precision
    lo, hi = start[:, 0].double(), start[:, 1].double()
    first = 0
    while first < H:
        if speculate:
            frac = _outside_fraction(pooled[:, first:], lo, hi)  # (2, H', L)
            unset = torch.isnan(lo) | torch.isnan(hi)
            moves = (frac > RANGE_TOLERANCE) | (unset.unsqueeze(1) & ~torch.isnan(extremes[:, first:, :, 0]))
            hits = moves.any(-1).any(0).nonzero()
            if hits.numel() == 0:
                ranges[first:] = torch.stack([lo, hi], 1)
                break
            row = first + int(hits[0])
            ranges[first:row] = torch.stack([lo, hi], 1)
            frac_row = frac[:, row - first]
        else:
            row = first
            frac_row = _outside_fraction(pooled[:, row : row + 1], lo, hi)[:, 0]
        lo, hi = stats.widen_range(
            lo, hi, extremes[:, row, :, 0], extremes[:, row, :, 1], frac_row, RANGE_MARGIN, RANGE_TOLERANCE
        )
        ranges[row] = torch.stack([lo, hi], 1)
        first = row + 1
    return ranges, torch.stack([lo, hi], 1)


def _outside_fraction(pooled, lo, hi):
    seen = ~torch.isnan(pooled)
    outside = (((pooled < lo[:, None, :, None]) | (pooled >= hi[:, None, :, None])) & seen).sum(-1)
    return outside / seen.sum(-1)


def histograms(pre, xy, rows, mk: dict, ranges, c: Constants, work):
    """Counts (H, L, 3, NB + 3) and ranges (H, L, 3, 2) of the sampled pre / x-hat / post of H rows.

    ``pre`` (R, Ctot, S) and ``xy`` (2, R, Ctot, S) are a group's (``Rows``), ``rows`` (a slice or
    an index) its H histogram rows; ``mk`` the rows' masks; ``ranges`` (H, 2, 2, L) from
    ``sticky_ranges``; x-hat on schema.XHAT_RANGE.
    """
    L = c.counts.shape[0]
    H = ranges.shape[0]
    u, scratch, slot = work.histogram(H)
    if isinstance(rows, slice):  # views: the histogram reads them in place
        sources = [pre[rows], xy[0, rows], xy[1, rows]]
    else:
        torch.index_select(pre, 0, rows, out=u[0])
        torch.index_select(xy, 1, rows, out=u[1:])
        sources = [u.view(3 * H, *u.shape[2:])]
    xlo, xhi = c.xhat_lo.expand(H, L), c.xhat_hi.expand(H, L)
    lo3 = torch.stack([ranges[:, 0, 0], xlo, ranges[:, 1, 0]])  # (3, H, L)
    hi3 = torch.stack([ranges[:, 0, 1], xhi, ranges[:, 1, 1]])
    flat = (3 * H, *u.shape[2:])
    counts = stats.histogram(
        sources,
        u.view(flat),
        scratch.view(flat),
        slot.view(flat),
        mk["invalid"] if mk["padded"] else None,
        mk["padding"],
        c.layer_id,
        lo3.reshape(3 * H, L),
        hi3.reshape(3 * H, L),
        L,
        NB,
    ).view(3, H, L, -1)
    return counts.permute(1, 2, 0, 3), torch.stack([lo3, hi3], -1).permute(1, 2, 0, 3).float()
