"""Going to a finding in the open session: what clicking it shows, and what a run opens on (its
most severe finding). Qt-free; ``finding_view`` decides which view shows a finding best."""

from __future__ import annotations

from bnviz.app.finding_view import finding_changes


def finding_target(f, session, with_step: bool = True) -> dict:
    """The ``ViewState`` changes that show finding ``f`` here (layer, view, channel; and its step
    and reference step unless ``with_step`` is False, e.g. while following a live run)."""
    changes = finding_changes(f, session.steps)
    primary = session.primary
    if not any(s.layer(f.layer) is not None for s in session.slots):
        changes["layer"] = session.state.layer  # not a layer of any open run (a stale finding)
    if changes["view"] == "ranks" and (primary is None or len(primary.ranks) < 2):
        changes["view"] = "drift"
    if session.state.view == "channels":  # keep the metric the user chose there
        changes.pop("channel_metric", None)
    if not with_step:
        changes.pop("step", None)
        changes.pop("reference_step", None)
    return changes


def show_finding(session, f, with_step: bool = True) -> None:
    """Go to finding ``f``; a step in it moves the cursor, which stops live following."""
    changes = finding_target(f, session, with_step)
    if "step" in changes:
        session.go_to(changes.pop("step"), **changes)
    else:
        session.state.update(**changes)
