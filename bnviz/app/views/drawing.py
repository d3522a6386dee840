"""Drawing into pyqtgraph plots: curves, bands, NaN marks and heatmaps, with the legend entries,
hover data and colour bars they make. A view holds one ``Ink`` and resets it on each rebuild.

In an overlay comparison each run draws in its own colour (``Ink.run_colour``); the series of one
plot are then told apart by line style, and the legend names them in grey plus one entry per
run that names its file.
"""

from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtGui, QtWidgets

from bnviz.app import style
from bnviz.app.colour_scale import colour_levels, log_possible, shown_values
from bnviz.app.data import nan_steps
from bnviz.app.views.crosshair import Series
from bnviz.store.decimate import decimate

BAND_BUCKETS = 1500
NEUTRAL = "#555555"  # legend swatches of series when colour means the run


def fmt(v: float) -> str:
    """A number for readouts and tooltips: NaN/Inf spelled out."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "NaN"
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    return f"{v:.4g}"


class Ink:
    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.legends: dict[pg.PlotItem, list[str]] = {}
        self.heatmaps: dict[pg.PlotItem, tuple] = {}  # plot -> (steps, values, label, row names)
        self.maps: list[HeatMap] = []
        self.run_colour: str | None = None  # set while a compared run draws (overlay)
        self.run_label = ""  # and its label ("A", "B")
        self.run_cycle = 0  # and its dots (style.run_cycle: runs after the 8th)
        self.smoothing = 0.0  # EMA weight of time curves (0: off)
        self._series: dict[pg.PlotItem, list[str]] = {}
        self.hover: dict[pg.PlotItem, list[Series]] = {}  # what the hover readout reads, per plot

    @property
    def bars(self) -> list[pg.ColorBarItem]:
        return [m.bar for m in self.maps]

    # --- legends -------------------------------------------------------------------------------
    def legend(self, plot: pg.PlotItem, swatch_html: str, name: str | None) -> None:
        """Add a legend entry; legends sit under the plot title, never on top of the data."""
        if name:
            entries = self.legends.setdefault(plot, [])
            entry = f"{swatch_html}&nbsp;{style.plain(name)}"
            if entry not in entries:
                entries.append(entry)

    def finish_legends(self, line_chars: int = style.LEGEND_LINE_CHARS) -> None:
        for plot, entries in self.legends.items():
            style.set_title(plot, getattr(plot, "bnviz_title", ""), entries, line_chars)

    def series_dash(self, plot: pg.PlotItem, name: str | None, dashed: bool) -> int:
        """The line style of a series: in an overlay comparison each named series of a plot gets
        its own (both runs the same), otherwise the view's choice."""
        if self.run_colour is None:
            return int(dashed)
        if not name:
            return 0
        names = self._series.setdefault(plot, [])
        if name not in names:
            names.append(name)
        return names.index(name) % len(style.DASHES)

    def _hoverable(self, plot: pg.PlotItem, series: Series) -> None:
        """What the hover readout lists for ``plot``; a compared run's series carry its label."""
        if self.run_label:
            series.name = f"{self.run_label}: {series.name}" if series.name else self.run_label
        self.hover.setdefault(plot, []).append(series)

    # --- items ---------------------------------------------------------------------------------
    def curve(
        self, plot: pg.PlotItem, x, y, colour: str, name: str | None, dashed=False, width=1.5, smoothed=None
    ) -> pg.PlotDataItem:
        """A time curve: NaN breaks the line; min/max decimation to the pixel width. With
        smoothing on, ``smoothed`` is the smoothed curve at ``x`` if the caller made it (of a
        series decimated to ``x``: the EMA of the full series, not of its decimation)."""
        dash = self.series_dash(plot, name, dashed)
        x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
        colour = self.run_colour or colour
        raw_y = y
        if self.smoothing > 0:  # TensorBoard's way: the raw curve stays, faint, under the EMA
            raw = pg.PlotDataItem(x, y, pen=style.pen(colour, 1, dash, self.run_cycle), connect="finite")
            raw.setOpacity(style.RAW_OPACITY)
            plot.addItem(raw)
            lod(raw)
            y = ema(y, self.smoothing) if smoothed is None else np.asarray(smoothed, np.float64)
        item = pg.PlotDataItem(x, y, pen=style.pen(colour, width, dash, self.run_cycle), connect="finite")
        plot.addItem(item)
        lod(item)
        self._hoverable(plot, Series(name or "", colour, x, y, y, raw_y if self.smoothing > 0 else None))
        self.legend(plot, style.swatch_line(NEUTRAL if self.run_colour else colour, dash), name)
        return item

    def band(self, plot: pg.PlotItem, x, lo, hi, colour: str, alpha: int = 50, name: str | None = None):
        """A shaded band between two curves (NaN rows drop out), thinned to BAND_BUCKETS buckets
        keeping each bucket's lowest ``lo`` and highest ``hi``. The edges are PlotDataItems, so a
        log y axis transforms them with the curves. (pyqtgraph's own downsampling of the edge
        curves crashes FillBetweenItem in 0.14.)"""
        x, lo, hi = (np.asarray(a, dtype=np.float64) for a in (x, lo, hi))
        ok = np.isfinite(lo) & np.isfinite(hi)
        if not ok.any():
            return None
        if self.run_colour is not None:
            colour, alpha = self.run_colour, max(25, alpha * 2 // 3)  # two runs' bands both show
        xb, lo_b, _, _ = decimate(x[ok], lo[ok], BAND_BUCKETS)
        _, _, hi_b, _ = decimate(x[ok], hi[ok], BAND_BUCKETS)
        edge = style.pen(colour, 0.6)
        edge.setColor(style.brush(colour, min(255, alpha * 2)).color())
        c1 = pg.PlotCurveItem(xb, lo_b, pen=edge)
        c2 = pg.PlotCurveItem(xb, hi_b, pen=edge)
        fill = pg.FillBetweenItem(c1, c2, brush=style.brush(colour, alpha))
        for item in (c1, c2, fill):
            plot.addItem(item)
            cached(item)

        def log_y(on: bool) -> None:
            """PlotCurveItems ignore the plot's log mode (pyqtgraph transforms PlotDataItems
            only): set the edges' log themselves; values <= 0 sit at the band's lowest positive."""
            if not on:
                c1.setData(xb, lo_b)
                c2.setData(xb, hi_b)
                return
            pos = np.concatenate([lo_b[lo_b > 0], hi_b[hi_b > 0]])
            floor = float(pos.min()) if len(pos) else 1.0
            c1.setData(xb, np.log10(np.maximum(lo_b, floor)))
            c2.setData(xb, np.log10(np.maximum(hi_b, floor)))

        self._hoverable(plot, Series(name or "", colour, xb, lo_b, hi_b))
        plot.ctrl.logYCheck.toggled.connect(log_y)
        if plot.ctrl.logYCheck.isChecked():
            log_y(True)
        self.legend(plot, style.swatch_block(NEUTRAL if self.run_colour else colour, alpha), name)
        return fill

    def mark_nonfinite(self, plot: pg.PlotItem, x, *columns) -> None:
        """Crosses at the bottom of the plot where a value is NaN/Inf, with a tooltip."""
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
        y_extent: tuple[float, float] | None = None,
        limits: tuple[float, float] | None = None,
        log: bool = False,
    ) -> pg.ImageItem:
        """Rows x columns image with x = step (columns thinned to ``max_columns``) and a colour bar.

        Colour limits: ``limits`` (the user's) or the 1st/99th percentiles, so one outlier does
        not wash out the map; signed data get a diverging map centred on 0; ``log``: a log10
        colour scale (unsigned positive data only, else ignored). NaN cells are painted in their
        own colour. Hovering a cell shows its row, step and value (``cell_text``). Rows sit at
        0, 1, ... unless ``y_extent`` spreads them evenly over (low, high) (histogram bins).
        """
        stride = max(1, int(np.ceil(len(steps) / max_columns)))
        steps, values = steps[::stride], values[::stride]
        lo_y, hi_y = y_extent if y_extent is not None else (-0.5, values.shape[1] - 0.5)
        self.heatmaps[plot] = (steps, values, label, row_names, (lo_y, hi_y))
        img = pg.ImageItem(np.zeros(values.shape, np.float32), axisOrder="col-major")
        dx = float(np.median(np.diff(steps))) if len(steps) > 1 else 1.0
        img.setRect(QtCore.QRectF(float(steps[0]) - dx / 2, lo_y, float(steps[-1] - steps[0]) + dx, hi_y - lo_y))
        plot.addItem(img)
        bar = pg.ColorBarItem(colorMap=style.colormap(signed), interactive=False, width=14)
        bar.setImageItem(img, insert_in=plot)
        self.maps.append(HeatMap(img, bar, values, signed, label))
        self.maps[-1].colour(limits, log)
        bad = ~np.isfinite(values)
        if bad.any():
            rgba = np.zeros(values.shape + (4,), np.uint8)
            mark = QtGui.QColor(style.HEATMAP_NAN)
            rgba[bad] = (mark.red(), mark.green(), mark.blue(), 255)
            mask = pg.ImageItem(rgba, axisOrder="col-major")
            mask.setRect(img.mapRectToParent(img.boundingRect()))
            mask.setZValue(img.zValue() + 1)
            plot.addItem(mask)
            first = steps[np.flatnonzero(bad.any(axis=1))[0]]
            self.legend(plot, style.swatch_block(style.HEATMAP_NAN), f"NaN/Inf (first at step {int(first)})")
        return img

    def share_colour_limits(self) -> None:
        """Runs side by side get one colour scale: the same colour must mean the same value
        (manual limits are one already)."""
        maps = [m for m in self.maps if m.auto]
        if len(maps) > 1 and len({m.log for m in maps}) == 1:
            levels = [m.bar.levels() for m in maps]
            lo, hi = min(lv[0] for lv in levels), max(lv[1] for lv in levels)
            for m in maps:
                m.bar.setLevels((lo, hi))
                if m.log:
                    m.bar.axis.setTicks(log_ticks(lo, hi))

    def recolour(self, limits: tuple[float, float] | None, log: bool) -> None:
        """New colour limits or scale for the drawn heatmaps, without reading the data again."""
        for m in self.maps:
            m.colour(limits, log)
        self.share_colour_limits()

    def cell_text(self, scene_pos) -> str | None:
        """What the heatmap cell under ``scene_pos`` holds ("" over a plot but off its rows;
        None when not over a heatmap)."""
        for plot, (steps, values, label, names, (lo_y, hi_y)) in self.heatmaps.items():
            if plot.vb.sceneBoundingRect().contains(scene_pos):
                pt = plot.vb.mapSceneToView(scene_pos)
                col = int(np.clip(np.searchsorted(steps, pt.x()), 0, len(steps) - 1))
                if col > 0 and abs(steps[col - 1] - pt.x()) < abs(steps[col] - pt.x()):
                    col -= 1
                row = int(np.floor((pt.y() - lo_y) / (hi_y - lo_y) * values.shape[1]))
                if not 0 <= row < values.shape[1]:
                    return ""
                what = names[row] if names else f"channel {row}"
                return f"{what}, step {int(steps[col])}: {label} {fmt(float(values[col, row]))}"
        return None


