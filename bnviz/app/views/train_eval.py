"""Train vs eval: running statistics (what eval normalises with) against the batch statistics
training normalised with, per channel and as the layer aggregate."""

from __future__ import annotations

import pyqtgraph as pg

from bnviz.app import style
from bnviz.app.data import at_steps, channel_table, train_eval_table
from bnviz.app.views.base import ChannelView, run_prefix
from bnviz.store.schema import PHASE_EVAL


class TrainEvalView(ChannelView):
    key = "train_eval"

    def make_plots(self, col, title):
        prefix = f"{title} · " if title else ""
        ch = self.current_channel()
        plots = []
        for r, (t, y) in enumerate(
            (
                (f"channel {ch}: batch mean vs running mean of x", "mean"),
                (f"channel {ch}: batch variance vs running variance of x", "variance"),
                ("layer: batch vs running statistics gap", "gap"),
            )
        ):
            p = self.glw.addPlot(row=r, col=col)
            style.style_plot(p, prefix + t, "step", y)
            plots.append(p)
        return plots

    def draw(self, plots, slot, layer, overlaid):
        c = style.OKABE_ITO
        ch = self.current_channel()
        pm, pv, pgap = plots
        ct = channel_table(slot.run, layer, ch, ("pre_mean", "running_mean", "pre_var", "running_var"), "train")
        t = train_eval_table(slot.run, layer, "all")
        x = t["step"]
        train = t["phase"] != PHASE_EVAL
        self.ink.curve(pm, ct["step"], ct["pre_mean"], c["blue"], "batch mean (train)")
        self.ink.curve(pv, ct["step"], ct["pre_var"], c["blue"], "batch variance (train)")
        self.ink.mark_nonfinite(pm, ct["step"], ct["pre_mean"])
        self.ink.mark_nonfinite(pv, ct["step"], ct["pre_var"])
        li = slot.layer(layer)
        if li.track_running_stats is False:  # NaN by design: a note, not NaN marks
            self.add_note(
                f"{run_prefix(slot)}{layer} keeps no running statistics "
                f"({'a probe, no BN' if li.kind == 'Probe' else 'track_running_stats=False'}): "
                "eval normalises with batch statistics too; only the batch statistics are shown."
            )
            return {**t, **at_steps(ct, x, ch)}
        self.ink.curve(pm, ct["step"], ct["running_mean"], c["vermillion"], "running mean (eval uses)", width=2)
        self.ink.curve(pv, ct["step"], ct["running_var"], c["vermillion"], "running variance (eval uses)", width=2)
        self.ink.curve(pgap, x[train], t["run_mean_gap"][train], c["blue"], "|batch − running mean| / running σ")
        self.ink.curve(pgap, x[train], t["run_var_logratio"][train], c["orange"], "|log(batch var / running var)|")
        ev = ~train
        if ev.any() and not overlaid:
            sp = pg.ScatterPlotItem(
                x=x[ev].astype(float),
                y=t["run_mean_gap"][ev],
                symbol="o",
                size=6,
                brush=style.brush(c["purple"], 200),
                pen=None,
            )
            pgap.addItem(sp)
            self.ink.legend(pgap, style.swatch_marker(c["purple"]), "eval rows (mean gap)")
        self.ink.mark_nonfinite(pm, ct["step"], ct["running_mean"])
        self.ink.mark_nonfinite(pv, ct["step"], ct["running_var"])
        self.ink.mark_nonfinite(pgap, x, t["run_mean_gap"])
        return {**t, **at_steps(ct, x, ch)}

    def readout_columns(self):
        return [("run_mean_gap", "mean gap"), ("run_var_logratio", "var log-ratio")]
