"""Read a bnviz run, finished or still being written: ``open_run(path) -> Run``.

Lazy: opening reads the metadata, layer table and committed row counts; each accessor reads
only the slice it returns (one layer's history is a few contiguous chunk reads). Only
committed rows are visible, so a half-written block of a live or killed writer never shows.
Files are opened in SWMR read mode; ``refresh()`` picks up rows a live writer committed since.

API (``rows`` is a slice, an int, or an array of row indices of that tier; layers are given
by path or index; ``field`` by name from ``schema``):

    run.path, run.meta (dict of the root attributes; user_meta and schedule parsed from JSON)
    run.layers (list of LayerInfo), run.layer(name_or_index) -> LayerInfo
    run.format_version ("1.1"), run.writer_state ("live" | "closed" | "writer gone")
    run.dropped_steps, run.recording_failed          from the writer's status record
    run.steps, run.phases, run.times                 summary tier, committed rows only
    run.rows(phase="train"|"eval"|None)              row indices of that phase
    run.summary(layer, field, rows) -> (R,)
    run.summary_layer(layer, rows) -> (R, F_S)       every summary field of one layer
    run.summary_all(field, rows) -> (R, L)
    run.quantiles(layer, tensor, rows) -> (R, NQ)    tensor in schema.TENSORS
    run.probes(layer, rows) -> (R, K, NQ)            quantiles of y for each probe channel
    run.channel_steps, run.channel_phases            channel tier
    run.channels(layer, field, rows) -> (Rc, C)
    run.hist_steps, run.hist_phases                  histogram tier
    run.hist(layer, tensor, row) -> Histogram(edges, counts, under, over, nonfinite)
    run.scalar_names, run.scalar(name) -> (steps, values)   logged rows only
    run.snapshot(step, phase=None) -> {layer path: {field: value}} at the last row <= step
    run.decimated(layer, field, n_buckets=2000, rows) -> (x, lo, hi, mean)
    run.refresh() -> bool (True when new rows arrived)
    run.waiting: str | None                          why the last refresh kept the last good view
    run.close(); Run is a context manager

A file of an older minor version has fewer summary / channel fields (they are only ever
appended): the ones it lacks read as NaN.

Every failure to read is a ``RunFileError`` subclass naming the file and the problem, with
the h5py error chained; nothing from the file is unpickled or executed (JSON text only).

A file a writer is appending to (``h5files.being_written``) can be caught mid-flush: what fails
then may be fixed by the writer's next flush. Opening such a file tries again for a moment;
a refresh keeps the last good view (``waiting`` says why) and calls the file damaged only when
the failure outlasts ``LIVE_GRACE_S`` or the writer stops. A file no writer is at fails at once.
"""

from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

from bnviz.store import checks, layout, schema
from bnviz.store.decimate import decimate
from bnviz.store.errors import CorruptRunFile, NewerFormatError, NotBnvizRun
from bnviz.store.h5files import H5_ERRORS, WRITER_SILENT_S, ReadFile, being_written, stored_end_address

# A status older than max(WRITER_GONE_FLUSHES x the flush interval, h5files.WRITER_SILENT_S)
# means the writer is gone.
WRITER_GONE_FLUSHES = 3
STEP_COLUMNS = ("summary_step", "channel_step", "hist_step", "scalar_step")  # by schema.TIERS
# A file being written that fails to open is tried again this often, with doubling waits from
# OPEN_RETRY_S (about 1.5 s in all); a refresh keeps the last good view for up to LIVE_GRACE_S
# of failures (a flush takes milliseconds; this covers a writer starved of CPU for long).
OPEN_ATTEMPTS = 5
OPEN_RETRY_S = 0.1
LIVE_GRACE_S = 30.0


