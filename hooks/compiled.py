"""Recording inside ``torch.compile`` graphs, without a graph break per layer.

Under torch.compile a reporting layer traces to torch's own computation plus operators of bnviz,
so one graph holds the whole model (inductor included) and the recording runs when the graph runs,
not once at trace time:

- ``bnviz::begin(x, state, layer)`` before the kernel: asks the sink whether this forward is recorded
  (``wants``; the first one of a row snapshots γ/β and the running statistics). ``state`` is the
  layer's running statistics: reading them orders ``begin`` before the kernel's update of them.
- ``bnviz::report(x, mean, invstd, layer, mode)`` after the kernel: hands the sink the input and the
  batch mean / inverse std the compiled kernel computed (``put``; None: the sink computes them).
- ``bnviz::observe(x, state)`` (``foreign.py``): a BN subclass's or frozen BN's forward pre-hook,
  ``wants`` and ``put`` in one.
- ``bnviz::zone_input(z, layer)`` (``measure.py``): the input of an activation module measured there.

All are ordered side effects (``ordered_op``: the mechanism torch uses for ``print`` in graphs), so
no compiler pass drops or reorders them. The graph never reads the sink: attaching or detaching a
recorder changes no guard (no recompile), a layer without a sink costs calls that return at once,
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

_LAYERS: weakref.WeakValueDictionary = weakref.WeakValueDictionary()  # id -> layer module
_WANTED: dict[int, bool] = {}  # id -> what the layer's last begin was told
_IDS = itertools.count()


def register(module) -> torch.Tensor:
    """A new id for ``module``, under which the operators find it: a one-element CPU tensor, so a
    graph takes it as an input, like a buffer, instead of specialising on its value (with an int
    each layer would need its own compiled frame wherever torch compiles layers one by one)."""
    uid = next(_IDS)
    _LAYERS[uid] = module
    return torch.tensor([uid])


def _sink_of(uid: int):
    m = _LAYERS.get(uid)
    return m, (None if m is None else m._bnviz_sink)


def _begin_impl(x: torch.Tensor, state: list[torch.Tensor], layer_id: torch.Tensor) -> None:
    layer = int(layer_id)
    m, sink = _sink_of(layer)
    _WANTED[layer] = False
    if sink is None or x.numel() == 0:
        return
    try:
        _WANTED[layer] = sink.wants(m._bnviz_index, m.training)
    except Exception as err:  # noqa: BLE001 - a recording failure must not stop the training
        sink.fail(err)


def _report_impl(
    x: torch.Tensor, mean: torch.Tensor | None, invstd: torch.Tensor | None, layer_id: torch.Tensor, mode: int
) -> None:
    layer = int(layer_id)
    if not _WANTED.pop(layer, False):
        return
    m, sink = _sink_of(layer)
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
    return _LAYERS.get(int(layer_id))


_BEGIN = ordered_op("begin", _begin_impl)
_REPORT = ordered_op("report", _report_impl)
AVAILABLE = _BEGIN is not None and _REPORT is not None


def begin(m, input: torch.Tensor) -> None:
    """In a compiled forward, before the kernel: ``bnviz::begin`` for layer ``m``."""
    state = [t for t in (m._buffers.get("running_mean"), m._buffers.get("running_var")) if t is not None]
    _BEGIN(input.detach(), state, m._bnviz_uid)


def report(m, x: torch.Tensor, mean, invstd, mode: int) -> None:
    """In a compiled forward, after the kernel: ``bnviz::report`` for layer ``m``."""
    _REPORT(
        x.detach(),
        None if mean is None else mean.detach(),
        None if invstd is None else invstd.detach(),
        m._bnviz_uid,
        mode,
    )
