"""Colours, pens and fonts shared by every view (screen and export look the same)."""

from __future__ import annotations

import html
import re

import pyqtgraph as pg
from PySide6 import QtCore, QtGui, QtWidgets

from bnviz.app import qt_guard  # noqa: F401  (must run before anything is drawn)
from bnviz.plaintext import printable

# Okabe & Ito's palette: distinguishable with the common colour-vision deficiencies.
OKABE_ITO = {
    "orange": "#E69F00",
    "sky": "#56B4E9",
    "green": "#009E73",
    "yellow": "#F0E442",
    "blue": "#0072B2",
    "vermillion": "#D55E00",
    "purple": "#CC79A7",
    "black": "#000000",
}
TENSOR_COLOURS = {"pre": OKABE_ITO["blue"], "xhat": OKABE_ITO["green"], "post": OKABE_ITO["vermillion"]}
# "x-hat", not "x-hat": common UI fonts drop the combining circumflex
TENSOR_LABELS = {"pre": "pre-BN x", "xhat": "x-hat (normalised)", "post": "post-BN y"}
CURSOR = OKABE_ITO["black"]
REFERENCE = OKABE_ITO["purple"]
BOOKMARK = OKABE_ITO["green"]
ZONE = (240, 228, 66, 70)  # the activation's saturated / dead zone, translucent yellow
NAN_MARK = OKABE_ITO["black"]  # crosses under line plots: no series is black, post-BN y is vermillion
HEATMAP_NAN = "#FF00FF"  # NaN cells: in neither colour map (viridis, CET-D1A)
# compared runs: A, B, ... (Okabe & Ito, blue and vermillion first: apart for every colour vision);
# the 9th run on takes the colours again with dotted line styles (``run_cycle``)
RUN_COLOURS = tuple(OKABE_ITO[k] for k in ("blue", "vermillion", "green", "purple", "sky", "orange", "black", "yellow"))
# line styles of the series of runs after the 8th: each series' segment, then one dot per cycle
# (never one of DASHES: Qt's dash is 4-2, dot 1-2, dash-dot 4-2-1-2, in pen widths)
_CYCLE_SEGMENTS = ((12, 3), (7, 3), (3, 3), (7, 3, 12, 3))
DASHES = (
    QtCore.Qt.PenStyle.SolidLine,
    QtCore.Qt.PenStyle.DashLine,
    QtCore.Qt.PenStyle.DotLine,
    QtCore.Qt.PenStyle.DashDotLine,
)
_DASH_SWATCHES = ("━━", "╍╍", "┉┉", "━╍")
# colour maps: sequential for magnitudes, diverging for signed values
SEQUENTIAL = "viridis"
DIVERGING = "CET-D1A"
FONT_PT = 10
LEGEND_LINE_CHARS = 48
RAW_OPACITY = 0.3  # the unsmoothed curve under a smoothed one
LEGEND_CHAR_PX = 7.5  # about the width of a legend character at FONT_PT - 1 (a margin over)
AXIS_WIDTH = 72


DARK_BACKGROUND, DARK_FOREGROUND = "#1E1E1E", "#DDDDDD"


def system_is_dark() -> bool:
    """The desktop's palette is dark (its window colour): the window's plots follow it."""
    app = QtWidgets.QApplication.instance()
    return (
        isinstance(app, QtWidgets.QApplication)
        and app.palette().color(QtGui.QPalette.ColorRole.Window).lightness() < 128
    )


def configure(antialias: bool = False, dark: bool = False) -> None:
    """Global pyqtgraph options, read when plot items are made. Antialiasing is off on screen:
    on a 100k-step run it made a repaint 7-13x slower (430 vs 33-64 ms); headless exports,
    painted once, turn it on. ``dark``: plots on a dark background (a dark desktop); the
    black cursor and NaN marks turn white. Exports stay light."""
    global CURSOR, NAN_MARK
    CURSOR = NAN_MARK = "#FFFFFF" if dark else OKABE_ITO["black"]
    pg.setConfigOptions(
        background=DARK_BACKGROUND if dark else "w",
        foreground=DARK_FOREGROUND if dark else "k",
        antialias=antialias,
        useOpenGL=False,
    )


