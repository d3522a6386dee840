"""Across layers: one statistic of several layers on one axis (every layer's pre-BN variance,
say), the layers being those the tree's filter shows."""

from __future__ import annotations

import numpy as np

from bnviz.app import style
from bnviz.app.data import LAYERS_SHOWN, Table, layer_series, layers_table
from bnviz.app.session import layer_matches
from bnviz.app.state import LAYER_METRICS
from bnviz.app.views.base import BaseView, fmt, value_at
from bnviz.app.views.channels import metric_label
from bnviz.app.views.drawing import ema
from bnviz.store.decimate import decimate

ENVELOPE_BUCKETS = 2000

LABELS = {
    "gamma_mean": "mean γ",
    "beta_mean": "mean β",
    "run_mean_gap": "batch vs running mean gap",
    "run_var_logratio": "|log(batch var / running var)|",
    "grad_gamma_norm": "‖∂loss/∂γ‖",
}


def envelope(x, y, buckets: int = ENVELOPE_BUCKETS):
    """A long series as each bucket's minimum then maximum: spikes stay, and many layers' curves
    stay cheap to draw (24 layers of a 100k-step run made a cursor move take 0.4 s)."""
    xb, lo, hi, _ = decimate(x, y, buckets)
    if len(xb) == len(np.asarray(y)):
        return xb, lo
    return np.repeat(xb, 2), np.column_stack([lo, hi]).ravel()


def layers_label(metric: str) -> str:
    return LABELS.get(metric) or metric_label(metric, None)


class LayersView(BaseView):
    key = "layers"
    depends = BaseView.depends | {"layers_metric", "layer_filter"}

    def __init__(self, session, parent=None):
        super().__init__(session, parent)
        self.metric_box = self.combo(
            "Statistic",
            {m: layers_label(m) for m in LAYER_METRICS},
            "layers_metric",
            "The statistic drawn for every layer the filter shows",
        )
        self.bar.addStretch(1)

    def sync_controls(self):
        self.sync_combo(self.metric_box, self.session.state.layers_metric)

    def make_plots(self, col, title):
        p = self.glw.addPlot(row=0, col=col)
        metric = self.session.state.layers_metric
        style.style_plot(
            p,
            (f"{title} · " if title else "") + f"{layers_label(metric)}, layer by layer",
            "step",
            layers_label(metric),
        )
        return [p]

    def draw(self, plots, slot, layer, overlaid):
        """Each layer read on its own and drawn as its envelope (a few thousand points), so the
        view holds no layer's full series but the selected one's (the readout's); the CSV reads
        the full columns when asked (``export_table``)."""
        st = self.session.state
        names = [li.path for li in slot.run.layers if layer_matches(li.path, st.layer_filter)]
        if len(names) > LAYERS_SHOWN:
            self.add_note(
                f"{len(names)} layers match the filter; the first {LAYERS_SHOWN} are drawn (Ctrl+F narrows it)."
            )
        shown = names[:LAYERS_SHOWN]
        p = plots[0]
        run_colour = self.ink.run_colour
        table: Table = {}
        for i, name in enumerate(shown):
            steps, values = layer_series(slot.run, name, st.layers_metric, st.phase)
            x, y = envelope(steps, values)
            smooth = envelope(steps, ema(values, self.ink.smoothing))[1] if self.ink.smoothing > 0 else None
            # one run: a colour per layer; runs overlaid: the run's colour, the selected layer bold
            colour = style.rank_colour(i, len(shown)) if run_colour is None else run_colour
            width = 2.5 if name == layer else (1.2 if run_colour is None else 1)
            self.ink.curve(p, x, y, colour, name if run_colour is None else None, width=width, smoothed=smooth)
            self.ink.mark_nonfinite(p, steps, values)
            if name == layer or not table:  # the readout's (and a table's step column)
                table = {"step": steps, name: values} if name == layer else {"step": steps}
        return table

    def export_table(self) -> Table:
        """Every drawn layer's full column, read now (the view keeps envelopes only)."""
        st = self.session.state
        full = {
            slot.label: layers_table(
                slot.run,
                [li.path for li in slot.run.layers if layer_matches(li.path, st.layer_filter)],
                st.layers_metric,
                st.phase,
            )
            for slot in self.session.slots
            if slot.label in self.tables
        }
        return self.joined(full)

    def readout(self):
        step = self.session.cursor_step()
        layer = self.session.state.layer
        parts = []
        for label, t in self.tables.items():
            if layer in t:
                parts.append(f"{(label + ': ') if label else ''}{layer} {fmt(value_at(t, layer, step))}")
        return "   ".join(parts)
