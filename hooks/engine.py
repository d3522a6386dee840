"""``StatsEngine``: per-step BN statistics on the device, in preallocated buffers, no host sync.

Rows (which forwards are recorded, their step numbers, the channel and histogram tiers): ``rows.py``.

What the recording forward does per layer: keeps the batch mean and inverse std the BN kernel
returned and gathers S values per channel of the input x (``sampling.py``: a stratified,
hashed sample of batch x spatial positions, its own for each channel, all of them when there are
at most S; one gather, with an index built once per shape, straight into the row's staging
slot). Everything else runs at the end of a step, for a block of rows at once (``row_stats.py``),
batched over all layers, in float32 (float64 for the variance derivation), whatever the input dtype. The sampled y are
computed from the sampled x as the layer does, y = gamma * x-hat + beta (to float rounding; before
rounding to a half-precision output), so an in-place activation after the layer cannot change them.

Definitions (per channel c; n = N * spatial size values; "sampled" = the S values above):
  pre_mean      batch mean of x (from the kernel; eval / probe / fallback: a separate pass)
  pre_var       biased batch variance of x: 1 / invstd^2 - eps in float64 from the kernel's invstd
  x-hat         x normalised as the layer did: (x - mean_used) * invstd_used, where mean/invstd
                used are the batch statistics in training (or eval without running statistics),
                running_mean, 1 / sqrt(running_var + eps) in eval, and the global batch statistics
                of a synced SyncBatchNorm (MODE_SYNC); a Probe uses its batch ones
  used_mean, used_var   mean_used and the biased variance used (batch: pre_var; eval: running_var;
                synced: 1 / invstd_used^2 - eps in float64); NaN for a Probe
  post_mean     mean of y = gamma * x-hat + beta, exactly: gamma (pre_mean - mean_used) invstd_used
                + beta (= beta in training without sync); a Probe: pre_mean
  post_var      gamma^2 pre_var invstd_used^2 (training: gamma^2 var / (var + eps)); a Probe: pre_var
  gamma, beta   the values the forward used (snapshot at the row's first forward); NaN when absent
  running_mean, running_var   the buffers before this row's forward updated them; NaN when absent
  sat_y         fraction of the sampled values in the zone of the following activation (zone_rules.py:
                |v| >= t for rules "saturated"/"bound", v <= t for "dead"), taken on the sampled y,
                or, for a layer with zone_input "activation" (activations.py: y reaches a module
                activation via an add, a scaling, dropout), on the same positions of that module's
                input (measure.py; NaN in a row where it did not receive one of the layer's shape)
  sat_xhat      the same for sampled x-hat (gamma = 1, beta = 0); NaN for zone_input "activation"
  grad_gamma, grad_beta   weight.grad / bias.grad at end_step (after backward); NaN when None
Per layer (summary): means over channels of the above; *_sd population standard deviation over
channels; *_min/_max over channels; gamma_abs_* / beta_abs_max of |gamma| / |beta|;
run_mean_gap = mean |pre_mean - running_mean| / sqrt(running_var + eps);
run_var_logratio = mean |log((pre_var + eps) / (running_var + eps))|;
used_mean_gap = mean |pre_mean - used_mean| * invstd_used (0 for plain BN training);
zone_channels = fraction of channels with sat_y >= 0.99; nonfinite_channels = count of channels
whose pre_mean or pre_var is not finite; grad_*_norm = L2 norm of the gradient over channels;
n = N * spatial size.
Quantiles (schema.QUANTILES, numpy 'linear' definition) of pre / x-hat / post: over a pooled
subset of at most ``pool`` (default 256) of the layer's sampled values (``sampling.pool_index``:
the same stratified rule over the layer's C * s samples in channel-major order), non-finite
values excluded. Probe quantiles: over the s sampled y of each probe channel.
Histograms (``stats.histogram`` gives the exact binning): all sampled values; x-hat on
schema.XHAT_RANGE; pre and post on a per-layer range set from the first histogram row's pooled
min / max (plus 10% of the spread on each side) and widened, never narrowed, when more than 1% of
the pooled values fall outside; under / over / non-finite counted in the HIST_EXTRA slots.
Estimates from samples (sat_*, zone_channels, quantiles, histograms) use S = ``samples`` (default 64)
values per channel; ``meta`` gives these settings for the file.
"""

from __future__ import annotations

import time

import torch

from bnviz.store import schema

from . import blocks, buffers, row_stats, sampling
from .batchnorm import MODE_SYNC
from .blocks import Staged
from .buffers import PendingBlock
from .row_masks import RowMasks
from .rows import Admit, RowSchedule
from .zone_rules import RULE_TEXT

