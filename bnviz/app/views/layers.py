"""Across layers: one statistic of several layers on one axis (every layer's pre-BN variance,
say), the layers being those the tree's filter shows."""

from __future__ import annotations

import numpy as np

from bnviz.app import style
from bnviz.app.data import LAYERS_SHOWN, layers_table
from bnviz.app.session import layer_matches
from bnviz.app.state import LAYER_METRICS
from bnviz.app.views.base import BaseView, fmt, value_at
from bnviz.app.views.channels import metric_label
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
        st = self.session.state
        names = [li.path for li in slot.run.layers if layer_matches(li.path, st.layer_filter)]
        t = layers_table(slot.run, names, st.layers_metric, st.phase)
        shown = [n for n in names if n in t]
        if len(names) > LAYERS_SHOWN:
            self.add_note(
                f"{len(names)} layers match the filter; the first {LAYERS_SHOWN} are drawn (Ctrl+F narrows it)."
            )
        p = plots[0]
        run_colour = self.ink.run_colour
        for i, name in enumerate(shown):
            x, y = envelope(t["step"], t[name])
            # one run: a colour per layer; runs overlaid: the run's colour, the selected layer bold
            if run_colour is None:
                self.ink.curve(
                    p, t["step"], t[name], style.rank_colour(i, len(shown)), name, width=2.5 if name == layer else 1.2
                )
            else:
                self.ink.curve(p, x, y, run_colour, None, width=2.5 if name == layer else 1)
            self.ink.mark_nonfinite(p, t["step"], t[name])
        return t

    def readout(self):
        step = self.session.cursor_step()
        layer = self.session.state.layer
        parts = []
        for label, t in self.tables.items():
            if layer in t:
                parts.append(f"{(label + ': ') if label else ''}{layer} {fmt(value_at(t, layer, step))}")
        return "   ".join(parts)
