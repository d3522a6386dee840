"""Distribution at the cursor step: pre-BN, x-hat and post-BN histograms overlaid, the reference
step dashed, the following activation's curve and its saturated/dead zone shaded."""

from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PySide6 import QtWidgets

from bnviz.analysis.zones import zone_bounds
from bnviz.app import style
from bnviz.app.data import Hist, activation, distribution, distribution_table
from bnviz.app.views.base import BaseView, fmt
from bnviz.app.views.drawing import NEUTRAL
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
        self.shown = ""
        # one fixed line, shown even when empty, so its text changing never resizes the plots
        self.note.setWordWrap(False)
        self.note.setFixedHeight(self.note.fontMetrics().height() + 4)
        self.note.setSizePolicy(QtWidgets.QSizePolicy.Policy.Ignored, QtWidgets.QSizePolicy.Policy.Fixed)
        self._columns: list[tuple[pg.PlotItem, list]] = []
        self._items: list = []
        self._curve_boxes: list[pg.ViewBox] = []  # the activation curves' own boxes (in the scene)

    def set_note(self, text: str) -> None:
        self.note.setText(text)
        self.note.setVisible(True)

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
        # glw.clear() drops the plots, not the boxes added to the scene beside them
        for vb in self._curve_boxes:
            if vb.scene() is not None:
                vb.scene().removeItem(vb)
        self._columns, self._items, self._curve_boxes = [], [], []
        super().rebuild()

    def make_plots(self, col, title):
        p = self.glw.addPlot(row=0, col=col)
        style.style_plot(
            p,
            (f"{title} · " if title else "") + "distribution at the cursor step (pinned reference step: thin dashed)",
            "value",
            "density",
        )
        p.setLogMode(y=self.session.state.log_counts)
        self._columns.append((p, []))
        return [p]

    def draw(self, plots, slot, layer, overlaid):
        """Records what to draw; ``step_changed`` draws the histograms. Compared runs overlaid:
        colour is the run, line style the tensor."""
        run_colour = self.ink.run_colour
        self._columns[-1][1].append((slot, layer, overlaid, run_colour))
        li = slot.layer(layer)
        p = plots[0]
        if not overlaid:
            self._draw_activation(p, li)
        for t in self.session.state.tensors:
            if run_colour is None:
                self.ink.legend(p, style.swatch_line(style.TENSOR_COLOURS[t]), style.TENSOR_LABELS[t])
            else:
                self.ink.legend(p, style.swatch_line(NEUTRAL, TENSORS.index(t)), style.TENSOR_LABELS[t])
        return {}

    def _draw_activation(self, p: pg.PlotItem, li) -> None:
        """The zone (shaded) and the activation's curve (its own right-hand axis)."""
        word = ZONE_WORDS.get(li.zone_rule, "zone")
        for lo, hi in _zone_intervals(li):
            reg = pg.LinearRegionItem((lo, hi), movable=False, brush=style.ZONE, pen=pg.mkPen(None))
            reg.setZValue(-10)
            reg.setToolTip(f"{li.activation}'s {word}: {li.zone_rule} rule, threshold {li.zone_threshold}")
            p.addItem(reg, ignoreBounds=True)
        if li.zone_rule in ZONE_WORDS:
            self.ink.legend(p, style.swatch_block(style.ZONE), f"{li.activation} {word}")
        xs = np.linspace(-6, 6, 241)
        ys = activation(li.activation, xs)
        if ys is None:
            return
        vb = pg.ViewBox()
        p.showAxis("right")
        p.scene().addItem(vb)
        self._curve_boxes.append(vb)
        right = p.getAxis("right")
        right.setLogMode(False, False)  # "log density" is the histograms' axis, not f(y)'s
        right.linkToView(vb)
        right.setLabel(f"{li.activation}(y)", **{"font-size": f"{style.FONT_PT}pt"})
        vb.setXLink(p)
        vb.setMouseEnabled(x=False, y=False)
        curve = pg.PlotCurveItem(xs, ys, pen=style.pen(style.OKABE_ITO["black"], 1.2, dashed=True))
        vb.addItem(curve)
        vb.enableAutoRange(axis="y")

        def sync():
            vb.setGeometry(p.vb.sceneBoundingRect())

        p.vb.sigResized.connect(sync)
        sync()
        self.ink.legend(p, style.swatch_line(style.OKABE_ITO["black"], True), f"{li.activation}(y), right axis")

    def step_changed(self):
        """Redraw the histograms at the new cursor step (the only step-dependent view)."""
        state = self.session.state
        step = self.session.cursor_step()
        self.tables = {}
        notes, specs, shown = [], [], []
        for p, runs in self._columns:
            for slot, layer, overlaid, run_colour in runs:
                hists = distribution(slot.run, layer, step, state.tensors)
                specs += [(p, h, run_colour, not overlaid, False) for h in hists]
                notes += [n for h in hists for n in _outside(h, slot.label)]
                self.tables[slot.label] = distribution_table(hists)
                if hists:
                    shown.append(f"{slot.label + ' ' if slot.label else ''}at step {hists[0].step}")
                if state.reference_step is not None and not overlaid:
                    ref = distribution(slot.run, layer, state.reference_step, state.tensors)
                    specs += [(p, h, run_colour, False, True) for h in ref]
                    if ref and f"reference step {ref[0].step}" not in shown:
                        shown.append(f"reference step {ref[0].step}")
        # the steps go to the readout line and the note, not to the plot title: a title change
        # relayouts the plot and repaints every axis (a third of a cursor move's time)
        self.shown = ", ".join(shown)
        self._show_hists(specs)
        self._grow_axes(specs)
        self.set_note("; ".join(notes))

    def _grow_axes(self, specs) -> None:
        """Both axes only grow while the cursor moves, so playing a run does not make them jump
        at every step, and a move repaints no axis (relabelling the value axis at every step was
        a third of a move's time); a new layer starts afresh."""
        for p, _runs in self._columns:
            hists = [h for q, h, *_ in specs if q is p]
            if not hists:
                continue
            edges = np.concatenate([h.edges for h in hists])
            edges = edges[np.isfinite(edges)]
            if len(edges):
                self._grow(p, 0, float(edges.min()), float(edges.max()), 0.02)
            peak = max(float(np.nanmax(h.density, initial=0)) for h in hists)
            if peak > 0 and not self.session.state.log_counts:
                self._grow(p, 1, 0.0, peak, 0.08)

    @staticmethod
    def _grow(p: pg.PlotItem, axis: int, lo: float, hi: float, pad: float) -> None:
        fixed = getattr(p, "bnviz_fixed", {})
        span = grown_span(fixed.get(axis), lo, hi, pad)
        if span is not None:
            if axis == 1:
                span = (0.0, span[1])  # density: from 0
            p.enableAutoRange(axis="xy"[axis], enable=False)
            (p.setXRange if axis == 0 else p.setYRange)(*span, padding=0)
            p.bnviz_fixed = {**fixed, axis: span}

    def _show_hists(self, specs) -> None:
        """Update the histogram curves in place when the same set is shown (a cursor move),
        otherwise make them anew. A spec: (plot, hist, run colour or None, fill, reference)."""
        keys = [(p, h.tensor, run, fill, ref) for p, h, run, fill, ref in specs]
        same = [(plot, *key) for _item, plot, key in self._items] == keys
        if not same:
            for item, plot, _key in self._items:
                plot.removeItem(item)
            self._items = []
        log = self.session.state.log_counts
        for i, (p, h, run, fill, ref) in enumerate(specs):
            y = np.where(h.density > 0, h.density, np.nan) if log else h.density  # log of an empty bin: a gap
            if same:
                self._items[i][0].setData(h.edges, y)
                continue
            colour = run or style.TENSOR_COLOURS[h.tensor]
            # one run: the reference dashed; runs overlaid: each tensor its line style, the reference thin
            dash = TENSORS.index(h.tensor) if run else int(ref)
            pen = style.pen(colour, 1.2 if ref else 2, dash)
            if ref and run:
                pen.setColor(style.brush(colour, 140).color())
            item = pg.PlotDataItem(
                h.edges,
                y,
                stepMode="center",
                pen=pen,
                fillLevel=0 if fill and not log else None,
                brush=style.brush(colour, 30 if run else 45) if fill else None,
            )
            p.addItem(item)
            self._items.append((item, p, (h.tensor, run, fill, ref)))

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
        return f"histograms {self.shown}: " + ", ".join(parts) if parts else ""


