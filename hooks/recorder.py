"""``bnviz.record``: instrument a model and stream its BN statistics to an HDF5 file.

The training thread only marks steps and, every ``flush_every`` steps or ``flush_seconds``,
starts the engine's non-blocking copy of the rows gathered so far; a background thread
writes them. If the writer falls behind, the queue stays bounded: the engine's row buffer
fills and further rows are dropped and counted in the file, never held in memory.
Nothing here may raise into the training loop after ``record`` returned: a failure issues
one warning, stops recording and leaves the model un-instrumented.

In a torch.distributed job every rank records its own local statistics to its own file
(``bnviz.store.ranks.rank_path``) without any communication; see docs/distributed.md.
"""

from __future__ import annotations

import functools
import math
import time
import warnings
from dataclasses import dataclass

import numpy as np
import torch

from bnviz.hooks import distributed, shutdown
from bnviz.hooks.engine import StatsEngine
from bnviz.hooks.instrument import instrument
from bnviz.store import schema
from bnviz.store.block import Block
from bnviz.store.errors import RecordingWarning, RecordingWriteError, RunFileError
from bnviz.store.h5files import WriterClaim
from bnviz.store.ranks import rank_path
from bnviz.store.segments import open_joined, segment_path, segment_paths
from bnviz.store.writer import AsyncWriter, RunWriter, check_target, encode_scalar_name, stopped_message

# Per-channel rows are large (len(CHANNEL_FIELDS) float32 per channel); by default they are
# written only often enough to average this many bytes per training step, and histograms
# this many bytes, so a 100k-step ResNet-50 run stays under 2 GB (docs/format.md).
CHANNEL_BYTES_PER_STEP = 4096
# The longest the training thread waits for the writer: at close, and for a flush that must land.
WRITER_WAIT_S = 60.0
HIST_BYTES_PER_STEP = 1024
# This many training forwards of the whole model with no step in between means steps are not being
# marked (no optimizer=, no rec.step()): everything would be one row. Warn once.
NO_STEP_FORWARDS = 100


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
    if channel_every == "auto":
        row = total_channels * len(schema.CHANNEL_FIELDS) * 4
        channel_every = max(1, math.ceil(row / (CHANNEL_BYTES_PER_STEP * every)))
    if hist_every == "auto":
        row = num_layers * len(schema.TENSORS) * (schema.HIST_BINS + len(schema.HIST_EXTRA) + 2) * 4
        hist_every = max(1, math.ceil(row / (HIST_BYTES_PER_STEP * every)))
    for name, value in (("every", every), ("channel_every", channel_every), ("hist_every", hist_every)):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive int or 'auto', got {value!r}")
    return Schedule(every, int(channel_every), int(hist_every))  # ints, checked above


class _ScalarLog:
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


class _PendingWithScalars:
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


def _busy_call(method):
    """Mark the recorder busy during ``method``: a SIGTERM then waits until it returns."""

    @functools.wraps(method)
    def call(self, *args, **kwargs):
        self._busy_depth += 1
        try:
            return method(self, *args, **kwargs)
        finally:
            self._busy_depth -= 1
            if not self._busy_depth:
                shutdown.deliver_pending()

    return call


