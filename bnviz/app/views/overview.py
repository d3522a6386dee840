"""Overview: every layer x step heatmap of one metric, to find the bad layer at a glance.
A click selects that layer and step."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6 import QtGui, QtWidgets

from bnviz.app import style
from bnviz.app.data import OVERVIEW_LABELS, overview_matrix
from bnviz.app.state import OVERVIEW_METRICS
from bnviz.app.views.base import BaseView, fmt, value_at

_SIGNED = {"gamma"}
MAX_TICKS = 40
MAX_AXIS_PX = 280  # longer layer names are cut; the readout and tree show them whole


class OverviewView(BaseView):
    key = "overview"
    heatmap_tips = True
    overlay_ok = False
    depends = frozenset({"overview_metric", "phase", "compare_mode", "layer"})

    def __init__(self, session, parent=None):
        super().__init__(session, parent)
        self.metric_box = self.combo(
            "Metric",
            {m: OVERVIEW_LABELS[m] for m in OVERVIEW_METRICS},
            "overview_metric",
            "What the colour shows for each layer and step",
        )
        self.colour = self.add_colour_control()
        self.bar.addStretch(1)
        self.glw.scene().sigMouseClicked.connect(self._clicked)
        self._plots: list[tuple[pg.PlotItem, object]] = []
        self._names: dict[str, list[str]] = {}

    def sync_controls(self):
        self.sync_combo(self.metric_box, self.session.state.overview_metric)
        self.colour.sync(not self.heatmap_signed())

    def heatmap_signed(self) -> bool:
        return self.session.state.overview_metric in _SIGNED

    def rebuild(self):
        self._plots = []
        super().rebuild()

    def make_plots(self, col, title):
        p = self.glw.addPlot(row=0, col=col)
        style.style_plot(
            p,
            (f"{title} · " if title else "") + OVERVIEW_LABELS[self.session.state.overview_metric],
            "step",
            "layer (forward order)",
        )
        p.invertY(True)
        return [p]

    def draw(self, plots, slot, layer, overlaid):
        metric = self.session.state.overview_metric
        dialog = _progress(self, f"Reading {len(slot.run.layers)} layers…")
        try:
            steps, m = overview_matrix(
                slot.run, metric, self.session.state.phase, progress=lambda i, n: _tick(dialog, i, n)
            )
        finally:
            if dialog is not None:
                dialog.close()
        names = [li.path for li in slot.run.layers]
        self._names[slot.label] = names
        p = plots[0]
        self._plots.append((p, slot))
        if len(steps) == 0:
            self.set_note("No rows recorded yet.")
            return {"step": steps}
        limits, log = self.colour_scale()
        label = OVERVIEW_LABELS[metric]
        self.ink.heatmap(p, steps, m, label, metric in _SIGNED, row_names=names, limits=limits, log=log)
        every = max(1, int(np.ceil(len(names) / MAX_TICKS)))
        axis = p.getAxis("left")
        axis.setTicks([[(i, names[i]) for i in range(0, len(names), every)]])
        metrics = QtGui.QFontMetrics(axis.style["tickFont"] or QtGui.QFont())
        axis.setWidth(min(MAX_AXIS_PX, 40 + max(metrics.horizontalAdvance(n) for n in names)))
        if layer in names:
            sel = pg.InfiniteLine(
                pos=names.index(layer), angle=0, pen=style.pen(style.OKABE_ITO["orange"], 1, dashed=True)
            )
            sel.setToolTip("selected layer")
            p.addItem(sel, ignoreBounds=True)
        table = {"step": steps}
        table.update({n: m[:, i] for i, n in enumerate(names)})
        return table

    def _clicked(self, ev):
        for p, slot in self._plots:
            if p.sceneBoundingRect().contains(ev.scenePos()):
                pt = p.vb.mapSceneToView(ev.scenePos())
                names = self._names.get(slot.label, [])
                i = int(round(pt.y()))
                if 0 <= i < len(names):
                    self.session.go_to(int(round(pt.x())), layer=names[i])
                ev.accept()
                return

    def readout(self):
        layer = self.session.state.layer
        step = self.session.cursor_step()
        return "   ".join(
            f"{(lab + ': ') if lab else ''}{layer} {fmt(value_at(t, layer, step))}" for lab, t in self.tables.items()
        )


def _progress(parent, text):
    """A progress dialog for long reads (shown only if it takes a while); None off-screen-less."""
    d = QtWidgets.QProgressDialog(text, "", 0, 100, parent)
    d.setCancelButton(None)
    d.setMinimumDuration(500)
    d.setWindowTitle("bnviz")
    return d


def _tick(dialog, i, n):
    if dialog is not None:
        dialog.setValue(int(100 * i / max(n, 1)))
        QtWidgets.QApplication.processEvents()
