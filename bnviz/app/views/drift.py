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

    def draw(self, plots, slot, layer, dashed) -> Table:
        t = drift_table(slot.run, layer, self.session.state.phase)
        x = t["step"]
        tag = f" ({slot.label})" if dashed else ""
        for j, (tensor, _name) in enumerate(_TENSORS):
            colour = style.TENSOR_COLOURS[tensor]
            p_mean, p_var, p_q = plots[3 * j : 3 * j + 3]
            if not dashed:
                self.band(
                    p_mean, x, t[f"{tensor}_mean_min"], t[f"{tensor}_mean_max"], colour, 40, f"channel min–max{tag}"
                )
                self.band(p_var, x, t[f"{tensor}_var_min"], t[f"{tensor}_var_max"], colour, 40, f"channel min–max{tag}")
                self.band(p_q, x, t[f"{tensor}_m2s"], t[f"{tensor}_p2s"], colour, 35, f"±2σ band{tag}")
                self.band(p_q, x, t[f"{tensor}_q15"], t[f"{tensor}_q85"], colour, 80, f"15–85%{tag}")
            self.curve(p_mean, x, t[f"{tensor}_mean"], colour, f"mean{tag}", dashed)
            self.curve(p_var, x, t[f"{tensor}_var"], colour, f"mean variance{tag}", dashed)
            self.curve(p_q, x, t[f"{tensor}_q50"], colour, f"median{tag}", dashed, width=2)
            if dashed:
                self.curve(p_q, x, t[f"{tensor}_q15"], colour, f"15%, 85%{tag}", dashed, width=1)
                self.curve(p_q, x, t[f"{tensor}_q85"], colour, None, dashed, width=1)
            self.mark_nonfinite(p_mean, x, t[f"{tensor}_mean"])
            self.mark_nonfinite(p_var, x, t[f"{tensor}_var"])
            self.mark_nonfinite(p_q, x, t[f"{tensor}_q50"])
        return t

    def readout_columns(self):
        return [("pre_mean", "pre mean"), ("pre_var", "pre var"), ("post_mean", "post mean"), ("post_var", "post var")]
