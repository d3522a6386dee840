"""The project's own BatchNorm classes: torch's classes with a forward that also reports.

Instrumentation swaps ``module.__class__`` in place to the matching class here, so the module object,
its Parameters, buffers, hooks and every reference to it stay the same; ``isinstance`` with torch's
class (and ``_BatchNorm``) stays true because these are subclasses. ``swap_out`` swaps back.

Forward without a sink (or on a forward the sink does not record) is torch's own ``forward``.
A recorded forward repeats ``_BatchNorm.forward``'s bookkeeping line for line and calls the function
``F.batch_norm`` itself ends in (``torch._batch_norm_impl_index``, which picks the same native / cuDNN
kernel), which also returns the batch mean and inverse std it computed: output, gradients and running statistics are
bit-identical to torch, and the pre-BN statistics cost no extra pass. A training SyncBatchNorm in an
initialised process group runs torch's own ``forward`` (the sync, its errors and its world-of-one
fallback are torch's) and reports the global statistics it normalised with when it synced.

Under torch.compile the same forward is traced, with the report made by graph operators that run
when the graph runs (``compiled.py``). torch.jit.trace / script, torch.export and torch.fx capture
torch's own BatchNorm and record nothing (``tracing.py``); fuse_modules accepts these classes
(``fusion.py``).

Pickling or deep-copying an instrumented module gives torch's class: the copy is not attached to any
recorder and loads without bnviz.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from . import compiled, fusion, tracing
from .distributed import synced_statistics
from .reference import batch_norm_reference

# How a recorded layer normalised, as reported to the sink.
MODE_BATCH = 0  # batch statistics (training, or eval without running statistics)
MODE_RUNNING = 1  # running statistics (eval)
MODE_IDENTITY = 2  # a Probe: no normalisation at all
MODE_SYNC = 3  # SyncBatchNorm synced across processes: the given mean / invstd are the global ones

# A tensor inside vmap/grad/functional transforms: never recorded (it is not the real batch).
is_transformed = torch._C._functorch.is_functorch_wrapped_tensor


class _Reporting:
    """Mixin placed before torch's class; class attributes keep attribute lookups off Module.__getattr__."""

    _bnviz_sink = None
    _bnviz_index = -1
    _bnviz_kernel = "native"

    _bnviz_uid = None

    def forward(self, input):
        if torch.compiler.is_compiling():
            return _forward_compiled(self, input)
        if self._bnviz_sink is None and self._bnviz_kernel == "native":
            return super().forward(input)
        kind = tracing.capture()
        if kind is not None:
            tracing.step_aside(self._bnviz_sink, kind)
            return super().forward(input)
        return _forward_maybe_recording(self, input)

    def __prepare_scriptable__(self):
        return tracing.prepare_scriptable(self, ORIGINAL[type(self)])

    def __reduce_ex__(self, protocol):
        state = {k: v for k, v in self.__dict__.items() if not k.startswith("_bnviz")}
        return object.__new__, (ORIGINAL[type(self)],), state


def _forward_maybe_recording(m, input):
    sink = m._bnviz_sink
    record = sink is not None and input.numel() > 0 and not is_transformed(input)
    if record:
        try:
            record = sink.wants(m._bnviz_index, m.training)
        except Exception as err:  # noqa: BLE001 - a recording failure must not stop the training
            sink.fail(err)
            record = False
    if not record and m._bnviz_kernel == "native":
        return super(_Reporting, m).forward(input)
    return _forward(m, input, sink if record else None)


# Where the graph cannot hold the recording (compiled.py), the layer runs outside it: one graph break.
_forward_outside_graph = torch.compiler.disable(_forward_maybe_recording)

# The sink of a compiled forward: the graph's bnviz::report operator (compiled.py).
IN_GRAPH = object()


def _forward_compiled(m, input):
    """What torch.compile traces: torch's computation between bnviz::begin and bnviz::report.
    torch.export gets torch's own forward. Outside the graph: the reference kernel, a SyncBatchNorm
    that syncs, and momentum=None in training, where torch's own forward breaks the graph too
    (a traced 1 / num_batches_tracked would recompile at every step)."""
    if torch.compiler.is_exporting():
        tracing.step_aside(m._bnviz_sink, "torch.export")
        return super(_Reporting, m).forward(input)
    cumulative = m.momentum is None and m.training and m.track_running_stats
    if not compiled.AVAILABLE or m._bnviz_kernel != "native" or cumulative or _torch_decides(m):
        return _forward_outside_graph(m, input)
    if input.numel() == 0:  # never recorded; known while tracing (dynamo specialises sizes 0 and 1)
        return super(_Reporting, m).forward(input)
    compiled.begin(m)
    return _forward(m, input, IN_GRAPH)


def _torch_decides(m) -> bool:
    """A training SyncBatchNorm in an initialised process group: torch's forward syncs, raises for
    CPU input or falls back to F.batch_norm for a world of one, so it must make that choice itself."""
    return (
        isinstance(m, nn.SyncBatchNorm)
        and m.training
        and torch.distributed.is_available()
        and torch.distributed.is_initialized()
    )


def _forward_torch_decides(m, input, sink):
    out = super(_Reporting, m).forward(input)
    if sink is None:
        return out
    try:  # reads torch's autograd internals: whatever goes wrong there stops the recording only
        used = synced_statistics(out)
        synced = used is None and _synced(m)
    except Exception as err:  # noqa: BLE001 - a recording failure must not stop the training
        sink.fail(err)
        return out
    if used is not None:
        _put(sink, m, input, used[0], used[1], MODE_SYNC)
    elif not synced:
        _put(sink, m, input, None, None, MODE_BATCH)
    # else synced without autograd (no_grad): the global statistics are out of reach, and the
    # local ones would describe a normalisation that did not happen, so the row leaves it out
    return out


