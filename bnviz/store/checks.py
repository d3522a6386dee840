"""What a reader checks before it trusts a number from a file: types, shapes and sane bounds,
so a damaged or crafted file gives one ``CorruptRunFile`` line instead of a traceback, a hang
or an allocation of terabytes. Every function takes the file's path (for the message) and the
raw value, and returns the value in the type the reader uses.
"""

from __future__ import annotations

import json
import math

import numpy as np

from bnviz.store.errors import CorruptRunFile

# Bounds far above any real recording, low enough that looping over or allocating them is cheap.
MAX_LAYERS = 20_000
MAX_CHANNELS = 1 << 24  # per layer
MAX_PROBES = 4096  # probe channels per layer
MAX_EXTRA_FIELDS = 256  # fields a newer minor version may have added to a tier
MAX_WORLD_SIZE = 65_536  # processes of one distributed job
MAX_PID = 1 << 31
MAX_TEXT_BYTES = 64 * 1024 * 1024  # the layer table, a JSON attribute
MAX_ATTR_BYTES = 1024 * 1024
MAX_STEP = 1 << 53  # steps are exact in float64 below this
_JSON_KINDS = {"user_meta": dict, "schedule": dict, "engine": dict}


def fail(path, problem: str):
    raise CorruptRunFile(path, problem)


def integer(path, what: str, value, lo: int, hi: int) -> int:
    """``value`` as an int in [lo, hi]."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        if isinstance(value, (float, np.floating)) and math.isfinite(value) and value == int(value):
            value = int(value)
        else:
            fail(path, f"{what} is {_shown(value)}, not a whole number")
    if not lo <= int(value) <= hi:
        fail(path, f"{what} is {int(value)}, outside the plausible range {lo} to {hi}")
    return int(value)


def number(path, what: str, value, lo: float, hi: float) -> float:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.number)):
        fail(path, f"{what} is {_shown(value)}, not a number")
    value = float(value)
    if not lo <= value <= hi:  # NaN fails too
        fail(path, f"{what} is {value}, outside the plausible range {lo} to {hi}")
    return value


def text(path, what: str, value) -> str:
    if not isinstance(value, str):
        fail(path, f"{what} is {_shown(value)}, not text")
    return value


def json_value(path, what: str, raw, kind=None):
    """Parse JSON text (bytes or str), optionally of one type (dict / list)."""
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8", "replace")
    if not isinstance(raw, str):
        fail(path, f"{what} is {_shown(raw)}, not JSON text")
    if len(raw) > MAX_TEXT_BYTES:
        fail(path, f"{what} is {len(raw)} characters long, more than any bnviz file holds")
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError) as err:
        fail(path, f"{what} is not valid JSON ({err.__class__.__name__})")
    if kind is not None and not isinstance(value, kind):
        fail(path, f"{what} is a JSON {_json_type(value)}, expected a JSON {_json_type(kind())}")
    return value


def meta_value(path, key: str, value):
    """One root attribute as the reader's meta holds it; JSON keys parsed to their type."""
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    elif isinstance(value, np.generic):
        value = value.item()
    elif isinstance(value, np.ndarray):
        value = value.tolist()
    if key in _JSON_KINDS:
        return json_value(path, f"attribute {key}", value, _JSON_KINDS[key])
    if key in ("rank", "local_rank"):
        return integer(path, f"attribute {key}", value, -1, MAX_WORLD_SIZE - 1)
    if key == "world_size":
        return integer(path, "attribute world_size (processes in the job)", value, 1, MAX_WORLD_SIZE)
    if key == "pid":
        return integer(path, "attribute pid", value, 0, MAX_PID)
    if key in ("flush_seconds", "flush_every"):
        return number(path, f"attribute {key}", value, 0, 1e12)
    if key in (
        "host",
        "job_id",
        "model_class",
        "run_name",
        "start_time",
        "command_line",
        "torch_version",
        "bnviz_version",
        "dist_backend",
    ):
        return value if isinstance(value, str) else str(value)
    return value


LAYER_FIELDS: dict[str, tuple[type | tuple[type, ...], bool]] = {  # key: (types accepted, may be null)
    "path": (str, False),
    "kind": (str, False),
    "activation": (str, False),
    "activation_source": (str, False),
    "zone_rule": (str, False),
    "eps": ((int, float), True),
    "momentum": ((int, float), True),
    "zone_threshold": ((int, float), True),
    "affine": (bool, True),
    "track_running_stats": (bool, True),
}


