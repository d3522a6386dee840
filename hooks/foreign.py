"""BN layers bnviz does not swap for its own class, recorded from outside their forward.

- A ``_BatchNorm`` subclass (timm's ``BatchNormAct2d``: BN, then dropout and an activation, in one
  module; any class deriving from torch's BN): its forward may do more than BN, so it runs untouched.
- A frozen BN (torchvision's / detectron2's ``FrozenBatchNorm2d``): not a ``_BatchNorm`` at all, a
  module whose buffers ``weight``, ``bias``, ``running_mean``, ``running_var`` (one value per channel)
  are all it has: it normalises with its running statistics, so it is recorded as a BN in eval mode
  whatever ``module.training`` says.

A forward pre-hook reports the layer's input before its forward runs (so the running statistics
are seen before any update); the engine computes the batch statistics in its own pass, and derives
x-hat and y = gamma x-hat + beta from the layer's parameters or buffers, as for an eval row. Training is
untouched: the hook only reads. Under torch.compile the hook is one graph operator (``bnviz::observe``
below), so these layers add no graph break and no recompile. Which activation follows a subclass's
BN is found inside its forward (``activations.ForwardObserver``: the first activation applied to the
output of its batch_norm call, source "fused").
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from . import compiled, tracing
from .batchnorm import MODE_BATCH, MODE_RUNNING, is_transformed

FROZEN_BUFFERS = ("weight", "bias", "running_mean", "running_var")


def is_frozen_bn(module: nn.Module) -> bool:
    """A module whose own state is exactly the four BN buffers, 1-D and of one length."""
    if isinstance(module, _BatchNorm) or module._parameters or set(module._buffers) != set(FROZEN_BUFFERS):
        return False
    buffers = list(module._buffers.values())
    if any(b is None for b in buffers):
        return False
    sizes = {(b.dim(), b.numel()) for b in buffers}
    return len(sizes) == 1 and next(iter(sizes))[0] == 1


# id(module) -> [module, layer index, frozen, sink, hook handle]. Kept here, not on the module, so a
# deep copy (an EMA model) or a pickled model carries nothing of bnviz: the hook is a module-level
# function (copied and pickled by reference) that finds no entry for a copy and does nothing.
_ATTACHED: dict[int, list] = {}


def attach(module: nn.Module, index: int, frozen: bool) -> None:
    """Report ``module``'s forwards to the sink ``set_sink`` gives it, as layer ``index``."""
    _ATTACHED[id(module)] = [module, index, frozen, None, module.register_forward_pre_hook(_pre_hook)]


def _entry(module):
    entry = _ATTACHED.get(id(module))
    return entry if entry is not None and entry[0] is module else None


def is_attached(module: nn.Module) -> bool:
    return _entry(module) is not None


def set_sink(module: nn.Module, sink) -> None:
    _entry(module)[3] = sink


def detach(module: nn.Module) -> None:
    """Undo ``attach``: the module is as it was."""
    _ATTACHED.pop(id(module))[4].remove()


def _mode(m, frozen: bool) -> int:
    if frozen:
        return MODE_RUNNING
    batch = m.training or (m.running_mean is None and m.running_var is None)
    return MODE_BATCH if batch else MODE_RUNNING


def _report(m, x, entry) -> None:
    _, index, frozen, sink, _ = entry
    try:
        if x.dim() >= 2 and x.numel() > 0 and not is_transformed(x) and sink.wants(index, m.training):
            sink.put(index, x, None, None, _mode(m, frozen))
    except Exception as err:  # noqa: BLE001 - a recording failure must not stop the training
        sink.fail(err)


_report_outside_graph = torch.compiler.disable(_report)


# Under torch.compile the hook traces to one graph operator, ``bnviz::observe(x, state)``, which runs
# ``_report`` when the graph runs. ``state`` is the layer's running statistics (its weight where it
# keeps none): reading them orders the operator before the layer's own update of them, and the first
# of them names the layer. The operator finds the layer by that tensor's storage, so the graph holds
# no Python value of this module's (no guard on ``_ATTACHED``, on the sink or on a layer index: one
# graph for all layers and recorders), and a copy of the model (other storage) finds nothing.
_by_storage: dict[int | None, list] = {}  # data_ptr of a layer's state[0] -> its _ATTACHED entry


def _state(m) -> list[torch.Tensor]:
    running = [t for t in (m._buffers.get("running_mean"), m._buffers.get("running_var")) if t is not None]
    weight = getattr(m, "weight", None)
    return running or ([weight] if isinstance(weight, torch.Tensor) else [])


def _storage(m) -> int | None:
    state = _state(m)
    return state[0].data_ptr() if state else None


def _find(key: torch.Tensor):
    """The entry of the attached layer whose state begins with ``key``'s storage (None: none is)."""
    ptr = key.data_ptr()
    entry = _by_storage.get(ptr)
    if entry is None or _ATTACHED.get(id(entry[0])) is not entry or _storage(entry[0]) != ptr:
        # attached or detached since, or moved (module.to): index the attached layers again
        _by_storage.clear()
        _by_storage.update((_storage(e[0]), e) for e in _ATTACHED.values())
        entry = _by_storage.get(ptr)
    return entry


def _observe_impl(x: torch.Tensor, state: list[torch.Tensor]) -> None:
    if not _ATTACHED:
        return
    entry = _find(state[0])
    if entry is not None and entry[3] is not None:
        _report(entry[0], x, entry)


_OBSERVE = compiled.ordered_op("observe", _observe_impl)


def _pre_hook_compiled(module, input) -> None:
    if torch.compiler.is_exporting():  # an exported graph records nothing (tracing.py)
        entry = _entry(module)
        tracing.step_aside(None if entry is None else entry[3], "torch.export")
        return
    state = _state(module)
    if _OBSERVE is not None and state:
        _OBSERVE(input.detach(), [t.detach() for t in state])
        return
    entry = _entry(module)
    if entry is not None and entry[3] is not None:
        _report_outside_graph(module, input, entry)


def _pre_hook(module, args):
    if not args or not isinstance(args[0], torch.Tensor):
        return
    if torch.compiler.is_compiling():
        _pre_hook_compiled(module, args[0])
        return
    entry = _entry(module)
    if entry is None or entry[3] is None:
        return
    capture = tracing.capture()
    if capture is not None:  # a captured graph records nothing (tracing.py)
        tracing.step_aside(entry[3], capture)
    else:
        _report(module, args[0], entry)
