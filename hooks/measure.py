"""Activation modules that report their input: the zone measured where the activation acts.

When a BN output reaches its activation module via a residual add, a scaling or dropout
(``activations.py``: zone_input "activation"), that module's class is swapped in place to a
subclass whose forward first hands its input to the sink (``StatsEngine.put_zone_input``), which
samples it for the layers it serves if they were recorded in this forward and have no sample of
their activation input yet (the first call after the layer ran). As for the BN classes: the
module object stays the same, ``isinstance`` still holds, and pickling or copying gives torch's
class without any bnviz attribute.
"""

from __future__ import annotations

import torch

from . import compiled

_CLASSES: dict[type, type] = {}


class _Measuring:
    _bnviz_sink = None
    _bnviz_layers: tuple[int, ...] = ()
    _bnviz_uid = None

    def forward(self, input, *args, **kwargs):
        if torch.compiler.is_compiling():
            _report_compiled(self, input)
        elif self._bnviz_sink is not None:
            _report(self, input)
        return super().forward(input, *args, **kwargs)

    def __reduce_ex__(self, protocol):
        state = {k: v for k, v in self.__dict__.items() if not k.startswith("_bnviz")}
        return object.__new__, (_original(type(self)),), state


def _report(module, input):
    sink = module._bnviz_sink
    try:
        sink.put_zone_input(module._bnviz_layers, input)
    except Exception as err:  # noqa: BLE001 - a recording failure must not stop the training
        sink.fail(err)


def _zone_input_impl(z: torch.Tensor, layer_id: torch.Tensor) -> None:
    module = compiled.layer(layer_id)
    if module is not None and module._bnviz_sink is not None:
        _report(module, z)


# Under torch.compile: ``bnviz::zone_input(z, layer_id)``, an ordered operator that reports when the
# graph runs (compiled.py), so the graph reads neither the sink nor the layer list.
_ZONE_INPUT = compiled.ordered_op("zone_input", _zone_input_impl)
_report_outside_graph = torch.compiler.disable(_report)


def _report_compiled(module, input) -> None:
    if torch.compiler.is_exporting():
        return  # an exported graph records nothing (tracing.py); the BN layers warn
    if _ZONE_INPUT is not None:
        _ZONE_INPUT(input.detach(), module._bnviz_uid)
    elif module._bnviz_sink is not None:
        _report_outside_graph(module, input)


def _original(cls: type) -> type:
    return next(c for c in cls.__mro__[1:] if c is not _Measuring and not issubclass(c, _Measuring))


def swap_in(module: torch.nn.Module, layers) -> None:
    """Make ``module`` report its input for the given layer indices (registration order)."""
    cls = type(module)
    if issubclass(cls, _Measuring):
        cls = _original(cls)
    if cls not in _CLASSES:
        _CLASSES[cls] = type(cls.__name__, (_Measuring, cls), {"__module__": __name__, "__qualname__": cls.__name__})
    module.__class__ = _CLASSES[cls]
    object.__setattr__(module, "_bnviz_layers", tuple(layers))
    if "_bnviz_uid" not in module.__dict__:
        object.__setattr__(module, "_bnviz_uid", compiled.register(module))


def swap_out(module: torch.nn.Module) -> None:
    if isinstance(module, _Measuring):
        module.__class__ = _original(type(module))
    for key in [k for k in module.__dict__ if k.startswith("_bnviz")]:
        del module.__dict__[key]


def set_sink(module: torch.nn.Module, sink) -> None:
    object.__setattr__(module, "_bnviz_sink", sink)
