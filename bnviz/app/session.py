"""The open recordings and the view state: what every widget and the export share (no Qt)."""

from __future__ import annotations

import fnmatch
import os
from dataclasses import dataclass

import numpy as np

from bnviz.app.state import Signal, ViewState
from bnviz.app.stepping import advance, big_jump, snap
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
        self.live = False  # a training process is still writing (as of the last open or refresh)
        self.fresh = False  # the last open was of another recording, not a reload or a layout
        self.runs_changed = Signal()
        self.data_changed = Signal()

    # --- opening -------------------------------------------------------------------------
    def open(self, path: str, compare: str | None = None, keep_state: bool = False) -> None:
        """Open ``path`` (and ``compare``); raises the store's RunFileError on bad files.

        Both are opened before anything is replaced, so a bad file leaves the session as it was.
        Another recording replacing an open one starts at its own latest step and whole range;
        the first open and ``keep_state`` (layouts) keep the state's (where the run has them).
        A run still being written opens following its latest step (``follow``).
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
        self.live = any(s.live for s in self.slots)
        self.fresh = not keep_state and not same
        self.opening = True  # listeners skip redraws until runs_changed: one draw per open
        try:
            self._fix_state()
            if not keep_state and not same and self.live:
                self.follow()
        finally:
            self.opening = False
        self.runs_changed.emit()

    def close(self) -> None:
        for s in self.slots:
            s.run.close()
        self.slots = []
        self._steps, self._phases = np.zeros(0, np.int64), np.zeros(0, np.int8)
        self.live = False

    def reload(self) -> None:
        """Reopen the same files and keep the view state."""
        if not self.slots:
            return
        paths = [s.path for s in self.slots]
        self.open(paths[0], paths[1] if len(paths) > 1 else None)

    def refresh(self) -> bool:
        """Poll live runs (every rank of a distributed job) for new rows and whether a writer is
        still live; True when any grew. The live timer calls it; nothing else reads the writer."""
        grew = False
        for s in self.slots:
            grew |= bool(refresh_ranks(s.ranks))
        self.live = any(s.live for s in self.slots)
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

    def extent(self) -> tuple[int, int] | None:
        """The steps every open run spans together: the time plots' whole-run range."""
        ends = [(int(s.run.steps[0]), int(s.run.steps[-1])) for s in self.slots[1:] if len(s.run.steps)]
        if len(self.steps):
            ends.append((int(self.steps[0]), int(self.steps[-1])))
        if not ends:
            return None
        return min(a for a, _ in ends), max(b for _, b in ends)

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

    # --- navigation: what the user does (keys, timeline, clicks). Moving the cursor or the range
    # stops live following; ``follow`` brings it back. ------------------------------------------
    def go_to(self, step: int | None, **more) -> None:
        """Put the cursor on ``step`` (with any other state changes, e.g. a clicked channel)."""
        self.state.update(step=step, follow_latest=False, **more)

    def step_rows(self, rows: int) -> None:
        """Move the cursor ``rows`` recorded rows (negative: back), stopping at the ends."""
        step, _ = advance(self.steps, self.cursor_step(), rows, loop=False)
        if step is not None:
            self.go_to(step)

    def jump(self, direction: int) -> None:
        """Shift+arrow: 5% of the run forward (1) or back (-1)."""
        self.step_rows(direction * big_jump(len(self.steps)))

    def go_row(self, row: int) -> None:
        """The first (0) or last (-1) recorded step; the last one of a live run follows it."""
        if not len(self.steps):
            return
        if row == -1 and self.live:
            self.follow()
        else:
            self.go_to(int(self.steps[row]))

    def play_tick(self) -> bool:
        """One frame of playback (``speed`` rows on); False once playback reached its end."""
        step, playing = advance(self.steps, self.cursor_step(), self.state.speed, self.state.loop)
        if step is not None:
            self.go_to(step)
        return playing

    def zoom(self, step_range: tuple[int, int] | None) -> None:
        """Show these steps in the time plots (None: the whole run, which following keeps)."""
        if step_range is None:
            self.state.update(step_range=None)
        else:
            self.state.update(step_range=step_range, follow_latest=False)

    def follow(self, on: bool = True) -> None:
        """Follow the latest step: the cursor on it and the whole, growing run in view."""
        if on:
            self.state.update(follow_latest=True, step=self.latest_step(), step_range=None)
        else:
            self.state.update(follow_latest=False)

    def pin_reference(self) -> None:
        self.state.update(reference_step=self.cursor_step())

    def toggle_bookmark(self) -> None:
        """Mark the cursor step (B), or unmark it; bookmarks are saved in layouts."""
        step = self.cursor_step()
        if step is not None:
            marks = set(self.state.bookmarks)
            self.state.update(bookmarks=tuple(marks ^ {step}))

    def go_bookmark(self, direction: int) -> None:
        """The next (1) or previous (-1) bookmark from the cursor."""
        step, marks = self.cursor_step(), self.state.bookmarks
        if step is None or not marks:
            return
        later = [m for m in marks if (m - step) * direction > 0]
        if later:
            self.go_to(min(later, key=lambda m: abs(m - step)))

    def next_layer(self, direction: int) -> None:
        """The next (1) or previous (-1) layer in forward order, among those the filter shows."""
        names = self.layer_names()
        if not names:
            return
        cur = self.state.layer
        i = names.index(cur) + direction if cur in names else 0
        self.state.update(layer=names[i % len(names)])

    def layer_names(self) -> list[str]:
        """The primary run's layers in forward order that match ``state.layer_filter``."""
        if self.primary is None:
            return []
        return [li.path for li in self.primary.run.layers if layer_matches(li.path, self.state.layer_filter)]


def layer_matches(path: str, pattern: str) -> bool:
    """A layer filter: empty matches all; with * ? [ a glob, else a case-insensitive substring."""
    pattern = pattern.strip()
    if not pattern:
        return True
    if any(c in pattern for c in "*?["):
        return fnmatch.fnmatchcase(path.lower(), pattern.lower())
    return pattern.lower() in path.lower()