@dataclass(frozen=True)
class LayerInfo:
    """One entry of the layer table (docs/architecture.md); unknown keys land in ``extra``."""

    index: int
    path: str
    kind: str
    num_features: int
    eps: float | None = None
    momentum: float | None = None
    affine: bool | None = None
    track_running_stats: bool | None = None
    activation: str = "unknown"
    activation_source: str = "none"
    zone_rule: str = "dead"
    zone_threshold: float | None = None
    probe_channels: tuple = ()
    # 1.2 (docs/format.md); older files: the zone was taken on y, whatever lay before the activation
    activation_via: str = ""
    activation_seen: str = ""
    zone_input: str = "y"
    extra: dict = field(default_factory=dict)

    @classmethod
    def from_dict(cls, d: dict) -> LayerInfo:
        known = {k for k in cls.__dataclass_fields__ if k != "extra"}
        kwargs = {k: v for k, v in d.items() if k in known}
        kwargs["probe_channels"] = tuple(kwargs.get("probe_channels") or ())
        return cls(**kwargs, extra={k: v for k, v in d.items() if k not in known})


@dataclass(frozen=True)
class Histogram:
    edges: np.ndarray  # (HIST_BINS + 1,)
    counts: np.ndarray  # (HIST_BINS,)
    under: int
    over: int
    nonfinite: int


def open_run(path) -> Run:
    """Open a bnviz recording for reading; raises a RunFileError subclass if it is not one.

    A distributed job's rank files beside it are opened too: ``run.ranks`` (rank 0 first, the
    run itself included) and ``run.rank_problems`` ({rank: why its file is unusable}). A resumed
    recording's segments (``<stem>.resume<k><suffix>``) are joined into one run (segments.py)."""
    from bnviz.store.segments import open_joined  # segments build on Run: import here

    run = open_joined(path)
    try:
        run.join_ranks()
    except BaseException:
        run.close()
        raise
    return run


