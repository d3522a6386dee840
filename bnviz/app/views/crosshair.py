"""The hover readout of time plots: a crosshair and the value of every series at the hovered step.

Built so that it cannot disturb a paint (an earlier version was suspected of a crash in
QGraphicsView::paintEvent): each plot's two lines are made once, with the plot, and leave the
scene with it (``glw.clear()`` on a rebuild); a mouse move, delivered late by a SignalProxy,
only moves lines and shows or hides them. The text is a QLabel over the view, outside the
scene, so no scene item changes its size or text while the mouse moves.
"""

from __future__ import annotations

import html
from dataclasses import dataclass

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtWidgets

from bnviz.app import style

PEN_COLOUR = "#888888"  # grey: seen on light and dark plots, never taken for a series
LABEL_CSS = "QLabel { background: palette(base); color: palette(text); border: 1px solid palette(mid); padding: 3px; }"


@dataclass
class Series:
    """What a plot draws, as the readout reads it: ``lo == hi`` for a curve; a band's edges or
    an envelope's (each x twice, its bucket's min and max) give a range."""

    name: str
    colour: str
    x: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    raw: np.ndarray | None = None  # the unsmoothed curve, when the drawn one is smoothed


@dataclass
class Reading:
    name: str
    colour: str
    step: float
    lo: float
    hi: float
    raw: float | None


def read_at(x: float, series: list[Series]) -> list[Reading]:
    """Each series at its sample nearest ``x`` (every sample at that x: an envelope's range);
    a series whose samples all lie more than one sample spacing away from ``x`` is left out."""
    out = []
    for s in series:
        xs = np.asarray(s.x, np.float64)
        if not len(xs):
            continue
        i = int(np.clip(np.searchsorted(xs, x), 0, len(xs) - 1))
        if i > 0 and abs(xs[i - 1] - x) <= abs(xs[i] - x):
            i -= 1
        gap = float(np.median(np.diff(xs))) if len(xs) > 1 else 0.0
        if not xs[0] - gap <= x <= xs[-1] + gap:
            continue
        same = slice(int(np.searchsorted(xs, xs[i], "left")), int(np.searchsorted(xs, xs[i], "right")))
        lo, hi = np.asarray(s.lo, np.float64)[same], np.asarray(s.hi, np.float64)[same]
        raw = None if s.raw is None else float(np.asarray(s.raw, np.float64)[same][0])
        finite_lo, finite_hi = lo[np.isfinite(lo)], hi[np.isfinite(hi)]
        out.append(
            Reading(
                s.name,
                s.colour,
                float(xs[i]),
                float(finite_lo.min()) if len(finite_lo) else float(lo[0]),
                float(finite_hi.max()) if len(finite_hi) else float(hi[0]),
                raw,
            )
        )
    return out


def reading_html(step_text: str, readings: list[Reading], fmt) -> str:
    """The label: the step, then a line per series in its colour."""
    rows = [f"<b>{html.escape(step_text)}</b>"]
    for r in readings:
        value = fmt(r.lo) if r.lo == r.hi else f"{fmt(r.lo)} … {fmt(r.hi)}"
        raw = f" (raw {fmt(r.raw)})" if r.raw is not None and r.raw != r.lo else ""
        rows.append(f"<span style='color:{r.colour}'>━</span>&nbsp;{style.plain(r.name or 'value')}: {value}{raw}")
    return "<br>".join(rows)


class QuietLine(pg.InfiniteLine):
    """A line added with ``ignoreBounds``: moving it never asks its plot to refit its range
    (pyqtgraph would refit every plot's y range at each cursor or mouse move)."""

    def informViewBoundsChanged(self) -> None:
        pass


