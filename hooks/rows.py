"""Which forwards become rows, and which buffer slots a row fills: the row schedule (pure Python).

A row is one snapshot of the layers in one phase (train 0 / eval 1, the layer's ``module.training``)
within one step: the FIRST forward of that phase after the step began is recorded, later forwards
in the same step and phase (and a reused module's second call) are not. A row closes when the phase
switches, at the end of the step, or when the buffers are taken. Rows carry the number of the step
in progress (the ``step`` of the next ``end_step``; eval rows between ``end_step(t)`` and
``end_step(t + 1)`` carry t + 1). ``every=k`` records train rows on steps with step % k == 0; the
channel and histogram tiers take every ``channel_every``-th / ``hist_every``-th recorded train row
and every eval row. When ``capacity`` rows wait in the buffers, a new row is dropped and its step
counted once in ``dropped_steps``.
"""

from __future__ import annotations

import enum


class Admit(enum.Enum):
    SKIP = 0  # not recorded
    JOIN = 1  # recorded into the open row
    OPEN = 2  # recorded into a new row: the caller closes the open one first, then calls ``open``


class Row:
    """One row: its slots in the summary / channel / histogram buffers (None: not in that tier)."""

    __slots__ = ("index", "step", "phase", "channel", "hist", "time", "n")

    def __init__(self, index: int, step: int, phase: int, channel: int | None, hist: int | None):
        self.index, self.step, self.phase, self.channel, self.hist = index, step, phase, channel, hist
        self.time = 0.0
        self.n: list[float] | None = None


class RowSchedule:
    def __init__(self, *, capacity: int, every: int, channel_every: int, hist_every: int, first_step: int,
                 first_train_row: int):  # fmt: skip
        self.capacity = capacity
        self.every, self.channel_every, self.hist_every = every, channel_every, hist_every
        self.step = first_step
        self.train_rows = first_train_row
        self.dropped_steps = 0
        self._last_dropped: int | None = None
        self.phase: int | None = None  # the open row's phase
        self.open_row: Row | None = None
        self._done_phases: set[int] = set()
        self.reset()

    def reset(self) -> None:
        """Empty buffers: slots count from 0 again (the open row, if any, must be closed first)."""
        self.rows: list[Row] = []
        self._step_rows: list[Row] = []  # opened since the last end_step
        self.channel_rows = self.hist_rows = 0

    @property
    def closed_rows(self) -> int:
        return len(self.rows) - (self.phase is not None)

    def admit(self, phase: int, seen: bool) -> Admit:
        """A forward in ``phase`` of a layer that has (``seen``) or has not yet reported to the open row."""
        if phase == self.phase:
            return Admit.SKIP if seen else Admit.JOIN
        if phase in self._done_phases or (phase == 0 and self.step % self.every):
            return Admit.SKIP
        if len(self.rows) >= self.capacity:
            if self._last_dropped != self.step:
                self._last_dropped = self.step
                self.dropped_steps += 1
            self._done_phases.add(phase)
            return Admit.SKIP
        return Admit.OPEN

    def open(self, phase: int) -> Row:
        if phase == 0:
            channel = self.train_rows % self.channel_every == 0
            hist = self.train_rows % self.hist_every == 0
            self.train_rows += 1
        else:
            channel = hist = True
        row = Row(
            len(self.rows),
            self.step,
            phase,
            self.channel_rows if channel else None,
            self.hist_rows if hist else None,
        )
        self.channel_rows += channel
        self.hist_rows += hist
        self.rows.append(row)
        self._step_rows.append(row)
        self.phase, self.open_row = phase, row
        return row

    def close(self) -> Row:
        row = self.open_row
        assert row is not None and self.phase is not None
        self._done_phases.add(self.phase)
        self.phase = self.open_row = None
        return row

    def end_step(self, step: int) -> None:
        """Number the step's rows ``step`` (the caller closed the open row)."""
        for row in self._step_rows:
            row.step = step
        self._step_rows = []
        self._done_phases = set()
        self.step = step + 1

    def take(self) -> list[Row]:
        """The rows in the buffers, which start empty again (the open row must be closed first)."""
        rows = self.rows
        self.reset()
        return rows
