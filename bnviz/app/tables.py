"""The numbers a view exports as CSV, without Qt: what each view's ``draw`` returns and
``BaseView.export_table`` joins, computed from a ``ViewState`` and the open runs.

``bnviz export -o x.csv`` uses this, so CSV works on a base install (no PySide6); the test
suite checks, view by view, that it equals the live view's table.
"""

from __future__ import annotations

from bnviz.app.data import (
    Table,
    at_steps,
    channel_matrix,
    channel_table,
    distribution,
    distribution_history,
    distribution_table,
    drift_table,
    gamma_beta_table,
    history_table,
    layers_table,
    matrix_table,
    overview_matrix,
    rank_data,
    rank_table,
    rows_in_range,
    train_eval_table,
)
from bnviz.app.session import layer_matches, run_label
from bnviz.app.stepping import snap

TIME_AXIS = {"drift", "channels", "gamma_beta", "train_eval", "overview", "layers", "ranks"}  # not: distribution


def run_table(view: str, run, layer: str, state, step: int | None) -> Table:
    """One run's table for ``view`` of ``layer``; ``step``: the cursor step (distribution)."""
    ch = state.channel or 0
    if view == "drift":
        return drift_table(run, layer, state.phase)
    if view == "gamma_beta":
        t = gamma_beta_table(run, layer, state.phase)
        return {**t, **at_steps(channel_table(run, layer, ch, ("gamma", "beta"), state.phase), t["step"], ch)}
    if view == "train_eval":
        t = train_eval_table(run, layer, "all")
        ct = channel_table(run, layer, ch, ("pre_mean", "running_mean", "pre_var", "running_var"), "train")
        return {**t, **at_steps(ct, t["step"], ch)}
    if view == "channels":
        steps, m = channel_matrix(run, layer, state.channel_metric, state.phase)
        return matrix_table(steps, m, f"{state.channel_metric}_c") if len(steps) else {"step": steps}
    if view == "overview":
        steps, m = overview_matrix(run, state.overview_metric, state.phase)
        if not len(steps):
            return {"step": steps}
        return {"step": steps, **{li.path: m[:, i] for i, li in enumerate(run.layers)}}
    if view == "ranks":
        return rank_table(rank_data(getattr(run, "ranks", [run]), layer, state.phase))
    if view == "distribution":
        return distribution_table(distribution(run, layer, step, state.tensors))
    if view == "layers":
        names = [li.path for li in run.layers if layer_matches(li.path, state.layer_filter)]
        return layers_table(run, names, state.layers_metric, state.phase)
    if view == "history":
        return history_table(*distribution_history(run, layer, state.history_tensor, state.phase))
    raise ValueError(f"unknown view {view!r}")


def export_table(state, main, *others) -> Table:
    """The CSV of ``state``'s view for ``main`` (and ``others``, compared: columns prefixed
    ``A.``, ``B.``, ... by place in the run list; runs in ``state.hidden_runs`` and runs without
    the layer left out), as the window would export it. The cursor step and the default layer
    are the reference run's (``state.reference_run``)."""
    runs = [main, *(r for r in others if r is not None)]
    ref = runs[state.reference_run] if 0 <= state.reference_run < len(runs) else runs[0]
    names = list(dict.fromkeys(li.path for r in [ref, *runs] for li in r.layers))
    layer = state.layer if state.layer in names else (names[0] if names else None)
    labels = [run_label(i) if len(runs) > 1 else "" for i in range(len(runs))]
    shown = [(lab, r) for i, (lab, r) in enumerate(zip(labels, runs)) if i not in state.hidden_runs]
    steps = ref.steps
    step = state.step if state.step is not None and len(steps) and steps[0] <= state.step <= steps[-1] else None
    step = snap(steps, step)
    timed = state.view in TIME_AXIS or (state.view == "history" and state.history_mode == "heatmap")
    rng = state.step_range if timed else None
    tables = {
        label: rows_in_range(run_table(state.view, run, layer, state, step), rng)
        for label, run in shown
        if layer is not None and any(li.path == layer for li in run.layers)
    }
    if len(tables) == 1:
        return next(iter(tables.values()))
    return {f"{label}.{k}": v for label, t in tables.items() for k, v in t.items()}
