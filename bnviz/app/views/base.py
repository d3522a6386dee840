"""What every view shares: the plot grid, the step cursor, the reference line, linked zoom,
the compare layout (runs in their colours, or side by side with shared y axes) and the data
table behind the pixels (for CSV export). Drawing itself is ``drawing.Ink``'s."""

from __future__ import annotations

import math
import os

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtGui, QtWidgets

from bnviz.app import style
from bnviz.app.data import Table, rows_in_range
from bnviz.app.session import Session, Slot
from bnviz.app.state import heatmap_key, plot_key
from bnviz.app.views.colour_control import ColourControl
from bnviz.app.views.crosshair import HoverReadout, QuietLine
from bnviz.app.views.drawing import Ink, fmt

__all__ = ["BaseView", "ChannelView", "fmt", "value_at", "run_prefix"]
MIN_PLOT_HEIGHT = 90  # px of data area a plot keeps however small the window
MIN_PLOT_WIDTH = 260
AXIS_HEIGHT = 45  # the step axis with its label


def value_at(table: Table, column: str, step: int | None) -> float:
    steps = table.get("step")
    if steps is None or len(steps) == 0 or step is None or column not in table:
        return math.nan
    i = max(int(np.searchsorted(steps, step, side="right")) - 1, 0)
    return float(table[column][i])


