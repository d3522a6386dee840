"""Append Blocks to a bnviz HDF5 file in SWMR mode, directly (RunWriter) or from a thread (AsyncWriter).

Commit protocol: an append writes every dataset of the block (one write call per dataset),
flushes, then writes the committed row counts to ``commit`` and flushes again. A reader trusts
only committed rows, so a writer killed at any point leaves a file whose committed rows are
all complete. All datasets exist before SWMR starts: HDF5 readers cannot see later ones.
"""

from __future__ import annotations

import datetime
import importlib.metadata
import json
import os
import queue
import shlex
import socket
import sys
import tempfile
import threading
import time
import warnings
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from bnviz.store import h5files, layout, schema
from bnviz.store.block import Block
from bnviz.store.errors import RecordingWarning, RecordingWriteError

# Recording stops (cleanly, the file closed and marked), or does not start, when the disk has
# less free space than this: a full disk would also break the training's checkpoints.
MIN_FREE_BYTES = 256 * 1024 * 1024
# The writer keeps the open (partly filled) chunk of every layer in memory between appends,
# up to this many bytes per dataset, so an append never reads a chunk back from the file.
MAX_CACHE_BYTES = 64 * 1024 * 1024


def default_meta(path) -> dict:
    """Metadata the writing process knows by itself; the recorder adds model and torch details."""
    try:
        version = importlib.metadata.version("bnviz")
    except importlib.metadata.PackageNotFoundError:
        version = "unknown"
    return {
        "model_class": "unknown",
        "torch_version": "unknown",
        "bnviz_version": version,
        "command_line": shlex.join([sys.executable, *sys.argv]),
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "start_time": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "run_name": Path(path).stem,
        "user_meta": {},
        "schedule": {},
    }


def check_target(path, overwrite: bool) -> Path:
    """Fail before the first training step if ``path`` cannot be (re)created."""
    path = Path(path)
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise FileNotFoundError(f"cannot record to {path}: directory {parent} does not exist")
    try:  # a real probe: permission bits say nothing for root, read-only mounts or ACLs
        tempfile.TemporaryFile(dir=parent, prefix=".bnviz-probe-").close()
    except OSError as err:
        raise PermissionError(
            f"cannot record to {path}: directory {parent} is not writable ({err.strerror or err})"
        ) from err
    if path.is_dir():
        raise IsADirectoryError(f"cannot record to {path}: it is a directory")
    if path.exists() and not overwrite:
        raise FileExistsError(
            f"cannot record to {path}: the file exists (an earlier run?); "
            "pass overwrite=True to replace it, or choose another path"
        )
    return path


def _check_layers(layers) -> list[dict]:
    layers = [dict(layer) for layer in layers]
    if not layers:
        raise ValueError("a bnviz run needs at least one layer")
    paths = [layer.get("path") for layer in layers]
    duplicates = sorted({p for p in paths if paths.count(p) > 1}, key=str)
    if duplicates:
        raise ValueError(f"layer paths must be unique, repeated: {duplicates}")
    for i, layer in enumerate(layers):
        n = layer.get("num_features")
        if not isinstance(n, (int, np.integer)) or n < 1:
            raise ValueError(f"layer {i} ({layer.get('path')!r}): num_features must be a positive int")
    json.dumps(layers, allow_nan=False)  # fail now rather than at a reader
    return layers


def _encode_meta(meta: dict) -> dict:
    reserved = {layout.ATTR_FORMAT, layout.ATTR_VERSION} & set(meta)
    if reserved:
        raise ValueError(f"run metadata must not set {sorted(reserved)}")
    attrs: dict[str, object] = {}
    for key, value in meta.items():
        if key in layout.JSON_META_KEYS:
            attrs[key] = json.dumps(value, allow_nan=False)
        elif isinstance(value, (str, int, float, bool, np.integer, np.floating)):
            attrs[key] = value
        else:
            raise ValueError(
                f"run metadata {key!r} must be a string or number, got "
                f"{type(value).__name__} (structured data belongs in user_meta)"
            )
    return attrs


def encode_scalar_name(name: str) -> bytes:
    raw = name.encode("utf-8")
    if not name or len(raw) > schema.SCALAR_NAME_BYTES:
        raise ValueError(f"scalar name {name!r} must be 1 to {schema.SCALAR_NAME_BYTES} bytes of UTF-8")
    return raw