def _synced(m) -> bool:
    """Whether torch's forward just synced (it did not raise, so the input was on a GPU)."""
    group = m.process_group or torch.distributed.group.WORLD
    return torch.distributed.get_world_size(group) > 1


def _forward(m, input, sink):
    """``_BatchNorm.forward`` with the kernel call made here; reports to ``sink`` when given."""
    if _torch_decides(m):
        return _forward_torch_decides(m, input, sink)
    m._check_input_dim(input)
    if isinstance(m, nn.SyncBatchNorm):
        m._check_non_zero_input_channels(input)

    factor = 0.0 if m.momentum is None else m.momentum
    if m.training and m.track_running_stats:
        if m.num_batches_tracked is not None:
            m.num_batches_tracked.add_(1)
            if m.momentum is None:
                factor = 1.0 / float(m.num_batches_tracked)
            else:
                factor = m.momentum
    bn_training = m.training or (m.running_mean is None and m.running_var is None)
    use_buffers = not m.training or m.track_running_stats
    running_mean = m.running_mean if use_buffers else None
    running_var = m.running_var if use_buffers else None
    args = (input, running_mean, running_var, m.weight, m.bias, bn_training, factor, m.eps)

    if not bn_training or not _kernel_accepts(input, running_mean, running_var, m.weight, m.bias, m.eps):
        # Eval with running statistics, or input torch rejects: F.batch_norm itself (same result,
        # same exception); the record then computes the batch statistics in a separate pass.
        out = F.batch_norm(*args)
        _put(sink, m, input, None, None, MODE_BATCH if bn_training else MODE_RUNNING)
        return out
    if m._bnviz_kernel == "reference":
        out, mean, invstd = batch_norm_reference(input, running_mean, running_var, m.weight, m.bias, factor, m.eps)
    else:
        try:
            # The function F.batch_norm ends in (torch.batch_norm -> at::batch_norm), minus its Python checks.
            out, mean, invstd, _, _ = torch._batch_norm_impl_index(
                input,
                m.weight,
                m.bias,
                running_mean,
                running_var,
                True,
                factor,
                m.eps,
                torch.backends.cudnn.enabled,
            )
        except RuntimeError:
            # Checked before anything is written: torch's own call now raises torch's message.
            return F.batch_norm(*args)
    _put(sink, m, input, mean, invstd, MODE_BATCH)
    return out


def _put(sink, m, x, mean, invstd, mode) -> None:
    if sink is None:
        return
    if sink is IN_GRAPH:
        compiled.report(m, x, mean, invstd, mode)
        return
    try:
        sink.put(m._bnviz_index, x, mean, invstd, mode)
    except Exception as err:  # noqa: BLE001 - a recording failure must not stop the training
        sink.fail(err)


def _kernel_accepts(input, running_mean, running_var, weight, bias, eps) -> bool:
    """The checks F.batch_norm makes in Python or before its kernel writes anything.

    The native kernels write running statistics of the wrong length without complaint, so sizes
    are checked here and anything doubtful goes through F.batch_norm.
    """
    if eps <= 0.0 or input.dim() < 2:
        return False
    size = input.shape
    prod = size[0]
    for s in size[2:]:
        prod *= s
    if prod == 1:
        return False
    c = size[1]
    for t in (running_mean, running_var, weight, bias):
        if t is not None and (t.numel() != c or t.device != input.device):
            return False
    return True


class BatchNorm1d(_Reporting, nn.BatchNorm1d):
    pass


class BatchNorm2d(_Reporting, nn.BatchNorm2d):
    pass


class BatchNorm3d(_Reporting, nn.BatchNorm3d):
    pass


class SyncBatchNorm(_Reporting, nn.SyncBatchNorm):
    pass


# torch's class -> ours, and back. Exact classes only: subclasses may override forward.
OWN = {
    nn.BatchNorm1d: BatchNorm1d,
    nn.BatchNorm2d: BatchNorm2d,
    nn.BatchNorm3d: BatchNorm3d,
    nn.SyncBatchNorm: SyncBatchNorm,
}
ORIGINAL = {own: orig for orig, own in OWN.items()}
fusion.register(OWN)


def is_instrumented(module: nn.Module) -> bool:
    return type(module) in ORIGINAL


def swap_in(module: nn.Module, index: int, kernel: str) -> None:
    module.__class__ = OWN[type(module)]
    mark(module, index)
    object.__setattr__(module, "_bnviz_kernel", kernel)


def mark(module: nn.Module, index: int) -> None:
    """Give a recorded layer (own BN class or Probe) its index and its id in compiled graphs."""
    object.__setattr__(module, "_bnviz_index", index)
    object.__setattr__(module, "_bnviz_uid", compiled.register(module))


def swap_out(module: nn.Module) -> None:
    module.__class__ = ORIGINAL[type(module)]
    forget(module)


def forget(module: nn.Module) -> None:
    """Drop every bnviz attribute from the module (index, sink)."""
    for key in [k for k in module.__dict__ if k.startswith("_bnviz")]:
        del module.__dict__[key]


def set_sink(module: nn.Module, sink) -> None:
    object.__setattr__(module, "_bnviz_sink", sink)