class BaseView(QtWidgets.QWidget):
    """A view of the selected layer. Subclasses build plots per run column and draw into them.

    ``time_axis``: the x axis is the training step (gets cursor, reference line, linked zoom).
    ``overlay_ok``: compared runs may draw into the same plots, each in its colour; otherwise
    (and in "side" mode) side by side, one column per run, plots of a row sharing the y axis
    (``share_y``).
    """

    key = ""
    time_axis = True
    overlay_ok = True
    share_y = True
    heatmap_tips = False  # the view draws heatmaps whose cells tell their value on hover
    # state fields whose change needs a redraw of this view
    depends = frozenset({"layer", "phase", "compare_mode", "smoothing", "bookmarks", "x_axis", "hidden_runs", "log_y"})

    # emitted when the user zooms/pans a time plot: (x0, x1)
    user_range = QtCore.Signal(float, float)

    def __init__(self, session: Session, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.glw = pg.GraphicsLayoutWidget()
        self.glw.setMinimumSize(300, 200)
        no_scene_index(self.glw.scene())
        # a small window scrolls the plots rather than squash them into flat lines
        self.scroller = QtWidgets.QScrollArea()
        self.scroller.setWidget(self.glw)
        self.scroller.setWidgetResizable(True)
        self.scroller.setFrameShape(QtWidgets.QFrame.Shape.NoFrame)
        self.note = QtWidgets.QLabel()
        self.note.setTextFormat(QtCore.Qt.TextFormat.PlainText)
        self.note.setWordWrap(True)
        self.note.hide()
        self.bar = QtWidgets.QHBoxLayout()  # the view's own controls (subclasses fill it)
        box = QtWidgets.QVBoxLayout(self)
        box.setContentsMargins(0, 0, 0, 0)
        box.addLayout(self.bar)
        box.addWidget(self.note)
        box.addWidget(self.scroller, 1)
        self.tables: dict[str, Table] = {}  # run label -> table, for CSV and readout
        self._time_plots: list[pg.PlotItem] = []
        self._rows: list[list[pg.PlotItem]] = []  # side by side: the plots of each row, per column
        self.ink = Ink()
        self._tip_shown = False
        if self.heatmap_tips:
            self.glw.scene().sigMouseMoved.connect(self._hover)
        self._cursors: list[pg.InfiniteLine] = []
        self._refs: list[pg.InfiniteLine] = []
        self.hover = HoverReadout(
            self.glw,
            lambda plot: self.ink.hover.get(plot, []),
            lambda: self.session.state.crosshair,
            self._step_text,
            fmt,
        )
        self.needs_rebuild = True

    # --- to implement ------------------------------------------------------------------------
    def make_plots(self, col: int, title: str) -> list[pg.PlotItem]:
        """Create this column's plots in ``self.glw`` (column ``col``); return them."""
        raise NotImplementedError

    def draw(self, plots: list[pg.PlotItem], slot: Slot, layer: str, overlaid: bool) -> Table:
        """Draw one run's data into ``plots`` (``overlaid``: over another run's, in the same
        plots); return the table that was drawn."""
        raise NotImplementedError

    def readout_columns(self) -> list[tuple[str, str]]:
        """(column, label) pairs the cursor readout shows."""
        return []

    def step_changed(self) -> None:
        """The cursor moved: update step-dependent items beyond the cursor lines."""

    def sync_controls(self) -> None:
        """Show the state in this view's own controls."""

    def heatmap_key(self) -> str:
        """The key of this view's heatmap colour scale in the state ("view/statistic")."""
        return heatmap_key(self.session.state)

    def heatmap_signed(self) -> bool:
        """Whether the heatmap's statistic has a sign (a diverging map, no log scale)."""
        return False

    def colour_scale(self) -> tuple[tuple[float, float] | None, bool]:
        """(manual limits or None, log) of this view's heatmaps, from the state."""
        st, key = self.session.state, self.heatmap_key()
        return st.colour_limits.get(key), key in st.colour_log

    def add_colour_control(self) -> ColourControl:
        """The colour-limit controls on the view's bar; a change recolours the drawn maps."""
        control = ColourControl(
            self.session, self.heatmap_key, lambda: self.ink.maps[0].shown_limits() if self.ink.maps else None
        )
        self.bar.addWidget(control)
        self.session.state.changed.connect(lambda names: self._colour_changed(names, control))
        return control

    def _colour_changed(self, names: set[str], control: ColourControl) -> None:
        if names & {"colour_limits", "colour_log"}:
            control.sync(not self.heatmap_signed())
            if not self.needs_rebuild:
                self.ink.recolour(*self.colour_scale())

    def _hover(self, pos) -> None:
        """Over a heatmap cell: its value in a tooltip. Hidden only if we showed one: hiding
        tooltips on every mouse move over a scene being rebuilt crashed PySide6 6.12 (Xvfb)."""
        text = self.ink.cell_text(pos)
        if text:
            QtWidgets.QToolTip.showText(QtGui.QCursor.pos(), style.tooltip(text), self.glw)
            self._tip_shown = True
        elif self._tip_shown:
            QtWidgets.QToolTip.hideText()
            self._tip_shown = False

    def add_control(self, label: str, widget: QtWidgets.QWidget, tip: str = "") -> QtWidgets.QWidget:
        if label:
            lab = QtWidgets.QLabel(label)
            lab.setBuddy(widget)
            self.bar.addWidget(lab)
        widget.setToolTip(tip)
        self.bar.addWidget(widget)
        return widget

    def combo(self, label: str, items: dict[str, str], field: str, tip: str = "") -> QtWidgets.QComboBox:
        """A combo box bound to a state field: {value: shown text}."""
        box = QtWidgets.QComboBox()
        for value, text in items.items():
            box.addItem(text, value)
        box.currentIndexChanged.connect(lambda _i: self.session.state.update(**{field: box.currentData()}))
        self.add_control(label, box, tip)
        return box

    @staticmethod
    def sync_combo(box: QtWidgets.QComboBox, value) -> None:
        box.blockSignals(True)
        box.setCurrentIndex(max(0, box.findData(value)))
        box.blockSignals(False)

    def current_channel(self) -> int:
        return self.session.state.channel or 0

    # --- shared machinery ------------------------------------------------------------------
    def rebuild(self) -> None:
        """Redraw from scratch (layer, runs, data or layout options changed)."""
        self.needs_rebuild = False
        self.sync_controls()
        self.glw.clear()
        self.hover.reset()
        self._time_plots, self._cursors, self._refs, self.tables, self._rows = [], [], [], {}, []
        self.ink.reset()
        self.ink.smoothing = self.session.state.smoothing if self.time_axis else 0.0
        layer = self.session.state.layer
        if not self.session.slots or layer is None:
            return
        slots = self.session.visible_slots()
        if not slots:
            self.set_note("Every open run is hidden: tick one in the run list to see it.")
            return
        missing = [s.label for s in slots if s.layer(layer) is None]
        if missing and self.session.comparing:
            self.set_note(f"Run {', '.join(missing)} has no layer named {layer}; it is not shown.")
        side = len(slots) > 1 and (self.session.state.compare_mode == "side" or not self.overlay_ok)
        # several runs open: each draws in its colour (as in the run list), one or all visible
        overlay = self.session.comparing and not side
        for c, group in enumerate([[s] for s in slots] if side else [slots]):
            plots = self.make_plots(c, f"Run {group[0].label}" if side else "")
            if side:
                self._rows.append(plots)
                self.add_note(f"Run {group[0].label}: {_short(group[0].path)}.")
            for slot in group if overlay else []:  # the runs' key first in each legend
                key = style.swatch_line(style.run_colour(slot.index), 0, style.run_cycle(slot.index))
                for p in plots:
                    self.ink.legend(p, key, f"{slot.label}: {_short(slot.path, 28)}")
            drawn = 0
            for slot in group:
                if slot.layer(layer) is None:
                    continue
                if overlay:
                    self.ink.run_colour, self.ink.run_label = style.run_colour(slot.index), slot.label
                    self.ink.run_cycle = style.run_cycle(slot.index)
                self.tables[slot.label] = self.draw(plots, slot, layer, overlaid=drawn > 0)
                drawn += 1
            self.ink.run_colour, self.ink.run_label, self.ink.run_cycle = None, "", 0
            if self.time_axis:
                self._add_time_plots(plots)
        self.finish_legends()
        self._keep_usable_size()
        self.ink.share_colour_limits()
        self._share_y()
        self.apply_range()
        self.update_step()

    def finish_legends(self) -> None:
        self.ink.finish_legends(self.line_chars())

    def line_chars(self) -> int:
        """About how many legend characters fit on one line of a plot at the view's width."""
        columns = max(1, self.glw.ci.layout.columnCount())
        width = max(self.scroller.viewport().width(), columns * MIN_PLOT_WIDTH)
        return max(24, int((width / columns - 2 * style.AXIS_WIDTH) / style.LEGEND_CHAR_PX))

    def _keep_usable_size(self) -> None:
        """Each plot keeps MIN_PLOT_HEIGHT of data area plus its title and axis; a window too
        small for that scrolls."""
        layout = self.glw.ci.layout
        rows, columns = layout.rowCount(), layout.columnCount()
        titles = 0
        for r in range(rows):
            cells = [layout.itemAt(r, c) for c in range(columns)]
            titles += max((getattr(i, "bnviz_title_height", 0) for i in cells if i is not None), default=0)
        self.glw.setMinimumSize(
            max(300, columns * MIN_PLOT_WIDTH), max(200, rows * (MIN_PLOT_HEIGHT + AXIS_HEIGHT) + int(titles))
        )

    def _share_y(self) -> None:
        """Side by side, each row's plots show one y range (the union of what they show), so two
        runs never look more alike than they are; refitted when the visible steps change."""
        if not self.share_y or len(self._rows) < 2:
            return
        for row in zip(*self._rows):
            for p in row[1:]:
                p.setYLink(row[0])
            fit = lambda *_a, row=row: _fit_y(row)  # noqa: E731
            row[0].sigXRangeChanged.connect(fit)
            fit()

    def set_note(self, text: str) -> None:
        self.note.setText(text)
        self.note.setVisible(bool(text))

    def add_note(self, text: str) -> None:
        """Append to the note (each run of a comparison may add its own)."""
        self.set_note(f"{self.note.text()}  {text}" if self.note.text() else text)

    def _add_time_plots(self, plots: list[pg.PlotItem]) -> None:
        for i, p in enumerate(plots):
            self._log_y(p, plot_key(self.key, i))
            if self._time_plots:
                p.setXLink(self._time_plots[0])
            # the x range is the state's (apply_range), never each plot's own auto-range: linked
            # plots auto-ranging to their own data would set each other's range and pass for a
            # user's zoom. Only a mouse zoom/pan (sigRangeChangedManually) is the user's.
            p.enableAutoRange(axis="x", enable=False)
            p.setAutoVisible(y=True)  # y fits the steps in view
            p.hideButtons()  # its "A" button would auto-range x: the A key does that
            p.vb.sigRangeChangedManually.connect(lambda _mask, vb=p.vb: self._on_user_zoom(vb))
            if self.session.state.x_axis == "time" and self.session.primary is not None:
                run = self.session.primary.run
                axis = WallTimeAxis(np.asarray(run.steps, np.float64), np.asarray(run.times, np.float64))
                p.setAxisItems({"bottom": axis})
                axis.setLabel("elapsed wall time (h:mm:ss) since the first recorded step")
            self._time_plots.append(p)
            for mark in self.session.state.bookmarks:
                line = QuietLine(pos=mark, angle=90, movable=False, pen=style.pen(style.BOOKMARK, 1.2, dashed=True))
                line.setToolTip(f"bookmark: step {mark} (B toggles, . and , jump)")
                p.addItem(line, ignoreBounds=True)
            cur = QuietLine(
                angle=90,
                movable=True,
                pen=style.pen(style.CURSOR, 1.5),
                hoverPen=style.pen(style.OKABE_ITO["orange"], 3),
            )
            cur.setZValue(50)
            cur.setToolTip("Step cursor: drag it, or use ←/→ and the timeline")
            cur.sigDragged.connect(self._on_cursor_dragged)
            ref = QuietLine(angle=90, movable=False, pen=style.pen(style.REFERENCE, 1.5, dashed=True))
            ref.setToolTip("Reference step (pinned)")
            ref.setZValue(40)
            p.addItem(cur, ignoreBounds=True)
            p.addItem(ref, ignoreBounds=True)
            self._cursors.append(cur)
            self._refs.append(ref)
            if not self.heatmap_tips:  # a heatmap's cells tell their value themselves
                self.hover.add(p)

    def _log_y(self, p: pg.PlotItem, key: str) -> None:
        """The plot's y axis logarithmic as ``state.log_y`` says; its menu's Log Y (right-click,
        Plot Options > Transforms) and the L key change the state, which redraws every column."""
        p.bnviz_key = key
        p.setLogMode(y=key in self.session.state.log_y)
        # after the current event: the redraw deletes the menu whose checkbox sent the signal
        p.ctrl.logYCheck.toggled.connect(lambda on: QtCore.QTimer.singleShot(0, lambda: self.set_log_y(key, on)))

    def set_log_y(self, key: str, on: bool) -> None:
        keys = set(self.session.state.log_y) - {key}
        self.session.state.update(log_y=tuple(keys | ({key} if on else set())))

    def toggle_log_y(self) -> None:
        """The L key: the log y axis of the time plot under the mouse (else the first) on / off."""
        plots = self._time_plots
        if not plots:
            return
        pos = self.glw.mapToScene(self.glw.viewport().mapFromGlobal(QtGui.QCursor.pos()))
        p = next((q for q in plots if q.vb.sceneBoundingRect().contains(pos)), plots[0])
        self.set_log_y(p.bnviz_key, p.bnviz_key not in self.session.state.log_y)

    def _step_text(self, step: float) -> str:
        """The hover label's first line: the step (and its wall time on a wall-time axis)."""
        text = f"step {int(round(step))}"
        if self.session.state.x_axis == "time" and self.session.primary is not None:
            run = self.session.primary.run
            times = np.asarray(run.times, np.float64)
            ok = np.isfinite(times)
            if ok.any():
                t = np.interp(step, np.asarray(run.steps, np.float64)[ok], times[ok]) - times[ok][0]
                text += f" · {elapsed(float(t))}"
        return text

    def time_plots(self) -> list[pg.PlotItem]:
        return list(self._time_plots)

    def update_step(self) -> None:
        step = self.session.cursor_step()
        ref = self.session.state.reference_step
        for c in self._cursors:
            c.blockSignals(True)
            c.setVisible(step is not None)
            if step is not None:
                c.setValue(step)
            c.blockSignals(False)
        for r in self._refs:
            r.setVisible(ref is not None)
            if ref is not None:
                r.setValue(ref)
        self.step_changed()

    def _on_cursor_dragged(self, line: pg.InfiniteLine) -> None:
        self.session.go_to(int(round(line.value())))

    def apply_range(self) -> None:
        """Show ``state.step_range`` (None: every open run's whole, maybe growing, extent)."""
        if not self._time_plots:
            return
        rng = self.session.state.step_range or self.session.extent()
        if rng is not None:
            pad = 0 if self.session.state.step_range else max(1.0, 0.01 * (rng[1] - rng[0]))
            self._time_plots[0].setXRange(rng[0] - pad, rng[1] + pad, padding=0)

    def _on_user_zoom(self, vb: pg.ViewBox) -> None:
        x0, x1 = vb.viewRange()[0]
        self.user_range.emit(float(x0), float(x1))

    def readout(self) -> str:
        step = self.session.cursor_step()
        parts = []
        for label, table in self.tables.items():
            vals = [f"{name} {fmt(value_at(table, col, step))}" for col, name in self.readout_columns()]
            if vals:
                parts.append((f"{label}: " if label else "") + ", ".join(vals))
        return "   ".join(parts)

    def export_table(self) -> Table:
        """The drawn data as CSV columns (compare runs prefixed with their label); time plots
        give the rows of the shown step range, as the picture does."""
        return self.joined(self.tables)

    def joined(self, tables: dict[str, Table]) -> Table:
        """Runs' tables as one (see ``export_table``)."""
        rng = self.session.state.step_range if self.time_axis else None
        tables = {label: rows_in_range(t, rng) for label, t in tables.items()}
        if len(tables) == 1:
            return next(iter(tables.values()))
        out: Table = {}
        for label, t in tables.items():
            out.update({f"{label}.{k}": v for k, v in t.items()})
        return out


class ChannelView(BaseView):
    """A view that also draws one channel on its own, chosen with a spin box (or the heatmaps)."""

    depends = BaseView.depends | {"channel"}

    def __init__(self, session: Session, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(session, parent)
        self.spin = QtWidgets.QSpinBox()
        self.spin.setRange(0, 0)
        self.spin.valueChanged.connect(lambda v: self.session.state.update(channel=v))
        self.add_control("Channel", self.spin, "The channel drawn on its own (click a heatmap cell to pick one)")
        self.bar.addStretch(1)

    def sync_controls(self) -> None:
        li = self.session.layer_info(self.session.state.layer)
        n = li.num_features if li is not None else 1
        with QtCore.QSignalBlocker(self.spin):
            self.spin.setRange(0, max(0, n - 1))
            self.spin.setValue(self.current_channel())


class WallTimeAxis(pg.AxisItem):
    """A step axis labelled with the wall time elapsed at each tick (the run's recorded times,
    interpolated): the data, cursor and zoom stay in steps."""

    def __init__(self, steps: np.ndarray, times: np.ndarray) -> None:
        super().__init__("bottom")
        ok = np.isfinite(times)
        self._steps, self._times = steps[ok], times[ok] - (times[ok][0] if ok.any() else 0.0)

    def tickStrings(self, values, scale, spacing):
        if not len(self._steps):
            return super().tickStrings(values, scale, spacing)
        return [elapsed(float(np.interp(v, self._steps, self._times))) for v in values]


def no_scene_index(scene: QtWidgets.QGraphicsScene) -> None:
    """Qt's BSP index of the scene's items breaks under pyqtgraph: an InfiniteLine recomputes its
    bounds lazily and calls prepareGeometryChange() from inside boundingRect(), so the index keeps
    an item at a stale place; once that plot is rebuilt, the next paint walks a freed item. This
    was the SIGSEGV in QGraphicsView::paintEvent seen after hovering a plot, then changing the
    smoothing or adding a bookmark (reproduced in 2 rebuilds, tests/test_app_plots.py). Without
    an index, a paint tests each of a view's few hundred items: no measurable cost."""
    scene.setItemIndexMethod(QtWidgets.QGraphicsScene.ItemIndexMethod.NoIndex)


def elapsed(seconds: float) -> str:
    """h:mm:ss (m:ss under an hour)."""
    s = int(round(max(seconds, 0.0)))
    h, rest = divmod(s, 3600)
    m, sec = divmod(rest, 60)
    return f"{h}:{m:02d}:{sec:02d}" if h else f"{m}:{sec:02d}"


def _fit_y(plots) -> None:
    """One y range over ``plots`` (linked): the union of each one's data in its x range."""
    spans = []
    for p in plots:
        p.enableAutoRange(axis="y", enable=False)
        x0, x1 = p.vb.viewRange()[0]
        for item in p.vb.addedItems:
            if isinstance(item, pg.PlotDataItem) and item.isVisible():
                x, y = item.getData()
                if x is None or not len(x):
                    continue
                keep = (x >= x0) & (x <= x1) & np.isfinite(y)
                if keep.any():
                    spans.append((float(y[keep].min()), float(y[keep].max())))
    if spans:
        lo, hi = min(a for a, _ in spans), max(b for _, b in spans)
        plots[0].setYRange(lo, hi if hi > lo else lo + 1.0, padding=0.05)


def run_prefix(slot: Slot) -> str:
    """ "Run B: " in a comparison, nothing for a single run: the start of a note about one run."""
    return f"Run {slot.label}: " if slot.label else ""


def _short(path: str, n: int = 40) -> str:
    name = os.path.basename(path)
    return name if len(name) <= n else "…" + name[-n:]