def pen(colour: str, width: float = 1.5, dashed: bool | int = False, cycle: int = 0) -> QtGui.QPen:
    """``dashed``: False/True, or an index into ``DASHES`` (series told apart by line style).
    ``cycle``: a run after the 8th (``run_cycle``) draws that series with ``cycle`` dots added."""
    p = pg.mkPen(colour, width=width)
    if cycle:
        p.setDashPattern([float(v) for v in _CYCLE_SEGMENTS[int(dashed) % len(DASHES)] + (1, 2) * cycle])
    else:
        p.setStyle(DASHES[int(dashed) % len(DASHES)])
    return p


# Severity as text colour (layer tree badges, findings dots): dark shades of Okabe & Ito's
# vermillion, orange and blue, each at least 4.5:1 on white and on the tree's alternate rows.
SEVERITY_COLOURS = ((0.75, "#A63D00"), (0.55, "#8A5A00"), (0.0, "#005A8C"))


def severity_colour(severity: float) -> str:
    return next(c for limit, c in SEVERITY_COLOURS if severity >= limit)


def colour_name(colour: str) -> str:
    """ "blue" for OKABE_ITO["blue"] (captions say which run is which colour)."""
    return next((k for k, v in OKABE_ITO.items() if v.lower() == colour.lower()), colour)


def run_colour(i: int) -> str:
    """The colour of the i-th compared run (A, B, ...); Okabe & Ito's black is the cursor's
    colour, white on a dark background."""
    c = RUN_COLOURS[i % len(RUN_COLOURS)]
    return CURSOR if c == OKABE_ITO["black"] else c


def run_cycle(i: int) -> int:
    """0 for the first 8 runs, 1 for the next 8, ...: how many dots their line styles add."""
    return i // len(RUN_COLOURS)


def brush(colour: str, alpha: int) -> QtGui.QBrush:
    c = QtGui.QColor(colour)
    c.setAlpha(alpha)
    return QtGui.QBrush(c)


def colormap(signed: bool) -> pg.ColorMap:
    return pg.colormap.get(DIVERGING if signed else SEQUENTIAL)


def style_plot(plot: pg.PlotItem, title: str, x_label: str, y_label: str, y_units: str | None = None) -> None:
    """Title (plain text), axis labels and fonts of a plot."""
    font = QtGui.QFont()
    font.setPointSize(FONT_PT)
    plot.bnviz_title = title
    set_title(plot, title, [])
    for name, text, units in (("bottom", x_label, None), ("left", y_label, y_units)):
        ax = plot.getAxis(name)
        ax.setLabel(text, units=units, **{"font-size": f"{FONT_PT}pt"})
        if units is None:
            ax.enableAutoSIPrefix(False)  # no "(x0.001)" scale factors on unitless axes
        ax.setTickFont(font)
    plot.showGrid(x=True, y=True, alpha=0.15)
    for name in ("left", "bottom", "right"):
        # the grid makes each axis span the whole plot, so every cursor move repainted the
        # axes' text; a pixmap cache turns that into a copy
        plot.getAxis(name).setCacheMode(QtWidgets.QGraphicsItem.CacheMode.DeviceCoordinateCache)
    for name in ("left", "right"):
        # a fixed width: an axis that widens itself while painting leaves a clipped cached picture
        plot.getAxis(name).setWidth(AXIS_WIDTH)


def plain(text: str) -> str:
    """Escape user-controlled text (layer names, paths) for pyqtgraph labels, which render HTML
    (control characters spelled out: they are not text, and SVG cannot hold them)."""
    return html.escape(printable(text))


def tooltip(text: str) -> str:
    """Qt guesses whether a tooltip is HTML; escaping it ourselves keeps user text literal."""
    lines = str(text).split("\n")
    return "<p style='white-space:pre'>" + "\n".join(html.escape(printable(line)) for line in lines) + "</p>"


