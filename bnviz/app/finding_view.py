"""Which view, layer, step and channel show a finding best.

One choice for the findings panel (a click shows the finding) and ``bnviz report`` (each
finding's picture). Qt-free: ``ViewState`` changes only.
"""

from __future__ import annotations

VIEW_FOR_KIND = {
    "nonfinite": "drift",
    "dead": "gamma_beta",
    "saturated": "gamma_beta",
    "gamma_beta_zone": "gamma_beta",
    "gamma_collapse": "gamma_beta",
    "train_eval": "train_eval",
    "small_batch": "drift",
    "drift": "distribution",
    "ranks_disagree": "ranks",
}


def finding_changes(finding, steps) -> dict:
    """The ``ViewState`` fields that show ``finding`` (a ``Finding``) of a run with ``steps``:
    drift compares the last step's distribution against the first; others go to where the
    finding starts, on its first affected channel."""
    changes = {"layer": finding.layer, "view": VIEW_FOR_KIND.get(finding.kind, "drift")}
    if finding.channels:
        changes["channel"] = int(finding.channels[0])
    if finding.kind == "drift" and len(steps):
        changes["reference_step"] = int(steps[0])
        changes["step"] = finding.last_step
    elif finding.first_step is not None:
        changes["step"] = finding.first_step
    if finding.kind in ("dead", "saturated"):
        changes["channel_metric"] = "sat_y"
    return changes
