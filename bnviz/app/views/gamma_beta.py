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

    def draw(self, plots, slot, layer, dashed):
        t = gamma_beta_table(slot.run, layer, self.session.state.phase)
        x = t["step"]
        tag = f" ({slot.label})" if dashed else ""
        pg_, pb, ps = plots
        c = style.OKABE_ITO
        ch = self.current_channel()
        ct = channel_table(slot.run, layer, ch, ("gamma", "beta"), self.session.state.phase)
        li = slot.layer(layer)
        if li.affine is False:  # NaN by design: no curves and no NaN marks, a note instead
            why = "a probe, no BN" if li.kind == "Probe" else "affine=False"
            self.add_note(f"{run_prefix(slot)}{layer} has no γ/β ({why}): only its zone fractions are shown.")
        else:
            if not dashed:
                self.band(
                    pg_, x, t["gamma_abs_min"], t["gamma_abs_max"], c["blue"], 40, f"|γ| min–max over channels{tag}"
                )
                self.band(pb, x, -t["beta_abs_max"], t["beta_abs_max"], c["orange"], 35, f"±max |β| over channels{tag}")
            self.curve(pg_, x, t["gamma_mean"], c["blue"], f"mean γ{tag}", dashed)
            self.curve(pb, x, t["beta_mean"], c["orange"], f"mean β{tag}", dashed)
            self.curve(pg_, ct["step"], ct["gamma"], c["black"], f"channel {ch}{tag}", dashed, width=1)
            self.curve(pb, ct["step"], ct["beta"], c["black"], f"channel {ch}{tag}", dashed, width=1)
            self.mark_nonfinite(pg_, x, t["gamma_mean"])
            self.mark_nonfinite(pb, x, t["beta_mean"])
        self.curve(ps, x, t["sat_y"], c["vermillion"], f"y = γ·x-hat + β (with γ/β){tag}", dashed, width=2)
        self.curve(ps, x, t["sat_xhat"], c["green"], f"x-hat (without γ/β){tag}", dashed)
        self.curve(ps, x, t["zone_channels"], c["purple"], f"channels ≥99% in zone{tag}", dashed, width=1)
        ps.setLimits(yMin=-0.02, yMax=1.02, minYRange=1.04)  # fractions: always the whole 0..1
        self.mark_nonfinite(ps, x, t["sat_y"])
        return {**t, **at_steps(ct, t["step"], ch)}

    def readout_columns(self):
        return [
            ("gamma_mean", "mean γ"),
            ("beta_mean", "mean β"),
            ("sat_y", "y in zone"),
            ("sat_xhat", "x-hat in zone"),
        ]
