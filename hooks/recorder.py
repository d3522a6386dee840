"""``bnviz.record``: instrument a model and stream its BN statistics to an HDF5 file.

The training thread only marks steps and, every ``flush_every`` steps or ``flush_seconds``,
starts the engine's non-blocking copy of the rows gathered so far; a background thread
writes them. If the writer falls behind, the queue stays bounded: the engine's row buffer
fills and further rows are dropped and counted in the file, never held in memory.
Nothing here may raise into the training loop after ``record`` returned: a failure issues
one warning, stops recording and leaves the model un-instrumented.

In a torch.distributed job every rank records its own local statistics to its own file
(``bnviz.store.ranks.rank_path``) without any communication, or rank 0 alone does
(``ranks="zero"``); see docs/distributed.md.
"""

from __future__ import annotations

import functools
import time

import numpy as np
import torch

from bnviz.hooks import distributed, notices, shutdown
from bnviz.hooks.engine import StatsEngine
from bnviz.hooks.instrument import instrument
from bnviz.hooks.notices import NO_STEP_FORWARDS, warn
from bnviz.hooks.output import Output
from bnviz.hooks.resume import check_resumable, previous_recording, train_rows_before
from bnviz.hooks.scalars import PendingWithScalars, ScalarLog
from bnviz.hooks.schedule import check_intervals, default_schedule
from bnviz.store.errors import RecordingWriteError
from bnviz.store.h5files import WriterClaim
from bnviz.store.ranks import checked_recorded_ranks, rank_path, records_on_rank
from bnviz.store.segments import segment_path
from bnviz.store.writer import check_target, stopped_message


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
        ranks="all",
    ):
        _check_options(start_step, resume, overwrite, flush_every, flush_seconds, max_pending, ranks)
        check_intervals(every, channel_every, hist_every)
        # In a job of several processes each rank writes its own file (docs/distributed.md).
        self.rank_info = distributed.rank_info()
        if self.rank_info:
            self.rank_info["recorded_ranks"] = ranks
            path = rank_path(path, self.rank_info["rank"])
        self._resumed = previous_recording(path) if resume else None
        if self._resumed is not None:
            if self.rank_info and self._resumed["recorded_ranks"] != ranks:
                raise ValueError(
                    f"resume=True: {self._resumed['path']} was recorded with ranks="
                    f"{self._resumed['recorded_ranks']!r}, and a resumed job must record its ranks alike "
                    f"(readers join the rank files by it): pass ranks={self._resumed['recorded_ranks']!r}"
                )
            path = segment_path(path, self._resumed["segments"])
        self.path = check_target(path, overwrite)
        claim = WriterClaim(self.path)  # one recorder per file: refused here, before training
        self._output = Output(self.path, claim, overwrite=overwrite, max_pending=max_pending)
        self._run_name = run_name
        self._user_meta = dict(meta or {})
        self._model = distributed.unwrap(model)  # same layer paths before or after wrapping in DDP
        self._model_class = type(self._model).__qualname__
        self._flush_every = flush_every
        self._flush_seconds = flush_seconds
        self._options = dict(
            activations=activations,
            probes=probes,
            kernel=kernel,
            every=every,
            channel_every=channel_every,
            hist_every=hist_every,
        )
        self._scalars = ScalarLog()
        self._bad_scalars: set[str] = set()
        # the step in progress; a resumed recording goes on after the first attempt's last step
        # unless start_step (or the first rec.step(n)) says where the checkpoint was
        self._free_start = start_step is None and self._resumed is not None
        if start_step is None:
            start_step = self._resumed["last_step"] + 1 if self._resumed else 0
        self._step = int(start_step)
        self._first_step = None  # the first step that ended: where this file's rows begin
        self._ended = False  # whether a step ended since the recording began
        self._ran = False  # whether BN layers ran in the step that ended last
        self._notices = notices.Once()
        self._last_flush = time.monotonic()
        self._stopped = False
        self._closed = False
        self._busy_depth = 0
        try:
            self._attach()
        except BaseException:
            self._output.claim.release()
            raise
        try:
            if self._resumed is not None:
                check_resumable(self._resumed, self.instrumentation)
            self._hook = step_hook(optimizer, lambda *_: self.step()) if optimizer is not None else None
        except BaseException:
            self._release()
            self._output.claim.release()
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
                first_train_row=train_rows_before(self._resumed, self._step),
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
            if not _is_step(n):
                self._notices.tell(
                    "step-type",
                    f"bnviz: rec.step(n) needs a step number >= 0, got {n!r}; this call counts as the next step",
                )
                n = None
            elif n < self._step and not (self._free_start and not self._ended):
                if n < self._step - 1:
                    self._notices.tell(
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
                    warn(f"bnviz does not record scalar {name!r}: {err}")

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
                self._output.close(failed=not finished)
                self._release()
                self._output.claim.release()
                shutdown.unregister(self)

    @_busy_call
    def commit_buffered(self) -> None:
        """Hand every row gathered so far to the file and wait until it is committed (SIGTERM)."""
        if self.recording:
            self._guard(self._commit_buffered)

    def _commit_buffered(self) -> None:
        if self.engine.rows_pending:
            self._flush(wait=True)
        self._output.wait_idle()

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
        if self.instrumentation.observed and "layers" not in self._notices.told:
            self._notices.told.add("layers")
            for message in notices.layer_findings(self.instrumentation):
                warn(message)
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
        why, fix = notices.layers_replaced(replaced, step)
        table = self._output.layer_table()
        if table is not None:
            if {(l["path"], l["num_features"]) for l in table} != {
                (l.path, l.num_features) for l in self.instrumentation.layers
            }:
                raise RuntimeError(f"{why}; the model's BN layers no longer match the file's layer table. {fix}")
            why += "; the file's layer table keeps the old layer kinds"
        warn(f"{why}. Recording goes on with the new layers from step {step + 1}. {fix}")

    def _no_step(self) -> None:
        since = f"step {self._step - 1} ended" if self._ended else "the recording began"
        self._notices.tell("no-step", notices.no_step(since))

    def _finish(self) -> None:
        self._scalars.end(self._step)
        self.engine.finish()
        if self.engine.rows_pending or self._output.writer is None:
            self._flush(wait=True)

    def _flush(self, wait: bool) -> None:
        if not wait and self._output.behind:
            return  # writer behind: rows stay in the engine, which drops and counts the overflow
        names, rows = self._scalars.take()
        item = PendingWithScalars(self.engine.take_block(), names, rows)
        if not self._output.hand_over(item, wait, self._file_contents):
            self._stopped = True  # the writer failed and has said why, once: stop quietly
            self._release()
            self._output.close()
            return
        self._last_flush = time.monotonic()

    def _file_contents(self) -> tuple[list[dict], dict, int]:
        """(layer table, metadata, probes) of the file, created at the first flush: the layer table
        (forward order, following activations) is only known after the first forward, and SWMR
        files cannot grow datasets later."""
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
        return self.engine.layer_table(), meta, self.engine.probes

    def _guard(self, fn) -> None:
        try:
            fn()
        except Exception as err:  # noqa: BLE001 - never break the training we watch
            self._stopped = True
            self._release()
            self._output.close()
            if isinstance(err, RecordingWriteError):
                warn(stopped_message(err))
            else:
                warn(
                    f"bnviz stopped recording to {self.path}: {type(err).__name__}: {err}. "
                    "Training goes on without recording."
                )

    def _release(self) -> None:
        if self.instrumentation.attached:
            self.engine.close()
            self.instrumentation.detach()


def _check_options(start_step, resume, overwrite, flush_every, flush_seconds, max_pending, ranks) -> None:
    """What needs neither the model nor a file, checked on every rank (also where nothing is
    recorded): a job whose rank 0 alone refused to start would leave the others waiting for it."""
    checked_recorded_ranks(ranks)
    if start_step is not None and not _is_step(start_step):
        raise ValueError(f"start_step={start_step!r}: give the number of the first step to record (>= 0)")
    if resume and overwrite:
        raise ValueError("resume=True continues the recording at path and overwrite=True replaces it: choose one")
    if flush_every < 1 or flush_seconds <= 0 or max_pending < 1:
        raise ValueError("flush_every and max_pending must be >= 1 and flush_seconds > 0")


def _is_step(n) -> bool:
    return isinstance(n, (int, np.integer)) and not isinstance(n, bool) and bool(n >= 0)


class NotRecording:
    """What ``record(..., ranks="zero")`` returns on a rank other than 0: a Recorder's calls,
    recording nothing (the model is left as it is, no file is written). ``current_step`` counts
    steps as a Recorder does (``optimizer=``'s steps, or ``step()``), from ``start_step`` (0 when
    not given, also when resuming: the last recorded step is in rank 0's file)."""

    recording = False
    busy = False
    path = None

    def __init__(self, optimizer=None, start_step: int | None = None):
        self.current_step = 0 if start_step is None else int(start_step)
        self._hook = step_hook(optimizer, lambda *_: self.step()) if optimizer is not None else None

    def step(self, n: int | None = None) -> None:
        self.current_step = (
            max(self.current_step, int(n) + 1) if n is not None and _is_step(n) else self.current_step + 1
        )

    def log(self, **scalars) -> None:
        pass

    def close(self) -> None:
        if self._hook is not None:
            self._hook.remove()
            self._hook = None

    def commit_buffered(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


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
    ranks: str = "all",
) -> Recorder | NotRecording:
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
    ranks: "all" (each rank records its own file) or "zero" (rank 0 alone records, and its file
        says so: a reader looks for no other rank's file; on the other ranks ``record`` checks the
        same options and returns a ``NotRecording``, which counts steps and records nothing).
    """
    _check_options(start_step, resume, overwrite, flush_every, flush_seconds, max_pending, ranks)
    check_intervals(every, channel_every, hist_every)
    info = distributed.rank_info()
    if info and not records_on_rank(ranks, info["rank"]):
        return NotRecording(optimizer, start_step)
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
        ranks=ranks,
    )
