"""The whole-run strip above the timeline: a user scalar (loss, accuracy, lr) over every step,
the cursor, and a region that sets the detail range of the time plots."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtWidgets

from bnviz.app import style
from bnviz.app.data import scalar_series
from bnviz.app.session import Session
from bnviz.app.views.base import no_scene_index
from bnviz.app.views.drawing import cached

_FALLBACK = "post_var"


class OverviewStrip(QtWidgets.QWidget):
    def __init__(self, session: Session, parent=None) -> None:
        super().__init__(parent)
        self.session = session
        self.choice = QtWidgets.QComboBox()
        self.choice.setToolTip("What the whole-run strip shows (the user scalars the training logged)")
        self.choice.currentIndexChanged.connect(lambda _i: self.redraw())
        self.whole = QtWidgets.QToolButton()
        self.whole.setText("Whole run")
        self.whole.setToolTip("Show every step in the time plots (double-click the strip does the same)")
        self.whole.clicked.connect(lambda: self.session.zoom(None))
        side = QtWidgets.QVBoxLayout()
        side.addWidget(self.choice)
        side.addWidget(self.whole)
        # several runs: which curve is which (the axis label has no room for it)
        self.key = QtWidgets.QLabel()
        self.key.setTextFormat(QtCore.Qt.TextFormat.RichText)
        self.key.setWordWrap(True)
        self.key.setMaximumWidth(200)  # wraps: many runs must not widen the column
        self.key.hide()
        side.addWidget(self.key)
        side.addStretch(1)
        self.plot_widget = pg.PlotWidget()
        self.plot_widget.setFixedHeight(110)
        no_scene_index(self.plot_widget.scene())
        self.plot = self.plot_widget.getPlotItem()
        self.plot.setMouseEnabled(x=False, y=False)
        self.plot.hideButtons()
        self.plot.setMenuEnabled(False)
        style.style_plot(self.plot, "", "step", "")
        self.plot.setTitle(None)
        self.region = pg.LinearRegionItem(brush=style.brush(style.OKABE_ITO["sky"], 50))
        self.region.setZValue(10)
        self.region.setToolTip("Drag the edges or the band to set the steps the time plots show")
        self.region.sigRegionChangeFinished.connect(self._region_moved)
        self.step_line = pg.InfiniteLine(angle=90, pen=style.pen(style.CURSOR, 1))
        self.curves: list[pg.PlotDataItem] = []  # one per visible run (redraw)
        for item in (self.region, self.step_line):
            self.plot.addItem(item)
        self.plot_widget.scene().sigMouseClicked.connect(self._clicked)
        self._click = QtCore.QTimer(self)
        self._click.setSingleShot(True)
        self._click.timeout.connect(self._single_click)
        self._click_step = 0
        row = QtWidgets.QHBoxLayout(self)
        row.setContentsMargins(4, 0, 4, 0)
        row.addLayout(side)
        row.addWidget(self.plot_widget, 1)
        session.runs_changed.connect(self.populate)
        session.data_changed.connect(self.redraw)
        session.state.changed.connect(self._state_changed)

    def populate(self) -> None:
        self.choice.blockSignals(True)
        self.choice.clear()
        slot = self.session.primary
        names = list(slot.run.scalar_names) if slot else []
        for n in names:
            self.choice.addItem(n, n)
        self.choice.addItem("selected layer: mean post-BN variance", _FALLBACK)
        if "loss" in names:
            self.choice.setCurrentIndex(names.index("loss"))
        self.choice.blockSignals(False)
        self.redraw()

    def redraw(self) -> None:
        for c in self.curves:
            self.plot.removeItem(c)
        self.curves = []
        slot = self.session.primary
        if slot is None:
            return
        what = self.choice.currentData()
        label = "post var" if what in (_FALLBACK, None) else what
        comparing = self.session.comparing
        keys, values = [], [np.zeros(0)]
        for s in self.session.visible_slots() if comparing else [slot]:
            x, y = self._series(s, what)
            if x is None:
                continue
            colour = style.run_colour(s.index) if comparing else style.OKABE_ITO["blue"]
            cycle = style.run_cycle(s.index)
            curve = pg.PlotDataItem(x, y, pen=style.pen(colour, 1.2, 0, cycle), connect="finite")
            curve.setDownsampling(auto=True, method="peak")
            cached(curve.curve)  # a cursor move repaints the strip under the line, not the curve
            self.plot.addItem(curve)
            self.curves.append(curve)
            keys.append(f"{style.swatch_line(colour, 0, cycle)} {s.label}")
            values.append(y)
        self.key.setText(" &nbsp; ".join(keys))
        self.key.setVisible(comparing and bool(keys))
        self.plot.getAxis("left").setLabel(style.plain(label))
        both = np.concatenate(values)
        finite = both[np.isfinite(both)]
        if len(finite):
            # a robust range: one early loss spike must not flatten the rest of the run
            lo, hi = np.percentile(finite, [0.5, 99.5])
            self.plot.setYRange(lo, hi if hi > lo else lo + 1, padding=0.05)
        steps = self.session.steps
        if len(steps):
            self.plot.setXRange(float(steps[0]), float(steps[-1]), padding=0.01)
            self.region.setBounds((float(steps[0]), float(steps[-1])))
        self._sync()

    def _series(self, slot, what):
        """One run's steps and values of ``what`` (None, None: the run has no such scalar/layer)."""
        if what == _FALLBACK or what is None:
            layer = self.session.state.layer
            if slot.layer(layer) is None:
                return None, None
            return np.asarray(slot.run.steps, np.float64), np.asarray(slot.run.summary(layer, "post_var"), np.float64)
        if what not in slot.run.scalar_names:
            return None, None
        x, y = scalar_series(slot.run, what)
        return np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)

    def _state_changed(self, names) -> None:
        if ("layer" in names and self.choice.currentData() == _FALLBACK) or "hidden_runs" in names:
            self.redraw()
        if names & {"step", "step_range"}:
            self._sync()

    def _sync(self) -> None:
        steps = self.session.steps
        step = self.session.cursor_step()
        self.step_line.setVisible(step is not None)
        if step is not None:
            self.step_line.setValue(step)
        if len(steps) == 0:
            return
        rng = self.session.state.step_range or (int(steps[0]), int(steps[-1]))
        self.region.blockSignals(True)
        self.region.setRegion(rng)
        self.region.blockSignals(False)

    def _region_moved(self) -> None:
        lo, hi = self.region.getRegion()
        steps = self.session.steps
        whole = len(steps) and lo <= steps[0] and hi >= steps[-1]
        self.session.zoom(None if whole else (int(lo), int(np.ceil(hi))))

    def _clicked(self, ev) -> None:
        """A click moves the cursor, a double-click shows the whole run. The click waits out the
        double-click interval first: the first half of a double-click must not move the cursor."""
        if ev.double():
            self._click.stop()
            self.session.zoom(None)
            ev.accept()
        elif ev.button() == QtCore.Qt.MouseButton.LeftButton:
            x = self.plot.vb.mapSceneToView(ev.scenePos()).x()
            self._click_step = int(round(x))
            self._click.start(QtWidgets.QApplication.doubleClickInterval())
            ev.accept()

    def _single_click(self) -> None:
        self.session.go_to(self._click_step)
