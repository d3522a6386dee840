"""Training side of bnviz: own BatchNorm, instrumentation, activation detection, statistics engine.

Never imports Qt: this runs on GPU servers without a display.
"""

from .instrument import Instrumentation, LayerInfo, instrument
from .probe import Probe

__all__ = ["Instrumentation", "LayerInfo", "Probe", "instrument"]