class HeatMap:
    """A drawn heatmap with its colour bar: what recolouring it needs."""

    def __init__(self, img: pg.ImageItem, bar: pg.ColorBarItem, values: np.ndarray, signed: bool, label: str):
        self.img, self.bar, self.values, self.signed, self.label = img, bar, values, signed, label
        self.auto, self.log = True, False

    def colour(self, limits: tuple[float, float] | None, log: bool) -> None:
        """``limits``: the user's (None: automatic); ``log``: log10 colours where the data allow."""
        self.log = log and log_possible(self.values, self.signed)
        self.auto = limits is None
        self.img.setImage(shown_values(self.values, self.log).astype(np.float32), autoLevels=False)
        self.bar.setColorMap(style.colormap(self.signed and not self.log))
        self.bar.setLevels(colour_levels(self.values, self.signed, limits, self.log))
        manual = "" if limits is None else " (manual limits)"
        text = f"{self.label}{manual}" + (", log scale" if self.log else "")
        self.bar.axis.setLabel(text, siPrefixEnableRanges=((0.0, 0.0),))  # plain numbers, as the cells tell them
        self.bar.axis.setTicks(log_ticks(*self.bar.levels()) if self.log else None)

    def shown_limits(self) -> tuple[float, float]:
        """The colour bar's ends in the data's units."""
        lo, hi = self.bar.levels()
        return (10.0**lo, 10.0**hi) if self.log else (lo, hi)


