"""The open recordings and the view state: what every widget and the export share (no Qt)."""

from __future__ import annotations

import fnmatch
import os
from dataclasses import dataclass

import numpy as np

from bnviz.app.state import Layout, Signal, ViewState
from bnviz.app.stepping import advance, big_jump, snap
from bnviz.store import Run, open_run
from bnviz.store.ranks import refresh_ranks


def run_label(index: int) -> str:
    """A run's letter by its place in the run list: A..Z, then AA, AB, ... (spreadsheet style)."""
    label = ""
    index += 1
    while index:
        index, rem = divmod(index - 1, 26)
        label = chr(ord("A") + rem) + label
    return label


@dataclass(eq=False)  # a run is itself: two opens of one file are two slots
class Slot:
    """One open recording. ``index`` fixes its colour and letter for as long as it is open
    (removing another run recolours nothing); ``label`` is its letter ("" when it is the only run)."""

    label: str
    run: Run
    path: str
    index: int = 0
    # its files are read at every poll: its writer was seen live or gone (a restart may resume
    # it), or its files changed since the open; until then a run closed when opened is only
    # looked at (``changed_on_disk``: a few stats per poll)
    followed: bool = False
    seen: bool = False  # its writer's state was read (at the open)

    def __post_init__(self) -> None:
        self.reread()

    def reread(self) -> None:
        """Take the run's recorded steps as of now (open and each live refresh)."""
        self.steps, self.phases = np.asarray(self.run.steps), np.asarray(self.run.phases)

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

    def check_writer(self) -> bool:
        """Whether a training process (any rank's) is still writing; notes a run to watch for a
        resume. A run closed when opened is not read again until it is followed (``polled``)."""
        if self.seen and not self.followed:
            return False
        self.seen = True
        states = {r.writer_state for r in self.ranks}
        self.followed = self.followed or bool(states & {"live", "writer gone"})
        return "live" in states

    def polled(self) -> bool:
        """Whether a refresh reads this run's files (``followed``; a run changed on disk becomes so)."""
        if not self.followed:
            self.followed = any(getattr(r, "changed_on_disk", False) for r in self.ranks)
        return self.followed