def layer_table(path, raw) -> list[dict]:
    """The ``layers`` dataset: a JSON list of layer dicts with the documented keys and types."""
    table = json_value(path, "the layer table", raw, list)
    if not 1 <= len(table) <= MAX_LAYERS:
        fail(path, f"the layer table has {len(table)} layers (a run has 1 to {MAX_LAYERS})")
    seen = set()
    for i, d in enumerate(table):
        where = f"layer {i} of the layer table"
        if not isinstance(d, dict):
            fail(path, f"{where} is a JSON {_json_type(d)}, expected a JSON object")
        if d.get("index") != i or isinstance(d.get("index"), bool):
            fail(path, f"{where} has index {_shown(d.get('index'))}, expected {i}")
        if not isinstance(d.get("path"), str):  # "" is legal: the model itself is the BN layer
            fail(path, f"{where} has no layer path (text)")
        if d["path"] in seen:
            fail(path, f"{where} repeats the layer path {d['path']!r}")
        seen.add(d["path"])
        for key, (types, nullable) in LAYER_FIELDS.items():
            v = d.get(key)
            if (
                key in d
                and not (v is None and nullable)
                and (not isinstance(v, types) or (types is not bool and isinstance(v, bool)))
            ):
                fail(path, f"{where} ({d['path']!r}): {key} is {_shown(v)}")
        n = integer(path, f"{where} ({d['path']!r}): num_features", d.get("num_features"), 1, MAX_CHANNELS)
        probes = d.get("probe_channels") or []
        if not isinstance(probes, list) or len(probes) > MAX_PROBES:
            fail(path, f"{where} ({d['path']!r}): probe_channels is not a list of channels")
        for c in probes:
            integer(path, f"{where} ({d['path']!r}): probe channel", c, 0, n - 1)
    return table


def dataset_shape(path, name: str, ds, row_shape: tuple, kinds: str, free_axes=()) -> tuple:
    """Check a growing dataset's rank, per-row shape (axes in ``free_axes`` may differ, within
    bounds) and dtype kind ('f', 'i', ...); returns its shape."""
    shape, dtype = ds.shape, ds.dtype
    if dtype.kind not in kinds or dtype.fields is not None:
        fail(path, f"dataset {name} holds {dtype}, expected {'numbers' if 'f' in kinds else 'integers'}")
    if len(shape) != 1 + len(row_shape):
        fail(path, f"dataset {name} has shape {shape}, expected (rows, {', '.join(map(str, row_shape))})")
    for axis, (got, want) in enumerate(zip(shape[1:], row_shape)):
        if axis in free_axes:
            if not 0 <= got <= want:
                fail(path, f"dataset {name} has shape {shape}: axis {axis + 1} is implausibly large")
        elif got != want:
            fail(path, f"dataset {name} has shape {shape}, expected (rows, {', '.join(map(str, row_shape))})")
    return shape


def committed(path, counts, tiers, capacity: dict) -> dict:
    """The ``commit`` dataset: one count per tier, each within the rows its datasets hold."""
    counts = np.asarray(counts)
    if counts.shape != (len(tiers),) or counts.dtype.kind not in "iu":
        fail(path, f"the commit record has shape {counts.shape} of {counts.dtype}, expected {len(tiers)} integers")
    out = {}
    for tier, n in zip(tiers, counts.tolist()):
        if not 0 <= n <= capacity[tier]:
            fail(
                path,
                f"the commit record says {n} {tier} rows, but the file holds {capacity[tier]}; the file is damaged",
            )
        out[tier] = int(n)
    return out


def step_column(path, name: str, steps: np.ndarray) -> np.ndarray:
    """Steps of one tier: whole numbers from 0, in order."""
    if len(steps) and (steps.min() < 0 or steps.max() >= MAX_STEP):
        fail(path, f"{name} holds step {int(steps.min() if steps.min() < 0 else steps.max())}, outside 0 to {MAX_STEP}")
    if len(steps) > 1 and np.any(steps[1:] < steps[:-1]):
        row = int(np.flatnonzero(steps[1:] < steps[:-1])[0]) + 1
        fail(
            path,
            f"{name} goes back from step {int(steps[row - 1])} to {int(steps[row])} at row {row}; the file is damaged",
        )
    return steps


def phase_column(path, name: str, phases: np.ndarray, codes) -> np.ndarray:
    bad = ~np.isin(phases, list(codes))
    if bad.any():
        fail(path, f"{name} holds phase code {int(phases[bad][0])} (known: {', '.join(map(str, sorted(codes)))})")
    return phases


def _json_type(value) -> str:
    return {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}.get(
        type(value), "number"
    )


def _shown(value) -> str:
    shown = repr(value)
    return shown if len(shown) <= 40 else shown[:37] + "..."