class Recorder:
    """Records the instrumented model's BN statistics; see ``record``."""

    def __init__(
        self,
        model,
        path,
        *,
        every=1,
        optimizer=None,
        overwrite=False,
        run_name=None,
        meta=None,
        activations=None,
        probes=1,
        channel_every="auto",
        hist_every="auto",
        flush_every=64,
        flush_seconds=10.0,
        max_pending=4,
        kernel="native",
        resume=False,
        start_step=None,
    ):
        # In a job of several processes each rank writes its own file (docs/distributed.md).
        self.rank_info = distributed.rank_info()
        if self.rank_info:
            path = rank_path(path, self.rank_info["rank"])
        if start_step is not None and (
            not isinstance(start_step, (int, np.integer)) or isinstance(start_step, bool) or start_step < 0
        ):
            raise ValueError(f"start_step={start_step!r}: give the number of the first step to record (>= 0)")
        if resume and overwrite:
            raise ValueError("resume=True continues the recording at path and overwrite=True replaces it: choose one")
        self._resumed = _previous_recording(path) if resume else None
        if self._resumed is not None:
            path = segment_path(path, self._resumed["segments"])
        if flush_every < 1 or flush_seconds <= 0 or max_pending < 1:
            raise ValueError("flush_every and max_pending must be >= 1 and flush_seconds > 0")
        self.path = check_target(path, overwrite)
        self._claim = WriterClaim(self.path)  # one recorder per file: refused here, before training
        self._overwrite = overwrite
        self._run_name = run_name
        self._user_meta = dict(meta or {})
        self._model = distributed.unwrap(model)  # same layer paths before or after wrapping in DDP
        self._model_class = type(self._model).__qualname__
        self._flush_every = flush_every
        self._flush_seconds = flush_seconds
        self._max_pending = max_pending
        self._options = dict(
            activations=activations,
            probes=probes,
            kernel=kernel,
            every=every,
            channel_every=channel_every,
            hist_every=hist_every,
        )
        self._scalars = _ScalarLog()
        self._bad_scalars: set[str] = set()
        self._writer: AsyncWriter | None = None
        # the step in progress; a resumed recording goes on after the first attempt's last step
        # unless start_step (or the first rec.step(n)) says where the checkpoint was
        self._free_start = start_step is None and self._resumed is not None
        if start_step is None:
            start_step = self._resumed["last_step"] + 1 if self._resumed else 0
        self._step = int(start_step)
        self._first_step = None  # the first step that ended: where this file's rows begin
        self._ended = False  # whether a step ended since the recording began
        self._ran = False  # whether BN layers ran in the step that ended last
        self._told: set[str] = set()  # one-time warnings given
        self._last_flush = time.monotonic()
        self._stopped = False
        self._closed = False
        self._busy_depth = 0
        try:
            self._attach()
        except BaseException:
            self._claim.release()
            raise
        try:
            if self._resumed is not None:
                self._check_resumable()
            self._hook = step_hook(optimizer, lambda *_: self.step()) if optimizer is not None else None
        except BaseException:
            self._release()
            self._claim.release()
            raise
        shutdown.register(self)

    def _attach(self) -> None:
        o = self._options
        self.instrumentation = instrument(
            self._model, activations=o["activations"], probes=o["probes"], kernel=o["kernel"]
        )
        try:
            layers = self.instrumentation.layers
            self.schedule = default_schedule(
                len(layers), sum(l.num_features for l in layers), o["every"], o["channel_every"], o["hist_every"]
            )
            self.engine = StatsEngine(
                self.instrumentation,
                capacity_rows=2 * self._flush_every,
                every=self.schedule.every,
                channel_every=self.schedule.channel_every,
                hist_every=self.schedule.hist_every,
                probes=o["probes"],
                first_step=self._step,
                first_train_row=self._train_rows_before(),
                no_step_calls=NO_STEP_FORWARDS * len(layers),
                on_no_step=self._no_step,
            )
            self._watch = distributed.LayerWatch(self._model, layers)
        except BaseException:
            self.instrumentation.detach()
            raise

    @property
    def current_step(self) -> int:
        """Training steps completed so far."""
        return self._step

    @property
    def recording(self) -> bool:
        return not (self._stopped or self._closed)

    @property
    def busy(self) -> bool:
        """Inside one of its calls (a signal then waits until the call returns)."""
        return self._busy_depth > 0

    @_busy_call
    def step(self, n: int | None = None) -> None:
        """Mark the end of a training step (called for you when ``optimizer=`` was given).

        n: the number of the step that just ended, for loops that own the step counter (a
        framework's global step, a resumed run's step); default: the step after the previous one.
        Steps only go forward: an n at or before the last ended step changes nothing (an n
        before it warns once), so calling it again with the same n is harmless."""
        if n is not None:
            if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 0:
                self._tell(
                    "step-type",
                    f"bnviz: rec.step(n) needs a step number >= 0, got {n!r}; this call counts as the next step",
                )
                n = None
            elif n < self._step and not (self._free_start and not self._ended):
                if n < self._step - 1:
                    self._tell(
                        "step-back",
                        f"bnviz: rec.step({n}) after step {self._step - 1} ended: "
                        "steps only go forward, so this call changes nothing",
                    )
                return
        n = self._step if n is None else int(n)
        # rec.log right after this goes to step n if the model ran in it (and not since)
        self._ran = self.recording and self.engine.calls != [0, 0]
        self._scalars.end(n)
        if self.recording:
            self._guard(lambda: self._end_step(n))
        self._step = n + 1
        self._ended = True
        if self._first_step is None:
            self._first_step = n

    @_busy_call
    def log(self, **scalars) -> None:
        """Record user scalars (loss, accuracy, lr, ...) at the step they belong to.

        That is the step in progress, or the step that just ended when no BN layer has run since
        it ended: ``rec.log(loss=loss)`` lands on the loss's own step whether it is called before
        or after ``opt.step()`` / ``rec.step()``; after an eval pass it lands with the eval rows.
        A value that cannot be recorded (not a number, a tensor of several elements, a 33rd
        name) is skipped with one warning per name: logging never stops the training."""
        if not self.recording:
            return
        step = self._step - 1 if self._ran and self.engine.calls == [0, 0] else None
        for name, value in scalars.items():
            try:
                self._scalars.log(step, {name: value})
            except (TypeError, ValueError) as err:
                if name not in self._bad_scalars:
                    self._bad_scalars.add(name)
                    _warn(f"bnviz does not record scalar {name!r}: {err}")

    @_busy_call
    def close(self) -> None:
        """Write everything gathered, close the file and restore the model's BN modules.

        A Ctrl-C meanwhile is raised once the file is closed with its rows; a second one stops
        at once, and the file then says that recording failed (it keeps its committed rows)."""
        if self._closed:
            return
        self._closed = True
        with shutdown.sigint_deferred():
            if self._hook is not None:
                self._hook.remove()
            finished = False
            try:
                if not self._stopped:
                    self._guard(self._finish)
                finished = True
            finally:
                self._stop_writer(failed=not finished)
                self._release()
                self._claim.release()
                shutdown.unregister(self)

    @_busy_call
    def commit_buffered(self) -> None:
        """Hand every row gathered so far to the file and wait until it is committed (SIGTERM)."""
        if self.recording:
            self._guard(self._commit_buffered)

    def _commit_buffered(self) -> None:
        if self.engine.rows_pending:
            self._flush(wait=True)
        if self._writer is not None:
            self._writer.wait_idle(WRITER_WAIT_S)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # --- internals -------------------------------------------------------------------------

    def _end_step(self, step: int) -> None:
        replaced = self._watch.replaced()
        if replaced:
            self._reattach(replaced, step)
            return
        self.engine.end_step(step)
        if self.instrumentation.observed and "layers" not in self._told:
            self._tell_layers()
        due = (
            self.engine.rows_pending >= self._flush_every or time.monotonic() - self._last_flush >= self._flush_seconds
        )
        if due and self.engine.rows_pending:
            self._flush(wait=False)

    def _reattach(self, replaced: list[str], step: int) -> None:
        """Layers were swapped out of the model (convert_sync_batchnorm): keep what the old
        layers recorded, then instrument the model as it is now, if it still fits the file."""
        self.engine.end_step(step)
        if self.engine.rows_pending:
            self._flush(wait=True)
        self._release()
        self._step = step + 1
        self._attach()  # the new engine goes on from the next step
        shown = ", ".join(replaced[:3]) + (f" and {len(replaced) - 3} more" if len(replaced) > 3 else "")
        why = (
            f"bnviz: layers {shown} were replaced in the model after bnviz.record() started "
            "(torch.nn.SyncBatchNorm.convert_sync_batchnorm builds new modules without bnviz's "
            f"instrumentation), so their statistics of step {step} were not recorded"
        )
        fix = "To record every step, convert the model first, then call bnviz.record()."
        if self._writer is not None:
            table = {(l["path"], l["num_features"]) for l in self._writer.writer.layers}
            now = {(l.path, l.num_features) for l in self.instrumentation.layers}
            if table != now:
                raise RuntimeError(f"{why}; the model's BN layers no longer match the file's layer table. {fix}")
            why += "; the file's layer table keeps the old layer kinds"
        _warn(f"{why}. Recording goes on with the new layers from step {step + 1}. {fix}")

    def _tell(self, key: str, message: str) -> None:
        """Warn once per recording for each kind of problem."""
        if key not in self._told:
            self._told.add(key)
            _warn(message)

    def _no_step(self) -> None:
        since = f"step {self._step - 1} ended" if self._ended else "the recording began"
        self._tell(
            "no-step",
            f"bnviz: {NO_STEP_FORWARDS} training forwards of the model since {since} "
            "and no step marked: they all belong to one step, of which bnviz records "
            "the first forward. Pass optimizer= to bnviz.record, or call rec.step() "
            "after each optimizer step.",
        )

    def _tell_layers(self) -> None:
        """What the first observed forward showed about layers bnviz cannot record as asked."""
        self._told.add("layers")
        unchecked = self.instrumentation.unchecked
        if unchecked:
            _warn(
                "bnviz: these BatchNorm subclasses did not normalise their input with F.batch_norm in "
                f"their forward: {', '.join(unchecked)}. bnviz records their input and their own "
                "weight, bias and running statistics as a BN's; check that this is what they compute."
            )
        reused = [
            f"{li.path} ({li.calls_per_forward} calls)"
            for li in self.instrumentation.layers
            if li.calls_per_forward > 1
        ]
        if reused:
            _warn(
                "bnviz: these BN layers run more than once in one forward of the model: "
                f"{', '.join(reused)}. bnviz records the first call of each step (the layer table "
                "says how many calls there are in calls_per_forward); to see every call, give each "
                "use its own BN module."
            )

    def _train_rows_before(self) -> int:
        """Train rows the recording holds before the step in progress (0 unless resumed)."""
        if self._resumed is None:
            return 0
        return int((self._resumed["train_steps"] < self._step).sum())

    def _check_resumable(self) -> None:
        """The model must have the BN layers of the recording it continues (any forward order)."""
        before = self._resumed["layers"]
        now = {(li.path, li.num_features) for li in self.instrumentation.layers}
        if now != before or self.instrumentation.probes_per_layer != self._resumed["probes"]:
            gone = ", ".join(sorted(p for p, _ in before - now)[:3]) or "none"
            new = ", ".join(sorted(p for p, _ in now - before)[:3]) or "none"
            raise ValueError(
                f"resume=True: the model's BN layers (or probes) differ from those of "
                f"{self._resumed['path']} (missing now: {gone}; new: {new}); record this "
                "model to another path"
            )

    def _finish(self) -> None:
        self._scalars.end(self._step)
        self.engine.finish()
        if self.engine.rows_pending or self._writer is None:
            self._flush(wait=True)

    def _flush(self, wait: bool) -> None:
        if self._writer is None:
            self._writer = AsyncWriter(self._open_file(), max_pending=self._max_pending)
        if not wait and self._writer.pending >= self._max_pending:
            return  # writer behind: rows stay in the engine, which drops and counts the overflow
        names, rows = self._scalars.take()
        item = _PendingWithScalars(self.engine.take_block(), names, rows)
        if not self._writer.submit(item, timeout=WRITER_WAIT_S if wait else 0.0):
            if self._writer.error is not None:  # the writer has said why, once: stop quietly
                self._stopped = True
                self._release()
                self._stop_writer()
                return
            _warn(
                f"bnviz: the writer of {self.path} did not take the last rows within "
                f"{WRITER_WAIT_S:.0f} s (a slow or hung disk?); they are not in the file"
            )
        self._last_flush = time.monotonic()

    def _open_file(self) -> RunWriter:
        # Created at the first flush: the layer table (forward order, following activations)
        # is only known after the first forward, and SWMR files cannot grow datasets later.
        meta = {
            "model_class": self._model_class,
            "torch_version": str(torch.__version__),
            "schedule": self.schedule.as_meta(),
            "user_meta": self._user_meta,
            "flush_every": self._flush_every,
            "flush_seconds": self._flush_seconds,
            "engine": self.engine.meta,
        }
        if self._run_name:
            meta["run_name"] = self._run_name
        if self._resumed is not None:
            meta.setdefault("run_name", self._resumed["run_name"])
            meta["segment"] = self._resumed["segments"]
            meta["segment_start"] = self._step if self._first_step is None else self._first_step
        if self.rank_info:
            meta.update(self.rank_info)
        return RunWriter(
            self.path,
            layers=self.engine.layer_table(),
            meta=meta,
            probes=self.engine.probes,
            overwrite=self._overwrite,
            claim=self._claim,
        )

    def _guard(self, fn) -> None:
        try:
            fn()
        except Exception as err:  # noqa: BLE001 - never break the training we watch
            self._stopped = True
            self._release()
            self._stop_writer()
            if isinstance(err, RecordingWriteError):
                _warn(stopped_message(err))
            else:
                _warn(
                    f"bnviz stopped recording to {self.path}: {type(err).__name__}: {err}. "
                    "Training goes on without recording."
                )

    def _stop_writer(self, failed: bool = False) -> None:
        """Close the file with every row handed over (``failed``: rows were lost, say so in the
        file); never blocks longer than WRITER_WAIT_S."""
        writer, self._writer = self._writer, None
        if writer is None:
            return
        try:
            if not writer.close(timeout=WRITER_WAIT_S, failed=failed):
                _warn(
                    f"bnviz: the writer of {self.path} did not finish within {WRITER_WAIT_S:.0f} s; "
                    "it goes on in the background (committed rows are safe)"
                )
        except Exception:  # noqa: BLE001 - its own warning raised (warnings as errors): nothing to add
            pass

    def _release(self) -> None:
        if self.instrumentation.attached:
            self.engine.close()
            self.instrumentation.detach()


