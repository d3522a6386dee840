"""Which activation follows each BN layer, and where that activation saturates.

Detection (chosen over torch.fx, which fails on data-dependent Python in ``forward``): during the
first instrumented forward pass only, a ``TorchFunctionMode`` watches every torch function call and
follows the data: a layer's activation is the first recognised activation function applied to the
layer's output tensor, directly or through shape-only ops and dropout (view, reshape, flatten,
permute, contiguous, dropout...). Module activations (nn.ReLU, nn.Sigmoid...) are seen through the
functional call they make and reported with source "module". Inside a BN subclass whose forward
adds its own activation (timm's BatchNormAct2d), the output of its batch_norm call is followed the
same way and the activation reported with source "fused". Consequences, by construction:
BN placed after an activation gets the activation after it, not the one before; a BN whose output
first meets anything else (a residual add, a linear layer) gets "none"; a layer that did not run in
the observed pass stays "unknown". The observation costs nothing after the first pass.

Saturation / dead zone of each family (``ZONES``; y is the BN output, i.e. the activation's input):

====================  =========  ==========  ==============================================
activation            rule       threshold   y is in the zone when
====================  =========  ==========  ==============================================
sigmoid               saturated  4.3567      |y| >= t, where sigmoid' < 5% of its max (1/4)
tanh                  saturated  2.1779      |y| >= t, where tanh' < 5% of its max (1)
hardtanh              saturated  1           |y| >= 1 (zero gradient)
relu, relu6           dead       0           y <= 0 (zero gradient; relu6's upper clip ignored)
leaky_relu, elu,      dead       0           y <= 0 (the inactive side: small or vanishing
gelu, silu                                   gradient; same rule for the whole ReLU family)
none, unknown         bound      6           |y| >= 6 (far outside a normalised range)
====================  =========  ==========  ==============================================
"""

from __future__ import annotations

import difflib
import math

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

# Derivative threshold for the smooth saturating functions, as a fraction of the derivative's maximum.
SATURATION_FRACTION = 0.05


def _sigmoid_threshold(frac: float) -> float:
    # sigmoid' = s (1 - s) = frac / 4  ->  s = (1 + sqrt(1 - frac)) / 2, y = logit(s)
    s = (1.0 + math.sqrt(1.0 - frac)) / 2.0
    return math.log(s / (1.0 - s))


def _tanh_threshold(frac: float) -> float:
    # tanh' = 1 - tanh^2 = frac  ->  y = atanh(sqrt(1 - frac))
    return math.atanh(math.sqrt(1.0 - frac))


ZONES: dict[str, tuple[str, float]] = {
    "sigmoid": ("saturated", _sigmoid_threshold(SATURATION_FRACTION)),
    "tanh": ("saturated", _tanh_threshold(SATURATION_FRACTION)),
    "hardtanh": ("saturated", 1.0),
    "relu": ("dead", 0.0),
    "relu6": ("dead", 0.0),
    "leaky_relu": ("dead", 0.0),
    "elu": ("dead", 0.0),
    "gelu": ("dead", 0.0),
    "silu": ("dead", 0.0),
    "none": ("bound", 6.0),
    "unknown": ("bound", 6.0),
}
ACTIVATIONS = tuple(ZONES)


def zone_of(activation: str) -> tuple[str, float]:
    """(zone_rule, zone_threshold) for an activation name from ``ACTIVATIONS``."""
    return ZONES[activation]


def check_activation(name: str, layer: str) -> str:
    """The name itself if known, else ValueError listing close matches."""
    if name in ZONES:
        return name
    close = difflib.get_close_matches(str(name), ACTIVATIONS, n=3)
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    raise ValueError(
        f"activations[{layer!r}] = {name!r} is not a known activation.{hint} Known: {', '.join(ACTIVATIONS)}."
    )


def _functions() -> dict:
    T = torch.Tensor
    names = {
        "relu": [F.relu, F.relu_, torch.relu, torch.relu_, T.relu, T.relu_],
        "relu6": [F.relu6],
        "hardtanh": [F.hardtanh, F.hardtanh_],
        "leaky_relu": [F.leaky_relu, F.leaky_relu_],
        "elu": [F.elu, F.elu_],
        "gelu": [F.gelu],
        "silu": [F.silu],
        "sigmoid": [torch.sigmoid, torch.sigmoid_, F.sigmoid, T.sigmoid, T.sigmoid_, torch.special.expit],
        "tanh": [torch.tanh, torch.tanh_, F.tanh, T.tanh, T.tanh_],
        # Activations without a rule of their own.
        "unknown": [F.selu, F.celu, F.mish, F.hardswish, F.hardsigmoid, F.softplus, F.prelu, F.rrelu, F.glu],
    }
    return {f: name for name, fs in names.items() for f in fs}


