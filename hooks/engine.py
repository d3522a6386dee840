"""``StatsEngine``: per-step BN statistics on the device, in preallocated buffers, no host sync.

Rows. A row is one snapshot of the layers in one phase (train 0 / eval 1, the layer's
``module.training``) within one step: the FIRST forward of that phase after the step began is
recorded, later forwards in the same step and phase (and a reused module's second call) cost one
Python check. A row closes when the phase switches, at ``end_step``, ``finish`` or ``take_block``.
Rows carry the number of the step in progress (the ``step`` of the next ``end_step``; eval rows
between ``end_step(t)`` and ``end_step(t + 1)`` carry t + 1). ``every=k`` records train rows on
steps with step % k == 0; the channel and histogram tiers take every ``channel_every``-th /
``hist_every``-th recorded train row and every eval row. A layer that did not run in a row is NaN.

What the recording forward does per layer: keeps the batch mean and inverse std the BN kernel
returned and gathers S values per channel of the input x (``sampling.py``: a stratified,
hashed sample of batch x spatial positions, its own for each channel, all of them when there are
at most S; one ``torch.take`` with an index built once per shape). Everything else runs
once per row, batched over all layers, in float32 (float64 for the variance derivation), whatever
the input dtype. The sampled y are computed from the sampled x as the layer does,
y = gamma * x-hat + beta (to float rounding; before rounding to a half-precision output), so an
in-place activation after the layer cannot change them.

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

import numpy as np
import torch

from bnviz.store import schema
from bnviz.store.block import Block

from . import sampling, stats
from .batchnorm import MODE_IDENTITY, MODE_RUNNING, MODE_SYNC
from .zone_rules import RULE_TEXT

NB = schema.HIST_BINS
NQ = len(schema.QUANTILES)
F_S = len(schema.SUMMARY_FIELDS)
F_C = len(schema.CHANNEL_FIELDS)
_S = {name: i for i, name in enumerate(schema.SUMMARY_FIELDS)}
_C = {name: i for i, name in enumerate(schema.CHANNEL_FIELDS)}
RANGE_MARGIN = 0.1
RANGE_TOLERANCE = 0.01
ZONE_CHANNEL_FRACTION = 0.99


def _f32(t):
    return t if t.dtype == torch.float32 else t.float()


class PendingBlock:
    """Rows on their way to host memory; ``wait()`` (on the writer thread) returns the Block."""

    def __init__(self, event, host: dict, meta: dict):
        self._event, self._host, self._meta = event, host, meta

    def wait(self) -> Block:
        if self._event is not None:
            self._event.synchronize()
        h, m = self._host, self._meta
        perm = m["perm"]
        summary = h["summary"].numpy()[:, perm].copy()
        summary[:, :, _S["n"]] = np.asarray(m["n"], np.float32).reshape(-1, len(perm))[:, perm]
        channels = h["channels"].numpy()
        offsets = m["offsets"]
        return Block(
            summary_step=np.asarray(m["steps"], np.int64),
            summary_phase=np.asarray(m["phases"], np.int8),
            summary_time=np.asarray(m["times"], np.float64),
            summary=summary,
            quantiles=h["quantiles"].numpy()[:, perm].copy(),
            probes=h["probes"].numpy()[:, perm].copy(),
            channel_step=np.asarray(m["ch_steps"], np.int64),
            channel_phase=np.asarray(m["ch_phases"], np.int8),
            channels=[channels[:, :, offsets[i] : offsets[i + 1]].copy() for i in perm],
            hist_step=np.asarray(m["h_steps"], np.int64),
            hist_phase=np.asarray(m["h_phases"], np.int8),
            hist_counts=h["hist"].numpy()[:, perm].astype(np.int32),
            hist_range=h["hist_range"].numpy()[:, perm].copy(),
            dropped_steps=m["dropped"],
        )


class _Row:
    __slots__ = ("index", "step", "phase", "channel", "hist", "time", "n")

    def __init__(self, index, step, phase, channel, hist):
        self.index, self.step, self.phase, self.channel, self.hist = index, step, phase, channel, hist
        self.time = 0.0
        self.n = None


class StatsEngine:
    """The sink the instrumented layers report to. See the module docstring for every definition.

    capacity_rows: rows the device buffers hold between two ``take_block`` calls; a row that
        comes when they are full is dropped and its step counted in ``dropped_steps``.
    samples: S values per channel per row; pool: values per layer for the pooled quantiles.
    probes: the probe channels come from ``instrument(probes=...)``; an int given here must match.
    first_step: the number of the first step (a resumed recording goes on from its checkpoint);
        first_train_row: train rows recorded before it (the channel / histogram tiers keep their rhythm).
    Buffers live on the device of the model's first BN tensor at the first recorded forward:
    create the engine after moving the model. Device memory: capacity_rows x (L x (F_S + 9 x (3 + K)
    + 3 x 69) + F_C x Ctot) float32 values, plus 3 x Ctot x samples for the working set.
    """

    _step_rows: list[_Row]  # rows of the step in progress (set by _reset_rows)

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
    ):
        if min(capacity_rows, channel_every, hist_every, every, samples, pool) < 1:
            raise ValueError("capacity_rows, channel_every, hist_every, every, samples and pool must be >= 1")
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
        self._offsets = np.concatenate([[0], np.cumsum(self._features)]).tolist()
        self.dropped_steps = 0
        self._device = None
        self._step = first_step
        # BN forwards per phase since the last end_step: the recorder places rec.log by them, and
        # ``on_no_step()`` runs once when ``no_step_calls`` training forwards came without a step
        self.calls = [0, 0]
        self._no_step_calls, self._on_no_step = no_step_calls, on_no_step
        self._last_dropped: int | None = None
        self._train_rows = first_train_row
        self._reset_rows()
        self._clear_open()
        self._done_phases: set[int] = set()
        self._step_train_row: _Row | None = None
        self._closed = False
        self.error: BaseException | None = None
        self._unobserved = instrumentation.unobserved  # the instrumentation's set, kept current by it
        instrumentation.set_sink(self)

    # --- called by the layers (every forward) ---------------------------------------------------

    def wants(self, index: int, training: bool) -> bool:
        """Whether layer ``index`` (registration order) records this forward; opens the row if so."""
        if index in self._unobserved:  # its first run: find its activation (activations.py)
            self.instrumentation.unseen_layer_runs(index)
        phase = 0 if training else 1
        self.calls[phase] += 1
        if training and self.calls[0] == self._no_step_calls:
            self._on_no_step()
        if phase == self._phase:
            return not self._seen[index]
        if phase in self._done_phases or (phase == 0 and self._step % self.every):
            return False
        if self._rows >= self.capacity:
            if self._last_dropped != self._step:
                self._last_dropped = self._step
                self.dropped_steps += 1
            self._done_phases.add(phase)
            return False
        self._open(phase)  # before the kernel updates running statistics: the snapshot sees them unchanged
        return True

    def put(self, index, x, mean, invstd, mode) -> None:
        """A recorded forward of layer ``index``: its input, the kernel's batch mean / invstd (None:
        computed here in one extra pass) and how it normalised (``batchnorm.MODE_*``). MODE_SYNC:
        ``mean`` / ``invstd`` are the global statistics the layer normalised with; this process's
        batch statistics are computed here."""
        if self._device is None:  # a model of Probes only: no tensor to learn the device from earlier
            self._allocate(x.device)
            self._snapshot = self._cat_params()
        self._seen[index] = True
        with torch.no_grad():
            shape = x.shape
            hw = 1
            for s in shape[2:]:
                hw *= s
            key = (shape[0], shape[1], hw)
            idx = self._index_cache.get(key)
            if idx is None:
                idx = self._index_cache[key] = sampling.sample_index(*key, self.samples, self._device)
            self._xs[index] = sampling.gather(x, idx[0])
            if mode == MODE_SYNC:
                self._gmean[index], self._ginv[index] = mean, invstd
                mean = None
            q_is_var = mean is None
            if q_is_var:
                dims = [0] + list(range(2, x.dim()))
                invstd, mean = torch.var_mean(x.float(), dim=dims, correction=0)  # (var, mean)
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
            if key is None or self._zs[index] is not None:
                continue
            if z.dim() >= 2 and z.shape[0] == key[0] and z.shape[1] == key[1] and z.numel() == key[0] * key[1] * key[2]:
                with torch.no_grad():
                    self._zs[index] = sampling.gather(z, self._index_cache[key][0])

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
        if self._phase is not None:
            self._emit()
        row = self._step_train_row
        if row is not None:
            self._write_grads(row)
        for r in self._step_rows:
            r.step = step
        self._step_rows = []
        self._step_train_row = None
        self._done_phases = set()
        self._step = step + 1
        self.calls = [0, 0]

    @property
    def rows_pending(self) -> int:
        """Closed rows in the buffers (python int, no device access)."""
        return self._rows - (1 if self._phase is not None else 0)

    def take_block(self) -> PendingBlock:
        """Close an open row, start the device->host copies, reset the buffers (no host sync)."""
        if self._phase is not None:
            self._emit()
        r, rc, rh = self._rows, self._ch_rows, self._h_rows
        host, event = {}, None
        if self._device is None:
            host = self._empty_host()
        else:
            cuda = self._device.type == "cuda"
            for name, buf, n in (
                ("summary", self._sum, r),
                ("quantiles", self._quant, r),
                ("probes", self._prob, r),
                ("channels", self._chan, rc),
                ("hist", self._hist, rh),
                ("hist_range", self._hrange, rh),
            ):
                src = buf[:n]
                if cuda:
                    dst = torch.empty(src.shape, dtype=src.dtype, pin_memory=True)
                    dst.copy_(src, non_blocking=True)
                else:
                    dst = src.clone()
                host[name] = dst
            if cuda:
                event = torch.cuda.Event()
                event.record()
        rows = self._row_list
        meta = {
            "perm": self.instrumentation.order,
            "offsets": self._offsets,
            "dropped": self.dropped_steps,
            "steps": [x.step for x in rows],
            "phases": [x.phase for x in rows],
            "times": [x.time for x in rows],
            "n": [x.n for x in rows],
            "ch_steps": [x.step for x in rows if x.channel is not None],
            "ch_phases": [x.phase for x in rows if x.channel is not None],
            "h_steps": [x.step for x in rows if x.hist is not None],
            "h_phases": [x.phase for x in rows if x.hist is not None],
        }
        self.dropped_steps = 0
        self._reset_rows()
        self._step_train_row = None  # its buffer row is gone: no gradients for it
        return PendingBlock(event, host, meta)

    def finish(self) -> None:
        """Close the open row (end of recording)."""
        if self._phase is not None:
            self._emit()

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
            "hist_range": f"pre/post: sticky per layer, margin {RANGE_MARGIN} of the spread, widened when more than "
            f"{RANGE_TOLERANCE:.0%} of pooled values fall outside; xhat: {list(schema.XHAT_RANGE)}",
            "zone_channel_fraction": ZONE_CHANNEL_FRACTION,
            "zone_rule": RULE_TEXT,
            "kernel": self.instrumentation.kernel,
        }

    # --- internals ------------------------------------------------------------------------------

    def _reset_rows(self):
        self._rows = self._ch_rows = self._h_rows = 0
        self._row_list: list[_Row] = []
        self._step_rows = []

    def _clear_open(self):
        L = self.L
        self._phase = None
        self._open_row = None
        self._seen = [False] * L
        self._xs, self._zs, self._keys = [None] * L, [None] * L, [None] * L
        self._mean, self._q = [None] * L, [None] * L
        self._gmean, self._ginv = [None] * L, [None] * L
        self._meta = [None] * L
        self._n = [float("nan")] * L

    def _open(self, phase: int) -> None:
        if self._phase is not None:
            self._emit()
        if self._device is None:
            device = next((t.device for m in self._modules for t in m.state_dict().values()), None)
            if device is not None:
                self._allocate(device)
        if phase == 0:
            channel = self._train_rows % self.channel_every == 0
            hist = self._train_rows % self.hist_every == 0
            self._train_rows += 1
        else:
            channel = hist = True
        row = _Row(self._rows, self._step, phase, self._ch_rows if channel else None, self._h_rows if hist else None)
        self._rows += 1
        self._ch_rows += channel
        self._h_rows += hist
        self._row_list.append(row)
        self._step_rows.append(row)
        if phase == 0:
            self._step_train_row = row
        self._phase, self._open_row = phase, row
        self._snapshot = self._cat_params() if self._device is not None else None

    def _cat_params(self) -> torch.Tensor:
        """(4, Ctot) float32 γ, β, running_mean, running_var as the forward sees them; NaN when absent."""
        # the registries directly: Module.__getattr__ costs a microsecond per lookup
        parts = []
        for kind, name in (
            ("_parameters", "weight"),
            ("_parameters", "bias"),
            ("_buffers", "running_mean"),
            ("_buffers", "running_var"),
        ):
            for m, nan in zip(self._modules, self._nan):
                t = getattr(m, kind).get(name)
                if t is None and kind == "_parameters":
                    t = m._buffers.get(name)  # a frozen BN's gamma and beta are buffers
                parts.append(t.detach() if t is not None else nan)
        return torch.cat(parts).float().view(4, -1)

    def _cat_grads(self) -> torch.Tensor:
        parts = []
        for name in ("weight", "bias"):
            for m, nan in zip(self._modules, self._nan):
                t = m._parameters.get(name)
                g = t.grad if t is not None else None
                parts.append(g if g is not None else nan)
        return torch.cat(parts).float().view(2, -1)

    @torch.inference_mode(False)  # buffers written in place on every row: never inference tensors
    def _allocate(self, device) -> None:
        self._device = dev = torch.device(device)
        L, R, K, S = self.L, self.capacity, self.probes, self.samples
        ctot = self._offsets[-1]
        f32 = dict(device=dev, dtype=torch.float32)
        self._sum = torch.full((R, L, F_S), torch.nan, **f32)
        self._quant = torch.full((R, L, 3, NQ), torch.nan, **f32)
        self._prob = torch.full((R, L, K, NQ), torch.nan, **f32)
        self._chan = torch.full((R, F_C, ctot), torch.nan, **f32)
        self._hist = torch.zeros((R, L, 3, NB + 3), **f32)
        self._hrange = torch.full((R, L, 3, 2), torch.nan, **f32)
        self._range = torch.full((2, 2, L), torch.nan, **f32)  # (pre/post, lo/hi, L)
        feats = self._features
        self._layer_id = torch.repeat_interleave(torch.arange(L), torch.tensor(feats)).to(dev)
        self._counts = torch.tensor(feats, dtype=torch.float32).to(dev)
        eps = [float(m.eps) for m in self._modules]
        self._eps = torch.repeat_interleave(torch.tensor(eps, dtype=torch.float64), torch.tensor(feats)).to(dev)
        self._eps32 = self._eps.float()
        mods = self._modules
        has_w = [getattr(m, "weight", None) is not None for m in mods]
        has_b = [getattr(m, "bias", None) is not None for m in mods]
        self._has_w = torch.repeat_interleave(torch.tensor(has_w), torch.tensor(feats)).to(dev)
        self._has_b = torch.repeat_interleave(torch.tensor(has_b), torch.tensor(feats)).to(dev)
        self._all_wb = all(has_w) and all(has_b)
        self._nan = [torch.full((c,), torch.nan, **f32) for c in feats]
        self._zeros = [torch.zeros((c, S), **f32) for c in feats]
        self._tensors = torch.empty((3, ctot, S), **f32)
        self._ones = torch.ones(3 * ctot * S, **f32)
        probe_rows, probe_ok = [], []
        infos = sorted(self.instrumentation.layers, key=lambda li: self._modules.index(li.module))
        for i, li in enumerate(infos):
            chs = list(li.probe_channels)[:K]
            ok = [True] * len(chs) + [False] * (K - len(chs))
            chs = chs + [0] * (K - len(chs))
            probe_rows += [self._offsets[i] + c for c in chs]
            probe_ok += ok
        self._probe_idx = torch.tensor(probe_rows).to(dev)
        self._probe_ok = torch.tensor(probe_ok).view(L, K, 1).to(dev)
        self._qs = torch.tensor(schema.QUANTILES, dtype=torch.float64).to(dev)
        self._nan_c = torch.full((ctot,), torch.nan, **f32)
        self._nan_l = torch.full((L,), torch.nan, **f32)
        self._xhat_lo = torch.full((L,), schema.XHAT_RANGE[0], **f32)
        self._xhat_hi = torch.full((L,), schema.XHAT_RANGE[1], **f32)
        self._index_cache: dict = {}
        self._meta_cache: dict = {}
        self._zone_version = None

    def _zone(self):
        """Per-channel zone rule vectors, rebuilt when the activations are (re)detected."""
        if self._zone_version != self.instrumentation.version:
            infos = {id(li.module): li for li in self.instrumentation.layers}
            use_abs, thr = [], []
            for m, c in zip(self._modules, self._features):
                li = infos[id(m)]
                use_abs.append(torch.full((c,), li.zone_rule != "dead", device=self._device))
                thr.append(torch.full((c,), li.zone_threshold, device=self._device))
            self._zone_abs = torch.cat(use_abs).unsqueeze(1)
            self._zone_any_abs = any(li.zone_rule != "dead" for li in self.instrumentation.layers)
            self._zone_thr = torch.cat(thr).unsqueeze(1)
            self._zone_at_activation = [infos[id(m)].zone_input == "activation" for m in self._modules]
            self._zone_mask_cache = {}
            self._zone_version = self.instrumentation.version
        return self._zone_abs, self._zone_thr

    def _row_meta(self, key):
        """Per-channel masks for this row's (mode, samples, variance-given) per layer; cached by key."""
        got = self._meta_cache.get(key)
        if got is not None:
            return got
        dev, S = self._device, self.samples

        def per_channel(values, dtype):
            return torch.cat([torch.full((c,), v, dtype=dtype, device=dev) for v, c in zip(values, self._features)])

        mode = [k[0] if k else -1 for k in key]
        s = per_channel([k[1] if k else 0 for k in key], torch.float32)
        pool, pad = sampling.pool_index(
            self._offsets, self._features, [k[1] if k else 0 for k in key], S, self.pool, dev
        )
        got = {
            "pool": pool,
            "pool_pad": pad,
            "present": per_channel([k is not None for k in key], torch.bool),
            "present_l": torch.tensor([k is not None for k in key]).to(dev),
            "running": per_channel([m == MODE_RUNNING for m in mode], torch.bool),
            "identity": per_channel([m == MODE_IDENTITY for m in mode], torch.bool),
            "sync": per_channel([m == MODE_SYNC for m in mode], torch.bool),
            "q_is_var": per_channel([bool(k and k[2]) for k in key], torch.bool),
            "s": s,
            "valid": torch.arange(S, device=dev).view(1, -1) < s.view(-1, 1),
            "padded": any(k is None or k[1] < S for k in key),
            "any_identity": any(m == MODE_IDENTITY for m in mode),
            "any_sync": any(m == MODE_SYNC for m in mode),
            "any_running": any(m == MODE_RUNNING for m in mode),
            # constant masks that are all True / all False select one side: skip the torch.where
            "any_q_is_var": any(bool(k and k[2]) for k in key),
            "all_present": all(k is not None for k in key),
        }
        self._meta_cache[key] = got
        return got

    def _emit(self) -> None:
        row = self._open_row
        key = tuple(self._meta)
        mk = self._row_meta(key)
        with torch.no_grad():
            # (3, Ctot, S): sampled pre, then x-hat and post (filled in _compute); in place, no stack copy
            tensors = self._tensors
            torch.cat([_f32(x) if x is not None else z for x, z in zip(self._xs, self._zeros)], out=tensors[0])
            mean = torch.cat([v if v is not None else n for v, n in zip(self._mean, self._nan)]).float()
            q = torch.cat([v if v is not None else n for v, n in zip(self._q, self._nan)])
            synced = None
            if mk["any_sync"]:
                synced = [
                    torch.cat([v if v is not None else n for v, n in zip(vs, self._nan)]).float()
                    for vs in (self._gmean, self._ginv)
                ]
            self._compute(row, mk, tensors, mean, q, synced, self._zone_inputs())
        row.time = time.time()
        row.n = list(self._n)
        self._done_phases.add(self._phase)
        self._clear_open()

    def _zone_inputs(self):
        """For layers whose zone is measured at the activation's input: (their samples of it (Ctot, S),
        channels that use them (Ctot, 1), channels with no measurement in this row (Ctot,)); None
        when no layer is measured that way."""
        self._zone()
        at_act = self._zone_at_activation
        if not any(at_act):
            return None
        have = tuple(z is not None for z in self._zs)
        masks = self._zone_mask_cache.get(have)
        if masks is None:

            def per_channel(values):
                return torch.cat([torch.full((c,), v, device=self._device) for v, c in zip(values, self._features)])

            use = per_channel([a and h for a, h in zip(at_act, have)])
            missing = per_channel([a and not h and k is not None for a, h, k in zip(at_act, have, self._keys)])
            masks = self._zone_mask_cache[have] = (use.unsqueeze(1), missing)
        values = torch.cat([_f32(z) if z is not None else zero for z, zero in zip(self._zs, self._zeros)])
        return values, masks[0], masks[1]

    def _compute(self, row, mk, tensors, mean, q, synced, zone_inputs=None) -> None:
        L, lid, eps = self.L, self._layer_id, self._eps32
        # var from the kernel's invstd in float64: 1/invstd^2 - eps loses digits in float32 when var << eps
        q64 = q.double()
        q = q.float()
        if mk["any_q_is_var"]:
            var = torch.where(mk["q_is_var"], q64, 1.0 / (q64 * q64) - self._eps).float()
            batch_inv = torch.where(mk["q_is_var"], torch.rsqrt(q + eps), q)
        else:
            var = (1.0 / (q64 * q64) - self._eps).float()
            batch_inv = q
        gamma, beta, rm, rv = self._snapshot.unbind(0)
        if self._all_wb:
            g, b = gamma, beta
        else:
            g = torch.where(self._has_w, gamma, 1.0)
            b = torch.where(self._has_b, beta, 0.0)
        running, identity = mk["running"], mk["identity"]
        if mk["any_running"]:
            um = torch.where(running, rm, mean)
            uinv = torch.where(running, torch.rsqrt(rv + eps), batch_inv)
        else:
            um, uinv = mean, batch_inv
        uvar = torch.where(running, rv, var) if mk["any_running"] else var
        if synced is not None:
            sync = mk["sync"]
            g_mean, g_inv = synced
            g_inv64 = g_inv.double()
            um = torch.where(sync, g_mean, um)
            uinv = torch.where(sync, g_inv, uinv)
            uvar = torch.where(sync, (1.0 / (g_inv64 * g_inv64) - self._eps).float(), uvar)
        used_mean, used_var = um, uvar
        if mk["any_identity"]:
            used_mean, used_var = (torch.where(identity, torch.nan, t) for t in (um, uvar))
        post_mean = g * (mean - um) * uinv + b
        post_var = g * g * var * uinv * uinv
        if mk["any_identity"]:
            post_mean = torch.where(identity, mean, post_mean)
            post_var = torch.where(identity, var, post_var)
        uinv_c = uinv.unsqueeze(1)
        # broadcasting addcmul is slower on CPU than a multiply and an in-place add
        torch.mul(tensors[0], uinv_c, out=tensors[1]).sub_((um * uinv).unsqueeze(1))  # x-hat
        torch.mul(tensors[1], g.unsqueeze(1), out=tensors[2]).add_(b.unsqueeze(1))  # y = gamma x-hat + beta
        if mk["any_identity"]:
            torch.where(identity.unsqueeze(1), tensors[0], tensors[2], out=tensors[2])  # a Probe: y = x
        use_abs, thr = self._zone()
        valid, s = mk["valid"], mk["s"]
        zone_values = tensors[1:]  # x-hat, y
        if zone_inputs is not None:  # y, or what the activation really received
            values, use, missing = zone_inputs
            zone_values = torch.stack([tensors[1], torch.where(use, values, tensors[2])])
        if self._zone_any_abs:
            zone = stats.in_zone(zone_values, use_abs, thr)
        else:  # every rule "dead": in_zone's v <= t for all channels, without the |v| side
            zone = zone_values <= thr
        if mk["padded"]:
            zone &= valid
        sat_x, sat_y = zone.sum(-1, dtype=torch.float32) / s
        if zone_inputs is not None:  # x-hat is not what such an activation receives: no x-hat zone
            sat_x = torch.where(use.squeeze(1) | missing, torch.nan, sat_x)
            sat_y = torch.where(missing, torch.nan, sat_y)
        present = mk["present"]
        f = torch.float32
        pm, pv, qm, qv = mean, var, post_mean, post_var
        gap = (mean - rm).abs() * torch.rsqrt(rv + eps)
        used_gap = (mean - used_mean).abs() * uinv
        logratio = torch.log((var + eps) / (rv + eps)).abs()
        all_present = mk["all_present"]
        zone_ch = (sat_y >= ZONE_CHANNEL_FRACTION).to(f)
        nonfinite = (~torch.isfinite(pm) | ~torch.isfinite(pv)).to(f)
        if not all_present:
            zone_ch = torch.where(present, zone_ch, torch.nan)
            nonfinite = torch.where(present, nonfinite, torch.nan)
        nan_c = self._nan_c
        if row.channel is not None:
            chan = {
                "pre_mean": pm,
                "pre_var": pv,
                "post_mean": qm,
                "post_var": qv,
                "gamma": gamma,
                "beta": beta,
                "running_mean": rm,
                "running_var": rv,
                "sat_y": sat_y,
                "sat_xhat": sat_x,
                "grad_gamma": nan_c,
                "grad_beta": nan_c,
                "used_mean": used_mean,
                "used_var": used_var,
            }
            chan = torch.stack([chan[name] for name in schema.CHANNEL_FIELDS])
            self._chan[row.channel] = chan if all_present else torch.where(present, chan, torch.nan)
        sums = stats.segment_sum(
            torch.stack([pm, pv, qm, qv, gamma, beta, gap, logratio, sat_y, sat_x, zone_ch, nonfinite, used_gap]),
            lid,
            L,
        )
        means = sums / self._counts
        dev = torch.stack([pm - means[0][lid], qm - means[2][lid]])
        sd = (stats.segment_sum(dev * dev, lid, L) / self._counts).sqrt()
        mins = stats.segment_extreme(torch.stack([pm, pv, qm, qv, gamma.abs()]), lid, L, "amin")
        maxs = stats.segment_extreme(torch.stack([pm, pv, qm, qv, gamma.abs(), beta.abs()]), lid, L, "amax")
        nan_l = self._nan_l
        fields = {
            "n": nan_l,
            "pre_mean": means[0],
            "pre_mean_sd": sd[0],
            "pre_mean_min": mins[0],
            "pre_mean_max": maxs[0],
            "pre_var": means[1],
            "pre_var_min": mins[1],
            "pre_var_max": maxs[1],
            "post_mean": means[2],
            "post_mean_sd": sd[1],
            "post_mean_min": mins[2],
            "post_mean_max": maxs[2],
            "post_var": means[3],
            "post_var_min": mins[3],
            "post_var_max": maxs[3],
            "gamma_mean": means[4],
            "gamma_abs_min": mins[4],
            "gamma_abs_max": maxs[4],
            "beta_mean": means[5],
            "beta_abs_max": maxs[5],
            "run_mean_gap": means[6],
            "run_var_logratio": means[7],
            "sat_y": means[8],
            "sat_xhat": means[9],
            "zone_channels": means[10],
            "nonfinite_channels": sums[11],
            "grad_gamma_norm": nan_l,
            "grad_beta_norm": nan_l,
            "used_mean_gap": means[12],
        }
        summary = torch.stack([fields[name] for name in schema.SUMMARY_FIELDS], 1)
        self._sum[row.index] = summary if all_present else torch.where(mk["present_l"].unsqueeze(1), summary, torch.nan)

        finite = (tensors * 0) == 0  # isfinite in two ops instead of four
        ok = finite & valid if mk["padded"] else finite
        pool, pad = mk["pool"], mk["pool_pad"]
        pooled = torch.where(ok.flatten(1)[:, pool] & ~pad, tensors.flatten(1)[:, pool], torch.nan)
        pooled = stats.sort_last(pooled)  # (3, L, P), excluded values (NaN) last
        quant = stats.sorted_quantiles(pooled, self._qs)  # (3, L, NQ)
        self._quant[row.index] = quant.transpose(0, 1)
        probe_ok = ok[2][self._probe_idx]
        probe = stats.sort_last(torch.where(probe_ok, tensors[2][self._probe_idx], torch.nan)).view(L, self.probes, -1)
        self._prob[row.index] = torch.where(self._probe_ok, stats.sorted_quantiles(probe, self._qs), torch.nan)

        if row.hist is not None:
            pp = pooled[0::2]  # pre, post (2, L, P); a slice, not a list index (that would copy from the host)
            lo, hi = self._range[:, 0], self._range[:, 1]
            seen = ~torch.isnan(pp)
            outside = (((pp < lo.unsqueeze(-1)) | (pp >= hi.unsqueeze(-1))) & seen).sum(-1)
            frac = outside / seen.sum(-1)
            lo, hi = stats.widen_range(
                lo, hi, quant[0::2, :, 0], quant[0::2, :, -1], frac, RANGE_MARGIN, RANGE_TOLERANCE
            )
            self._range = torch.stack([lo, hi], 1)
            lo3 = torch.stack([lo[0], self._xhat_lo, lo[1]])
            hi3 = torch.stack([hi[0], self._xhat_hi, hi[1]])
            nonfinite = stats.segment_sum(s - ok.sum(-1, dtype=torch.float32), lid, L)
            counts = stats.histogram(tensors, ok, nonfinite, lid, lo3, hi3, L, NB, self._ones)
            self._hist[row.hist] = counts.transpose(0, 1)
            self._hrange[row.hist] = torch.stack([lo3, hi3], -1).transpose(0, 1)

    def _write_grads(self, row) -> None:
        with torch.no_grad():
            grads = self._cat_grads()
            norms = stats.segment_sum(grads * grads, self._layer_id, self.L).sqrt()  # (2, L)
            self._sum[row.index, :, _S["grad_gamma_norm"]] = norms[0]
            self._sum[row.index, :, _S["grad_beta_norm"]] = norms[1]
            if row.channel is not None:
                self._chan[row.channel, _C["grad_gamma"]] = grads[0]
                self._chan[row.channel, _C["grad_beta"]] = grads[1]

    def _empty_host(self) -> dict:
        L, K = self.L, self.probes
        ctot = self._offsets[-1]
        z = torch.zeros
        return {
            "summary": z((0, L, F_S)),
            "quantiles": z((0, L, 3, NQ)),
            "probes": z((0, L, K, NQ)),
            "channels": z((0, F_C, ctot)),
            "hist": z((0, L, 3, NB + 3)),
            "hist_range": z((0, L, 3, 2)),
        }