class Run:
    """A recording opened for reading. See the module docstring for the API."""

    def __init__(self, path, attempts: int = OPEN_ATTEMPTS):
        """``attempts``: tries at a file being written that cannot be read right now (1: no waiting)."""
        self.path = Path(path)
        # Every rank's run of this run's job, rank 0 first, and why a rank's file is unusable;
        # one process's run is its own job (``join_ranks`` looks for the others).
        self.ranks: list[Run] = [self]
        self.rank_problems: dict[int, str] = {}
        self.waiting: str | None = None
        self._failing_since: float | None = None
        for attempt in range(attempts):
            try:
                self._open()
                return
            except CorruptRunFile:
                if attempt == attempts - 1 or not being_written(self.path):
                    raise
            time.sleep(OPEN_RETRY_S * 2**attempt)

    def _open(self) -> None:
        self._h5 = ReadFile(self.path)
        try:
            self._load_header()
        except BaseException:
            self._h5.close()
            raise

    def join_ranks(self) -> None:
        """Open the other rank files of a distributed job (``bnviz.store.ranks``)."""
        from bnviz.store.ranks import scan  # ranks builds on Run: import here, not at the top

        for other in self.ranks:
            if other is not self:
                other.close()
        runs, self.rank_problems = scan(self)
        self.ranks = [runs[r] for r in sorted(runs)]

    # -- header ----------------------------------------------------------------------------

    def _load_header(self) -> None:
        fmt = self._h5.read("the root attributes", lambda: self._h5.file.attrs.get(layout.ATTR_FORMAT))
        version = self._h5.read("the root attributes", lambda: self._h5.file.attrs.get(layout.ATTR_VERSION))
        if isinstance(fmt, bytes):
            fmt = fmt.decode("utf-8", "replace")
        size, eoa = self._h5.size, stored_end_address(self.path)
        if fmt != schema.FORMAT_NAME and eoa is not None and size < eoa:
            # a cut-short file can lose the root attributes too (a packed run keeps them last)
            raise CorruptRunFile(
                self.path,
                f"the file is truncated ({size} bytes, HDF5 expects {eoa}); "
                "it was cut short, e.g. by an incomplete copy",
            )
        if not isinstance(fmt, str) or fmt != schema.FORMAT_NAME:
            raise NotBnvizRun(
                self.path,
                f"an HDF5 file, but not a bnviz recording (no {layout.ATTR_FORMAT}={schema.FORMAT_NAME!r} attribute)",
            )
        try:
            self.format_version = version.decode() if isinstance(version, bytes) else str(version)
            file_version = layout.parse_version(self.format_version)
        except (ValueError, AttributeError) as err:
            raise CorruptRunFile(self.path, f"unreadable format_version {checks._shown(version)}") from err
        if file_version[0] > schema.FORMAT_VERSION[0]:
            raise NewerFormatError(self.path, self.format_version, schema.FORMAT_VERSION_TEXT)
        self.meta = self._h5.read("the run's attributes", self._read_meta)
        raw = self._h5.read("the layer table", lambda: self._h5.dataset(layout.LAYERS)[()])
        self.layers = [LayerInfo.from_dict(d) for d in checks.layer_table(self.path, raw)]
        self._by_path = {layer.path: layer for layer in self.layers}
        self._check_datasets()
        # the datasets were opened at their extent of a moment ago: read the commit record first,
        # then refresh them (a commit landing in between would otherwise look like missing rows)
        self._h5.mark_stale()
        self._counts = self._read_commit()
        self._cache: dict = {}
        self._check_complete()

    def _check_datasets(self) -> None:
        """Every dataset present with the shape and type the layer table implies."""
        h5, L = self._h5, len(self.layers)
        probes = h5.dataset("probes")
        checks.dataset_shape(self.path, "probes", probes, (L, checks.MAX_PROBES, layout.NQ), "f", (1,))
        self._probes = probes.shape[2]
        for col in layout.tier_columns(L, self._probes):
            free = (1,) if col.name == "summary" else ()
            row = (L, layout.F_S + checks.MAX_EXTRA_FIELDS) if free else col.row_shape
            checks.dataset_shape(
                self.path, col.name, h5.dataset(col.name), row, "fiu" if col.dtype.kind == "f" else "iu", free
            )
        for layer in self.layers:
            name = f"{layout.CHANNEL_GROUP}/{layer.index}"
            checks.dataset_shape(
                self.path, name, h5.dataset(name), (layout.F_C + checks.MAX_EXTRA_FIELDS, layer.num_features), "f", (0,)
            )
        names = h5.dataset(layout.SCALAR_NAMES)
        if names.shape != (schema.MAX_SCALARS,) or names.dtype.kind != "S":
            raise CorruptRunFile(
                self.path,
                f"dataset {layout.SCALAR_NAMES} has shape {names.shape} of "
                f"{names.dtype}, expected {schema.MAX_SCALARS} names",
            )
        status = h5.dataset(layout.STATUS)
        if status.shape != (len(layout.STATUS_FIELDS),) or status.dtype.kind not in "fiu":
            raise CorruptRunFile(
                self.path,
                f"dataset {layout.STATUS} has shape {status.shape} of "
                f"{status.dtype}, expected {len(layout.STATUS_FIELDS)} numbers",
            )

    def _check_complete(self) -> None:
        """SWMR read mode skips HDF5's end-of-file check, and raw data past the end reads as
        zeros: if the file is shorter than HDF5's end address, make sure no committed row lies
        past the end. (Uncommitted data may: a kill or a failed write leaves such files.)"""
        size = self.path.stat().st_size
        eoa = stored_end_address(self.path)
        if eoa is None or size >= eoa:
            return
        names = [(c.name, c.tier) for c in layout.tier_columns(len(self.layers), self._probes)]
        names += [(f"{layout.CHANNEL_GROUP}/{i}", "channels") for i in range(len(self.layers))]
        missing = []

        def visit(info, n):
            if info.chunk_offset[0] < n and info.byte_offset + info.size > size:
                missing.append(info)

        try:
            for name, tier in names:
                n = self._counts[tier]
                self._h5.dataset(name).id.chunk_iter(lambda info: visit(info, n))  # noqa: B023
        except H5_ERRORS as err:
            missing.append(err)
        if missing:
            raise CorruptRunFile(
                self.path,
                f"the file is truncated ({size} bytes, HDF5 expects {eoa}) "
                "and recorded rows are missing; an incomplete copy?",
            )

    def _read_meta(self) -> dict:
        meta = {}
        attrs = self._h5.file.attrs
        for key in attrs:
            if key in (layout.ATTR_FORMAT, layout.ATTR_VERSION):
                continue
            if attrs.get_id(key).get_storage_size() > checks.MAX_ATTR_BYTES:
                raise CorruptRunFile(self.path, f"attribute {key} is larger than any bnviz attribute")
            meta[key] = checks.meta_value(self.path, key, attrs[key])
        rank, world = meta.get("rank", 0), meta.get("world_size", 1)
        if not 0 <= rank < world:
            raise CorruptRunFile(self.path, f"attribute rank is {rank}, but the job has {world} processes")
        return meta

    @property
    def schedule(self) -> dict:
        return self.meta.get("schedule") or {}

    # -- datasets and committed rows -------------------------------------------------------

    def _dataset(self, name: str) -> h5py.Dataset:
        return self._h5.dataset(name)

    def _read_commit(self) -> dict:
        raw = self._h5.read("the commit record", lambda: self._h5.dataset(layout.COMMIT)[()])
        current = getattr(self, "_counts", None)
        if current is not None and np.array_equal(raw, [current[t] for t in schema.TIERS]):
            return current
        return checks.committed(self.path, raw, schema.TIERS, self._capacity())

    def _capacity(self) -> dict:
        """Rows each tier's datasets hold (their extent, refreshed) and, for the step column read
        whole, what its allocated chunks can hold: a count beyond either is damage."""
        extents: dict[str, list[int]] = {t: [] for t in schema.TIERS}
        for col in layout.tier_columns(len(self.layers), self._probes):
            extents[col.tier].append(self._h5.dataset(col.name).shape[0])
        for layer in self.layers:
            extents["channels"].append(self._h5.dataset(f"{layout.CHANNEL_GROUP}/{layer.index}").shape[0])
        for tier, name in zip(schema.TIERS, STEP_COLUMNS):
            extents[tier].append(self._h5.read(name, lambda n=name: _allocated_rows(self._h5.dataset(n))))
        return {t: min(v) for t, v in extents.items()}

    def _status(self) -> np.ndarray:
        return self._h5.read("the writer status", lambda: self._h5.dataset(layout.STATUS)[()])

    def refresh(self) -> bool:
        """Pick up rows committed since the last look. True when there are new rows. A file
        being written that cannot be read right now keeps its last good view (module docstring)."""
        self._h5.mark_stale()
        try:
            counts = self._read_commit()
        except CorruptRunFile as err:
            if self._mid_write(err):
                return False
            raise
        self.waiting, self._failing_since = None, None
        if counts == self._counts:
            return False
        self._counts = counts
        self._cache.clear()
        return True

    def _mid_write(self, err: CorruptRunFile) -> bool:
        """Whether ``err`` may be a flush in progress: the writer is at work and the failures
        began less than LIVE_GRACE_S ago (then ``waiting`` says so). Raises once they last longer."""
        now = time.monotonic()
        since = self._failing_since = self._failing_since or now
        if not being_written(self.path):
            return False
        if now - since > LIVE_GRACE_S:
            raise CorruptRunFile(
                self.path, f"{err.problem} (for {now - since:.0f} s, while its writer went on writing)"
            ) from err
        self.waiting = f"waiting for the writer to finish a write ({err.problem})"
        return True

    @property
    def writer_state(self) -> str:
        """ "closed", "live", or "writer gone" (killed, or silent for too long)."""
        heartbeat, state, _ = self._status()
        if state != layout.STATE_LIVE:
            return "closed"
        pid, host = self.meta.get("pid"), self.meta.get("host")
        if pid and host == socket.gethostname():
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return "writer gone"
            except PermissionError:
                pass  # alive, owned by another user
        flush_s = self.meta.get("flush_seconds") or 0
        if not time.time() - heartbeat <= max(WRITER_GONE_FLUSHES * flush_s, WRITER_SILENT_S):
            return "writer gone"
        return "live"

    @property
    def dropped_steps(self) -> int:
        """Steps the recorder could not record because the writer fell behind."""
        dropped = self._status()[2]
        return int(dropped) if np.isfinite(dropped) and 0 <= dropped < checks.MAX_STEP else 0

    @property
    def estimator_notice(self) -> str | None:
        """A one-line warning for files whose distribution estimates came from the old grid sampler
        (format 1.0 / 1.1 without an ``estimator`` in the engine metadata), else None."""
        if (self.meta.get("engine") or {}).get("estimator") or layout.parse_version(self.format_version) >= (1, 2):
            return None
        return (
            f"{os.path.basename(self.path)} (format {self.format_version}) was recorded with bnviz's old sampler: "
            "its zone fractions, percentiles and histograms may be biased on conv layers (the samples "
            "could all sit on one pixel), and zones after a residual add were taken on the BN output. "
            "Record again with this bnviz for unbiased estimates."
        )

    @property
    def recording_failed(self) -> bool:
        """True if recording stopped on a write error (the file holds what came before)."""
        return bool(self._status()[1] == layout.STATE_FAILED)

    def _read(self, name: str, tier: str, rows, *tail):
        """``name[rows, *tail]`` over committed rows of ``tier`` only."""
        n = self._counts[tier]
        sel = _row_selection(rows, n, tier)

        def read():
            ds = self._h5.dataset(name)
            if isinstance(sel, slice) or np.ndim(sel) == 0:
                return ds[(sel, *tail)]
            if sel.size == 0:
                return ds[0:0][(slice(None), *tail)]
            lo = int(sel.min())
            return ds[(slice(lo, int(sel.max()) + 1), *tail)][sel - lo]

        return self._h5.read(name, read)

    def _lacks(self, name: str, axis: int, f: int) -> bool:
        """Whether dataset ``name`` has no field ``f`` on ``axis`` (of a row): an older minor version's."""
        return f >= self._h5.dataset(name).shape[axis + 1]

    def _column(self, name: str, tier: str) -> np.ndarray:
        """A whole committed 1-D column, checked, cached until the next refresh that brings rows."""
        key = (name, self._counts[tier])
        if key not in self._cache:
            values = self._read(name, tier, slice(None))
            if name in STEP_COLUMNS:
                values = checks.step_column(self.path, name, values)
            elif name.endswith("_phase"):
                values = checks.phase_column(self.path, name, values, schema.PHASE_NAMES)
            self._cache[key] = values
        return self._cache[key]

    # -- lookups ---------------------------------------------------------------------------

    def layer(self, name_or_index) -> LayerInfo:
        if isinstance(name_or_index, LayerInfo):
            return name_or_index
        if isinstance(name_or_index, (int, np.integer)):
            if not -len(self.layers) <= name_or_index < len(self.layers):
                raise KeyError(f"layer index {name_or_index} out of range: the run has {len(self.layers)} layers")
            return self.layers[name_or_index]
        try:
            return self._by_path[name_or_index]
        except KeyError:
            names = ", ".join(repr(p) for p in list(self._by_path)[:5])
            raise KeyError(f"no layer {name_or_index!r} in {self.path.name} (layers: {names}, ...)") from None

    @staticmethod
    def _index(names, name, what) -> int:
        try:
            return names.index(name)
        except ValueError:
            raise KeyError(f"unknown {what} {name!r}; one of {names}") from None

    # -- summary tier ----------------------------------------------------------------------

    @property
    def steps(self) -> np.ndarray:
        return self._column("summary_step", "summary")

    @property
    def phases(self) -> np.ndarray:
        return self._column("summary_phase", "summary")

    @property
    def times(self) -> np.ndarray:
        return self._column("summary_time", "summary")

    def rows(self, phase: str | None = None) -> np.ndarray:
        return _phase_rows(self.phases, phase)

    def summary_layer(self, layer, rows=slice(None)) -> np.ndarray:
        return _pad_fields(self._read("summary", "summary", rows, self.layer(layer).index), len(schema.SUMMARY_FIELDS))

    def summary(self, layer, field: str, rows=slice(None)) -> np.ndarray:
        f = self._index(schema.SUMMARY_FIELDS, field, "summary field")
        # whole rows of one layer are contiguous in its chunks: one read each, then pick the field
        return self.summary_layer(layer, rows)[..., f]

    def summary_all(self, field: str, rows=slice(None)) -> np.ndarray:
        f = self._index(schema.SUMMARY_FIELDS, field, "summary field")
        if self._lacks("summary", 1, f):
            return np.full_like(self._read("summary", "summary", rows, slice(None), 0), np.nan)
        return self._read("summary", "summary", rows, slice(None), f)

    def quantiles(self, layer, tensor: str, rows=slice(None)) -> np.ndarray:
        t = self._index(schema.TENSORS, tensor, "tensor")
        return self._read("quantiles", "summary", rows, self.layer(layer).index, t)

    def probes(self, layer, rows=slice(None)) -> np.ndarray:
        return self._read("probes", "summary", rows, self.layer(layer).index)

    def snapshot(self, step: int, phase: str | None = None) -> dict:
        """Every layer's summary fields and quantiles (``<tensor>_<quantile name>``) at the last
        row at or before ``step`` (of ``phase`` if given); {} if there is none."""
        candidates = self.rows(phase)
        k = np.searchsorted(self.steps[candidates], step, side="right") - 1
        if k < 0:
            return {}
        row = int(candidates[k])
        summary = _pad_fields(self._read("summary", "summary", row), len(schema.SUMMARY_FIELDS))
        quantiles = self._read("quantiles", "summary", row)
        out = {}
        for layer in self.layers:
            values = dict(zip(schema.SUMMARY_FIELDS, summary[layer.index].tolist()))
            for t, tensor in enumerate(schema.TENSORS):
                for q, qname in enumerate(schema.QUANTILE_NAMES):
                    values[f"{tensor}_{qname}"] = float(quantiles[layer.index, t, q])
            values["step"] = int(self.steps[row])
            values["phase"] = schema.PHASE_NAMES.get(int(self.phases[row]), "unknown")
            out[layer.path] = values
        return out

    def decimated(self, layer, field: str, n_buckets: int = 2000, rows=slice(None)):
        """(x, lo, hi, mean) of a summary field: min/max/mean per bucket of consecutive rows,
        x the step of each bucket's first row; all-NaN buckets stay NaN (a gap)."""
        return decimate(self._take(self.steps, rows), self.summary(layer, field, rows), n_buckets)

    def _take(self, column: np.ndarray, rows):
        return column[rows] if isinstance(rows, slice) else column[np.asarray(rows, np.int64)]

    # -- channel tier ----------------------------------------------------------------------

    @property
    def channel_steps(self) -> np.ndarray:
        return self._column("channel_step", "channels")

    @property
    def channel_phases(self) -> np.ndarray:
        return self._column("channel_phase", "channels")

    def channel_rows(self, phase: str | None = None) -> np.ndarray:
        return _phase_rows(self.channel_phases, phase)

    def channels(self, layer, field: str, rows=slice(None)) -> np.ndarray:
        f = self._index(schema.CHANNEL_FIELDS, field, "channel field")
        name = f"{layout.CHANNEL_GROUP}/{self.layer(layer).index}"
        if self._lacks(name, 0, f):
            return np.full_like(self._read(name, "channels", rows, 0), np.nan)
        return self._read(name, "channels", rows, f)

    # -- histogram tier --------------------------------------------------------------------

    @property
    def hist_steps(self) -> np.ndarray:
        return self._column("hist_step", "hist")

    @property
    def hist_phases(self) -> np.ndarray:
        return self._column("hist_phase", "hist")

    def hist_rows(self, phase: str | None = None) -> np.ndarray:
        return _phase_rows(self.hist_phases, phase)

    def hist(self, layer, tensor: str, row: int) -> Histogram:
        li, t = self.layer(layer).index, self._index(schema.TENSORS, tensor, "tensor")
        counts = self._read("hist_counts", "hist", int(row), li, t).astype(np.int64)
        lo, hi = self._read("hist_range", "hist", int(row), li, t).astype(np.float64)
        nb = schema.HIST_BINS
        under, over, nonfinite = (int(c) for c in counts[nb:])
        if not (np.isfinite(lo) and np.isfinite(hi) and lo < hi):
            lo = hi = np.nan  # no range (a layer that did not run): NaN edges, never infinite ones
        return Histogram(np.linspace(lo, hi, nb + 1), counts[:nb], under, over, nonfinite)

    def hist_block(self, layer, tensor: str, rows=slice(None)) -> tuple[np.ndarray, np.ndarray]:
        """(counts (R, HIST_BINS + 3), ranges (R, 2)) of histogram ``rows``, one read each: the
        distribution-through-time view's input (``hist`` gives one row as a Histogram)."""
        li, t = self.layer(layer).index, self._index(schema.TENSORS, tensor, "tensor")
        return (
            self._read("hist_counts", "hist", rows, li, t).astype(np.int64),
            self._read("hist_range", "hist", rows, li, t).astype(np.float64),
        )

    # -- scalars ---------------------------------------------------------------------------

    @property
    def scalar_names(self) -> list[str]:
        key = ("scalar_names", self._counts["scalars"])
        if key not in self._cache:
            raw = self._h5.read("the scalar names", lambda: self._h5.dataset(layout.SCALAR_NAMES)[()])
            self._cache[key] = [b.decode("utf-8", "replace") for b in raw if b]
        return self._cache[key]

    def scalar(self, name: str):
        """(steps, values) of the rows where scalar ``name`` was logged."""
        slot = self._index(self.scalar_names, name, "scalar")
        values = self._read("scalar_values", "scalars", slice(None), slot)
        logged = ~np.isnan(values)
        return self._column("scalar_step", "scalars")[logged], values[logged]

    # -- lifetime --------------------------------------------------------------------------

    def close(self) -> None:
        self._h5.close()
        for other in self.ranks:
            if other is not self:
                other.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _repr_html_(self) -> str:  # what a notebook shows for a run: bnviz/notebook.py
        from bnviz.notebook import run_html

        return run_html(self)

    def __repr__(self) -> str:
        return (
            f"<bnviz Run {self.path.name}: {len(self.layers)} layers, "
            f"{self._counts['summary']} rows, format {self.format_version}>"
        )


