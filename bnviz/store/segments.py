"""A resumed recording: the first attempt's file and the segments written after each restart,
joined when read into one run (docs/format.md, "Resumed runs").

``bnviz.record(model, "run.h5", resume=True)`` after a restart from a checkpoint leaves every
file already written as it is and writes the next segment beside it: run.h5, run.resume1.h5,
run.resume2.h5 ... Segment k's root attribute ``segment_start`` is the first step it records;
rows of earlier segments at or after that step were trained again from the checkpoint, so the
joined run shows the later segment's rows for them (the superseded rows stay on disk).

Imports neither torch nor Qt.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from bnviz.store import schema
from bnviz.store.errors import RunFileError
from bnviz.store.reader import OPEN_ATTEMPTS, Run

# Root attributes of a segment after the first (absent from a run never resumed).
SEGMENT_KEYS = ("segment", "segment_start")
_SEGMENT_NAME = re.compile(r"^(?P<stem>.+)\.resume[1-9][0-9]*(?P<suffix>\.[^.]*)?$")
_STEP_COLUMNS = dict(zip(schema.TIERS, ("summary_step", "channel_step", "hist_step", "scalar_step")))


def segment_path(path, k: int) -> Path:
    """Where segment ``k`` (0: the first attempt, ``path`` itself) of a recording to ``path`` lives."""
    path = Path(path)
    return path if k == 0 else path.with_name(f"{path.stem}.resume{int(k)}{path.suffix}")


def segment_paths(path) -> list[Path]:
    """The segments of the recording to ``path`` that exist, in order (segment 0 first)."""
    out, k = [], 0
    while segment_path(path, k).exists():
        out.append(segment_path(path, k))
        k += 1
    return out


def is_segment_name(path) -> bool:
    return _SEGMENT_NAME.match(Path(path).name) is not None


def open_joined(path) -> Run:
    """``path`` as one run: a JoinedRun of the segments that lie beside it (one, if it was never
    resumed, so that ``refresh`` finds a segment written later), or a segment's path alone: a Run."""
    first = Run(path)
    if is_segment_name(path):
        return first
    try:
        return JoinedRun(first)
    except BaseException:
        first.close()
        raise


class SegmentMismatch(RunFileError):
    """A resumed segment does not fit the recording it continues."""


