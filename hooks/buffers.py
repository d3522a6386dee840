"""The engine's device memory: what rows wait in (``Staging``), what they become (``Results``), and
the copy of a block to host memory (``PendingBlock``). No host synchronisation anywhere here.

Device memory, float32: results capacity x (L x (F_S + 9 x (3 + K) + 3 x 69) + F_C x Ctot), staging
(rows_per_compute + 2) x Ctot x (S (+ S with activation inputs) + 8), and the scratch memory of a
block's computation (``Work``, kept between blocks): about 16 bytes per sampled value of the block's
rows (20 with zones measured at activations) plus 36 (48 on a GPU) per sampled value of its
histogram rows (``rows_per_compute`` keeps it under WORK_BYTES).
"""

from __future__ import annotations

import numpy as np
import torch

from bnviz.store import schema
from bnviz.store.block import Block

from . import row_stats

NB = schema.HIST_BINS
NQ = len(schema.QUANTILES)
F_S = len(schema.SUMMARY_FIELDS)
F_C = len(schema.CHANNEL_FIELDS)
N_INDEX = schema.SUMMARY_FIELDS.index("n")
WORK_BYTES = 64 << 20
WORK_BYTES_PER_VALUE = 64  # every row a histogram row, zones measured at activations, on a GPU
PARAMS = (("_parameters", "weight"), ("_parameters", "bias"), ("_buffers", "running_mean"), ("_buffers", "running_var"))


