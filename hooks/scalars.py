"""User scalars (loss, accuracy, lr) logged with ``rec.log``: kept as given on the training
thread, turned into the block's scalar rows on the writer thread."""

from __future__ import annotations

import numpy as np
import torch

from bnviz.store import schema
from bnviz.store.block import Block
from bnviz.store.writer import encode_scalar_name


class ScalarLog:
    """User scalars (loss, accuracy, lr), kept as given until a flush converts them.

    Tensors are stored detached and turned into floats on the writer thread, so logging a
    loss tensor never synchronises the training thread with the device."""

    def __init__(self):
        self.names: list[str] = []
        self._rows: dict[int, dict[int, object]] = {}
        self._current: dict[int, object] = {}  # the step in progress: numbered when it ends

    def log(self, step: int | None, values: dict) -> None:
        """Keep ``values`` for ``step``, or for the step in progress when None."""
        row = self._current if step is None else self._rows.setdefault(step, {})
        for name, value in values.items():
            if isinstance(value, torch.Tensor):
                if value.numel() != 1:
                    raise ValueError(f"scalar {name!r} must be a single number, got shape {tuple(value.shape)}")
                value = value.detach()
            elif not isinstance(value, (int, float, np.number)):
                raise TypeError(f"scalar {name!r} must be a number or a one-element tensor, got {type(value).__name__}")
            if name not in self.names:
                if len(self.names) >= schema.MAX_SCALARS:
                    raise ValueError(
                        f"bnviz records at most {schema.MAX_SCALARS} scalar names; {name!r} would be one more"
                    )
                encode_scalar_name(name)
                self.names.append(name)
            row[self.names.index(name)] = value

    def end(self, step: int) -> None:
        """The step in progress ended as ``step``."""
        if self._current:
            self._rows.setdefault(step, {}).update(self._current)
            self._current = {}

    def take(self):
        rows, self._rows = self._rows, {}
        return list(self.names), rows


class PendingWithScalars:
    """Adds the scalars logged since the last flush to the engine's block, on the writer thread."""

    def __init__(self, pending, names, rows):
        self._pending, self._names, self._rows = pending, names, rows

    def wait(self) -> Block:
        block = self._pending.wait()
        steps = sorted(self._rows)
        values = np.full((len(steps), schema.MAX_SCALARS), np.nan)
        for r, step in enumerate(steps):
            for slot, value in self._rows[step].items():
                values[r, slot] = float(value)
        block.scalar_step = np.asarray(steps, np.int64)
        block.scalar_values = values
        block.scalar_names = self._names
        return block