def set_title(plot: pg.PlotItem, title: str, legend_entries: list[str], line_chars: int = LEGEND_LINE_CHARS) -> None:
    """The plot's title with its legend on lines below, each about ``line_chars`` characters
    (HTML built from escaped parts)."""
    if len(title) > line_chars:  # the whole title stays in the tooltip
        plot.titleLabel.setToolTip(title)
        title = title[: max(8, line_chars - 1)] + "…"
    html_text = f"<span style='font-size:{FONT_PT + 1}pt'>{plain(title)}</span>"
    lines: list[list[str]] = [[]]
    width = 0
    for entry in legend_entries:  # wrap, so a long legend does not widen the plot
        n = len(html.unescape(re.sub("<[^>]+>", "", entry)))
        if lines[-1] and width + n > line_chars:
            lines.append([])
            width = 0
        lines[-1].append(entry)
        width += n + 3
    if legend_entries:
        html_text += (
            f"<br><span style='font-size:{FONT_PT - 1}pt'>"
            + "<br>".join(" &nbsp;&nbsp; ".join(line) for line in lines)
            + "</span>"
        )
    plot.setTitle(html_text if title or legend_entries else None)
    if title or legend_entries:
        # pyqtgraph fixes the title row at 30 px: make room for the legend lines
        h = plot.titleLabel.item.boundingRect().height() + 2
        plot.titleLabel.setMaximumHeight(h)
        plot.layout.setRowFixedHeight(0, h)
        plot.bnviz_title_height = h
    _narrow(plot.titleLabel)
    # text wider than its label would print over the neighbouring plot's title: clip it
    plot.titleLabel.setFlag(QtWidgets.QGraphicsItem.GraphicsItemFlag.ItemClipsChildrenToShape)


def _narrow(label: pg.LabelItem) -> None:
    """A long title must not push the plot grid wider than its window: let it clip instead.
    pyqtgraph's LabelItem re-asserts its text's width as its minimum on every resize
    (``updateMin``), so the minimum is set back to 0 each time."""
    if not getattr(label, "bnviz_narrow", False):
        base = label.updateMin

        def update_min() -> None:
            base()
            label.setMinimumWidth(0)

        label.updateMin = update_min
        label.bnviz_narrow = True
    label.setMinimumWidth(0)


def _blend(colour: str, alpha: int) -> str:
    """``colour`` at ``alpha`` over white, as #RRGGBB (Qt rich text has no rgba())."""
    c = QtGui.QColor(colour)
    a = alpha / 255
    return "#%02X%02X%02X" % tuple(round(a * v + (1 - a) * 255) for v in (c.red(), c.green(), c.blue()))


def swatch_line(colour: str, dashed: bool | int = False, cycle: int = 0) -> str:
    dash = _DASH_SWATCHES[int(dashed) % len(_DASH_SWATCHES)] + "·" * cycle
    return f"<span style='color:{_blend(colour, 255)}; font-weight:bold'>{dash}</span>"


def swatch_block(colour, alpha: int = 255) -> str:
    c = colour if isinstance(colour, str) else QtGui.QColor(*colour).name()
    a = alpha if isinstance(colour, str) else colour[3]
    return f"<span style='color:{_blend(c, max(a, 60))}'>██</span>"


def swatch_marker(colour: str, symbol: str = "●") -> str:
    return f"<span style='color:{_blend(colour, 255)}'>{symbol}</span>"


RANK_PALETTE = tuple(OKABE_ITO[k] for k in ("blue", "vermillion", "green", "orange", "purple", "sky", "black"))


def rank_colour(i: int, n: int) -> str:
    """The colour of the i-th of n ranks: Okabe & Ito's while they last, then evenly spaced hues."""
    if n <= len(RANK_PALETTE):
        return RANK_PALETTE[i]
    return pg.intColor(i, hues=n, values=1, maxValue=200).name()