def rows_per_compute(total_channels: int, samples: int, capacity: int) -> int:
    return max(1, min(capacity, WORK_BYTES // (WORK_BYTES_PER_VALUE * total_channels * samples)))


def per_channel(values, features, device, dtype=None) -> torch.Tensor:
    """(Ctot,) one value per layer repeated over its channels (``features``: channels per layer)."""
    return torch.repeat_interleave(torch.tensor(values, dtype=dtype), torch.tensor(features)).to(device)


def constants(modules, features, offsets, probe_channels, probes: int, device):
    """``row_stats.Constants`` of these layers (registration order); probe_channels: a list per layer."""
    L = len(modules)
    feats = torch.tensor(features)

    def per_layer(values, dtype=None):
        return per_channel(values, features, device, dtype)

    has_w = [getattr(m, "weight", None) is not None for m in modules]
    has_b = [getattr(m, "bias", None) is not None for m in modules]
    eps = per_layer([float(m.eps) for m in modules], torch.float64)
    probe_rows, probe_ok = [], []
    for i, channels in enumerate(probe_channels):
        chs = list(channels)[:probes]
        probe_ok += [True] * len(chs) + [False] * (probes - len(chs))
        probe_rows += [offsets[i] + c for c in chs + [0] * (probes - len(chs))]
    f32 = dict(device=device, dtype=torch.float32)
    return row_stats.Constants(
        layer_id=per_layer(list(range(L))),
        sizes=list(features),
        counts=feats.float().to(device),
        eps=eps,
        eps32=eps.float(),
        has_weight=per_layer(has_w),
        has_bias=per_layer(has_b),
        all_affine=all(has_w) and all(has_b),
        probe_index=torch.tensor(probe_rows, dtype=torch.long).to(device),
        probe_present=torch.tensor(probe_ok).view(L, probes, 1).to(device),
        quantiles=torch.tensor(schema.QUANTILES, dtype=torch.float64).to(device),
        xhat_lo=torch.full((L,), schema.XHAT_RANGE[0], **f32),
        xhat_hi=torch.full((L,), schema.XHAT_RANGE[1], **f32),
    )


class Staging:
    """What the layers handed over for the rows not computed yet, one slot per row.

    Slots are reused once their rows are computed; a row's slot holds its sampled input, the
    kernel's mean and invstd (or variance), gamma/beta/running statistics before its forward and,
    for a train row, the gradients at end_step. Activation inputs and synced statistics get their
    buffers at first use. Each write is one copy into a view made once per slot (a recorded
    step costs a copy or a gather per write, not the indexing around them too).
    """

    def __init__(self, rows: int, offsets, samples: int, device):
        """``offsets``: where each layer's channels start in Ctot, and Ctot last."""
        self.device, self.offsets = device, offsets
        ctot = offsets[-1]
        f32 = dict(device=device, dtype=torch.float32)
        self.x = torch.empty((rows, ctot, samples), **f32)
        self.params = torch.empty((rows, 4, ctot), **f32)
        # what a row's close writes: the kernel's mean, its invstd (or variance), and (for the
        # step's train row) weight.grad / bias.grad at end_step, NaN until then: one copy per row
        self.closing = torch.full((rows, 4, ctot), torch.nan, **f32)
        self.mean, self.q, self.grads = self.closing[:, 0], self.closing[:, 1], self.closing[:, 2:]
        self.activation: torch.Tensor | None = None
        self.synced: torch.Tensor | None = None
        self.nan = [torch.full((b - a,), torch.nan, **f32) for a, b in zip(offsets, offsets[1:])]
        spans = list(zip(offsets, offsets[1:]))
        self._samples = [[self.x[r, a:b].view(-1) for a, b in spans] for r in range(rows)]
        self._params = [self.params[r].view(-1) for r in range(rows)]
        self._closing = [(self.closing[r].view(-1), self.closing[r, :2].view(-1)) for r in range(rows)]
        self._grads = [self.closing[r, 2:].view(-1) for r in range(rows)]

    def put_params(self, slot: int, modules) -> None:
        """gamma, beta, running_mean, running_var as the forward will see them; NaN when absent."""
        parts = []
        for kind, name in PARAMS:  # the registries directly: Module.__getattr__ costs a microsecond per lookup
            for m, nan in zip(modules, self.nan):
                t = getattr(m, kind).get(name)
                if t is None and kind == "_parameters":
                    t = m._buffers.get(name)  # a frozen BN's gamma and beta are buffers
                parts.append(t if t is not None else nan)
        with torch.no_grad():  # parameters, no detach each: the copy makes no graph
            torch.cat(parts, out=self._params[slot])

    def _grad_parts(self, modules) -> list:
        parts = []
        for name in ("weight", "bias"):
            for m, nan in zip(modules, self.nan):
                t = m._parameters.get(name)
                g = t.grad if t is not None else None
                parts.append(g if g is not None else nan)
        return parts

    def put_grads(self, slot: int, modules) -> None:
        torch.cat(self._grad_parts(modules), out=self._grads[slot])

    def samples(self, slot: int, layer: int) -> torch.Tensor:
        """(C * S,) where layer ``layer`` of the row in ``slot`` puts its sampled input (channel-major)."""
        return self._samples[slot][layer]

    def activation_samples(self, slot: int, layer: int) -> torch.Tensor:
        """(C * S,) where it puts what its activation received at the same positions."""
        if self.activation is None:
            self._allocate_activation()
        assert self.activation is not None
        return self.activation[slot, self.offsets[layer] : self.offsets[layer + 1]].view(-1)

    @torch.inference_mode(False)  # written in place on every row: never inference tensors
    def _allocate_activation(self) -> None:
        self.activation = torch.empty_like(self.x)

    @torch.inference_mode(False)
    def _allocate_synced(self) -> None:
        self.synced = torch.empty(self.params[:, :2].shape, device=self.device, dtype=torch.float32)

    def put_row(self, slot: int, sampled, received, means, qs, synced, grads_of=None) -> None:
        """Per layer: whether its samples (``sampled``) and its activation's (``received``, None:
        no layer measures there) are in the slot (zeros where not), its mean and invstd or variance
        (C,) or None, synced (mean, invstd) pairs or None; ``grads_of``: the modules whose
        gradients the row takes now (its step's end), in the same copy."""
        for layer, done in enumerate(sampled):
            if not done:
                self.samples(slot, layer).zero_()
        if received is not None:
            for layer, done in enumerate(received):
                if not done:
                    self.activation_samples(slot, layer).zero_()
        parts = [v if v is not None else n for v, n in zip(means, self.nan)]
        parts += [v if v is not None else n for v, n in zip(qs, self.nan)]
        whole, first_two = self._closing[slot]
        if grads_of is not None:
            torch.cat(parts + self._grad_parts(grads_of), out=whole)
        else:
            torch.cat(parts, out=first_two)
        if synced is not None:
            if self.synced is None:
                self._allocate_synced()
            assert self.synced is not None
            for k in range(2):
                parts = [p[k] if p is not None else n for p, n in zip(synced, self.nan)]
                torch.cat(parts, out=self.synced[slot, k])


class Work:
    """Scratch memory of a block's computation, kept from block to block and grown to the largest.

    A fresh tensor of a few MB costs a page fault per 4 KiB on every block, more than the arithmetic
    on it (measured: a 4 MB product 16x slower than into a reused buffer), so the large
    intermediates go to these buffers (``out=``, in place). ``start`` begins a block of ``rows``
    rows: its groups' x-hat / y stay until the block's histograms are counted.
    """

    def __init__(self, total_channels: int, samples: int, device):
        self.shape, self.device = (total_channels, samples), device
        self._flat: dict[str, torch.Tensor] = {}
        self._xy_used = 0

    def start(self, rows: int) -> None:
        self._xy_used = 0
        self._buffer("xy", 2 * rows, torch.float32)  # grown now: later views stay in one buffer

    def xy(self, rows: int) -> torch.Tensor:
        """(2, rows, Ctot, S) for a group's x-hat and y, after the previous groups'."""
        n = 2 * rows
        flat = self._buffer("xy", self._xy_used + n, torch.float32)
        out = flat[self._xy_used * self._per_row : (self._xy_used + n) * self._per_row]
        self._xy_used += n
        return out.view(2, rows, *self.shape)

    def zone_tests(self, rows: int) -> torch.Tensor:
        """(2, rows, Ctot, S) float: a zone test's 1 / 0 for x-hat and y (``stats.zone_counts``)."""
        return self._view("zone_tests", (2, rows), torch.float32)

    def received(self, rows: int) -> torch.Tensor:
        """(rows, Ctot, S): what activations received, or y."""
        return self._view("received", (rows,), torch.float32)

    def histogram(self, rows: int):
        """(3, rows, Ctot, S) float positions, float scratch and slots for counting histograms
        (int32 for the CPU's bincount, int64 for scatter_add_ elsewhere: ``stats.histogram``)."""
        lead = (3, rows)
        return (
            self._view("u", lead, torch.float32),
            self._view("u_scratch", lead, torch.float32),
            self._view("slot", lead, torch.int32 if torch.device(self.device).type == "cpu" else torch.int64),
        )

    @property
    def _per_row(self) -> int:
        return self.shape[0] * self.shape[1]

    @torch.inference_mode(False)  # written in place at every block: never inference tensors
    def _buffer(self, name: str, rows: int, dtype) -> torch.Tensor:
        buf = self._flat.get(name)
        if buf is None or buf.numel() < rows * self._per_row:
            buf = self._flat[name] = torch.empty(rows * self._per_row, dtype=dtype, device=self.device)
        return buf

    def _view(self, name: str, lead: tuple, dtype) -> torch.Tensor:
        rows = int(np.prod(lead))
        return self._buffer(name, rows, dtype)[: rows * self._per_row].view(*lead, *self.shape)


class Results:
    """Rows as the file will hold them, until ``take`` copies a block to host memory."""

    def __init__(self, capacity: int, layers: int, probes: int, total_channels: int, device):
        R, L, K = capacity, layers, probes
        f32 = dict(device=device, dtype=torch.float32)
        self.summary = torch.full((R, L, F_S), torch.nan, **f32)
        self.quantiles = torch.full((R, L, 3, NQ), torch.nan, **f32)
        self.probes = torch.full((R, L, K, NQ), torch.nan, **f32)
        self.channels = torch.full((R, F_C, total_channels), torch.nan, **f32)
        self.hist = torch.zeros((R, L, 3, NB + 3), **f32)
        self.hist_range = torch.full((R, L, 3, 2), torch.nan, **f32)
        self.range = torch.full((2, 2, L), torch.nan, device=device, dtype=torch.float64)  # sticky pre/post (lo, hi)
        self.cuda = torch.device(device).type == "cuda"

    def take(self, rows: int, channel_rows: int, hist_rows: int):
        """Start the copies of the first rows to host memory: (host tensors, CUDA event or None)."""
        host, event = {}, None
        for name, n in (
            ("summary", rows),
            ("quantiles", rows),
            ("probes", rows),
            ("channels", channel_rows),
            ("hist", hist_rows),
            ("hist_range", hist_rows),
        ):
            src = getattr(self, name)[:n]
            if self.cuda:
                dst = torch.empty(src.shape, dtype=src.dtype, pin_memory=True)
                dst.copy_(src, non_blocking=True)
            else:
                dst = src.clone()
            host[name] = dst
        if self.cuda:
            event = torch.cuda.Event()
            event.record()
        return host, event


def empty_host(layers: int, probes: int, total_channels: int) -> dict:
    L, K, z = layers, probes, torch.zeros
    return {
        "summary": z((0, L, F_S)),
        "quantiles": z((0, L, 3, NQ)),
        "probes": z((0, L, K, NQ)),
        "channels": z((0, F_C, total_channels)),
        "hist": z((0, L, 3, NB + 3)),
        "hist_range": z((0, L, 3, 2)),
    }


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
        summary[:, :, N_INDEX] = np.asarray(m["n"], np.float32).reshape(-1, len(perm))[:, perm]
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
