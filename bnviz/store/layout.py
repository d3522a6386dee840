"""Where each tier lives in the HDF5 file: dataset names, row shapes, dtypes and chunking.

Shared by the writer (creates these datasets) and the reader (indexes them), so the two can
never disagree. ``docs/format.md`` documents the same table for readers without bnviz.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bnviz.store import schema

NQ = len(schema.QUANTILES)
NB = schema.HIST_BINS + len(schema.HIST_EXTRA)
F_S = len(schema.SUMMARY_FIELDS)
F_C = len(schema.CHANNEL_FIELDS)

# A chunk holds one layer's rows for about this many bytes: big enough that a layer's whole
# history is few reads, small enough that the writer's cache of one open chunk per layer stays
# small and that a short run's part-filled chunks (allocated whole) do not bloat the file.
CHUNK_TARGET_BYTES = 64 * 1024
CHANNEL_CHUNK_TARGET_BYTES = 32 * 1024
MIN_CHUNK_ROWS = 8
MAX_CHUNK_ROWS = 8192

# Root attributes and fixed datasets.
ATTR_FORMAT = "format"
ATTR_VERSION = "format_version"
LAYERS = "layers"  # scalar UTF-8 string: JSON list of layer dicts
COMMIT = "commit"  # (len(TIERS),) int64: committed rows per tier, written last
STATUS = "status"  # (3,) float64: STATUS_FIELDS
STATUS_FIELDS = ("heartbeat", "state", "dropped_steps")
STATE_LIVE, STATE_CLOSED, STATE_FAILED = 0, 1, 2
SCALAR_NAMES = "scalar_names"  # (MAX_SCALARS,) fixed-size UTF-8 bytes, b"" for a free slot
CHANNEL_GROUP = "channels"  # one dataset per layer, named by its index: channels/0, channels/1 ...

# Run metadata: root attributes. JSON_META_KEYS hold JSON text, the rest plain strings/numbers.
# META_KEYS are always present (the writer fills what the recorder does not give); the recorder
# may add further plain keys (flush_every, flush_seconds).
META_KEYS = (
    "model_class",
    "torch_version",
    "bnviz_version",
    "command_line",
    "host",
    "pid",
    "start_time",
    "run_name",
    "user_meta",
    "schedule",
)
JSON_META_KEYS = ("user_meta", "schedule", "engine")


@dataclass(frozen=True)
class Column:
    """One growing dataset: ``name`` has shape (rows, *row_shape); ``layer_axis`` is the axis
    (in row_shape) indexed by layer, so chunks hold one layer each, or None."""

    name: str
    tier: str
    row_shape: tuple
    dtype: np.dtype
    layer_axis: int | None = None


def tier_columns(n_layers: int, n_probes: int) -> list[Column]:
    """Every growing dataset except the per-layer channel datasets, in write order."""
    L, K = n_layers, n_probes
    f4, f8, i8, i1, i4 = (np.dtype(t) for t in ("<f4", "<f8", "<i8", "i1", "<i4"))
    return [
        Column("summary_step", "summary", (), i8),
        Column("summary_phase", "summary", (), i1),
        Column("summary_time", "summary", (), f8),
        Column("summary", "summary", (L, F_S), f4, 0),
        Column("quantiles", "summary", (L, len(schema.TENSORS), NQ), f4, 0),
        Column("probes", "summary", (L, K, NQ), f4, 0),
        Column("channel_step", "channels", (), i8),
        Column("channel_phase", "channels", (), i1),
        Column("hist_step", "hist", (), i8),
        Column("hist_phase", "hist", (), i1),
        Column("hist_counts", "hist", (L, len(schema.TENSORS), NB), i4, 0),
        Column("hist_range", "hist", (L, len(schema.TENSORS), 2), f4, 0),
        Column("scalar_step", "scalars", (), i8),
        Column("scalar_values", "scalars", (schema.MAX_SCALARS,), f8),
    ]


def channel_column(index: int, n_channels: int) -> Column:
    """The channel tier of layer ``index``: (rows, F_C, C); chunked one field per chunk."""
    return Column(f"{CHANNEL_GROUP}/{index}", "channels", (F_C, n_channels), np.dtype("<f4"), 0)


def chunk_shape(col: Column) -> tuple:
    """Chunks span rows and keep every axis whole except the layer (or channel field) axis."""
    per_row = [max(1, n) for n in col.row_shape]
    if col.layer_axis is not None:
        per_row[col.layer_axis] = 1
    row_bytes = int(np.prod(per_row)) * col.dtype.itemsize
    target = CHANNEL_CHUNK_TARGET_BYTES if col.name.startswith(CHANNEL_GROUP + "/") else CHUNK_TARGET_BYTES
    rows = target // row_bytes
    rows = 1 << max(0, int(rows).bit_length() - 1)  # round down to a power of two
    rows = min(MAX_CHUNK_ROWS, max(MIN_CHUNK_ROWS, rows))
    return (rows, *per_row)


def max_shape(col: Column) -> tuple:
    # A zero-length axis (no probe channels) cannot hold a chunk of 1 unless it may grow.
    return (None, *(n if n > 0 else None for n in col.row_shape))


def chunk_bytes(col: Column) -> int:
    return int(np.prod(chunk_shape(col))) * col.dtype.itemsize


def parse_version(text: str) -> tuple[int, int]:
    major, _, minor = str(text).partition(".")
    return int(major), int(minor or 0)
