"""The open recordings and the view state: what every widget and the export share (no Qt)."""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from bnviz.app.state import Signal, ViewState
from bnviz.app.stepping import snap
from bnviz.store import Run, open_run
from bnviz.store.ranks import refresh_ranks


@dataclass
class Slot:
    """One open recording and the label it carries in legends ("A", "B" in compare mode)."""

    label: str
    run: Run
    path: str

    def layer(self, name: str | None):
        """This run's layer of that name (compare matches layers by name), or None."""
        if name is None:
            return None
        for li in self.run.layers:
            if li.path == name:
                return li
        return None

    @property
    def ranks(self) -> list:
        """Every rank's run of this recording's job (``[run]`` for a single process)."""
        return getattr(self.run, "ranks", None) or [self.run]

    @property
    def live(self) -> bool:
        """A training process (any rank's) is still writing."""
        return any(r.writer_state == "live" for r in self.ranks)


class Session:
    """Holds the runs and the ``ViewState``; ``runs_changed`` fires on open/close/reload,
    ``data_changed`` when a live run grew."""

    def __init__(self, state: ViewState | None = None) -> None:
        self.state = state or ViewState()
        self.slots: list[Slot] = []
        self._steps, self._phases = np.zeros(0, np.int64), np.zeros(0, np.int8)
        self.opening = False
        self.runs_changed = Signal()
        self.data_changed = Signal()

    # --- opening -------------------------------------------------------------------------
    def open(self, path: str, compare: str | None = None, keep_state: bool = False) -> None:
        """Open ``path`` (and ``compare``); raises the store's RunFileError on bad files.

        Both are opened before anything is replaced, so a bad file leaves the session as it was.
        Another recording replacing an open one starts at its own latest step and whole range;
        the first open and ``keep_state`` (layouts) keep the state's (where the run has them).
        """
        runs = [open_run(path)]
        try:
            if compare:
                runs.append(open_run(compare))
        except Exception:
            runs[0].close()
            raise
        same = self.primary is not None and self.primary.path == os.path.abspath(path)
        self.close()
        if (
            self.primary is not None and not same and not keep_state
        ):  # another recording: its steps have nothing to do with the old range/reference
            self.state.update(step=None, step_range=None, reference_step=None)
        names = [path] + ([compare] if compare else [])
        labels = ["A", "B"] if compare else [""]
        self.slots = [Slot(lab, r, os.path.abspath(p)) for lab, r, p in zip(labels, runs, names)]
        self._steps, self._phases = np.asarray(runs[0].steps), np.asarray(runs[0].phases)
        self.opening = True  # listeners skip redraws until runs_changed: one draw per open
        try:
            self._fix_state()
        finally:
            self.opening = False
        self.runs_changed.emit()

    def close(self) -> None:
        for s in self.slots:
            s.run.close()
        self.slots = []
        self._steps, self._phases = np.zeros(0, np.int64), np.zeros(0, np.int8)

    def reload(self) -> None:
        """Reopen the same files and keep the view state."""
        if not self.slots:
            return
        paths = [s.path for s in self.slots]
        self.open(paths[0], paths[1] if len(paths) > 1 else None)

    def refresh(self) -> bool:
        """Poll live runs (every rank of a distributed job) for new rows; True when any grew."""
        grew = False
        for s in self.slots:
            grew |= bool(refresh_ranks(s.ranks))
        if grew:
            run = self.slots[0].run
            self._steps, self._phases = np.asarray(run.steps), np.asarray(run.phases)
            if self.state.follow_latest:
                self.state.update(step=self.latest_step())
            self.data_changed.emit()
        return grew

    # --- derived -------------------------------------------------------------------------
    @property
    def primary(self) -> Slot | None:
        return self.slots[0] if self.slots else None

    @property
    def compare(self) -> Slot | None:
        return self.slots[1] if len(self.slots) > 1 else None

    @property
    def steps(self) -> np.ndarray:
        """The recorded steps the cursor moves over (the primary run's summary tier, as of the
        last open or refresh: a file that breaks later still has a timeline)."""
        return self._steps

    @property
    def phases(self) -> np.ndarray:
        return self._phases

    def latest_step(self) -> int | None:
        steps = self.steps
        return int(steps[-1]) if len(steps) else None

    def cursor_step(self) -> int | None:
        return snap(self.steps, self.state.step)

    def _fix_state(self) -> None:
        """Keep the saved layer/step when the run has them (Reload, layouts); else sensible ones."""
        run = self.slots[0].run
        names = [li.path for li in run.layers]
        changes: dict = {}
        if self.state.layer not in names:
            changes["layer"] = names[0] if names else None
        steps = self.steps
        if len(steps) and (self.state.step is None or not steps[0] <= self.state.step <= steps[-1]):
            changes["step"] = int(steps[-1])
        rng = self.state.step_range
        if rng is not None and len(steps) and (rng[1] < steps[0] or rng[0] > steps[-1]):
            changes["step_range"] = None
        if changes:
            self.state.update(**changes)
