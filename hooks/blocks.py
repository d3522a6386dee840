"""Staged rows -> result buffers: the rows grouped by key, each group computed at once
(``row_stats``), the histogram rows then taken in row order for the sticky range."""

from __future__ import annotations

import torch

from . import row_stats
from .rows import Row


class Staged:
    """A closed row waiting in its staging slot to be computed."""

    __slots__ = ("row", "slot", "key", "zone", "received")

    def __init__(self, row: Row, slot: int):
        self.row, self.slot = row, slot
        self.key: tuple = ()
        self.zone: row_stats.Zone | None = None
        self.received: tuple[bool, ...] | None = None  # per layer: its activation's input was sampled


def compute(staged: list[Staged], staging, results, constants, masks, work, device) -> None:
    """The statistics of the staged rows, written to ``results`` (``buffers.Results``)."""
    groups: dict = {}
    for st in staged:
        groups.setdefault((st.key, id(st.zone), st.received), []).append(st)
    hist_parts = []
    work.start(len(staged))
    with torch.no_grad():
        for members in groups.values():
            first = members[0]
            zone = first.zone
            assert zone is not None
            sel = _positions([m.slot for m in members], device)
            mk = masks.for_key(first.key)
            activation = None
            if first.received is not None:
                assert staging.activation is not None
                activation = (staging.activation[sel], *masks.activation(zone, first.received, first.key))
            inputs = row_stats.Inputs(
                x=staging.x[sel],
                mean=staging.mean[sel],
                q=staging.q[sel],
                params=staging.params[sel],
                grads=staging.grads[sel],
                synced=staging.synced[sel] if mk["any_sync"] and staging.synced is not None else None,
                activation=activation,
            )
            ch = [i for i, m in enumerate(members) if m.row.channel is not None]
            out = row_stats.compute(inputs, constants, mk, zone, work, _positions(ch, device) if ch else None)
            at = _positions([m.row.index for m in members], device)
            results.summary[at] = out.summary
            results.quantiles[at] = out.quantiles
            results.probes[at] = out.probes
            if out.channels is not None:
                results.channels[_positions([members[i].row.channel for i in ch], device)] = out.channels
            hist = [i for i, m in enumerate(members) if m.row.hist is not None]
            if hist:
                hist_parts.append((members, hist, out, mk))
        staging.grads.fill_(torch.nan)
        if hist_parts:
            _histograms(hist_parts, results, constants, work, device)


def _histograms(parts, results, constants, work, device) -> None:
    """Histograms of the staged histogram rows: the sticky range goes through them in row order."""
    order = sorted(
        (members[i].row.hist, p, k) for p, (members, hist, _, _) in enumerate(parts) for k, i in enumerate(hist)
    )
    extremes = torch.cat([out.pooled_extremes[:, _positions(hist, device)] for _, hist, out, _ in parts], 1)
    pooled = torch.cat([out.pooled[:, _positions(hist, device)] for _, hist, out, _ in parts], 1)
    if len(parts) > 1:  # groups interleave in time: put the rows in row order
        offsets = [0]
        for _, hist, _, _ in parts:
            offsets.append(offsets[-1] + len(hist))
        perm = _positions([offsets[p] + k for _, p, k in order], device)
        extremes, pooled = extremes[:, perm], pooled[:, perm]
    speculate = torch.device(device).type == "cpu"
    ranges, results.range = row_stats.sticky_ranges(results.range, extremes, pooled, speculate=speculate)
    place = {(p, k): j for j, (_, p, k) in enumerate(order)}
    for p, (members, hist, out, mk) in enumerate(parts):
        rows = _positions(hist, device)
        mine = ranges[_positions([place[p, k] for k in range(len(hist))], device)]
        counts, ranges_used = row_stats.histograms(out.pre, out.xy, rows, mk, mine, constants, work)
        at = _positions([members[i].row.hist for i in hist], device)
        results.hist[at] = counts
        results.hist_range[at] = ranges_used


def _positions(positions: list[int], device):
    """An index for these positions: a slice when they are evenly spaced, as the tiers' rows are
    (a view, no copy), else a tensor; on a GPU copied from pinned memory without waiting (a
    pageable copy would wait for the queue)."""
    first = positions[0]
    step = positions[1] - first if len(positions) > 1 else 1
    if step > 0 and positions == list(range(first, first + step * len(positions), step)):
        return slice(first, first + step * (len(positions) - 1) + 1, step)
    if torch.device(device).type == "cuda":
        return torch.tensor(positions, pin_memory=True).to(device, non_blocking=True)
    return torch.tensor(positions, device=device)