__all__ = ["PendingBlock", "StatsEngine"]


class StatsEngine:
    """The sink the instrumented layers report to. See the module docstring for every definition.

    capacity_rows: rows the device buffers hold between two ``take_block`` calls; a row that
        comes when they are full is dropped and its step counted in ``dropped_steps``.
    samples: S values per channel per row; pool: values per layer for the pooled quantiles.
    probes: the probe channels come from ``instrument(probes=...)``; an int given here must match.
    first_step: the number of the first step (a resumed recording goes on from its checkpoint);
        first_train_row: train rows recorded before it (the channel / histogram tiers keep their rhythm).
    rows_per_compute: closed rows computed together at an end_step (default: as many as fit
        buffers.WORK_BYTES of working memory); the numbers do not depend on it.
    Buffers live on the device of the model's first BN tensor at the first recorded forward:
    create the engine after moving the model. Device memory: see ``buffers.py``.
    """

    def __init__(
        self,
        instrumentation,
        *,
        capacity_rows: int,
        channel_every: int = 1,
        hist_every: int = 1,
        every: int = 1,
        probes=None,
        samples: int = 64,
        pool: int = 256,
        first_step: int = 0,
        first_train_row: int = 0,
        no_step_calls: int = 0,
        on_no_step=None,
        rows_per_compute: int | None = None,
    ):
        if min(capacity_rows, channel_every, hist_every, every, samples, pool) < 1 or (
            rows_per_compute is not None and rows_per_compute < 1
        ):
            raise ValueError(
                "capacity_rows, channel_every, hist_every, every, samples, pool and rows_per_compute must be >= 1"
            )
        self.instrumentation = instrumentation
        self.probes = instrumentation.probes_per_layer
        if isinstance(probes, int) and probes != self.probes:
            raise ValueError(f"probes={probes} differs from the instrumentation's {self.probes} probe channels")
        self.capacity = capacity_rows
        self.every, self.channel_every, self.hist_every = every, channel_every, hist_every
        self.samples, self.pool = samples, pool
        self._modules = instrumentation.modules
        self._features = instrumentation.features
        self.L = len(self._modules)
        self._offsets = [0]
        for c in self._features:
            self._offsets.append(self._offsets[-1] + c)
        self._schedule = RowSchedule(
            capacity=capacity_rows,
            every=every,
            channel_every=channel_every,
            hist_every=hist_every,
            first_step=first_step,
            first_train_row=first_train_row,
        )
        self._rows_per_compute = (
            rows_per_compute
            if rows_per_compute is not None
            else buffers.rows_per_compute(self._offsets[-1], samples, capacity_rows)
        )
        self._device: torch.device | None = None
        # BN forwards per phase since the last end_step: the recorder places rec.log by them, and
        # ``on_no_step()`` runs once when ``no_step_calls`` training forwards came without a step
        self.calls = [0, 0]
        self._no_step_calls, self._on_no_step = no_step_calls, on_no_step
        self._staged: list[Staged] = []
        self._open_row: Staged | None = None
        self._step_train: Staged | None = None  # the step's train row: its gradients come at end_step
        self._clear_open()
        self._closed = False
        self.error: BaseException | None = None
        self._unobserved = instrumentation.unobserved  # the instrumentation's set, kept current by it
        instrumentation.set_sink(self)

    @property
    def dropped_steps(self) -> int:
        return self._schedule.dropped_steps

    # --- called by the layers (every forward) ---------------------------------------------------

    def wants(self, index: int, training: bool) -> bool:
        """Whether layer ``index`` (registration order) records this forward; opens the row if so."""
        if index in self._unobserved:  # its first run: find its activation (activations.py)
            self.instrumentation.unseen_layer_runs(index)
        phase = 0 if training else 1
        self.calls[phase] += 1
        if training and self.calls[0] == self._no_step_calls:
            self._on_no_step()
        admit = self._schedule.admit(phase, self._seen[index])
        if admit is Admit.OPEN:
            self._open(phase)  # before the kernel updates running statistics: the snapshot sees them unchanged
        return admit is not Admit.SKIP

    def put(self, index, x, mean, invstd, mode) -> None:
        """A recorded forward of layer ``index``: its input, the kernel's batch mean / invstd (None:
        computed here in one extra pass) and how it normalised (``batchnorm.MODE_*``). MODE_SYNC:
        ``mean`` / ``invstd`` are the global statistics the layer normalised with; this process's
        batch statistics are computed here."""
        if self._device is None:  # a model of Probes only: no tensor to learn the device from earlier
            self._allocate(x.device)
            assert self._open_row is not None
            self._staging.put_params(self._open_row.slot, self._modules)
        self._seen[index] = True
        with torch.no_grad():
            shape = x.shape
            hw = 1
            for s in shape[2:]:
                hw *= s
            key = (shape[0], shape[1], hw)
            idx = self._index_cache.get(key)
            if idx is None:
                flat, s = sampling.sample_index(*key, self.samples, self._device)
                idx = self._index_cache[key] = (flat.view(-1), s)
            assert self._open_row is not None
            sampling.gather(x, idx[0], self._staging.samples(self._open_row.slot, index))
            if mode == MODE_SYNC:
                self._synced[index] = (mean, invstd)
                mean = None
            q_is_var = mean is None
            if q_is_var:
                invstd, mean = _batch_var_mean(x)
            self._mean[index], self._q[index] = mean, invstd
            self._meta[index] = (mode, idx[1], q_is_var)
            self._keys[index] = key
            self._n[index] = shape[0] * hw

    def put_zone_input(self, layers, z) -> None:
        """The input of an activation module that ``layers`` reach via an add, a scaling or dropout
        (``measure.py``): sampled at the layer's positions for each of them that this forward
        recorded and that has no sample of it yet, if it has the layer's shape."""
        for index in layers:
            key = self._keys[index]
            if key is None or self._received[index]:
                continue
            if z.dim() >= 2 and z.shape[0] == key[0] and z.shape[1] == key[1] and z.numel() == key[0] * key[1] * key[2]:
                assert self._open_row is not None
                with torch.no_grad():
                    out = self._staging.activation_samples(self._open_row.slot, index)
                    sampling.gather(z, self._index_cache[key][0], out)
                self._received[index] = True

    # --- called by the recorder ---------------------------------------------------------------

    def fail(self, err: BaseException) -> None:
        """Called by a layer whose report raised: detach (training goes on) and keep the error for end_step."""
        if self.error is None:
            self.error = err
        self.close()

    def end_step(self, step: int) -> None:
        """Close the step's rows (after optimizer.step()); capture γ/β gradients into its train row.

        Raises RuntimeError if a layer's report failed since (the layers already run torch's forward).
        """
        if self.error is not None:
            raise RuntimeError(f"recording failed inside a BN forward: {type(self.error).__name__}: {self.error}")
        self.instrumentation.end_observation()
        if self._open_row is not None:
            with_grads = self._open_row is self._step_train
            self._close_row(with_grads)
            if with_grads:
                self._step_train = None
        if self._step_train is not None:  # its row closed earlier (an eval forward came after it)
            with torch.no_grad():
                self._staging.put_grads(self._step_train.slot, self._modules)
            self._step_train = None
        self._schedule.end_step(step)
        self.calls = [0, 0]
        if len(self._staged) >= self._rows_per_compute:
            self._compute_staged()

    @property
    def rows_pending(self) -> int:
        """Closed rows in the buffers (python int, no device access)."""
        return self._schedule.closed_rows

    def take_block(self) -> PendingBlock:
        """Close an open row, compute the rows, start the device->host copies, reset the buffers (no host sync)."""
        if self._open_row is not None:
            self._close_row()
        self._step_train = None  # its buffer row is gone: no gradients for it
        self._compute_staged()
        s = self._schedule
        if self._device is None:
            host, event = buffers.empty_host(self.L, self.probes, self._offsets[-1]), None
        else:
            host, event = self._results.take(len(s.rows), s.channel_rows, s.hist_rows)
        rows = s.take()
        meta = {
            "perm": self.instrumentation.order,
            "offsets": self._offsets,
            "dropped": s.dropped_steps,
            "steps": [x.step for x in rows],
            "phases": [x.phase for x in rows],
            "times": [x.time for x in rows],
            "n": [x.n for x in rows],
            "ch_steps": [x.step for x in rows if x.channel is not None],
            "ch_phases": [x.phase for x in rows if x.channel is not None],
            "h_steps": [x.step for x in rows if x.hist is not None],
            "h_phases": [x.phase for x in rows if x.hist is not None],
        }
        s.dropped_steps = 0
        return PendingBlock(event, host, meta)

    def finish(self) -> None:
        """Close the open row (end of recording)."""
        if self._open_row is not None:
            self._close_row()

    def close(self) -> None:
        """Detach from the layers (they run torch's forward again)."""
        if not self._closed:
            self.instrumentation.set_sink(None)
            self._closed = True

    def layer_table(self) -> list[dict]:
        """The layer table as the file keeps it: from now on detection no longer changes it."""
        self.instrumentation.freeze()
        return self.instrumentation.layer_table()

    @property
    def meta(self) -> dict:
        """How the distribution statistics were estimated, for the file's metadata."""
        return {
            "samples_per_channel": self.samples,
            "pooled_per_layer": self.pool,
            "estimator": sampling.ESTIMATOR,
            "sample_rule": "channel c: one position in each of s = min(S, M) equal strata of 0..M-1 rotated by "
            "r_c, at a hashed offset (docs/format.md); M = N * spatial size; all of them if M <= S",
            "pool_rule": "the same rule over the layer's C*s samples (channel-major), min(P, C*s) of them",
            "hist_range": f"pre/post: sticky per layer, margin {row_stats.RANGE_MARGIN} of the spread, widened when "
            f"more than {row_stats.RANGE_TOLERANCE:.0%} of pooled values fall outside; xhat: {list(schema.XHAT_RANGE)}",
            "zone_channel_fraction": row_stats.ZONE_CHANNEL_FRACTION,
            "zone_rule": RULE_TEXT,
            "kernel": self.instrumentation.kernel,
        }

    # --- internals ------------------------------------------------------------------------------

    def _clear_open(self):
        L = self.L
        self._seen = [False] * L  # per layer: it put its samples into the open row's slot
        self._received = [False] * L  # and those of what its activation received
        self._keys: list = [None] * L
        self._mean: list = [None] * L
        self._q: list = [None] * L
        self._synced: list = [None] * L
        self._meta: list = [None] * L
        self._n = [float("nan")] * L

    def _open(self, phase: int) -> None:
        if self._open_row is not None:
            self._close_row()
        if self._device is None:
            device = next((t.device for m in self._modules for t in m.state_dict().values()), None)
            if device is not None:
                self._allocate(device)
        staged = Staged(self._schedule.open(phase), len(self._staged))
        self._open_row = staged
        if phase == 0:
            self._step_train = staged
        if self._device is not None:
            self._staging.put_params(staged.slot, self._modules)

    def _close_row(self, with_grads: bool = False) -> None:
        """``with_grads``: the row is the step's train row and the step ends now: it takes the
        gradients in the same copy."""
        staged = self._open_row
        assert staged is not None
        row = self._schedule.close()
        zone = self._masks.zone()
        staged.key = tuple(self._meta)
        staged.zone = zone
        measured = any(zone.at_activation)
        if measured:
            staged.received = tuple(self._received)
        with torch.no_grad():
            synced = self._synced if any(m is not None and m[0] == MODE_SYNC for m in self._meta) else None
            received = self._received if measured else None
            grads_of = self._modules if with_grads else None
            self._staging.put_row(staged.slot, self._seen, received, self._mean, self._q, synced, grads_of)
        row.time = time.time()
        row.n = list(self._n)
        self._staged.append(staged)
        self._open_row = None
        self._clear_open()

    @torch.inference_mode(False)  # buffers written in place on every row: never inference tensors
    def _allocate(self, device) -> None:
        self._device = dev = torch.device(device)
        ctot = self._offsets[-1]
        rows = self._rows_per_compute + 2  # + a step's 2 rows
        self._results = buffers.Results(self.capacity, self.L, self.probes, ctot, dev)
        self._staging = buffers.Staging(rows, self._offsets, self.samples, dev)
        infos = sorted(self.instrumentation.layers, key=lambda li: self._modules.index(li.module))
        self._constants = buffers.constants(
            self._modules, self._features, self._offsets, [li.probe_channels for li in infos], self.probes, dev
        )
        self._work = buffers.Work(ctot, self.samples, dev)
        self._masks = RowMasks(self.instrumentation, self._offsets, self._features, self.samples, self.pool, dev)
        self._index_cache: dict = {}

    def _compute_staged(self) -> None:
        staged, self._staged = self._staged, []
        if staged:
            blocks.compute(staged, self._staging, self._results, self._constants, self._masks, self._work, self._device)


def _batch_var_mean(x: torch.Tensor):
    """Biased batch variance and mean per channel. On the CPU by torch's BatchNorm kernel (eps 0:
    its inverse std is exactly 1 / sqrt(var)), 3x faster than var_mean over (N, H, W) of NCHW
    input; elsewhere var_mean, which allocates no output the size of x. The kernel's inverse std
    is 0 for a variance of 0 (and for one that overflows): torch.var gives those channels theirs."""
    dims = [0, *range(2, x.dim())]
    if x.device.type != "cpu":
        return torch.var_mean(x.float(), dim=dims, correction=0)
    _, mean, rstd = torch.native_batch_norm(x.float(), None, None, None, None, True, 0.0, 0.0)
    var = (1.0 / rstd.double().square()).float()
    zero = rstd == 0
    if bool(zero.any()):  # a host sync, free on the CPU
        var = torch.where(zero, torch.var(x.float(), dim=dims, correction=0), var)
    return var, mean
