"""The schedule a recording is given: every k-th training step, and the recorded rows that also
carry the large per-channel and histogram fields ('auto': from the model's size, so that a long
run stays small; docs/format.md). ``rows.py`` applies it row by row."""

from __future__ import annotations

import math
from dataclasses import dataclass

from bnviz.store import schema

# Per-channel rows are large (len(CHANNEL_FIELDS) float32 per channel); by default they are
# written only often enough to average this many bytes per training step, and histograms
# this many bytes, so a 100k-step ResNet-50 run stays under 2 GB (docs/format.md).
CHANNEL_BYTES_PER_STEP = 4096
HIST_BYTES_PER_STEP = 1024


@dataclass(frozen=True)
class Schedule:
    every: int
    channel_every: int
    hist_every: int

    def as_meta(self) -> dict:
        return {
            "every": self.every,
            "channel_every": self.channel_every,
            "hist_every": self.hist_every,
            "rule": "channel and histogram rows on every channel_every-th / hist_every-th "
            "recorded train row and on every eval row",
        }


def default_schedule(
    num_layers: int,
    total_channels: int,
    every: int = 1,
    channel_every: int | str = "auto",
    hist_every: int | str = "auto",
) -> Schedule:
    """Resolve 'auto' intervals (counted in recorded rows) from the model's size."""
    check_intervals(every, channel_every, hist_every)
    if channel_every == "auto":
        row = total_channels * len(schema.CHANNEL_FIELDS) * 4
        channel_every = max(1, math.ceil(row / (CHANNEL_BYTES_PER_STEP * every)))
    if hist_every == "auto":
        row = num_layers * len(schema.TENSORS) * (schema.HIST_BINS + len(schema.HIST_EXTRA) + 2) * 4
        hist_every = max(1, math.ceil(row / (HIST_BYTES_PER_STEP * every)))
    return Schedule(every, int(channel_every), int(hist_every))  # ints, checked above


def check_intervals(every, channel_every, hist_every) -> None:
    """ValueError unless ``every`` is a positive int and the tiers' intervals are positive ints or 'auto'."""
    for name, value, auto in (
        ("every", every, False),
        ("channel_every", channel_every, True),
        ("hist_every", hist_every, True),
    ):
        if not (isinstance(value, int) and value >= 1) and not (auto and value == "auto"):
            allowed = "a positive int or 'auto'" if auto else "a positive int"
            raise ValueError(f"{name} must be {allowed}, got {value!r}")
