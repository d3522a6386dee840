"""Distribution through time: one tensor's histograms over steps, as a step x value heatmap with
the activation's zone marked, or as TensorBoard-style offset ridgelines (later steps lower)."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg

from bnviz.app import style
from bnviz.app.data import distribution_history, history_table
from bnviz.app.views.base import BaseView, value_at
from bnviz.app.views.distribution import ZONE_WORDS, _zone_intervals
from bnviz.store.schema import TENSORS

RIDGES = 24  # ridgelines drawn, evenly spaced over the steps
RIDGE_OVERLAP = 2.5  # how many ridge spacings the tallest ridge may reach


class HistoryView(BaseView):
    key = "history"
    heatmap_tips = True
    depends = BaseView.depends | {"history_tensor", "history_mode"}

    def __init__(self, session, parent=None):
        super().__init__(session, parent)
        self.tensor_box = self.combo(
            "Tensor",
            {t: style.TENSOR_LABELS[t] for t in TENSORS},
            "history_tensor",
            "Whose histograms: the BN input x, x-hat, or the output y",
        )
        self.mode_box = self.combo(
            "Show as",
            {"heatmap": "step × value heatmap", "ridgelines": "ridgelines"},
            "history_mode",
            "A heatmap of density over steps, or offset curves (TensorBoard)",
        )
        self.colour = self.add_colour_control()
        self.bar.addStretch(1)

    @property
    def time_axis(self) -> bool:  # type: ignore[override]  # ridgelines have values, not steps, on x
        return self.session.state.history_mode == "heatmap"

    @property
    def overlay_ok(self) -> bool:  # type: ignore[override]  # two runs' heatmaps cannot share one image
        return False

    def sync_controls(self):
        self.sync_combo(self.tensor_box, self.session.state.history_tensor)
        self.sync_combo(self.mode_box, self.session.state.history_mode)
        self.colour.sync(True)
        self.colour.setVisible(self.session.state.history_mode == "heatmap")

    def make_plots(self, col, title):
        st = self.session.state
        p = self.glw.addPlot(row=0, col=col)
        what = f"{style.TENSOR_LABELS[st.history_tensor]}: histograms through time"
        heat = st.history_mode == "heatmap"
        style.style_plot(
            p,
            (f"{title} · " if title else "") + what,
            "step" if heat else "value",
            "value" if heat else "step (offset ridgelines, later lower)",
        )
        return [p]

    def draw(self, plots, slot, layer, overlaid):
        st = self.session.state
        steps, edges, density = distribution_history(slot.run, layer, st.history_tensor, st.phase)
        p = plots[0]
        if not len(steps):
            self.set_note("No histogram rows recorded yet.")
            return {"step": steps}
        li = slot.layer(layer)
        if st.history_mode == "heatmap":
            centres = (edges[:-1] + edges[1:]) / 2
            limits, log = self.colour_scale()
            self.ink.heatmap(
                p,
                steps,
                density,
                "density",
                False,
                [f"value {c:.3g}" for c in centres],
                y_extent=(float(edges[0]), float(edges[-1])),
                limits=limits,
                log=log,
            )
            if st.history_tensor != "pre":  # the zone is of the activation's input: y (and x-hat)
                self._zone(p, li, horizontal=True)
        else:
            self._ridgelines(p, steps, edges, density)
            if st.history_tensor != "pre":
                self._zone(p, li, horizontal=False)
        return history_table(steps, edges, density)

    def _zone(self, p, li, horizontal: bool) -> None:
        word = ZONE_WORDS.get(li.zone_rule, "zone")
        orientation = "horizontal" if horizontal else "vertical"
        for lo, hi in _zone_intervals(li):
            reg = pg.LinearRegionItem(
                (lo, hi),
                orientation=orientation,
                movable=False,
                brush=style.brush("#000000", 0) if horizontal else style.ZONE,
                pen=style.pen(style.OKABE_ITO["yellow"], 2, dashed=True) if horizontal else pg.mkPen(None),
            )
            reg.setZValue(10 if horizontal else -10)
            reg.setToolTip(f"{li.activation}'s {word}: {li.zone_rule} rule, threshold {li.zone_threshold}")
            p.addItem(reg, ignoreBounds=True)
        if li.zone_rule in ZONE_WORDS:
            self.ink.legend(p, style.swatch_block(style.ZONE), f"{li.activation} {word}")

    def _ridgelines(self, p, steps, edges, density) -> None:
        """Every n-th row as a curve of density over value, offset down by its rank in time."""
        picks = np.unique(np.linspace(0, len(steps) - 1, min(RIDGES, len(steps))).round().astype(int))
        peak = float(np.nanmax(density[picks])) if np.isfinite(density[picks]).any() else 1.0
        spacing = peak / RIDGE_OVERLAP or 1.0
        centres = (edges[:-1] + edges[1:]) / 2
        cmap = style.colormap(False)
        ticks = []
        for k, i in enumerate(picks):
            base = -k * spacing
            y = np.nan_to_num(density[i], nan=0.0) + base
            colour = cmap.map(k / max(1, len(picks) - 1), mode="qcolor")
            fill = pg.PlotDataItem(
                centres, y, pen=pg.mkPen(colour, width=1.2), fillLevel=base, brush=style.brush(colour.name(), 60)
            )
            fill.setZValue(k)  # later rows in front
            p.addItem(fill)
            ticks.append((base, str(int(steps[i]))))
        every = max(1, len(ticks) // 8)
        p.getAxis("left").setTicks([ticks[::every]])

    def readout(self):
        step = self.session.cursor_step()
        parts = []
        for label, t in self.tables.items():
            cols = [c for c in t if c.startswith("bin")]
            if not cols or step is None:
                continue
            d = np.array([value_at(t, c, step) for c in cols])
            centres = np.array([float(c.split("@")[1]) for c in cols])
            w = np.where(np.isfinite(d), d, 0)
            if w.sum() > 0:
                parts.append(f"{(label + ': ') if label else ''}mean≈{float((centres * w).sum() / w.sum()):.4g}")
        return "   ".join(parts)
