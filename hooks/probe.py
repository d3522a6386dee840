"""``Probe``: an identity layer recorded like a BN layer.

Put one where a BN layer would sit in a model without BN (the "without BN" run of the BN paper's
Figure 1) and the recording holds the same statistics at the same place: pre = post = the probe's
input, x-hat = the input standardised with its batch statistics (eps as given), γ, β and running
statistics NaN. A model with Probes and no BN layer can be instrumented.
"""

from __future__ import annotations

import torch
from torch import nn

from . import compiled, tracing
from .batchnorm import MODE_IDENTITY, is_transformed


def _report(probe, input):
    sink = probe._bnviz_sink
    try:
        record = input.numel() > 0 and not is_transformed(input)
        if record and sink.wants(probe._bnviz_index, probe.training):
            sink.put(probe._bnviz_index, input, None, None, MODE_IDENTITY)
    except Exception as err:  # noqa: BLE001 - a recording failure must not stop the training
        sink.fail(err)


_report_outside_graph = torch.compiler.disable(_report)


def _report_compiled(probe, input):
    if torch.compiler.is_exporting():
        tracing.step_aside(probe._bnviz_sink, "torch.export")
    elif compiled.AVAILABLE:
        if input.numel() > 0:  # known while tracing (dynamo specialises sizes 0 and 1)
            compiled.begin(probe)
            compiled.report(probe, input, None, None, MODE_IDENTITY)
    elif probe._bnviz_sink is not None:
        _report_outside_graph(probe, input)


class Probe(nn.Module):
    _bnviz_sink = None
    _bnviz_index = -1
    _bnviz_uid = None

    def __init__(self, num_features: int, eps: float = 1e-5):
        super().__init__()
        self.num_features = num_features
        self.eps = eps

    def forward(self, input):
        if torch.compiler.is_compiling():
            if self._bnviz_uid is not None:
                _report_compiled(self, input)
            return input
        if self._bnviz_sink is not None:
            kind = tracing.capture()
            if kind is None:
                _report(self, input)
            else:
                tracing.step_aside(self._bnviz_sink, kind)
        return input

    def __prepare_scriptable__(self):
        # while TorchScript compiles it, a Probe is what it computes: an identity
        return tracing.prepare_scriptable(self, nn.Identity)

    def __getstate__(self):
        # the sink (a recorder) never travels with a pickled or copied model
        return {k: v for k, v in self.__dict__.items() if not k.startswith("_bnviz")}

    def extra_repr(self) -> str:
        return f"{self.num_features}, eps={self.eps}"