_ACTIVATION_FUNCTIONS = _functions()
# Ops through which a BN output still reaches "its" activation unchanged in value.
_TRANSPARENT = {
    torch.Tensor.view,
    torch.Tensor.reshape,
    torch.reshape,
    torch.Tensor.flatten,
    torch.flatten,
    torch.Tensor.contiguous,
    torch.Tensor.squeeze,
    torch.Tensor.unsqueeze,
    torch.squeeze,
    torch.unsqueeze,
    torch.Tensor.permute,
    torch.permute,
    torch.Tensor.transpose,
    torch.transpose,
    torch.Tensor.clone,
    torch.Tensor.float,
    torch.Tensor.to,
    F.dropout,
    F.dropout1d,
    F.dropout2d,
    F.dropout3d,
    F.alpha_dropout,
    F.feature_alpha_dropout,
}
_BATCH_NORMS = {F.batch_norm, torch.batch_norm}
_ACTIVATION_MODULES = (
    torch.nn.ReLU,
    torch.nn.ReLU6,
    torch.nn.Hardtanh,
    torch.nn.LeakyReLU,
    torch.nn.ELU,
    torch.nn.GELU,
    torch.nn.SiLU,
    torch.nn.Sigmoid,
    torch.nn.Tanh,
    torch.nn.SELU,
    torch.nn.CELU,
    torch.nn.Mish,
    torch.nn.Hardswish,
    torch.nn.Hardsigmoid,
    torch.nn.Softplus,
    torch.nn.PReLU,
    torch.nn.RReLU,
)


def _classify(func, args, kwargs) -> str | None:
    name = _ACTIVATION_FUNCTIONS.get(func)
    if name == "hardtanh":
        lo = args[1] if len(args) > 1 else kwargs.get("min_val", -1.0)
        hi = args[2] if len(args) > 2 else kwargs.get("max_val", 1.0)
        if (lo, hi) == (0.0, 6.0):
            return "relu6"
    return name


def _first_tensor(args, kwargs):
    if args and isinstance(args[0], torch.Tensor):
        return args[0]
    return kwargs.get("input")


class _FollowMode(TorchFunctionMode):
    """Follows BN outputs to the first activation applied to them."""

    def __init__(self, observer):
        super().__init__()
        self.observer = observer

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        try:
            self.observer.see(func, args, kwargs, out)
        except Exception:  # observation must never break the user's forward
            pass
        return out


class ForwardObserver:
    """Watches the first forward pass of ``root``; then calls ``done(order, found)`` and removes itself.

    ``layers`` maps module -> layer index. ``done`` gets the layer indices in order of first call and
    {layer index: (activation, source)} for the layers whose output met an activation; ``calls`` then
    holds how often each layer ran in that forward.
    """

    def __init__(self, root, layers: dict, done, fused=()):
        self.layers, self.done = layers, done
        # Layers whose own forward may apply an activation (BN subclasses): inside them, the output
        # of the batch_norm call on the layer's input is followed; ``normalised`` gets those seen.
        self.fused, self.normalised = set(fused), set[int]()
        self.inside: list[tuple[int, object]] = []
        self.order: list[int] = []
        self.calls: dict[int, int] = {}  # layer index -> calls in the observed forward (a reused module: > 1)
        self.found: dict[int, tuple[str, str]] = {}
        self.tracked: dict[int, tuple[int, torch.Tensor]] = {}
        self.in_activation_module = 0
        self.mode = None
        self.temp: list = []
        self.handles = [root.register_forward_pre_hook(self._start), root.register_forward_hook(self._stop)]

    def _start(self, module, args):
        if self.mode is not None:  # a previous observed forward raised: start over
            self._exit()
        for m, idx in self.layers.items():
            if idx in self.fused:
                self.temp.append(m.register_forward_pre_hook(self._fused_enter(idx)))
            self.temp.append(m.register_forward_hook(self._layer_hook(idx)))
        for m in module.modules():
            if isinstance(m, _ACTIVATION_MODULES):
                self.temp.append(m.register_forward_pre_hook(self._act_enter))
                self.temp.append(m.register_forward_hook(self._act_leave))
        self.order, self.calls, self.found, self.tracked, self.inside = [], {}, {}, {}, []
        self.mode = _FollowMode(self)
        self.mode.__enter__()

    def _stop(self, module, args, output):
        if self.mode is None:
            return
        self._exit()
        for h in self.handles:
            h.remove()
        self.done(self.order, self.found)

    def _exit(self):
        self.mode.__exit__(None, None, None)
        self.mode = None
        for h in self.temp:
            h.remove()
        self.temp = []
        self.tracked = {}

    def detach(self):
        if self.mode is not None:
            self._exit()
        for h in self.handles:
            h.remove()

    def _layer_hook(self, idx):
        def hook(module, args, output):
            if self.inside and self.inside[-1][0] == idx:
                self.inside.pop()
            if idx not in self.order:
                self.order.append(idx)
            self.calls[idx] = self.calls.get(idx, 0) + 1
            if isinstance(output, torch.Tensor):
                self.tracked[id(output)] = (idx, output)

        return hook

    def _fused_enter(self, idx):
        def hook(module, args):
            self.inside.append((idx, args[0] if args else None))

        return hook

    def _act_enter(self, module, args):
        self.in_activation_module += 1

    def _act_leave(self, module, args, output):
        self.in_activation_module -= 1

    def see(self, func, args, kwargs, out):
        x = _first_tensor(args, kwargs)
        if self.inside and func in _BATCH_NORMS:
            idx, layer_input = self.inside[-1]
            if x is layer_input and isinstance(out, torch.Tensor):
                self.normalised.add(idx)
                self.tracked[id(out)] = (idx, out)
            return
        entry = self.tracked.get(id(x)) if isinstance(x, torch.Tensor) else None
        if entry is None or entry[1] is not x:
            return
        idx = entry[0]
        name = _classify(func, args, kwargs)
        if name is not None:
            if idx not in self.found:
                fused = self.inside and self.inside[-1][0] == idx
                self.found[idx] = (name, "fused" if fused else "module" if self.in_activation_module else "functional")
        elif func in _TRANSPARENT and isinstance(out, torch.Tensor):
            self.tracked[id(out)] = (idx, out)
