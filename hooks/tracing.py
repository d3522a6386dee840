"""While torch.jit.trace, torch.jit.script or torch.export capture a model, bnviz's layers are torch's:
the captured graph is the plain model's, and nothing is recorded.

A captured graph runs later without Python, so a recording inside it would record once, at capture
time, the tracer's tensors. Instead each reporting layer runs torch's own forward (trace, export)
or is torch's class while TorchScript compiles it (``prepare_scriptable``), and a recording
model warns once per recording and kind of capture. ``torch.compile`` is not a capture: its graphs
record (``compiled.py``).
"""

from __future__ import annotations

import warnings
import weakref

import torch

from bnviz.store.errors import RecordingWarning

_warned: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # sink -> kinds of capture warned
_swapped: list = []  # (module, its class, its bnviz attributes) while TorchScript compiles
_restore_handle = None


def capture() -> str | None:
    """The capture running now in eager Python, by name; None when there is none."""
    return "torch.jit.trace" if torch.jit.is_tracing() else None


def step_aside(sink, kind: str) -> None:
    """A layer reporting to ``sink`` (None: not recording) runs torch's forward under capture
    ``kind``: warn once per sink and kind."""
    if sink is None:
        return
    kinds = _warned.setdefault(sink, set())
    if kind in kinds:
        return
    kinds.add(kind)
    try:  # warnings as errors must not stop the capture either
        warnings.warn(
            f"bnviz: {kind} captured a recorded model: the captured graph is torch's plain "
            "BatchNorm and records nothing, and these forwards are not in the recording "
            "(bnviz records eager and torch.compile'd training)",
            RecordingWarning,
            stacklevel=4,
        )
    except Warning:
        pass


def prepare_scriptable(m, plain: type):
    """``__prepare_scriptable__`` of a reporting layer: ``m`` becomes ``plain`` (torch's class, without
    bnviz's attributes) while TorchScript compiles it, and itself again at the next module call in
    Python (TorchScript writes what this returns into the parent module, so it must be ``m``)."""
    global _restore_handle
    step_aside(m.__dict__.get("_bnviz_sink"), "torch.jit.script")
    bnviz = {k: m.__dict__.pop(k) for k in [k for k in m.__dict__ if k.startswith("_bnviz")]}
    _swapped.append((m, type(m), bnviz))
    m.__class__ = plain
    if _restore_handle is None:
        _restore_handle = torch.nn.modules.module.register_module_forward_pre_hook(_restore)
    return m


def _restore(*_):
    """Global forward pre-hook, removed at its first call: the swapped layers are bnviz's again."""
    global _restore_handle
    _restore_handle.remove()
    _restore_handle = None
    while _swapped:
        m, cls, bnviz = _swapped.pop()
        m.__class__ = cls
        m.__dict__.update(bnviz)