def _previous_recording(path) -> dict | None:
    """What a resumed recording needs from the files already written to ``path``; None if none."""
    existing = segment_paths(path)
    if not existing:
        return None
    try:
        run = open_joined(existing[0])
    except RunFileError as err:
        raise ValueError(
            f"resume=True: cannot continue {existing[0]}: {err.problem}. Move it away, "
            "or pass overwrite=True (without resume) to start again"
        ) from err
    with run:
        steps = run.steps
        train = steps[run.rows("train")]
        last = train if len(train) else steps
        return {
            "path": existing[0],
            "segments": len(existing),
            "probes": run._probes,
            "train_steps": train,
            "last_step": int(last.max()) if len(last) else -1,
            "layers": {(li.path, li.num_features) for li in run.layers},
            "run_name": run.meta.get("run_name", existing[0].stem),
        }


def step_hook(optimizer, fn):
    """Register ``fn`` as ``optimizer``'s step post-hook. A wrapper (accelerate's
    AcceleratedOptimizer, Lightning's LightningOptimizer, ...) is unwrapped through its
    ``.optimizer`` chain to the torch optimizer whose real updates are counted."""
    seen, inner = [], optimizer
    # a torch optimizer set up by Optimizer.__init__ (AcceleratedOptimizer subclasses it without that)
    while not (isinstance(inner, torch.optim.Optimizer) and hasattr(inner, "_optimizer_step_post_hooks")):
        seen.append(type(inner).__name__)
        nxt = getattr(inner, "optimizer", None)
        if nxt is None or nxt is inner or len(seen) > 8:
            chain = " -> ".join(seen)
            raise TypeError(
                f"optimizer={chain}: bnviz counts steps with a torch.optim.Optimizer's step "
                "hook and found none (nor one in its .optimizer chain). Pass the torch "
                "optimizer, or leave optimizer= out and call rec.step() after each step."
            )
        inner = nxt
    return inner.register_step_post_hook(fn)


