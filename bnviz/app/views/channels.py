"""Channels: a channel x step heatmap of one per-channel statistic; a click picks channel and step."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg

from bnviz.app import style
from bnviz.app.data import channel_matrix, matrix_table
from bnviz.app.state import CHANNEL_METRICS
from bnviz.app.views.base import BaseView, fmt, value_at

METRIC_LABELS = {
    "pre_mean": "batch mean of x",
    "pre_var": "batch variance of x",
    "post_mean": "batch mean of y",
    "post_var": "batch variance of y",
    "gamma": "γ",
    "beta": "β",
    "running_mean": "running mean",
    "running_var": "running variance",
    "sat_y": "fraction of y in zone",
    "sat_xhat": "fraction of x-hat in zone",
    "grad_gamma": "∂loss/∂γ",
    "grad_beta": "∂loss/∂β",
    "used_mean": "mean normalised with",
    "used_var": "variance normalised with",
}
ZONE_WORD = {"dead": "dead", "saturated": "saturated", "bound": "clipped"}


def metric_label(metric: str, layer_info) -> str:
    """The statistic's name, with the zone named for this layer's activation."""
    word = ZONE_WORD.get(getattr(layer_info, "zone_rule", ""))
    if metric in ("sat_y", "sat_xhat") and word:
        return f"{word} fraction of {'y' if metric == 'sat_y' else 'x-hat'}"
    return METRIC_LABELS.get(metric, metric)  # a field of a newer format: its own name


_SIGNED = {"pre_mean", "post_mean", "gamma", "beta", "running_mean", "grad_gamma", "grad_beta", "used_mean"}


class ChannelsView(BaseView):
    key = "channels"
    heatmap_tips = True
    overlay_ok = False
    depends = BaseView.depends | {"channel_metric", "channel"}

    def __init__(self, session, parent=None):
        super().__init__(session, parent)
        self.metric_box = self.combo(
            "Statistic",
            {m: metric_label(m, None) for m in CHANNEL_METRICS},
            "channel_metric",
            "Per-channel statistic shown as colour",
        )
        self.colour = self.add_colour_control()
        self.bar.addStretch(1)
        self.glw.scene().sigMouseClicked.connect(self._clicked)
        self._plots: list[pg.PlotItem] = []

    def sync_controls(self):
        self.sync_combo(self.metric_box, self.session.state.channel_metric)
        self.colour.sync(not self.heatmap_signed())

    def heatmap_signed(self) -> bool:
        return self.session.state.channel_metric in _SIGNED

    def make_plots(self, col, title):
        p = self.glw.addPlot(row=0, col=col)
        metric = self.session.state.channel_metric
        li = self.session.primary.layer(self.session.state.layer)
        style.style_plot(
            p, (f"{title} · " if title else "") + metric_label(metric, li) + " per channel", "step", "channel"
        )
        p.invertY(False)
        self._plots.append(p)
        return [p]

    def rebuild(self):
        self._plots = []
        super().rebuild()

    def draw(self, plots, slot, layer, overlaid):
        metric = self.session.state.channel_metric
        steps, m = channel_matrix(slot.run, layer, metric, self.session.state.phase)
        if len(steps) == 0:
            self.set_note("No per-channel rows recorded yet.")
            return {"step": steps}
        limits, log = self.colour_scale()
        label = metric_label(metric, slot.layer(layer))
        self.ink.heatmap(plots[0], steps, m, label, metric in _SIGNED, limits=limits, log=log)
        ch = self.current_channel()
        if 0 <= ch < m.shape[1]:
            line = pg.InfiniteLine(pos=ch, angle=0, pen=style.pen(style.OKABE_ITO["orange"], 1, dashed=True))
            line.setToolTip(f"selected channel {ch}")
            plots[0].addItem(line, ignoreBounds=True)
        return matrix_table(steps, m, f"{metric}_c")

    def _clicked(self, ev):
        for p in self._plots:
            if p.sceneBoundingRect().contains(ev.scenePos()):
                pt = p.vb.mapSceneToView(ev.scenePos())
                li = self.session.primary.layer(self.session.state.layer)
                ch = int(np.clip(round(pt.y()), 0, max(0, li.num_features - 1))) if li else 0
                self.session.go_to(int(round(pt.x())), channel=ch)
                ev.accept()
                return

    def readout(self):
        ch = self.current_channel()
        metric = self.session.state.channel_metric
        li = self.session.primary.layer(self.session.state.layer) if self.session.slots else None
        parts = [
            f"{(lab + ': ') if lab else ''}channel {ch} {metric_label(metric, li)} "
            f"{fmt(value_at(t, f'{metric}_c{ch}', self.session.cursor_step()))}"
            for lab, t in self.tables.items()
        ]
        return "   ".join(parts)