class Session:
    """Holds the open runs and the ``ViewState``; ``runs_changed`` fires on open/close/reload,
    adding or removing a run and a new reference run, ``data_changed`` when a live run grew.

    Any number of runs may be open; ``state.reference_run`` (a place in ``slots``) is the one the
    timeline, layer tree and findings follow, ``state.hidden_runs`` the ones the views leave out.
    Layers are matched by name (path) across runs.
    """

    def __init__(self, state: ViewState | None = None) -> None:
        self.state = state or ViewState()
        self.slots: list[Slot] = []
        self.opening = False
        self.live = False  # a training process is still writing (as of the last open or refresh)
        self.watching = False  # a run is open (any may yet be resumed): the live timer polls
        self.fresh = False  # the last open was of another recording, not a reload or a layout
        # each run's findings (by Slot.index, which a run keeps while open, unlike its letter): the
        # list, or why there are none; filled by the findings panel's jobs
        self.findings: dict[int, list | str] = {}
        self.infos: dict[int, dict] = {}  # each run's ``bnviz info`` description (same source)
        self.runs_changed = Signal()
        self.data_changed = Signal()
        self.findings_changed = Signal()
        self.state.changed.connect(self._state_changed)

    # --- opening -------------------------------------------------------------------------
    def open(self, *paths: str | None, keep_state: bool = False, state: ViewState | None = None) -> None:
        """Open ``paths`` (None entries are skipped), replacing what is open; raises the store's
        RunFileError on bad files. ``state``: take this view state (a layout's) with the runs.

        All are opened before anything is replaced, so a bad file leaves the session as it was.
        Another recording replacing an open one starts at its own latest step and whole range;
        the first open and ``keep_state`` (layouts) keep the state's (where the runs have them).
        A run still being written opens following its latest step (``follow``).
        """
        names = [os.fspath(p) for p in paths if p]
        runs = _open_all(names)
        keep_state = keep_state or state is not None
        had = bool(self.slots)
        same = had and [s.path for s in self.slots] == [os.path.abspath(p) for p in names]
        same_first = had and bool(names) and self.slots[0].path == os.path.abspath(names[0])
        self.close()
        if not keep_state and had and not same_first:
            # another recording: its steps have nothing to do with the old range/reference
            self.state.update(step=None, step_range=None, reference_step=None)
        if not keep_state and not same:  # other runs: the old runs' places mean nothing here
            self.state.update(hidden_runs=(), reference_run=0)
        self.slots = [Slot("", r, os.path.abspath(p), i) for i, (r, p) in enumerate(zip(runs, names))]
        self._relabel()
        self.check_writers()
        self.fresh = not keep_state and not same_first
        self.findings, self.infos = {}, {}
        self.opening = True  # listeners skip redraws until runs_changed: one draw per open
        try:
            if state is not None:
                self.state.assign(state)
            self._fix_state()
            if self.fresh and self.live:
                self.follow()
        finally:
            self.opening = False
        self.runs_changed.emit()

    def add(self, path: str) -> Slot:
        """Open one more run beside those open (its own colour and letter); a bad file raises
        and leaves the session as it was."""
        if not self.slots:
            self.open(path)
            return self.slots[0]
        run = open_run(path)
        used = {s.index for s in self.slots}
        slot = Slot("", run, os.path.abspath(path), next(i for i in range(len(used) + 1) if i not in used))
        self.slots.append(slot)
        self._relabel()
        self.check_writers()
        self.fresh = False
        self.runs_changed.emit()
        return slot

    def remove(self, place: int) -> None:
        """Close the run at ``place`` in ``slots``; the others keep their colours and letters, and
        visibility and the reference stay with the runs they were set on."""
        if not 0 <= place < len(self.slots):
            return
        if len(self.slots) == 1:
            self.close()
            self.state.update(hidden_runs=(), reference_run=0)
            self.runs_changed.emit()
            return
        slot = self.slots.pop(place)
        slot.run.close()
        self.findings.pop(slot.index, None)
        self.infos.pop(slot.index, None)
        st = self.state
        ref = st.reference_run
        self.opening = True
        try:
            st.update(
                hidden_runs=tuple(h - (h > place) for h in st.hidden_runs if h != place),
                reference_run=0 if ref == place else ref - (ref > place),
            )
            self._relabel()
            self.check_writers()
            self.fresh = False
            self._fix_state()
        finally:
            self.opening = False
        self.runs_changed.emit()

    def layout(self) -> Layout:
        """What a saved layout holds: the runs in run-list order and the view state."""
        return Layout([s.path for s in self.slots], self.state)

    def close(self) -> None:
        for s in self.slots:
            s.run.close()
        self.slots = []
        self.live = self.watching = False

    def reload(self) -> None:
        """Reopen the same files and keep the view state."""
        if self.slots:
            self.open(*[s.path for s in self.slots])

    def refresh(self) -> bool:
        """Poll live runs (every rank of a distributed job) for new rows, new resumed segments (whose
        rows may replace some shown) and whether a writer is still live; True when any changed.
        The live timer calls it; nothing else reads the writer."""
        changed = False
        for s in self.slots:
            if s.polled() and refresh_ranks(s.ranks):
                changed = True
                s.reread()
        self.check_writers()
        if changed:
            if self.state.follow_latest:
                self.state.update(step=self.latest_step())
            self._fix_state()  # a resumed segment can take back steps the cursor or range was on
            self.data_changed.emit()
        return changed

    def check_writers(self) -> None:
        """``live`` and ``watching`` as of now."""
        self.live = any([s.check_writer() for s in self.slots])  # noqa: C419 - every slot notes its own
        self.watching = bool(self.slots)  # any run may yet be resumed or change (``Slot.polled``)

    @property
    def waiting(self) -> str | None:
        """Why a live run's last refresh kept its last good view (its writer was mid-write), or None."""
        return next((r.waiting for s in self.slots for r in s.ranks if r.waiting), None)

    def _relabel(self) -> None:
        for s in self.slots:
            s.label = run_label(s.index) if len(self.slots) > 1 else ""

    # --- the run list: visibility and the reference ----------------------------------------
    def set_visible(self, place: int, visible: bool) -> None:
        hidden = set(self.state.hidden_runs)
        self.state.update(hidden_runs=tuple(hidden - {place} if visible else hidden | {place}))

    def set_reference(self, place: int) -> None:
        """The run the timeline, layer tree and findings follow (and comparisons refer to)."""
        if 0 <= place < len(self.slots):
            self.state.update(reference_run=place)

    def cycle_reference(self, direction: int) -> None:
        """The next (1) or previous (-1) run in the list becomes the reference."""
        if len(self.slots) > 1:
            self.set_reference((self.state.reference_run + direction) % len(self.slots))

    def toggle_others(self) -> None:
        """Show only the reference run, or (when only it is shown) every run."""
        ref = self.state.reference_run
        others = tuple(i for i in range(len(self.slots)) if i != ref)
        self.state.update(hidden_runs=() if set(self.state.hidden_runs) == set(others) else others)

    def visible_slots(self) -> list[Slot]:
        """The runs the views draw, in run-list order."""
        hidden = set(self.state.hidden_runs)
        return [s for i, s in enumerate(self.slots) if i not in hidden]

    def _state_changed(self, names: set[str]) -> None:
        if "reference_run" in names and self.slots and not self.opening:
            self._fix_state()
            self.runs_changed.emit()  # another run to follow: the timeline, tree and views redo

    # --- findings: each run's, from the findings panel's jobs -------------------------------
    def set_findings(self, slot: Slot, result: list | str, info: dict | None = None) -> None:
        """One run's findings arrived (a list), or why there are none (text)."""
        if slot not in self.slots:
            return
        self.findings[slot.index] = result
        if info is not None:
            self.infos[slot.index] = info
        self.findings_changed.emit()

    def visible_findings(self) -> list[tuple[Slot, object]]:
        """(run, finding) of every visible run, most severe first (ties: run-list order)."""
        rows = [(s, f) for s in self.visible_slots() if isinstance(fs := self.findings.get(s.index), list) for f in fs]
        return sorted(rows, key=lambda sf: -sf[1].severity)

    # --- derived -------------------------------------------------------------------------
    @property
    def primary(self) -> Slot | None:
        """The reference run (the first one unless the run list chose another)."""
        if not self.slots:
            return None
        ref = self.state.reference_run
        return self.slots[ref] if 0 <= ref < len(self.slots) else self.slots[0]

    @property
    def comparing(self) -> bool:
        """More than one run is open: each draws in its colour, legends name the files."""
        return len(self.slots) > 1

    @property
    def steps(self) -> np.ndarray:
        """The recorded steps the cursor moves over (the reference run's summary tier, as of the
        last open or refresh: a file that breaks later still has a timeline)."""
        return self.primary.steps if self.primary is not None else np.zeros(0, np.int64)

    @property
    def phases(self) -> np.ndarray:
        return self.primary.phases if self.primary is not None else np.zeros(0, np.int8)

    def extent(self) -> tuple[int, int] | None:
        """The steps the visible runs (and the reference) span together: the time plots' whole range."""
        slots = self.visible_slots() + ([self.primary] if self.primary is not None else [])
        ends = [(int(s.steps[0]), int(s.steps[-1])) for s in slots if len(s.steps)]
        if not ends:
            return None
        return min(a for a, _ in ends), max(b for _, b in ends)

    def layers(self) -> list:
        """Every open run's layers matched by name: the reference run's in forward order, then
        layers only other runs have (each described by the first run that has it)."""
        seen: dict[str, object] = {}
        for s in [self.primary] + self.slots if self.primary is not None else []:
            for li in s.run.layers:
                seen.setdefault(li.path, li)
        return list(seen.values())

    def layer_info(self, name: str | None):
        """The layer of that name as ``layers`` describes it (None: no open run has it)."""
        return next((li for li in self.layers() if li.path == name), None)

    def latest_step(self) -> int | None:
        steps = self.steps
        return int(steps[-1]) if len(steps) else None

    def cursor_step(self) -> int | None:
        return snap(self.steps, self.state.step)

    def _fix_state(self) -> None:
        """Keep the saved layer/step/runs when the runs have them (Reload, layouts); else sensible ones."""
        n = len(self.slots)
        changes: dict = {}
        if not 0 <= self.state.reference_run < n:
            changes["reference_run"] = 0
        if any(h >= n for h in self.state.hidden_runs):
            changes["hidden_runs"] = tuple(h for h in self.state.hidden_runs if h < n)
        if changes:
            self.state.update(**changes)
            changes = {}
        names = [li.path for li in self.layers()]
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
        """The open runs' layers (``layers``) that match ``state.layer_filter``."""
        return [li.path for li in self.layers() if layer_matches(li.path, self.state.layer_filter)]


def layer_matches(path: str, pattern: str) -> bool:
    """A layer filter: empty matches all; with * ? [ a glob, else a case-insensitive substring."""
    pattern = pattern.strip()
    if not pattern:
        return True
    if any(c in pattern for c in "*?["):
        return fnmatch.fnmatchcase(path.lower(), pattern.lower())
    return pattern.lower() in path.lower()


def _open_all(paths: list[str]) -> list[Run]:
    """Open every path, or none: a bad one closes those opened before it and raises."""
    runs: list[Run] = []
    try:
        for p in paths:
            runs.append(open_run(p))
    except Exception:
        for r in runs:
            r.close()
        raise
    return runs
