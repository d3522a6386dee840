"""Ranks: how far the ranks of a distributed job disagree about the selected layer's batch
statistics over steps (without SyncBatchNorm each rank normalises with its own batch)."""

from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg

from bnviz.app import style
from bnviz.app.data import rank_data, rank_table
from bnviz.app.views.base import BaseView, fmt

# (title, y label, what it is in words)
_PLOTS = (
    (
        "batch mean of x per rank (mean over channels)",
        "mean",
        "Each rank's batch mean of the layer's input x, averaged over channels: what that rank normalised with.",
    ),
    (
        "spread across ranks: batch mean (in std), variance (relative)",
        "spread",
        "Per step, max − min over ranks of the layer's batch mean (in batch standard deviations) and of its "
        "batch variance (relative to the ranks' mean variance).",
    ),
    (
        "channel divergence: spread of channel means / global std",
        "spread",
        "Per channel, max − min over ranks of the batch mean in units of the global batch standard deviation, "
        "averaged over channels. Random sampling of the same data alone gives about the black line; the "
        "findings flag the layer when the median is above the purple one.",
    ),
)
LEGEND_RANKS = 8  # more ranks are drawn, but named in the legend only up to this many


class RanksView(BaseView):
    key = "ranks"
    overlay_ok = False  # two jobs' rank curves in one plot would be unreadable

    def make_plots(self, col, title):
        prefix = f"{title} · " if title else ""
        plots = []
        for r, (t, y, tip) in enumerate(_PLOTS):
            p = self.glw.addPlot(row=r, col=col)
            style.style_plot(p, prefix + t, "step", y)
            p.setToolTip(tip)
            plots.append(p)
        return plots

    def draw(self, plots, slot, layer, overlaid):
        runs = getattr(slot.run, "ranks", [slot.run])
        d = rank_data(runs, layer, self.session.state.phase)
        p_mean, p_spread, p_channel = plots
        n = len(d.ranks)
        for i, (rank, (x, y)) in enumerate(zip(d.ranks, d.pre_mean)):
            name = f"rank {rank}" if i < LEGEND_RANKS else None
            self.ink.curve(p_mean, x, y, style.rank_colour(i, n), name, width=1.2)
            self.ink.mark_nonfinite(p_mean, x, y)
        if n > LEGEND_RANKS:
            self.ink.legend(p_mean, "", f"… and {n - LEGEND_RANKS} more ranks")
        if n < 2:
            self.set_note(
                f"{slot.label + ': ' if slot.label else ''}one process recorded this run: "
                "there are no other ranks to compare."
            )
            return rank_table(d)
        c = style.OKABE_ITO
        self.ink.curve(p_spread, *d.mean_spread, c["blue"], "batch mean, in batch std", width=2)
        self.ink.curve(p_spread, *d.var_spread, c["orange"], "batch variance, relative to its mean")
        self.ink.curve(p_channel, *d.channel_spread, c["vermillion"], "ranks' spread", width=2)
        for value, colour, name in (
            (d.iid, c["black"], f"random sampling alone gives {d.iid:.3g}"),
            (d.flag, c["purple"], f"findings flag the layer above {d.flag:.3g}"),
        ):
            if math.isfinite(value):
                line = pg.InfiniteLine(pos=value, angle=0, pen=style.pen(colour, 1.2, dashed=True))
                line.setToolTip(name)
                p_channel.addItem(line)
                self.ink.legend(p_channel, style.swatch_line(colour, True), name)
        for p, (x, y) in ((p_spread, d.mean_spread), (p_channel, d.channel_spread)):
            self.ink.mark_nonfinite(p, x, y)
        return rank_table(d)

    def readout_columns(self):
        return [
            ("pre_mean_spread", "mean spread"),
            ("pre_var_spread", "var spread"),
            ("channel_spread", "channel spread"),
        ]

    def readout(self):
        """Each value as last recorded at or before the cursor (channel rows are sparser)."""
        step = self.session.cursor_step()
        parts = []
        for label, t in self.tables.items():
            vals = [f"{name} {fmt(_last_finite(t, col, step))}" for col, name in self.readout_columns() if col in t]
            if vals:
                parts.append((f"{label}: " if label else "") + ", ".join(vals))
        return "   ".join(parts)


def _last_finite(table, column, step) -> float:
    steps, values = table["step"], table[column]
    ok = np.isfinite(values) & (steps <= step) if step is not None else np.zeros(len(steps), bool)
    return float(values[ok][-1]) if ok.any() else math.nan