def grown_span(current: tuple[float, float] | None, lo: float, hi: float, pad: float):
    """The axis span to show data over [lo, hi] when ``current`` is shown (None: nothing yet):
    None while ``current`` already holds it, else the union, padded by ``pad`` of its width at
    the ends that grew."""
    if current is not None and current[0] <= lo and hi <= current[1]:
        return None
    a, b = (lo, hi) if current is None else (min(lo, current[0]), max(hi, current[1]))
    margin = pad * ((b - a) or abs(b) or 1.0)
    grew_low = current is None or lo < current[0]
    grew_high = current is None or hi > current[1]
    return (a - margin if grew_low else a, b + margin if grew_high else b)


def _zone_intervals(li) -> list[tuple[float, float]]:
    """The shaded intervals of y: the activation's zone (``zone_bounds``), infinite ends cut
    to a finite width so they can be drawn."""
    t = li.zone_threshold
    if li.zone_rule not in ZONE_WORDS or t is None or not math.isfinite(float(t)):
        return []
    lo, hi = zone_bounds(li.zone_rule, t)
    return [(max(a, -1e6), min(b, 1e6)) for a, b in ((-math.inf, lo), (hi, math.inf)) if a < b]


def _outside(h: Hist, label: str) -> list[str]:
    if not (h.under or h.over or h.nonfinite):
        return []
    tag = f"{label} " if label else ""
    bits = [f"{h.under} below", f"{h.over} above"] + ([f"{h.nonfinite} NaN/Inf"] if h.nonfinite else [])
    return [f"{tag}{style.TENSOR_LABELS[h.tensor]} at step {h.step}: {', '.join(bits)} the histogram range"]
