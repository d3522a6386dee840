"""Recording inside ``torch.compile`` graphs, without a graph break per layer.

Under torch.compile a reporting layer traces to torch's own computation plus operators of bnviz,
so one graph holds the whole model (inductor included) and the recording runs when the graph runs,
not once at trace time:

- ``bnviz::begin(state, layer)`` before the kernel: asks the sink whether this forward is recorded
  (``wants``; the first one of a row snapshots γ/β and the running statistics). ``state`` is the
  layer's running statistics: reading them orders ``begin`` before the kernel's update of them.
  (An empty input, never recorded, gets neither operator: its size is known while tracing.)
- ``bnviz::report(x, mean, invstd, layer, mode)`` after the kernel: hands the sink the input and the
  batch mean / inverse std the compiled kernel computed (``put``; None: the sink computes them).
- ``bnviz::observe(x, state)`` (``foreign.py``): a BN subclass's or frozen BN's forward pre-hook,
  ``wants`` and ``put`` in one.
- ``bnviz::zone_input(z, layer)`` (``measure.py``): the input of an activation module measured there.

All are ordered side effects (``ordered_op``: the mechanism torch uses for ``print`` in graphs), so
no compiler pass drops them. Their place relative to the layers' kernels comes from their inputs:
a begin before the update of the statistics it reads, a report after the kernel whose outputs it
takes. A begin takes no activation, so inductor may run it early (it runs them at the start of
the graph) but never after its layer's kernel: the first begin of a forward, which may open a row,
precedes every kernel. Tied to the activation, a begin ran right after the kernel that made it,
where a Python call finds the caches that kernel evicted: ~40 us per begin at width 256 on one
CPU thread (torch.profiler), ~7 us now. The graph never reads
the sink: attaching or detaching a recorder changes no guard (no recompile), a layer without a
sink costs calls that return at once,
and the training computation is the plain model's (bit-identical under inductor on CPU,
tests/test_compiled.py). A layer is named in the graph by a one-element tensor holding its id
(``register``), which the operators look up at run time (a layer bnviz does not swap: by its
running statistics, ``foreign.py``).

Where torch lacks custom operators with effects (torch < 2.4), ``AVAILABLE`` is False and the
recording layers run outside the graph instead (one graph break each).
"""

from __future__ import annotations

import itertools
import weakref

import torch

_LAYERS: weakref.WeakValueDictionary = weakref.WeakValueDictionary()  # id tensor's data_ptr -> layer
_WANTED: dict[int, bool] = {}  # id tensor's data_ptr -> what the layer's last begin was told
_IDS = itertools.count()


def register(module) -> torch.Tensor:
    """A new id for ``module``, under which the operators find it: a one-element CPU tensor, so a
    graph takes it as an input, like a buffer, instead of specialising on its value (with an int
    each layer would need its own compiled frame wherever torch compiles layers one by one). The
    operators key the layer by the tensor's storage address: reading it needs no dispatch (an
    ``int(tensor)`` costs two, on caches a large kernel just evicted)."""
    uid = torch.tensor([next(_IDS)])
    _LAYERS[uid.data_ptr()] = module
    return uid


def _sink_of(key: int):
    m = _LAYERS.get(key)
    return m, (None if m is None else m._bnviz_sink)


def _begin_impl(state: list[torch.Tensor], layer_id: torch.Tensor) -> None:
    key = layer_id.data_ptr()
    m, sink = _sink_of(key)
    _WANTED[key] = False
    if sink is None:
        return
    try:
        _WANTED[key] = sink.wants(m._bnviz_index, m.training)
    except Exception as err:  # noqa: BLE001 - a recording failure must not stop the training
        sink.fail(err)


def _report_impl(
    x: torch.Tensor, mean: torch.Tensor | None, invstd: torch.Tensor | None, layer_id: torch.Tensor, mode: int
) -> None:
    key = layer_id.data_ptr()
    if not _WANTED.pop(key, False):
        return
    m, sink = _sink_of(key)
    if sink is None:
        return
    try:
        sink.put(m._bnviz_index, x, mean, invstd, mode)
    except Exception as err:  # noqa: BLE001 - a recording failure must not stop the training
        sink.fail(err)


_LIBRARY = torch.library.Library("bnviz", "FRAGMENT")


def ordered_op(name: str, impl):
    """``impl`` (annotated: its schema is inferred from them) as the graph operator ``bnviz::<name>``,
    returning nothing, registered as an ordered side effect; None where this torch cannot keep such
    an operator in a graph. A plain library operator, not ``torch.library.custom_op``: a call costs
    ~2 us instead of ~10 (no autograd wrapper: the inputs are detached)."""
    register_effect = getattr(torch.library, "_register_effectful_op", None)
    try:
        from torch._higher_order_ops.effects import _EffectType
    except ImportError:
        return None
    if register_effect is None or not hasattr(torch.library, "infer_schema"):
        return None
    _LIBRARY.define(name + torch.library.infer_schema(impl, mutates_args=()))
    _LIBRARY.impl(name, impl, "CompositeExplicitAutograd")
    torch.library.register_fake(f"bnviz::{name}", lambda *args: None, lib=_LIBRARY)
    op = getattr(torch.ops.bnviz, name).default
    register_effect(op, _EffectType.ORDERED)
    return op


def layer(layer_id: torch.Tensor):
    """The module registered under ``layer_id`` (``register``), None when it is gone."""
    return _LAYERS.get(layer_id.data_ptr())


_BEGIN = ordered_op("begin", _begin_impl)
_REPORT = ordered_op("report", _report_impl)
AVAILABLE = _BEGIN is not None and _REPORT is not None


def begin(m) -> None:
    """In a compiled forward, before the kernel: ``bnviz::begin`` for layer ``m``."""
    state = [t for t in (m._buffers.get("running_mean"), m._buffers.get("running_var")) if t is not None]
    _BEGIN(state, m._bnviz_uid)


def report(m, x: torch.Tensor, mean, invstd, mode: int) -> None:
    """In a compiled forward, after the kernel: ``bnviz::report`` for layer ``m``."""
    _REPORT(
        x.detach(),
        None if mean is None else mean.detach(),
        None if invstd is None else invstd.detach(),
        m._bnviz_uid,
        mode,
    )