class Crosshair:
    """One plot's crosshair lines, made with the plot and owned by it."""

    def __init__(self, plot: pg.PlotItem) -> None:
        self.plot = plot
        pen = style.pen(PEN_COLOUR, 1, dashed=True)
        self.vline, self.hline = QuietLine(angle=90, pen=pen), QuietLine(angle=0, pen=pen)
        for line in (self.vline, self.hline):
            line.setZValue(45)
            line.setVisible(False)
            plot.addItem(line, ignoreBounds=True)

    def alive(self) -> bool:
        return self.vline.scene() is not None and self.vline.getViewBox() is self.plot.vb

    def contains(self, scene_pos) -> bool:
        return self.plot.vb.sceneBoundingRect().contains(scene_pos)

    def show(self, x: float, y: float | None) -> None:
        self.vline.setValue(x)
        self.vline.setVisible(True)
        self.hline.setVisible(y is not None)
        if y is not None:
            self.hline.setValue(y)

    def hide(self) -> None:
        self.vline.setVisible(False)
        self.hline.setVisible(False)


class HoverLabel(QtWidgets.QLabel):
    """The readout text beside the mouse: a widget over the plots, not an item of their scene."""

    def __init__(self, parent: QtWidgets.QWidget) -> None:
        super().__init__(parent)
        self.setTextFormat(QtCore.Qt.TextFormat.RichText)
        self.setAttribute(QtCore.Qt.WidgetAttribute.WA_TransparentForMouseEvents)
        self.setStyleSheet(LABEL_CSS)
        self.hide()

    def show_at(self, text: str, pos: QtCore.QPoint) -> None:
        """Beside ``pos`` (the parent's pixels), flipped left/up where it would leave the parent."""
        self.setText(text)
        self.adjustSize()
        room = self.parentWidget().rect()  # type: ignore[union-attr]  # made with a parent
        x = pos.x() + 14 if pos.x() + 14 + self.width() <= room.right() else pos.x() - 14 - self.width()
        y = pos.y() + 14 if pos.y() + 14 + self.height() <= room.bottom() else pos.y() - 14 - self.height()
        self.move(max(0, x), max(0, y))
        self.show()


class HoverReadout(QtCore.QObject):
    """A view's crosshairs and label. Mouse moves over the scene are only noted; a single-shot
    timer owned by this object (dying with the view) draws the latest one from the event loop,
    at most ``RATE_MS`` apart, never inside a paint nor a rebuild."""

    RATE_MS = 16

    def __init__(self, glw: pg.GraphicsLayoutWidget, series, enabled, step_text, fmt) -> None:
        """``series(plot)``: the ``Series`` the plot draws; ``enabled()``: whether to show;
        ``step_text(step)``: the label's first line; ``fmt``: how values are written."""
        super().__init__(glw)
        self.glw, self._series, self._enabled, self._step_text, self._fmt = glw, series, enabled, step_text, fmt
        self.crosshairs: list[Crosshair] = []
        self.label = HoverLabel(glw.viewport())
        self._pos: QtCore.QPointF | None = None
        self._timer = QtCore.QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(self.RATE_MS)
        self._timer.timeout.connect(self._draw)
        glw.scene().sigMouseMoved.connect(self._moved)
        glw.viewport().installEventFilter(self)

    def add(self, plot: pg.PlotItem) -> None:
        self.crosshairs.append(Crosshair(plot))

    def reset(self) -> None:
        """The plots are gone (their lines with them): forget them."""
        self.label.hide()
        self.crosshairs = []
        self._pos = None

    def eventFilter(self, obj, event) -> bool:
        if event.type() == QtCore.QEvent.Type.Leave:
            self._pos = None
            self.hide()
        return False

    def _moved(self, pos) -> None:
        self._pos = QtCore.QPointF(pos)
        if not self._timer.isActive():
            self._timer.start()

    def _draw(self) -> None:
        pos = self._pos
        hairs = [c for c in self.crosshairs if c.alive()]
        over = next((c for c in hairs if c.contains(pos)), None) if pos is not None else None
        if over is None or not self._enabled():
            self.hide()
            return
        pt = over.plot.vb.mapSceneToView(pos)
        readings = read_at(pt.x(), self._series(over.plot))
        step = readings[0].step if readings else pt.x()
        for c in hairs:
            c.show(step, pt.y() if c is over else None)
        self.label.show_at(reading_html(self._step_text(step), readings, self._fmt), self.glw.mapFromScene(pos))

    def hide(self) -> None:
        for c in self.crosshairs:
            if c.alive():
                c.hide()
        self.label.hide()