def _warn(message: str) -> None:
    """A RecordingWarning that cannot stop the training, even where warnings are errors."""
    try:
        warnings.warn(message, RecordingWarning, stacklevel=4)
    except Warning:
        pass


def record(
    model: torch.nn.Module,
    path,
    *,
    every: int = 1,
    optimizer=None,
    overwrite: bool = False,
    run_name: str | None = None,
    meta: dict | None = None,
    activations: dict | None = None,
    probes=1,
    channel_every="auto",
    hist_every="auto",
    flush_every: int = 64,
    flush_seconds: float = 10.0,
    max_pending: int = 4,
    kernel: str = "native",
    resume: bool = False,
    start_step: int | None = None,
) -> Recorder:
    """Instrument ``model`` and record its BatchNorm statistics to the HDF5 file ``path``.

    Use as a context manager, or call ``close()``. Call ``rec.step()`` after each optimizer
    step (``rec.step(n)`` where the loop owns the step counter), or pass ``optimizer=`` and steps
    are counted from its step hook (a wrapped optimizer, e.g. accelerate's, is unwrapped through
    ``.optimizer``; the hook counts real updates, so a step a GradScaler skipped is not one).
    ``rec.log(name=value)`` records scalars at the step they belong to.

    every: record every k-th training step (eval passes are always recorded).
    channel_every / hist_every: per-channel and histogram rows on every k-th recorded row;
        'auto' keeps them to ~4 KB and ~1 KB per step on average.
    flush_every / flush_seconds: hand rows to the writer thread after this many recorded rows
        or this many seconds, whichever comes first. A kill loses at most the rows since the
        last flush that reached the file.
    activations: {"layer.path": "tanh", ...} overrides the detected following activation.
    probes: per-layer probe channels whose own quantiles are recorded: an int k picks k channels
        evenly spread (the centres of k equal segments: 1 is the middle channel), or
        {layer path: [channels]}.
    kernel: "native" (bit-identical to torch) or "reference" (the from-scratch oracle).
    resume: continue the recording at ``path`` after a restart from a checkpoint: the files
        written so far stay as they are and the next segment (``<stem>.resume<k><suffix>``) is
        written beside them; ``open_run(path)`` reads them as one run, where rows of the first
        attempt at or after the resumed start are replaced by the new ones (docs/format.md,
        "Resumed runs"). With no recording at ``path`` yet it starts one, so one script serves
        the first run and every restart.
    start_step: the number of the first step (default 0; when resuming, the step after the last
        one recorded). Pass the checkpoint's step when resuming; the first ``rec.step(n)`` of a
        resumed recording without start_step also sets it.

    Distributed jobs: call it on every rank with the same ``path``; rank 0 writes ``path``, rank
    r > 0 ``<stem>.rank<r><suffix>`` beside it (docs/distributed.md). ``model`` may be wrapped in
    DistributedDataParallel or not. Convert to SyncBatchNorm before calling it.
    """
    return Recorder(
        model,
        path,
        every=every,
        optimizer=optimizer,
        overwrite=overwrite,
        run_name=run_name,
        meta=meta,
        activations=activations,
        probes=probes,
        channel_every=channel_every,
        hist_every=hist_every,
        flush_every=flush_every,
        flush_seconds=flush_seconds,
        max_pending=max_pending,
        kernel=kernel,
        resume=resume,
        start_step=start_step,
    )