class JoinedRun(Run):
    """The segments of a resumed recording read as one Run (same API; rows of every tier
    concatenated, superseded rows left out). ``segments`` lists the Run of each file."""

    def __init__(self, first: Run):  # no super().__init__: the first segment is open already
        self.__dict__.update(first.__dict__)
        self.ranks = [self]  # the joined run is its own job until join_ranks looks for the others
        self.segments = [first]
        self._open_new_segments(OPEN_ATTEMPTS)
        self._read_stamps = self._stamps()
        self._join()

    def _open_new_segments(self, attempts: int) -> bool:
        """``attempts``: at opening, wait for a segment a writer is creating; a refresh (the viewer
        polls every second, on its window's thread) tries once and looks again at the next."""
        added = False
        for p in segment_paths(self.path)[len(self.segments) :]:
            try:
                seg = Run(p, attempts)
            except RunFileError:
                break  # being created right now, or damaged: the segments before it still read
            why = _mismatch(self.segments[0], seg)
            if why:
                seg.close()
                raise SegmentMismatch(p, f"does not continue {self.path.name}: {why}")
            self.segments.append(seg)
            added = True
        return added

    def _join(self) -> None:
        """Visible rows of each segment per tier: those before every later segment's start."""
        starts = [int(s.meta.get("segment_start", 0)) for s in self.segments]
        cut = [min(starts[k + 1 :], default=None) for k in range(len(self.segments))]
        self._visible = []
        for seg, c in zip(self.segments, cut):
            rows = {}
            for tier, column in _STEP_COLUMNS.items():
                n = seg._counts[tier]
                rows[tier] = n if c is None else int(np.searchsorted(seg._column(column, tier), c, "left"))
            self._visible.append(rows)
        self._counts = {t: sum(v[t] for v in self._visible) for t in schema.TIERS}
        self._offsets = {t: np.cumsum([0] + [v[t] for v in self._visible]) for t in schema.TIERS}
        self._cache = {}

    def _read(self, name, tier, rows, *tail):
        if len(self.segments) == 1:
            return self.segments[0]._read(name, tier, rows, *tail)
        n = self._counts[tier]
        if isinstance(rows, slice):
            idx = np.arange(*rows.indices(n))
        elif np.ndim(rows) == 0:
            i = int(rows) + (n if int(rows) < 0 else 0)
            if not 0 <= i < n:
                raise IndexError(f"row {rows} out of range: {tier} has {n} committed rows")
            k = int(np.searchsorted(self._offsets[tier], i, "right")) - 1
            return self.segments[k]._read(name, tier, i - int(self._offsets[tier][k]), *tail)
        else:
            idx = np.asarray(rows, np.int64)
            idx = np.where(idx < 0, idx + n, idx)
            if idx.size and (idx.min() < 0 or idx.max() >= n):
                raise IndexError(f"rows out of range: {tier} has {n} committed rows")
        if idx.size == 0:
            return self.segments[0]._read(name, tier, slice(0, 0), *tail)
        offsets = self._offsets[tier]
        which = np.searchsorted(offsets, idx, "right") - 1
        out = None
        for k in np.unique(which):
            mask = which == k
            part = self.segments[k]._read(name, tier, idx[mask] - int(offsets[k]), *tail)
            if out is None:
                out = np.empty((idx.size, *part.shape[1:]), part.dtype)
            out[mask] = part
        return out

    # -- what differs per segment -------------------------------------------------------

    def _status(self):
        return self.segments[-1]._status()

    @property
    def waiting(self) -> str | None:  # type: ignore[override]
        return next((s.waiting for s in self.segments if s.waiting), None)

    @property
    def writer_state(self) -> str:
        return self.segments[-1].writer_state

    @property
    def dropped_steps(self) -> int:
        return sum(s.dropped_steps for s in self.segments)

    @property
    def recording_failed(self) -> bool:
        return self.segments[-1].recording_failed

    @property
    def scalar_names(self) -> list[str]:
        names = []
        for seg in self.segments:
            names += [n for n in seg.scalar_names if n not in names]
        return names

    def scalar(self, name: str):
        self._index(self.scalar_names, name, "scalar")
        steps, values = [np.zeros(0, np.int64)], [np.zeros(0)]
        for seg, visible in zip(self.segments, self._visible):
            if name in seg.scalar_names:
                n = visible["scalars"]
                v = seg._read("scalar_values", "scalars", slice(0, n), seg.scalar_names.index(name))
                logged = ~np.isnan(v)
                steps.append(seg._column("scalar_step", "scalars")[:n][logged])
                values.append(v[logged])
        return np.concatenate(steps), np.concatenate(values)

    @property
    def changed_on_disk(self) -> bool:
        """Whether a segment beyond those read lies beside the first, or a file read has another
        size or time since: a few stats, where ``refresh`` reads every file (a viewer watches a
        closed run with this alone)."""
        return segment_path(self.path, len(self.segments)).exists() or self._stamps() != self._read_stamps

    def _stamps(self) -> list[tuple[int, int] | None]:
        out: list[tuple[int, int] | None] = []
        for seg in self.segments:
            try:
                st = seg.path.stat()
                out.append((st.st_size, st.st_mtime_ns))
            except OSError:
                out.append(None)
        return out

    def refresh(self) -> bool:
        self._read_stamps = self._stamps()
        changed = [seg.refresh() for seg in self.segments]
        added = self._open_new_segments(1)
        if any(changed) or added:
            self._join()
            return True
        return False

    def close(self) -> None:
        for seg in getattr(self, "segments", ()):
            seg.close()
        for other in getattr(self, "ranks", ()):
            if other is not self:
                other.close()

    def __repr__(self) -> str:
        if len(self.segments) == 1:
            return super().__repr__()
        return (
            f"<bnviz Run {self.path.name} + {len(self.segments) - 1} resumed segments: "
            f"{len(self.layers)} layers, {self._counts['summary']} rows>"
        )


def _mismatch(first: Run, seg: Run) -> str | None:
    table = [(li.path, li.num_features) for li in first.layers]
    if [(li.path, li.num_features) for li in seg.layers] != table:
        return "its BN layers differ"
    if seg._probes != first._probes:
        return f"it has {seg._probes} probe channels per layer, the first file {first._probes}"
    if seg.format_version != first.format_version:
        return f"format {seg.format_version}, the first file {first.format_version}"
    return None