class RunWriter:
    """Create a run file with every dataset, start SWMR, then ``append`` Blocks and ``close``.

    The file is built under a hidden name beside ``path`` and renamed to ``path`` once it is a
    valid (empty) run, so a failed creation leaves nothing behind and ``overwrite`` replaces an
    old file without truncating it under a reader. One writer per path: ``claim`` (a
    ``WriterClaim`` the caller took earlier, else taken here) refuses a second one.

    Raises FileNotFoundError / PermissionError / FileExistsError / IsADirectoryError /
    RunFileInUse at construction if the file cannot be created, RecordingWriteError if creating
    it fails (disk full), ValueError for a malformed layer table, meta or Block, and
    RecordingWriteError once writing fails (after which the file stays readable with everything
    committed before, and says that recording failed)."""

    def __init__(
        self,
        path,
        *,
        layers: list[dict],
        meta: dict,
        probes: int,
        overwrite: bool = False,
        claim: h5files.WriterClaim | None = None,
    ):
        self.path = check_target(path, overwrite)
        self.layers = _check_layers(layers)
        self.n_probes = int(probes)
        if self.n_probes < 0:
            raise ValueError("probes must be >= 0")
        attrs = _encode_meta({**default_meta(self.path), **meta})
        self._columns = layout.tier_columns(len(self.layers), self.n_probes)
        self._channel_columns = [layout.channel_column(i, layer["num_features"]) for i, layer in enumerate(self.layers)]
        self._rows = dict.fromkeys(schema.TIERS, 0)
        self._last_step = dict.fromkeys(schema.TIERS, -(2**62))
        self._scalar_names: list[str] = []
        self._dropped = 0
        self._failed: BaseException | None = None
        self._file: Any = None  # h5py.File once created
        self._status_offset = None
        self._own_claim = claim is None
        self._claim = claim or h5files.WriterClaim(self.path)
        try:
            self._check_free_space()
            self._file = h5files.create_aside(self.path, self._image(attrs))
            self._open_datasets()
            self._file.swmr_mode = True
            self._status_offset = self._file[layout.STATUS].id.get_offset()
            h5files.publish(self.path, overwrite)
        except BaseException as err:
            if self._file is not None:
                self._abandon(err)
                self._close_file()
            h5files.discard_aside(self.path)
            self._release_claim()
            if isinstance(err, (OSError, RuntimeError)) and not isinstance(err, RecordingWriteError):
                raise RecordingWriteError(
                    self.path,
                    f"cannot create the file: {h5files.write_failure(err, self.path.parent)}",
                    kept="no file was written (a file already at that path is untouched)",
                ) from err
            raise

    def _image(self, attrs: dict) -> bytes:
        """The new, empty run as the bytes of an HDF5 file, built in memory: a disk that fills
        while HDF5 itself creates a file can crash the process at close, while ``create_aside``
        writing these bytes fails cleanly."""
        with h5py.File(f"{self.path.name}.image", "w", driver="core", backing_store=False, libver="latest") as f:
            f.attrs[layout.ATTR_FORMAT] = schema.FORMAT_NAME
            f.attrs[layout.ATTR_VERSION] = schema.FORMAT_VERSION_TEXT
            for key, value in attrs.items():
                f.attrs[key] = value
            f.create_dataset(
                layout.LAYERS, data=json.dumps(self.layers, ensure_ascii=False), dtype=h5py.string_dtype("utf-8")
            )
            f.create_dataset(layout.COMMIT, data=np.zeros(len(schema.TIERS), np.int64))
            f.create_dataset(layout.STATUS, data=np.array([time.time(), layout.STATE_LIVE, 0.0]))
            # written now, so its space is allocated here: space allocated later lies past the end of
            # file that open readers know, and HDF5 refuses to open the dataset for them
            f.create_dataset(layout.SCALAR_NAMES, data=np.zeros(schema.MAX_SCALARS, f"S{schema.SCALAR_NAME_BYTES}"))
            f.create_group(layout.CHANNEL_GROUP)
            for col in [*self._columns, *self._channel_columns]:
                f.create_dataset(
                    col.name,
                    shape=(0, *col.row_shape),
                    maxshape=layout.max_shape(col),
                    chunks=layout.chunk_shape(col),
                    dtype=col.dtype,
                )
            h5py.h5f.flush(f.id)  # completes the image in memory (no file on disk is touched)
            return f.id.get_file_image()

    def _open_datasets(self) -> None:
        """Each growing dataset with a chunk cache that holds its open chunk of every layer."""
        self._datasets = {}
        for col in [*self._columns, *self._channel_columns]:
            per_layer = col.row_shape[col.layer_axis] if col.layer_axis is not None else 1
            cache = min(MAX_CACHE_BYTES, 2 * max(1, per_layer) * layout.chunk_bytes(col))
            dapl = h5py.h5p.create(h5py.h5p.DATASET_ACCESS)
            dapl.set_chunk_cache(max(521, 8 * per_layer + 1), cache, 1.0)
            self._datasets[col.name] = h5py.Dataset(h5py.h5d.open(self._file.id, col.name.encode(), dapl=dapl))

    @property
    def rows(self) -> dict:
        """Committed rows per tier."""
        return dict(self._rows)

    # -- appending -------------------------------------------------------------------------

    def append(self, block: Block) -> None:
        if self._failed is not None:
            raise RecordingWriteError(self.path, f"an earlier write failed ({self._failed})")
        if self._file is None:
            raise ValueError(f"{self.path}: the writer is closed")
        tiers = self._tier_arrays(block)
        names = list(block.scalar_names)
        table = None
        if names != self._scalar_names:
            table = np.zeros(schema.MAX_SCALARS, f"S{schema.SCALAR_NAME_BYTES}")
            table[: len(names)] = [encode_scalar_name(n) for n in names]
        self._check_free_space()
        try:
            for col in self._columns:
                self._write(col, tiers[col.tier][col.name])
            for col, data in zip(self._channel_columns, block.channels):
                self._write(col, data)
            if table is not None:
                self._file[layout.SCALAR_NAMES][...] = table
            self._dropped += int(block.dropped_steps)
            self._write_status(layout.STATE_LIVE)
            self._file.flush()
            new_rows = {t: self._rows[t] + len(tiers[t]["_step"]) for t in schema.TIERS}
            self._file[layout.COMMIT][...] = np.array([new_rows[t] for t in schema.TIERS], np.int64)
            self._file.flush()
        except (OSError, RuntimeError) as err:
            self._abandon(err)
            raise self._write_error(err) from err
        self._rows = new_rows
        self._scalar_names = names
        for t in schema.TIERS:
            if len(tiers[t]["_step"]):
                self._last_step[t] = int(tiers[t]["_step"][-1])

    def _check_free_space(self) -> None:
        try:
            st = os.statvfs(self.path.parent)
        except OSError:
            return  # no statvfs here: rely on write errors
        free = st.f_bavail * st.f_frsize
        if free < MIN_FREE_BYTES:
            problem = (
                f"only {free / 2**20:.0f} MiB are free on its disk, and bnviz records only "
                f"while at least {MIN_FREE_BYTES / 2**20:.0f} MiB are (the rest is left for "
                "the training's checkpoints)"
            )
            if self._file is None:
                raise RecordingWriteError(
                    self.path,
                    f"cannot create the file: {problem}",
                    kept="no file was written (a file already at that path is untouched)",
                )
            self._failed = OSError(28, problem)
            raise RecordingWriteError(self.path, problem, kept=self.kept())

    def _abandon(self, err: BaseException) -> None:
        """After a failed write HDF5 cannot flush or close the file without crashing the process
        (HDF5 2.0: free(): invalid pointer, or a segfault, at close). Point its descriptor at
        /dev/null so the remaining flushes and the close succeed harmlessly: the file on disk
        keeps the state of the last successful flush, which is readable like a killed writer's;
        then mark it failed in place (its status record needs no new space)."""
        self._failed = err
        try:
            fd = self._file.id.get_vfd_handle()
            null = os.open(os.devnull, os.O_RDWR)
            os.dup2(null, fd)
            os.close(null)
        except (OSError, RuntimeError, ValueError):
            pass
        if self._status_offset is None:
            return
        try:
            fd = os.open(self.path, os.O_WRONLY)
            try:
                status = np.array([time.time(), layout.STATE_FAILED, self._dropped], "<f8")
                os.pwrite(fd, status.tobytes(), self._status_offset)
            finally:
                os.close(fd)
        except OSError:
            pass  # readers then see a writer gone: the committed rows are intact either way

    def _write_error(self, err: BaseException, when: str = "") -> RecordingWriteError:
        return RecordingWriteError(self.path, when + h5files.write_failure(err, self.path.parent), kept=self.kept())

    def kept(self) -> str:
        """What the file holds after a failure, for the message."""
        n = self._rows["summary"]
        if not n:
            return "the file opens normally but holds no recorded step"
        return (
            f"the file keeps the {n} rows recorded before (up to step {self._last_step['summary']}) and opens normally"
        )

    def _write(self, col: layout.Column, data: np.ndarray) -> None:
        n = len(data)
        if n == 0:
            return
        # Start at the committed count, not the extent: rows of an append that failed part-way
        # are overwritten, so data and commit can never drift apart.
        ds = self._datasets[col.name]
        start = self._rows[col.tier]
        ds.resize(start + n, axis=0)
        ds[start : start + n] = data

    def heartbeat(self) -> None:
        """Tell readers the writer is alive while no rows arrive (slow steps)."""
        if self._file is None or self._failed is not None:
            return
        try:
            self._write_status(layout.STATE_LIVE)
            self._file.flush()
        except (OSError, RuntimeError) as err:
            self._abandon(err)
            raise self._write_error(err) from err

    def _write_status(self, state: int) -> None:
        self._file[layout.STATUS][...] = np.array([time.time(), state, self._dropped], np.float64)

    def close(self, failed: bool = False) -> None:
        """Mark the run closed (or failed: after a write error, or ``failed=True`` when recording
        stopped for another reason) and close the file. Idempotent."""
        if self._file is None:
            return
        try:
            self._write_status(layout.STATE_FAILED if failed or self._failed else layout.STATE_CLOSED)
            self._file.flush()
        except (OSError, RuntimeError) as err:
            first = self._failed is None
            self._abandon(err)
            if first:
                raise self._write_error(err, "closing the file failed: ") from err
        finally:
            self._close_file()
            self._release_claim()

    def _close_file(self) -> None:
        try:
            self._file.close()
        except (OSError, RuntimeError):
            pass  # committed rows are on disk whatever the close says
        self._file = None

    def _release_claim(self) -> None:
        if self._own_claim:
            self._claim.release()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- validation ------------------------------------------------------------------------

    def _tier_arrays(self, block: Block) -> dict:
        """The block's arrays by tier and dataset name, shapes and step order checked."""
        L = len(self.layers)
        b = block
        scalar_values = np.asarray(b.scalar_values, np.float64)
        rs = len(b.scalar_step)
        if rs and scalar_values.ndim == 2 and scalar_values.shape[1] < schema.MAX_SCALARS:
            pad = np.full((rs, schema.MAX_SCALARS - scalar_values.shape[1]), np.nan)
            scalar_values = np.concatenate([scalar_values, pad], axis=1)
        if len(b.scalar_names) > schema.MAX_SCALARS:
            raise ValueError(f"at most {schema.MAX_SCALARS} scalar names, got {len(b.scalar_names)}")
        if len(b.channels) != L:
            raise ValueError(f"block has channel arrays for {len(b.channels)} layers, the run has {L}")
        tiers = {
            "summary": {
                "summary_step": b.summary_step,
                "summary_phase": b.summary_phase,
                "summary_time": b.summary_time,
                "summary": b.summary,
                "quantiles": b.quantiles,
                "probes": b.probes,
            },
            "channels": {"channel_step": b.channel_step, "channel_phase": b.channel_phase},
            "hist": {
                "hist_step": b.hist_step,
                "hist_phase": b.hist_phase,
                "hist_counts": b.hist_counts,
                "hist_range": b.hist_range,
            },
            "scalars": {"scalar_step": b.scalar_step, "scalar_values": scalar_values},
        }
        for tier, step_name in zip(schema.TIERS, ("summary_step", "channel_step", "hist_step", "scalar_step")):
            tiers[tier]["_step"] = np.asarray(tiers[tier][step_name])
        for col in self._columns:
            arrays = tiers[col.tier]
            step = arrays["_step"]
            data = np.asarray(arrays[col.name])
            if len(step) == 0 and data.size == 0:
                arrays[col.name] = data.reshape((0, *col.row_shape))
                continue
            expected = (len(step), *col.row_shape)
            if data.shape != expected:
                raise ValueError(f"block.{col.name} has shape {data.shape}, expected {expected}")
            arrays[col.name] = data
        rc = len(b.channel_step)
        for col, data in zip(self._channel_columns, b.channels):
            expected = (rc, *col.row_shape)
            if np.shape(data) != expected and not (rc == 0 and np.size(data) == 0):
                raise ValueError(
                    f"block channel array for layer {col.name} has shape {np.shape(data)}, expected {expected}"
                )
        for tier in schema.TIERS:
            step = tiers[tier]["_step"]
            if len(step) and (np.any(np.diff(step) < 0) or step[0] < self._last_step[tier]):
                raise ValueError(
                    f"block {tier} steps must not decrease (last written "
                    f"{self._last_step[tier]}, block starts at {step[0]})"
                )
        return tiers