def _row_selection(rows, n: int, tier: str):
    """The caller's ``rows`` (a slice, an int, or integer row indices) over ``n`` committed rows,
    as a plain slice, an int or an index array; a bad selection is the caller's error."""
    if isinstance(rows, slice):
        start, stop, step = rows.indices(n)
        return slice(start, max(start, stop)) if step == 1 else np.arange(start, stop, step)
    if isinstance(rows, (int, np.integer)) and not isinstance(rows, (bool, np.bool_)):
        i = int(rows) + (n if rows < 0 else 0)
        if not 0 <= i < n:
            raise IndexError(f"row {rows} out of range: {tier} has {n} committed rows")
        return i
    idx = np.asarray(rows)
    if idx.size == 0:
        return np.zeros(0, np.int64)
    if idx.ndim != 1 or idx.dtype.kind not in "iu":
        raise TypeError(
            f"rows must be a slice, an int or a 1-D array of integer row indices, got "
            f"{type(rows).__name__} of {idx.dtype} with shape {idx.shape}"
        )
    idx = np.where(idx < 0, idx + n, idx).astype(np.int64)
    if idx.min() < 0 or idx.max() >= n:
        raise IndexError(f"rows out of range: {tier} has {n} committed rows")
    return idx


def _allocated_rows(ds: h5py.Dataset) -> int:
    """Rows a 1-D dataset's allocated storage can hold (unwritten chunks hold none)."""
    if ds.chunks is None:
        return ds.id.get_storage_size() // max(1, ds.dtype.itemsize)
    return ds.id.get_num_chunks() * ds.chunks[0]


def _pad_fields(values: np.ndarray, count: int) -> np.ndarray:
    """``values`` (..., F) with NaN for the fields F..count-1 an older minor version did not write."""
    missing = count - values.shape[-1]
    if missing <= 0:
        return values
    return np.concatenate([values, np.full(values.shape[:-1] + (missing,), np.nan, values.dtype)], -1)


def _phase_rows(phases: np.ndarray, phase: str | None) -> np.ndarray:
    if phase is None:
        return np.arange(len(phases))
    codes = {name: code for code, name in schema.PHASE_NAMES.items()}
    if phase not in codes:
        raise KeyError(f"unknown phase {phase!r}; one of {sorted(codes)} or None")
    return np.flatnonzero(phases == codes[phase])
