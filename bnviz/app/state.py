"""The viewer's state: one Qt-free, serialisable object that every widget listens to.

The GUI, saved layouts, Reload and the headless export all go through a ``ViewState``, so an
export reproduces the screen and tests drive the state instead of clicking. Widgets subscribe
with ``state.changed.connect(fn)``; ``fn`` receives the set of field names that changed.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any

from bnviz.app.colour_scale import check_limits
from bnviz.store.schema import CHANNEL_FIELDS, TENSORS

VIEWS = ("drift", "channels", "distribution", "history", "gamma_beta", "train_eval", "overview", "layers", "ranks")
# what each tab shows, for its tooltip
VIEW_TIPS = {
    "drift": "Pre- and post-BN moments and percentile bands of the layer over steps",
    "channels": "One per-channel statistic as a channel × step heatmap; click a cell to pick channel and step",
    "distribution": "Pre-BN, x-hat and post-BN histograms at the cursor step, with the activation's zone",
    "history": "One tensor's histograms through time: a step × value heatmap with the activation's zone, "
    "or TensorBoard-style offset ridgelines",
    "gamma_beta": "γ and β over steps, and how much of y with vs without γ/β lands in the activation's zone",
    "train_eval": "Running statistics (what eval normalises with) against the batch statistics training used",
    "overview": "One metric for every layer × step: find the bad layer at a glance",
    "layers": "One statistic of several layers on one axis: the layers the tree's filter shows",
    "ranks": "How far the ranks of a distributed job disagree about this layer's batch statistics",
}
VIEW_TITLES = {
    "drift": "Drift",
    "channels": "Channels",
    "distribution": "Distribution",
    "history": "Over time",
    "gamma_beta": "γ/β effect",
    "train_eval": "Train vs eval",
    "overview": "Overview",
    "layers": "Across layers",
    "ranks": "Ranks",
}
# Per-channel statistics the channel heatmap can show.
CHANNEL_METRICS = CHANNEL_FIELDS
OVERVIEW_METRICS = ("drift", "saturation", "dead", "gamma", "nonfinite")
# layer statistics the across-layers view overlays (summary fields)
LAYER_METRICS = (
    "pre_mean",
    "pre_var",
    "post_mean",
    "post_var",
    "gamma_mean",
    "beta_mean",
    "sat_y",
    "sat_xhat",
    "run_mean_gap",
    "run_var_logratio",
    "grad_gamma_norm",
)
COMPARE_MODES = ("overlay", "side")
HISTORY_MODES = ("heatmap", "ridgelines")
X_AXES = ("step", "time")
PHASES = ("all", "train", "eval")
SPEEDS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000)
STATE_VERSION = 1


class Signal:
    """A minimal callback list, so the model needs no Qt."""

    def __init__(self) -> None:
        self._slots: list[Callable[..., Any]] = []

    def connect(self, fn: Callable[..., Any]) -> None:
        self._slots.append(fn)

    def disconnect(self, fn: Callable[..., Any]) -> None:
        if fn in self._slots:
            self._slots.remove(fn)

    def emit(self, *args: Any) -> None:
        for fn in list(self._slots):
            fn(*args)


@dataclass
class ViewState:
    layer: str | None = None  # layer path
    view: str = "drift"
    step: int | None = None  # the cursor step (None: latest)
    reference_step: int | None = None  # pinned step overlaid in distribution views
    step_range: tuple[int, int] | None = None  # detail range of time plots; None: whole run
    link_zoom: bool = True
    follow_latest: bool = False
    phase: str = "train"  # rows shown in time plots (eval rows use running stats)
    channel: int | None = None
    channel_metric: str = "post_mean"
    overview_metric: str = "drift"
    tensors: tuple[str, ...] = TENSORS  # histograms shown in the distribution view
    log_counts: bool = False
    compare_mode: str = "overlay"
    speed: int = 10  # recorded rows per playback tick
    loop: bool = True
    smoothing: float = 0.0  # EMA weight of time curves, TensorBoard's (0: off; raw kept faint)
    layer_filter: str = ""  # the layer tree shows layers matching this (substring or glob)
    bookmarks: tuple[int, ...] = ()  # steps the user marked (B), drawn in the time plots
    history_tensor: str = "post"  # the tensor the distribution-through-time view shows
    history_mode: str = "heatmap"  # ... as a step x value heatmap, or offset ridgelines
    layers_metric: str = "pre_var"  # the statistic the across-layers view overlays
    x_axis: str = "step"  # time plots' tick labels: training step or elapsed wall time
    # --- the open runs (the run list): places in the session's runs, the layout's ``paths`` order
    reference_run: int = 0  # the run the timeline, layer tree and findings follow
    hidden_runs: tuple[int, ...] = ()  # runs the views leave out (their findings too)
    # --- plots (issue 14: hover readout, heatmap colour limits, per-plot log y) ---
    crosshair: bool = True  # hovering a time plot shows a crosshair and every series' value
    # heatmap key ("channels/pre_var", "history/post", "overview/drift") -> manual (low, high);
    # a heatmap not listed has automatic limits (robust percentiles)
    colour_limits: dict[str, tuple[float, float]] = field(default_factory=dict)
    colour_log: tuple[str, ...] = ()  # heatmap keys with a logarithmic colour scale
    log_y: tuple[str, ...] = ()  # plot keys ("drift/1": a view's plot, by its index) with a log y axis
    changed: Signal = field(default_factory=Signal, repr=False, compare=False)

    def __post_init__(self) -> None:
        for name, value in asdict_state(self).items():
            setattr(self, name, _normalise(name, value))
        self._validate(asdict_state(self))

    def update(self, **changes: Any) -> set[str]:
        """Set fields and tell the listeners which ones actually changed."""
        unknown = set(changes) - set(_FIELD_NAMES)
        if unknown:
            raise AttributeError(f"ViewState has no field {sorted(unknown)}")
        changes = {k: _normalise(k, v) for k, v in changes.items()}
        self._validate({**asdict_state(self), **changes})
        names = {k for k, v in changes.items() if getattr(self, k) != v}
        for k in names:
            setattr(self, k, changes[k])
        if names:
            self.changed.emit(names)
        return names

    @staticmethod
    def _validate(values: dict[str, Any]) -> None:
        choices = {
            "view": VIEWS,
            "phase": PHASES,
            "channel_metric": CHANNEL_METRICS,
            "overview_metric": OVERVIEW_METRICS,
            "compare_mode": COMPARE_MODES,
            "history_tensor": TENSORS,
            "history_mode": HISTORY_MODES,
            "layers_metric": LAYER_METRICS,
            "x_axis": X_AXES,
        }
        for name, allowed in choices.items():
            if values[name] not in allowed:
                raise ValueError(f"{name}={values[name]!r} is not one of {', '.join(allowed)}")
        if not set(values["tensors"]) <= set(TENSORS):
            raise ValueError(f"tensors={values['tensors']!r}: each must be one of {TENSORS}")
        rng = values["step_range"]
        if rng is not None and rng[0] > rng[1]:
            raise ValueError(f"step_range={rng!r}: start is after end")
        if values["reference_run"] < 0 or any(h < 0 for h in values["hidden_runs"]):
            raise ValueError("reference_run and hidden_runs are places in the run list (0 is the first run)")
        if int(values["speed"]) < 1:
            raise ValueError("speed must be at least 1 row per tick")
        for key, (lo, hi) in values["colour_limits"].items():
            try:
                check_limits(lo, hi)
            except ValueError as e:
                raise ValueError(f"colour_limits[{key!r}]: {e}") from None
        if not 0 <= float(values["smoothing"]) < 1:
            raise ValueError(f"smoothing={values['smoothing']!r}: give an EMA weight from 0 (off) to below 1")

    def to_dict(self) -> dict[str, Any]:
        d = asdict_state(self)
        d["tensors"] = list(d["tensors"])
        d["bookmarks"] = list(d["bookmarks"])
        d["hidden_runs"] = list(d["hidden_runs"])
        d["colour_limits"] = {k: list(v) for k, v in d["colour_limits"].items()}
        d["colour_log"], d["log_y"] = list(d["colour_log"]), list(d["log_y"])
        d["step_range"] = list(d["step_range"]) if d["step_range"] is not None else None
        return {"version": STATE_VERSION, **d}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ViewState:
        """Build from ``to_dict`` output; unknown keys (from a newer bnviz) are ignored."""
        if not isinstance(d, dict):
            raise ValueError("a view state must be a JSON object")
        version = d.get("version", STATE_VERSION)
        if not isinstance(version, int) or version > STATE_VERSION:
            raise ValueError(
                f"view state version {version!r} is newer than this bnviz understands ({STATE_VERSION}); upgrade bnviz"
            )
        known = {k: _normalise(k, v) for k, v in d.items() if k in _FIELD_NAMES}
        return cls(**known)

    def assign(self, other: ViewState) -> set[str]:
        """Take every field of ``other`` (Reload and Load Layout), notifying once."""
        return self.update(**asdict_state(other))


def asdict_state(s: ViewState) -> dict[str, Any]:
    return {f.name: getattr(s, f.name) for f in fields(s) if f.name != "changed"}


_FIELD_NAMES = tuple(f.name for f in fields(ViewState) if f.name != "changed")


def _normalise(name: str, value: Any) -> Any:
    if name == "tensors":
        return tuple(value)
    if name in ("bookmarks", "hidden_runs"):
        return tuple(sorted({int(v) for v in value}))
    if name in ("colour_log", "log_y"):
        return tuple(sorted({str(v) for v in value}))
    if name == "colour_limits":
        if not isinstance(value, dict):
            raise ValueError(f"colour_limits={value!r}: give a mapping of heatmap key to [low, high]")
        try:
            return {str(k): (float(lo), float(hi)) for k, (lo, hi) in value.items()}
        except (TypeError, ValueError):
            raise ValueError(f"colour_limits={value!r}: each heatmap key needs [low, high]") from None
    if name == "smoothing":
        return float(value)
    if name == "step_range" and value is not None:
        return (int(value[0]), int(value[1]))
    if name in ("step", "reference_step", "channel", "reference_run") and value is not None:
        return int(value)
    return value


# --- plots: the keys of per-heatmap colour scales and per-plot log axes -----------------------
# the field naming what a view's heatmap shows: its colour limits are kept per statistic
HEATMAP_FIELDS = {"channels": "channel_metric", "history": "history_tensor", "overview": "overview_metric"}


def heatmap_key(state: ViewState) -> str:
    """The key of the state's view's heatmap in ``colour_limits``/``colour_log`` ("" if none)."""
    name = HEATMAP_FIELDS.get(state.view)
    return f"{state.view}/{getattr(state, name)}" if name else ""


def plot_key(view: str, index: int) -> str:
    """The key of a view's plot in ``log_y``: its index among one run's plots of the view
    (top to bottom, then left to right), so a comparison's columns share it."""
    return f"{view}/{index}"


@dataclass
class Layout:
    """A saved session: the files it used (every open run, in run-list order: the state's
    ``reference_run`` and ``hidden_runs`` are places in it) plus the view state (PlotJuggler-style
    layouts)."""

    paths: list[str]
    state: ViewState

    def to_json(self) -> str:
        return json.dumps({"bnviz_layout": 1, "paths": self.paths, "state": self.state.to_dict()}, indent=2)

    @classmethod
    def from_json(cls, text: str) -> Layout:
        try:
            d = json.loads(text)
        except json.JSONDecodeError as e:
            raise ValueError(f"not a bnviz layout (invalid JSON: {e})") from None
        if not isinstance(d, dict) or "bnviz_layout" not in d:
            raise ValueError("not a bnviz layout (no 'bnviz_layout' key)")
        # layouts of bnviz before N runs name the second run "compare"
        paths = [str(p) for p in d.get("paths", [])] + ([str(d["compare"])] if d.get("compare") else [])
        return cls(paths=paths, state=ViewState.from_dict(d.get("state", {})))