class AsyncWriter:
    """Run a RunWriter on a background thread behind a bounded queue.

    ``submit`` takes a Block or anything with ``.wait() -> Block`` (a PendingBlock) and never
    blocks longer than its timeout: it returns False when the queue is full (the recorder then
    drops and counts the steps) or after recording stopped. A write error stops recording:
    the file is closed with what was committed and ONE RecordingWarning is issued from the
    next ``submit`` or ``close`` call; nothing raises into the caller."""

    _STOP = object()

    def __init__(self, run_writer: RunWriter, max_pending: int = 4, heartbeat_s: float = 10.0):
        if max_pending < 1:
            raise ValueError("max_pending must be >= 1")
        self.writer = run_writer
        self.heartbeat_s = heartbeat_s
        self._queue: queue.Queue = queue.Queue(max_pending)
        self._error: BaseException | None = None
        self._warned = False
        self._closing = False
        self._close_failed = False
        self._cpu_seconds = 0.0
        self._thread = threading.Thread(target=self._loop, name="bnviz-writer", daemon=True)
        self._thread.start()

    @property
    def error(self) -> BaseException | None:
        """The error that stopped recording, or None."""
        return self._error

    @property
    def pending(self) -> int:
        return self._queue.qsize()

    @property
    def cpu_seconds(self) -> float:
        """CPU time the writer thread has used (building Blocks, HDF5 writes, flushes), as of the
        last item it finished: what recording takes from the training's cores on the writer side."""
        return self._cpu_seconds

    def submit(self, pending, timeout: float = 0.0) -> bool:
        self._warn_once()
        if self._error is not None or self._closing:
            return False
        try:
            self._queue.put(pending, block=timeout > 0, timeout=timeout if timeout > 0 else None)
        except queue.Full:
            return False
        return True

    def wait_idle(self, timeout: float) -> bool:
        """Wait until everything submitted is written (or recording stopped)."""
        deadline = time.monotonic() + timeout
        while self._queue.unfinished_tasks and self._thread.is_alive():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.005)
        return True

    def close(self, timeout: float | None = None, failed: bool = False) -> bool:
        """Write what is queued, close the file, join the thread. False if it did not finish
        within ``timeout`` (the thread goes on; committed rows are safe either way).
        ``failed``: rows were lost before they reached the queue; the file says so."""
        self._close_failed = self._close_failed or failed
        if not self._closing:
            self._closing = True
            try:
                self._queue.put(self._STOP, timeout=timeout)
            except queue.Full:
                pass
        self._thread.join(timeout)
        self._warn_once()
        return not self._thread.is_alive()

    def _loop(self) -> None:
        while True:
            try:
                item = self._queue.get(timeout=self.heartbeat_s)
            except queue.Empty:
                if self._closing:  # close() timed out queueing the stop: the queue is drained now
                    break
                self._guarded(self.writer.heartbeat)
                continue
            try:
                if item is self._STOP:
                    break
                if self._error is None:
                    self._guarded(self._write, item)
            finally:
                self._cpu_seconds = time.thread_time()  # before task_done: wait_idle then sees it
                self._queue.task_done()
        try:
            self.writer.close(failed=self._close_failed)
        except BaseException as err:  # noqa: BLE001 - reported as the warning, never raised
            self._error = self._error or err

    def _write(self, item) -> None:
        block = item if isinstance(item, Block) else item.wait()
        self.writer.append(block)

    def _guarded(self, fn, *args) -> None:
        if self._error is not None:
            return
        try:
            fn(*args)
        except BaseException as err:  # noqa: BLE001 - a debugging tool never stops the training
            self._error = err
            try:
                self.writer.close(failed=True)
            except BaseException:  # noqa: BLE001
                pass

    def _warn_once(self) -> None:
        if self._error is None or self._warned:
            return
        self._warned = True
        warnings.warn(stopped_message(self._error, self.writer), RecordingWarning, stacklevel=3)


def stopped_message(err: BaseException, writer: RunWriter | None = None) -> str:
    """The one warning of a recording that stopped: what happened, what the file keeps, what to
    do. Training goes on either way."""
    if isinstance(err, RecordingWriteError):
        what, kept = err.problem, err.kept
    else:
        what = f"{type(err).__name__}: {err}"
        kept = writer.kept() if writer is not None else ""
    path = err.path if isinstance(err, RecordingWriteError) else (writer.path if writer else "the file")
    space = any(w in what for w in ("full", "quota", "MiB are free", "size limit"))
    return (
        f"bnviz stopped recording to {path}: {what}. Training goes on, unaffected, without "
        "recording"
        + (f"; {kept}" if kept else "")
        + "."
        + (" To record, free space on that disk or record to another one." if space else "")
    )
