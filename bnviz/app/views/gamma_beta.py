"""γ/β effect: γ and β over steps, and how much of y (with γ/β) vs x-hat (without) lands in the
following activation's saturated or dead zone."""

from __future__ import annotations

from bnviz.app import style
from bnviz.app.data import at_steps, channel_table, gamma_beta_table
from bnviz.app.views.base import ChannelView, run_prefix

_ZONE_TITLE = {
    "dead": "dead fraction (y in the ReLU's dead zone)",
    "saturated": "saturated fraction",
    "bound": "fraction at the clipping bounds",
}


class GammaBetaView(ChannelView):
    key = "gamma_beta"

    def make_plots(self, col, title):
        prefix = f"{title} · " if title else ""
        li = self.session.primary.layer(self.session.state.layer)
        zone = _ZONE_TITLE.get(li.zone_rule if li else None, "fraction in the activation's zone")
        plots = []
        for r, (t, y) in enumerate((("γ (scale)", "γ"), ("β (shift)", "β"), (zone, "fraction"))):
            p = self.glw.addPlot(row=r, col=col)
            style.style_plot(p, prefix + t, "step", y)
            plots.append(p)
        return plots

    def draw(self, plots, slot, layer, overlaid):
        t = gamma_beta_table(slot.run, layer, self.session.state.phase)
        x = t["step"]
        pg_, pb, ps = plots
        c = style.OKABE_ITO
        ch = self.current_channel()
        ct = channel_table(slot.run, layer, ch, ("gamma", "beta"), self.session.state.phase)
        li = slot.layer(layer)
        if li.affine is False:  # NaN by design: no curves and no NaN marks, a note instead
            why = "a probe, no BN" if li.kind == "Probe" else "affine=False"
            self.add_note(f"{run_prefix(slot)}{layer} has no γ/β ({why}): only its zone fractions are shown.")
        else:
            self.ink.band(pg_, x, t["gamma_abs_min"], t["gamma_abs_max"], c["blue"], 40, "|γ| min–max over channels")
            self.ink.band(pb, x, -t["beta_abs_max"], t["beta_abs_max"], c["orange"], 35, "±max |β| over channels")
            self.ink.curve(pg_, x, t["gamma_mean"], c["blue"], "mean γ")
            self.ink.curve(pb, x, t["beta_mean"], c["orange"], "mean β")
            self.ink.curve(pg_, ct["step"], ct["gamma"], c["black"], f"channel {ch}", width=1)
            self.ink.curve(pb, ct["step"], ct["beta"], c["black"], f"channel {ch}", width=1)
            self.ink.mark_nonfinite(pg_, x, t["gamma_mean"])
            self.ink.mark_nonfinite(pb, x, t["beta_mean"])
        self.ink.curve(ps, x, t["sat_y"], c["vermillion"], "y = γ·x-hat + β (with γ/β)", width=2)
        self.ink.curve(ps, x, t["sat_xhat"], c["green"], "x-hat (without γ/β)")
        self.ink.curve(ps, x, t["zone_channels"], c["purple"], "channels ≥99% in zone", width=1)
        ps.setLimits(yMin=-0.02, yMax=1.02, minYRange=1.04)  # fractions: always the whole 0..1
        self.ink.mark_nonfinite(ps, x, t["sat_y"])
        return {**t, **at_steps(ct, t["step"], ch)}

    def readout_columns(self):
        return [
            ("gamma_mean", "mean γ"),
            ("beta_mean", "mean β"),
            ("sat_y", "y in zone"),
            ("sat_xhat", "x-hat in zone"),
        ]
