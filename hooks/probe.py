"""``Probe``: an identity layer recorded like a BN layer.

Put one where a BN layer would sit in a model without BN (the "without BN" run of the BN paper's
Figure 1) and the recording holds the same statistics at the same place: pre = post = the probe's
input, x-hat = the input standardised with its batch statistics (eps as given), γ, β and running
statistics NaN. A model with Probes and no BN layer can be instrumented.
"""

from __future__ import annotations

import torch
from torch import nn

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


class Probe(nn.Module):
    _bnviz_sink = None
    _bnviz_index = -1

    def __init__(self, num_features: int, eps: float = 1e-5):
        super().__init__()
        self.num_features = num_features
        self.eps = eps

    def forward(self, input):
        if self._bnviz_sink is not None:
            if torch.compiler.is_compiling():
                _report_outside_graph(self, input)
            else:
                _report(self, input)
        return input

    def __getstate__(self):
        # the sink (a recorder) never travels with a pickled or copied model
        return {k: v for k, v in self.__dict__.items() if not k.startswith("_bnviz")}

    def extra_repr(self) -> str:
        return f"{self.num_features}, eps={self.eps}"