def log_ticks(lo: float, hi: float, n: int = 6) -> list[list[tuple[float, str]]]:
    """Ticks of a log10 colour bar labelled with the values themselves: the decades inside
    (lo, hi) when there are at least two, else ``n`` evenly spaced ones."""
    decades = np.arange(np.ceil(lo), np.floor(hi) + 1)
    where = decades if len(decades) >= 2 else np.linspace(lo, hi, n)
    return [[(float(v), fmt(10.0**v)) for v in where]]


def ema(y: np.ndarray, weight: float) -> np.ndarray:
    """TensorBoard's smoothing: an exponential moving average over the finite values, debiased
    at the start (so the first points are not pulled to 0); NaN/Inf stay where they are."""
    out = np.array(y, dtype=np.float64)
    last, n = 0.0, 0
    for i, v in enumerate(out):
        if math.isfinite(v):
            last = last * weight + (1 - weight) * v
            n += 1
            out[i] = last / (1 - weight**n)
    return out


def lod(item: pg.PlotDataItem) -> None:
    """Min/max per pixel column of what is visible (set once the item is in its ViewBox:
    pyqtgraph 0.14 fails when clip-to-view is set on an item without one)."""
    item.opts["autoDownsampleFactor"] = 1.0  # min+max per pixel column (the default keeps 5 per pixel)
    item.setDownsampling(auto=True, method="peak")
    item.setClipToView(True)
    cached(item.curve)


PIXMAP_CACHE_KB = 192 * 1024


def cached(item) -> None:
    """Paint once into a pixmap: a cursor move then repaints a thin strip by copying pixels
    instead of stroking every curve that crosses it again. Qt's pixmap cache must hold every
    cached item of a view at once: its default 10 MB held 2 of the across-layers view's 24
    curves, so a cursor move restroked the rest (65 ms instead of 20 ms)."""
    if QtGui.QPixmapCache.cacheLimit() < PIXMAP_CACHE_KB:
        QtGui.QPixmapCache.setCacheLimit(PIXMAP_CACHE_KB)
    item.setCacheMode(QtWidgets.QGraphicsItem.CacheMode.DeviceCoordinateCache)
