"""Distribution at the cursor step: pre-BN, x-hat and post-BN histograms overlaid, the reference
step dashed, the following activation's curve and its saturated/dead zone shaded."""

from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PySide6 import QtWidgets

from bnviz.app import style
from bnviz.app.data import Hist, activation, distribution, distribution_table, zone_intervals
from bnviz.app.views.base import BaseView, fmt
from bnviz.store.schema import TENSORS

ZONE_WORDS = {"dead": "dead zone", "saturated": "saturated zone", "bound": "clipped zone"}


class DistributionView(BaseView):
    key = "distribution"
    time_axis = False
    depends = BaseView.depends | {"tensors", "log_counts", "reference_step"}

    def __init__(self, session, parent=None):
        super().__init__(session, parent)
        self.checks = {}
        for t in TENSORS:
            cb = QtWidgets.QCheckBox(style.TENSOR_LABELS[t])
            cb.toggled.connect(self._tensors_toggled)
            self.add_control("", cb, f"Show the histogram of {style.TENSOR_LABELS[t]}")
            self.checks[t] = cb
        self.log_box = QtWidgets.QCheckBox("log density")
        self.log_box.toggled.connect(lambda on: self.session.state.update(log_counts=on))
        self.add_control("", self.log_box, "Logarithmic y axis: shows the tails")
        self.bar.addStretch(1)
        self._columns: list[tuple[pg.PlotItem, list]] = []
        self._items: list = []

    def _tensors_toggled(self, _on):
        self.session.state.update(tensors=tuple(t for t in TENSORS if self.checks[t].isChecked()))

    def sync_controls(self):
        for t, cb in self.checks.items():
            cb.blockSignals(True)
            cb.setChecked(t in self.session.state.tensors)
            cb.blockSignals(False)
        self.log_box.blockSignals(True)
        self.log_box.setChecked(self.session.state.log_counts)
        self.log_box.blockSignals(False)

    def rebuild(self):
        self._columns = []
        super().rebuild()

    def make_plots(self, col, title):
        p = self.glw.addPlot(row=0, col=col)
        style.style_plot(p, (f"{title} · " if title else "") + "distribution", "value", "density")
        p.setLogMode(y=self.session.state.log_counts)
        self._columns.append((p, []))
        return [p]

    def draw(self, plots, slot, layer, dashed):
        self._columns[-1][1].append((slot, layer, dashed))
        li = slot.layer(layer)
        p = plots[0]
        if not dashed:
            self._draw_activation(p, li)
        tag = f" ({slot.label})" if dashed else ""
        for t in self.session.state.tensors:
            self.legend(p, style.swatch_line(style.TENSOR_COLOURS[t], dashed), style.TENSOR_LABELS[t] + tag)
        return {}

    def _draw_activation(self, p: pg.PlotItem, li) -> None:
        """The zone (shaded) and the activation's curve (its own right-hand axis)."""
        word = ZONE_WORDS.get(li.zone_rule, "zone")
        for lo, hi in zone_intervals(li.zone_rule, li.zone_threshold):
            lo, hi = max(lo, -1e6), min(hi, 1e6)
            reg = pg.LinearRegionItem((lo, hi), movable=False, brush=style.ZONE, pen=pg.mkPen(None))
            reg.setZValue(-10)
            reg.setToolTip(f"{li.activation}'s {word}: {li.zone_rule} rule, threshold {li.zone_threshold}")
            p.addItem(reg, ignoreBounds=True)
        if li.zone_rule in ZONE_WORDS:
            self.legend(p, style.swatch_block(style.ZONE), f"{li.activation} {word}")
        xs = np.linspace(-6, 6, 241)
        ys = activation(li.activation, xs)
        if ys is None:
            return
        vb = pg.ViewBox()
        p.showAxis("right")
        p.scene().addItem(vb)
        p.getAxis("right").linkToView(vb)
        p.getAxis("right").setLabel(f"{li.activation}(y)", **{"font-size": f"{style.FONT_PT}pt"})
        vb.setXLink(p)
        vb.setMouseEnabled(x=False, y=False)
        curve = pg.PlotCurveItem(xs, ys, pen=style.pen(style.OKABE_ITO["black"], 1.2, dashed=True))
        vb.addItem(curve)
        vb.enableAutoRange(axis="y")

        def sync():
            vb.setGeometry(p.vb.sceneBoundingRect())
        p.vb.sigResized.connect(sync)
        sync()
        self.legend(p, style.swatch_line(style.OKABE_ITO["black"], True), f"{li.activation}(y), right axis")

    def step_changed(self):
        """Redraw the histograms at the new cursor step (the only step-dependent view)."""
        for item, plot in self._items:
            plot.removeItem(item)
        self._items = []
        state = self.session.state
        step = self.session.cursor_step()
        self.tables = {}
        notes = []
        for p, runs in self._columns:
            shown = []
            for slot, layer, dashed in runs:
                hists = distribution(slot.run, layer, step, state.tensors)
                for h in hists:
                    self._hist_item(p, h, dashed, fill=not dashed)
                    notes += _outside(h, slot.label)
                self.tables[slot.label] = distribution_table(hists)
                if hists:
                    shown.append(f"{slot.label + ' ' if slot.label else ''}at step {hists[0].step}")
                if state.reference_step is not None and not dashed:
                    ref = distribution(slot.run, layer, state.reference_step, state.tensors)
                    for h in ref:
                        self._hist_item(p, h, dashed=True, fill=False, ref=True)
                    if ref:
                        shown.append(f"reference step {ref[0].step} thin dashed")
            style.set_title(p, " ".join([getattr(p, "bnviz_title", "")] + [", ".join(shown)]),
                            self._legends.get(p, []))
        self.set_note("; ".join(notes))

    def _hist_item(self, p, h: Hist, dashed, fill, ref=False):
        colour = style.TENSOR_COLOURS[h.tensor]
        y = h.density
        if self.session.state.log_counts:
            y = np.where(y > 0, y, np.nan)  # log of an empty bin is a gap, not -inf
        pen = style.pen(colour, 1.2 if ref else 2, dashed)
        item = pg.PlotDataItem(h.edges, y, stepMode="center", pen=pen,
                               fillLevel=0 if fill and not self.session.state.log_counts else None,
                               brush=style.brush(colour, 45) if fill else None)
        p.addItem(item)
        self._items.append((item, p))

    def readout(self):
        parts = []
        for label, t in self.tables.items():
            for tensor in TENSORS:
                d = t.get(f"{tensor}_density")
                if d is None or len(d) == 0:
                    continue
                lo, hi = t[f"{tensor}_lo"], t[f"{tensor}_hi"]
                mid = (lo + hi) / 2
                w = np.where(np.isfinite(d), d, 0) * (hi - lo)
                mean = float((mid * w).sum() / w.sum()) if w.sum() > 0 else math.nan
                parts.append(f"{(label + ' ') if label else ''}{tensor} mean≈{fmt(mean)}")
        return ", ".join(parts)


def _outside(h: Hist, label: str) -> list[str]:
    if not (h.under or h.over or h.nonfinite):
        return []
    tag = f"{label} " if label else ""
    bits = [f"{h.under} below", f"{h.over} above"] + ([f"{h.nonfinite} NaN/Inf"] if h.nonfinite else [])
    return [f"{tag}{style.TENSOR_LABELS[h.tensor]} at step {h.step}: {', '.join(bits)} the histogram range"]
