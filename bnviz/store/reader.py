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
    run.close(); Run is a context manager

A file of an older minor version has fewer summary / channel fields (they are only ever
appended): the ones it lacks read as NaN.

Every failure to read is a ``RunFileError`` subclass naming the file and the problem, with
the h5py error chained; nothing from the file is unpickled or executed (JSON text only).
"""

from __future__ import annotations

import ctypes
import json
import os
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np
from h5py import h5f, h5p

from bnviz.store import layout, schema
from bnviz.store.decimate import decimate
from bnviz.store.errors import (
    CorruptRunFile,
    EmptyRunFile,
    NewerFormatError,
    NotBnvizRun,
    NotHDF5File,
    RunFileError,
    RunFileMissing,
)

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
# A live writer heartbeats at least this often (AsyncWriter: 10 s), so a status older than
# max(WRITER_GONE_FLUSHES x the flush interval, WRITER_GONE_S) means the writer is gone.
WRITER_GONE_S = 30.0
WRITER_GONE_FLUSHES = 3
READ_CACHE_BYTES = 32 * 1024 * 1024
# A SWMR reader retries a metadata read whose checksum fails (the writer may be mid-flush) with
# doubling back-off; HDF5's default of 100 attempts hangs for many minutes on a damaged file.
# 20 attempts wait about a second in all, ample for a flush to land.
SWMR_READ_ATTEMPTS = 20
_READ_ERRORS = (OSError, RuntimeError, KeyError, ValueError, TypeError)


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
    from bnviz.store.ranks import attach_ranks  # ranks and segments build on Run: import here
    from bnviz.store.segments import open_joined

    return attach_ranks(open_joined(path))


def _has_hdf5_signature(path: Path, size: int) -> bool:
    # The superblock sits at 0, or after a user block at 512, 1024, 2048, ...
    with open(path, "rb") as fh:
        offset = 0
        while offset + len(HDF5_SIGNATURE) <= size:
            fh.seek(offset)
            if fh.read(len(HDF5_SIGNATURE)) == HDF5_SIGNATURE:
                return True
            offset = 512 if offset == 0 else offset * 2
    return False


def _hdf5_library():
    """The libhdf5 that h5py loaded (for a setting h5py does not expose), or None."""
    try:
        with open("/proc/self/maps") as maps:
            for line in maps:
                lib = line.split()[-1]
                if "/libhdf5" in lib and "hdf5_hl" not in lib and ".so" in lib:
                    return ctypes.CDLL(lib)
    except OSError:
        pass
    return None


def _read_fapl():
    fapl = h5p.create(h5p.FILE_ACCESS)
    fapl.set_cache(0, 10007, READ_CACHE_BYTES, 0.75)
    lib = _hdf5_library()
    if lib is not None:
        lib.H5Pset_metadata_read_attempts(ctypes.c_int64(fapl.id), ctypes.c_uint(SWMR_READ_ATTEMPTS))
    return fapl


def _stored_end_address(path: Path) -> int | None:
    """The end-of-file address in a version 2/3 superblock (what bnviz writes), else None."""
    with open(path, "rb") as fh:
        head = fh.read(48)
    if head[:8] != HDF5_SIGNATURE or len(head) < 12 or head[8] < 2:
        return None
    size = head[9]  # bytes per address: base, extension, end-of-file, root
    start = 12 + 2 * size
    if len(head) < start + size:
        return None
    base = int.from_bytes(head[12 : 12 + size], "little")
    return base + int.from_bytes(head[start : start + size], "little")


def _open_file(path: Path) -> h5py.File:
    if not path.exists():
        raise RunFileMissing(path, "no such file")
    if path.is_dir():
        raise NotHDF5File(path, "is a directory, not a bnviz recording")
    size = path.stat().st_size
    if size == 0:
        raise EmptyRunFile(path, "the file is empty (0 bytes): the recording never got its first write")
    if not _has_hdf5_signature(path, size):
        raise NotHDF5File(path, "not an HDF5 file: a bnviz recording is the HDF5 file that bnviz.record writes")
    try:
        fid = h5f.open(os.fsencode(path), h5f.ACC_RDONLY | h5f.ACC_SWMR_READ, fapl=_read_fapl())
        return h5py.File(fid)
    except (OSError, RuntimeError) as err:
        reason = str(err)
        if "truncated" in reason:
            raise CorruptRunFile(
                path,
                f"the file is truncated ({size} bytes; HDF5 says: {reason}); "
                "it was cut short, e.g. by an incomplete copy",
            ) from err
        raise CorruptRunFile(path, f"HDF5 cannot open it, the file is damaged ({reason})") from err


class Run:
    """A recording opened for reading. See the module docstring for the API."""

    ranks: list[Run]  # the job's rank files, rank 0 first (store/ranks.py attach_ranks)
    rank_problems: dict[int, str]

    def __init__(self, path):
        self.path = Path(path)
        self._file = _open_file(self.path)
        try:
            self._load_header()
        except BaseException:
            self._file.close()
            raise

    # -- header ----------------------------------------------------------------------------

    def _load_header(self) -> None:
        f = self._file
        try:
            fmt = f.attrs.get(layout.ATTR_FORMAT)
            version = f.attrs.get(layout.ATTR_VERSION)
        except _READ_ERRORS as err:
            raise CorruptRunFile(self.path, f"cannot read the root attributes ({err})") from err
        if isinstance(fmt, bytes):
            fmt = fmt.decode("utf-8", "replace")
        size, eoa = self.path.stat().st_size, _stored_end_address(self.path)
        if fmt != schema.FORMAT_NAME and eoa is not None and size < eoa:
            # a cut-short file can lose the root attributes too (a packed run keeps them last)
            raise CorruptRunFile(
                self.path,
                f"the file is truncated ({size} bytes, HDF5 expects {eoa}); "
                "it was cut short, e.g. by an incomplete copy",
            )
        if fmt != schema.FORMAT_NAME:
            raise NotBnvizRun(
                self.path,
                f"an HDF5 file, but not a bnviz recording (no {layout.ATTR_FORMAT}={schema.FORMAT_NAME!r} attribute)",
            )
        try:
            self.format_version = version.decode() if isinstance(version, bytes) else str(version)
            file_version = layout.parse_version(self.format_version)
        except (ValueError, AttributeError) as err:
            raise CorruptRunFile(self.path, f"unreadable format_version {version!r}") from err
        reader_version = "%d.%d" % schema.FORMAT_VERSION
        if file_version[0] > schema.FORMAT_VERSION[0]:
            raise NewerFormatError(self.path, self.format_version, reader_version)
        try:
            self.meta = self._read_meta()
            table = json.loads(f[layout.LAYERS][()])
            self.layers = [LayerInfo.from_dict(d) for d in table]
            self._ds: dict[str, h5py.Dataset] = {}
            self._stale: set[str] = set()
            self._probes = self._dataset("probes").shape[2]
            self._counts = self._read_commit()
        except RunFileError:
            raise
        except _READ_ERRORS as err:
            raise CorruptRunFile(self.path, f"the file's bnviz header is incomplete or damaged ({err})") from err
        self._by_path = {layer.path: layer for layer in self.layers}
        self._cache: dict = {}
        self._check_complete()

    def _check_complete(self) -> None:
        """SWMR read mode skips HDF5's end-of-file check, and raw data past the end reads as
        zeros: if the file is shorter than HDF5's end address, make sure no committed row lies
        past the end. (Uncommitted data may: a kill or a failed write leaves such files.)"""
        size = self.path.stat().st_size
        eoa = _stored_end_address(self.path)
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
                self._dataset(name).id.chunk_iter(lambda info: visit(info, n))  # noqa: B023
        except _READ_ERRORS as err:
            missing.append(err)
        if missing:
            raise CorruptRunFile(
                self.path,
                f"the file is truncated ({size} bytes, HDF5 expects {eoa}) "
                "and recorded rows are missing; an incomplete copy?",
            )

    def _read_meta(self) -> dict:
        meta = {}
        for key, value in self._file.attrs.items():
            if key in (layout.ATTR_FORMAT, layout.ATTR_VERSION):
                continue
            if isinstance(value, bytes):
                value = value.decode("utf-8", "replace")
            elif isinstance(value, np.generic):
                value = value.item()
            if key in layout.JSON_META_KEYS:
                value = json.loads(value)
            meta[key] = value
        return meta

    @property
    def schedule(self) -> dict:
        return self.meta.get("schedule") or {}

    # -- datasets and committed rows -------------------------------------------------------

    def _dataset(self, name: str) -> h5py.Dataset:
        ds = self._ds.get(name)
        if ds is None:
            ds = self._ds[name] = self._file[name]
        elif name in self._stale:
            ds.refresh()
        self._stale.discard(name)
        return ds

    def _read_commit(self) -> dict:
        ds = self._file[layout.COMMIT]
        ds.refresh()
        counts = ds[()]
        return {t: int(n) for t, n in zip(schema.TIERS, counts)}

    def _status(self) -> np.ndarray:
        try:
            ds = self._file[layout.STATUS]
            ds.refresh()
            return ds[()]
        except _READ_ERRORS as err:
            raise CorruptRunFile(self.path, f"cannot read the writer status ({err})") from err

    def refresh(self) -> bool:
        """Pick up rows committed since the last look. True when there are new rows."""
        try:
            counts = self._read_commit()
        except _READ_ERRORS as err:
            raise CorruptRunFile(self.path, f"cannot re-read the committed row counts ({err})") from err
        if counts == self._counts:
            return False
        self._counts = counts
        self._stale = set(self._ds)
        self._cache.clear()
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
                os.kill(int(pid), 0)
            except ProcessLookupError:
                return "writer gone"
            except PermissionError:
                pass  # alive, owned by another user
        flush_s = float(self.meta.get("flush_seconds") or self.schedule.get("flush_seconds") or 0)
        if time.time() - heartbeat > max(WRITER_GONE_FLUSHES * flush_s, WRITER_GONE_S):
            return "writer gone"
        return "live"

    @property
    def dropped_steps(self) -> int:
        """Steps the recorder could not record because the writer fell behind."""
        return int(self._status()[2])

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
        return int(self._status()[1]) == layout.STATE_FAILED

    def _read(self, name: str, tier: str, rows, *tail):
        """``name[rows, *tail]`` over committed rows of ``tier`` only."""
        n = self._counts[tier]
        try:
            ds = self._dataset(name)
            if ds.shape[0] < n:
                raise CorruptRunFile(self.path, f"dataset {name} has {ds.shape[0]} rows, fewer than the {n} committed")
            if isinstance(rows, slice):
                start, stop, step = rows.indices(n)
                if stop <= start:
                    return ds[0:0][(slice(None), *tail)]
                data = ds[(slice(start, stop), *tail)]
                return data[::step] if step != 1 else data
            if np.ndim(rows) == 0:
                i = int(rows) + (n if int(rows) < 0 else 0)
                if not 0 <= i < n:
                    raise IndexError(f"row {rows} out of range: {tier} has {n} committed rows")
                return ds[(i, *tail)]
            idx = np.asarray(rows, np.int64)
            idx = np.where(idx < 0, idx + n, idx)
            if idx.size == 0:
                return ds[0:0][(slice(None), *tail)]
            if idx.min() < 0 or idx.max() >= n:
                raise IndexError(f"rows out of range: {tier} has {n} committed rows")
            lo = int(idx.min())
            return ds[(slice(lo, int(idx.max()) + 1), *tail)][idx - lo]
        except (RunFileError, IndexError):
            raise
        except _READ_ERRORS as err:
            raise CorruptRunFile(self.path, f"cannot read {name} ({err}); the file is damaged") from err

    def _lacks(self, name: str, axis: int, f: int) -> bool:
        """Whether dataset ``name`` has no field ``f`` on ``axis`` (of a row): an older minor version's."""
        try:
            return f >= self._dataset(name).shape[axis + 1]
        except _READ_ERRORS as err:
            raise CorruptRunFile(self.path, f"cannot read {name} ({err}); the file is damaged") from err

    def _column(self, name: str, tier: str) -> np.ndarray:
        """A whole committed 1-D column, cached until the next refresh that brings rows."""
        key = (name, self._counts[tier])
        if key not in self._cache:
            self._cache[key] = self._read(name, tier, slice(None))
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
            try:
                raw = self._dataset(layout.SCALAR_NAMES)[()]
            except _READ_ERRORS as err:
                raise CorruptRunFile(self.path, f"cannot read scalar names ({err})") from err
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
        if self._file is not None:
            self._file.close()
            self._file = None
        for other in getattr(self, "ranks", ()):
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
