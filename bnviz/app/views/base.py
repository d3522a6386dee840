"""What every view shares: the plot grid, the step cursor, the reference line, linked zoom,
compare layout, NaN marks and the data table behind the pixels (for CSV export)."""

from __future__ import annotations

import math
import os

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtGui, QtWidgets

from bnviz.app import style
from bnviz.app.data import Table, nan_steps, rows_in_range
from bnviz.app.session import Session, Slot
from bnviz.store.decimate import decimate

BAND_BUCKETS = 1500


def fmt(v: float) -> str:
    """A number for readouts and tooltips: NaN/Inf spelled out."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "NaN"
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    return f"{v:.4g}"


def value_at(table: Table, column: str, step: int | None) -> float:
    steps = table.get("step")
    if steps is None or len(steps) == 0 or step is None or column not in table:
        return math.nan
    i = max(int(np.searchsorted(steps, step, side="right")) - 1, 0)
    return float(table[column][i])


class BaseView(QtWidgets.QWidget):
    """A view of the selected layer. Subclasses build plots per run column and draw into them.

    ``time_axis``: the x axis is the training step (gets cursor, reference line, linked zoom).
    ``overlay``: compare runs draw into the same plots (dashed); otherwise side by side.
    """

    key = ""
    time_axis = True
    overlay_ok = True
    # state fields whose change needs a redraw of this view
    depends = frozenset({"layer", "phase", "compare_mode"})

    # emitted when the user zooms/pans a time plot: (x0, x1)
    user_range = QtCore.Signal(float, float)

    def __init__(self, session: Session, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.glw = pg.GraphicsLayoutWidget()
        self.glw.setMinimumSize(300, 200)
        self.note = QtWidgets.QLabel()
        self.note.setTextFormat(QtCore.Qt.TextFormat.PlainText)
        self.note.setWordWrap(True)
        self.note.hide()
        self.bar = QtWidgets.QHBoxLayout()  # the view's own controls (subclasses fill it)
        box = QtWidgets.QVBoxLayout(self)
        box.setContentsMargins(0, 0, 0, 0)
        box.addLayout(self.bar)
        box.addWidget(self.note)
        box.addWidget(self.glw, 1)
        self.tables: dict[str, Table] = {}  # run label -> table, for CSV and readout
        self._time_plots: list[pg.PlotItem] = []
        self._legends: dict[pg.PlotItem, list[str]] = {}
        self._heatmaps: dict[pg.PlotItem, tuple] = {}
        self._bars: list[pg.ColorBarItem] = []
        self.glw.scene().sigMouseMoved.connect(self._hover)
        self._cursors: list[pg.InfiniteLine] = []
        self._refs: list[pg.InfiniteLine] = []
        self._applying_range = False
        self.needs_rebuild = True

    # --- to implement ------------------------------------------------------------------------
    def make_plots(self, col: int, title: str) -> list[pg.PlotItem]:
        """Create this column's plots in ``self.glw`` (column ``col``); return them."""
        raise NotImplementedError

    def draw(self, plots: list[pg.PlotItem], slot: Slot, layer: str, dashed: bool) -> Table:
        """Draw one run's data into ``plots``; return the table that was drawn."""
        raise NotImplementedError

    def readout_columns(self) -> list[tuple[str, str]]:
        """(column, label) pairs the cursor readout shows."""
        return []

    def step_changed(self) -> None:
        """The cursor moved: update step-dependent items beyond the cursor lines."""

    def sync_controls(self) -> None:
        """Show the state in this view's own controls."""

    def _hover(self, pos) -> None:
        for plot, (steps, values, label, names) in self._heatmaps.items():
            if plot.vb.sceneBoundingRect().contains(pos):
                pt = plot.vb.mapSceneToView(pos)
                col = int(np.clip(np.searchsorted(steps, pt.x()), 0, len(steps) - 1))
                if col > 0 and abs(steps[col - 1] - pt.x()) < abs(steps[col] - pt.x()):
                    col -= 1
                row = int(round(pt.y()))
                if 0 <= row < values.shape[1]:
                    what = names[row] if names else f"channel {row}"
                    text = f"{what}, step {int(steps[col])}: {label} {fmt(float(values[col, row]))}"
                    QtWidgets.QToolTip.showText(QtGui.QCursor.pos(), style.tooltip(text), self.glw)
                return
        QtWidgets.QToolTip.hideText()

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
        self._time_plots, self._cursors, self._refs, self.tables = [], [], [], {}
        self._legends, self._heatmaps, self._bars = {}, {}, []
        slots = self.session.slots
        layer = self.session.state.layer
        if not slots or layer is None:
            return
        missing = [s.label for s in slots if s.layer(layer) is None]
        self.set_note(
            f"Run {', '.join(missing)} has no layer named {layer}; it is not shown."
            if missing and len(slots) > 1
            else ""
        )
        side = len(slots) > 1 and (self.session.state.compare_mode == "side" or not self.overlay_ok)
        columns = [[s] for s in slots] if side else [slots]
        for c, group in enumerate(columns):
            title = f"Run {group[0].label}: {_short(group[0].path)}" if side else ""
            plots = self.make_plots(c, title)
            for i, slot in enumerate(group):
                if slot.layer(layer) is not None:
                    self.tables[slot.label] = self.draw(plots, slot, layer, dashed=i > 0)
            if self.time_axis:
                self._add_time_plots(plots)
        if len(slots) > 1 and not side:
            self.add_note(f"Solid lines: run A ({_short(slots[0].path)}); dashed: run B ({_short(slots[1].path)}).")
        self.finish_legends()
        self._share_colour_limits()
        self.apply_range()
        self.update_step()

    def _share_colour_limits(self) -> None:
        """Runs side by side get one colour scale: the same colour must mean the same value."""
        if len(self._bars) > 1:
            levels = [bar.levels() for bar in self._bars]
            lo, hi = min(lv[0] for lv in levels), max(lv[1] for lv in levels)
            for bar in self._bars:
                bar.setLevels((lo, hi))

    def set_note(self, text: str) -> None:
        self.note.setText(text)
        self.note.setVisible(bool(text))

    def add_note(self, text: str) -> None:
        """Append to the note (each run of a comparison may add its own)."""
        self.set_note(f"{self.note.text()}  {text}" if self.note.text() else text)

    def _add_time_plots(self, plots: list[pg.PlotItem]) -> None:
        for p in plots:
            if self._time_plots:
                p.setXLink(self._time_plots[0])
            else:
                p.sigXRangeChanged.connect(self._on_range_changed)
            self._time_plots.append(p)
            cur = pg.InfiniteLine(
                angle=90,
                movable=True,
                pen=style.pen(style.CURSOR, 1.5),
                hoverPen=style.pen(style.OKABE_ITO["orange"], 3),
            )
            cur.setZValue(50)
            cur.setToolTip("Step cursor: drag it, or use ←/→ and the timeline")
            cur.sigDragged.connect(self._on_cursor_dragged)
            ref = pg.InfiniteLine(angle=90, movable=False, pen=style.pen(style.REFERENCE, 1.5, dashed=True))
            ref.setToolTip("Reference step (pinned)")
            ref.setZValue(40)
            p.addItem(cur, ignoreBounds=True)
            p.addItem(ref, ignoreBounds=True)
            self._cursors.append(cur)
            self._refs.append(ref)

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
        self.session.state.update(step=int(round(line.value())))

    def apply_range(self) -> None:
        """Show ``state.step_range`` (None: everything) in the time plots."""
        if not self._time_plots:
            return
        rng = self.session.state.step_range
        self._applying_range = True
        try:
            p = self._time_plots[0]
            if rng is None:
                p.enableAutoRange(axis="x")
            else:
                p.setXRange(rng[0], rng[1], padding=0)
        finally:
            self._applying_range = False

    def _on_range_changed(self, vb, rng) -> None:
        # only the user's pan/zoom (which switches x auto-range off) becomes the shared range
        if not self._applying_range and not vb.autoRangeEnabled()[0]:
            self.user_range.emit(float(rng[0]), float(rng[1]))

    def readout(self) -> str:
        step = self.session.cursor_step()
        parts = []
        for label, table in self.tables.items():
            vals = [f"{name} {fmt(value_at(table, col, step))}" for col, name in self.readout_columns()]
            if vals:
                parts.append((f"{label}: " if label else "") + ", ".join(vals))
        return "   ".join(parts)

    # --- drawing helpers -------------------------------------------------------------------
    def curve(self, plot: pg.PlotItem, x, y, colour: str, name: str | None, dashed=False, width=1.5) -> pg.PlotDataItem:
        """A time curve: NaN breaks the line; min/max decimation to the pixel width."""
        item = pg.PlotDataItem(
            np.asarray(x, dtype=np.float64),
            np.asarray(y, dtype=np.float64),
            pen=style.pen(colour, width, dashed),
            connect="finite",
        )
        plot.addItem(item)
        _lod(item)
        self.legend(plot, style.swatch_line(colour, dashed), name)
        return item

    def legend(self, plot: pg.PlotItem, swatch_html: str, name: str | None) -> None:
        """Add a legend entry; legends sit under the plot title, never on top of the data."""
        if name:
            entries = self._legends.setdefault(plot, [])
            entry = f"{swatch_html}&nbsp;{style.plain(name)}"
            if entry not in entries:
                entries.append(entry)

    def finish_legends(self) -> None:
        for plot, entries in self._legends.items():
            style.set_title(plot, getattr(plot, "bnviz_title", ""), entries)

    def band(self, plot: pg.PlotItem, x, lo, hi, colour: str, alpha: int = 50, name: str | None = None):
        """A shaded band between two curves (NaN rows drop out), thinned to BAND_BUCKETS
        buckets keeping each bucket's lowest ``lo`` and highest ``hi``. (pyqtgraph's own
        downsampling of the edge curves crashes FillBetweenItem in 0.14.)"""
        x, lo, hi = (np.asarray(a, dtype=np.float64) for a in (x, lo, hi))
        ok = np.isfinite(lo) & np.isfinite(hi)
        if not ok.any():
            return None
        xb, lo_b, _, _ = decimate(x[ok], lo[ok], BAND_BUCKETS)
        _, _, hi_b, _ = decimate(x[ok], hi[ok], BAND_BUCKETS)
        edge = style.pen(colour, 0.6)
        edge.setColor(style.brush(colour, min(255, alpha * 2)).color())
        c1 = pg.PlotCurveItem(xb, lo_b, pen=edge)
        c2 = pg.PlotCurveItem(xb, hi_b, pen=edge)
        fill = pg.FillBetweenItem(c1, c2, brush=style.brush(colour, alpha))
        for item in (c1, c2, fill):
            plot.addItem(item)
            _cached(item)
        self.legend(plot, style.swatch_block(colour, alpha), name)
        return fill

    def mark_nonfinite(self, plot: pg.PlotItem, x, *columns) -> None:
        """Red crosses at the bottom of the plot where a value is NaN/Inf, with a tooltip."""
        bad = nan_steps(np.asarray(x), *columns)
        if len(bad) == 0:
            return
        finite = np.concatenate([np.asarray(c, dtype=np.float64)[np.isfinite(c)] for c in columns] or [np.zeros(0)])
        y0 = float(finite.min()) if len(finite) else 0.0
        bad = bad[:: max(1, len(bad) // 2000)]
        sp = pg.ScatterPlotItem(
            x=bad.astype(np.float64),
            y=np.full(len(bad), y0),
            symbol="x",
            size=9,
            pen=style.pen(style.NAN_MARK, 1.5),
            brush=None,
            hoverable=True,
            tip=lambda x, y, data: f"step {x:.0f}: NaN/Inf",
        )
        sp.setToolTip(f"NaN or Inf at {len(bad)} recorded step(s), first at step {int(bad[0])}")
        plot.addItem(sp)
        self.legend(plot, style.swatch_marker(style.NAN_MARK, "✕"), f"NaN/Inf from step {int(bad[0])}")

    def heatmap(
        self,
        plot: pg.PlotItem,
        steps: np.ndarray,
        values: np.ndarray,
        label: str,
        signed: bool,
        row_names: list[str] | None = None,
        max_columns: int = 2000,
    ) -> pg.ImageItem:
        """Rows x columns image with x = step (columns thinned to ``max_columns``) and a colour bar.

        Colour limits are the 1st/99th percentiles so one outlier does not wash out the map;
        signed data get a diverging map centred on 0. NaN cells are marked. Hovering a cell
        shows its row, step and value in a tooltip.
        """
        stride = max(1, int(np.ceil(len(steps) / max_columns)))
        steps, values = steps[::stride], values[::stride]
        self._heatmaps[plot] = (steps, values, label, row_names)
        img = pg.ImageItem(values.astype(np.float32), axisOrder="col-major")
        dx = float(np.median(np.diff(steps))) if len(steps) > 1 else 1.0
        img.setRect(QtCore.QRectF(float(steps[0]) - dx / 2, -0.5, float(steps[-1] - steps[0]) + dx, values.shape[1]))
        plot.addItem(img)
        finite = values[np.isfinite(values)]
        if len(finite):
            lo, hi = np.percentile(finite, [1, 99])
        else:
            lo, hi = 0.0, 1.0
        if signed:
            lim = max(abs(lo), abs(hi)) or 1.0
            lo, hi = -lim, lim
        elif hi <= lo:
            hi = lo + 1.0
        bar = pg.ColorBarItem(
            values=(float(lo), float(hi)), colorMap=style.colormap(signed), label=label, interactive=False, width=14
        )
        bar.setImageItem(img, insert_in=plot)
        self._bars.append(bar)
        bad = ~np.isfinite(values)
        if bad.any():
            rgba = np.zeros(values.shape + (4,), np.uint8)
            mark = QtGui.QColor(style.NAN_MARK)
            rgba[bad] = (mark.red(), mark.green(), mark.blue(), 255)
            mask = pg.ImageItem(rgba, axisOrder="col-major")
            mask.setRect(img.mapRectToParent(img.boundingRect()))
            mask.setZValue(img.zValue() + 1)
            first = steps[np.flatnonzero(bad.any(axis=1))[0]]
            mask.setToolTip(f"NaN/Inf cells (first at step {int(first)})")
            plot.addItem(mask)
            self.legend(plot, style.swatch_block(style.NAN_MARK), f"NaN/Inf (first at step {int(first)})")
        return img

    def export_table(self) -> Table:
        """The drawn data as CSV columns (compare runs prefixed with their label); time plots
        give the rows of the shown step range, as the picture does."""
        rng = self.session.state.step_range if self.time_axis else None
        tables = {label: rows_in_range(t, rng) for label, t in self.tables.items()}
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
        li = self.session.slots[0].layer(self.session.state.layer) if self.session.slots else None
        n = li.num_features if li is not None else 1
        with QtCore.QSignalBlocker(self.spin):
            self.spin.setRange(0, max(0, n - 1))
            self.spin.setValue(self.current_channel())


def _lod(item: pg.PlotDataItem) -> None:
    """Min/max per pixel column of what is visible (set once the item is in its ViewBox:
    pyqtgraph 0.14 fails when clip-to-view is set on an item without one)."""
    item.opts["autoDownsampleFactor"] = 1.0  # min+max per pixel column (the default keeps 5 per pixel)
    item.setDownsampling(auto=True, method="peak")
    item.setClipToView(True)
    _cached(item.curve)


def _cached(item) -> None:
    """Paint once into a pixmap: a cursor move then repaints a thin strip by copying pixels
    instead of stroking every curve that crosses it again."""
    item.setCacheMode(QtWidgets.QGraphicsItem.CacheMode.DeviceCoordinateCache)


def run_prefix(slot: Slot) -> str:
    """ "Run B: " in a comparison, nothing for a single run: the start of a note about one run."""
    return f"Run {slot.label}: " if slot.label else ""


def _short(path: str, n: int = 40) -> str:
    name = os.path.basename(path)
    return name if len(name) <= n else "…" + name[-n:]
