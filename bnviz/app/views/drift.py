"""Drift: pre-BN and post-BN moments and percentile bands over steps, side by side."""

from __future__ import annotations

import pyqtgraph as pg

from bnviz.app import style
from bnviz.app.data import Table, drift_table
from bnviz.app.views.base import BaseView

_TENSORS = (("pre", "pre-BN x"), ("post", "post-BN y"))


class DriftView(BaseView):
    key = "drift"

    def make_plots(self, col: int, title: str) -> list[pg.PlotItem]:
        plots = []
        prefix = f"{title} · " if title else ""
        for j, (_tensor, name) in enumerate(_TENSORS):
            c = 2 * col + j
            for r, (what, ylabel) in enumerate(
                (
                    ("mean over channels", "mean"),
                    ("variance over channels", "variance"),
                    ("percentiles of all values", "value"),
                )
            ):
                p = self.glw.addPlot(row=r, col=c)
                style.style_plot(p, f"{prefix}{name}: {what}", "step", ylabel)
                plots.append(p)
        return plots

    def draw(self, plots, slot, layer, overlaid) -> Table:
        t = drift_table(slot.run, layer, self.session.state.phase)
        x = t["step"]
        ink = self.ink
        for j, (tensor, _name) in enumerate(_TENSORS):
            colour = style.TENSOR_COLOURS[tensor]
            p_mean, p_var, p_q = plots[3 * j : 3 * j + 3]
            ink.band(p_mean, x, t[f"{tensor}_mean_min"], t[f"{tensor}_mean_max"], colour, 40, "channel min–max")
            ink.band(p_var, x, t[f"{tensor}_var_min"], t[f"{tensor}_var_max"], colour, 40, "channel min–max")
            ink.band(p_q, x, t[f"{tensor}_m2s"], t[f"{tensor}_p2s"], colour, 35, "±2σ band")
            ink.band(p_q, x, t[f"{tensor}_q15"], t[f"{tensor}_q85"], colour, 80, "15–85%")
            ink.curve(p_mean, x, t[f"{tensor}_mean"], colour, "mean")
            ink.curve(p_var, x, t[f"{tensor}_var"], colour, "mean variance")
            ink.curve(p_q, x, t[f"{tensor}_q50"], colour, "median", width=2)
            ink.mark_nonfinite(p_mean, x, t[f"{tensor}_mean"])
            ink.mark_nonfinite(p_var, x, t[f"{tensor}_var"])
            ink.mark_nonfinite(p_q, x, t[f"{tensor}_q50"])
        return t

    def readout_columns(self):
        return [("pre_mean", "pre mean"), ("pre_var", "pre var"), ("post_mean", "post mean"), ("post_var", "post var")]
