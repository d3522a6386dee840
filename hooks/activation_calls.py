"""The torch calls the activation detection (``activations.py``) recognises: activations with
their parameters, shape-only ops, element-wise ops that change values, and the BN kernels."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .zone_rules import ZONES, elu_rule, leaky_relu_rule


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
        "hardswish": [F.hardswish],
        "sigmoid": [torch.sigmoid, torch.sigmoid_, F.sigmoid, T.sigmoid, T.sigmoid_, torch.special.expit],
        "tanh": [torch.tanh, torch.tanh_, F.tanh, T.tanh, T.tanh_],
        # Activations without a rule of their own.
        "unknown": [F.selu, F.celu, F.mish, F.hardsigmoid, F.softplus, F.prelu, F.rrelu, F.glu],
    }
    return {f: name for name, fs in names.items() for f in fs}


ACTIVATION_FUNCTIONS = _functions()
# Ops through which y reaches an activation unchanged in value (by name: torch.x and Tensor.x alike).
SHAPE_ONLY = {
    "view",
    "view_as",
    "reshape",
    "reshape_as",
    "flatten",
    "contiguous",
    "squeeze",
    "unsqueeze",
    "permute",
    "transpose",
    "clone",
    "float",
    "to",
    "detach",
}
# Element-wise ops that change y's values on its way to an activation, by the name the trail records.
ELEMENTWISE: dict[object, str] = {
    **dict.fromkeys(("add", "add_", "__add__", "__iadd__", "__radd__"), "add"),
    **dict.fromkeys(("sub", "sub_", "__sub__", "__isub__", "__rsub__"), "sub"),
    **dict.fromkeys(("mul", "mul_", "__mul__", "__imul__", "__rmul__"), "mul"),
    **dict.fromkeys(("div", "div_", "true_divide", "__truediv__", "__itruediv__"), "div"),
    **dict.fromkeys(
        (F.dropout, F.dropout1d, F.dropout2d, F.dropout3d, F.alpha_dropout, F.feature_alpha_dropout), "dropout"
    ),
}
ACTIVATION_MODULES = (
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


# What a BN layer's forward ends in (batchnorm.py): the output of a late-observed layer's first run.
BN_KERNELS = {F.batch_norm, torch.batch_norm, torch._batch_norm_impl_index}


def _arg(args, kwargs, pos, name, default):
    return args[pos] if len(args) > pos else kwargs.get(name, default)


def classify(func, args, kwargs) -> tuple[str, tuple[str, float]] | None:
    """(activation name, zone rule) of an activation call, its parameters included; None otherwise."""
    name = ACTIVATION_FUNCTIONS.get(func)
    if name == "hardtanh":
        lo, hi = float(_arg(args, kwargs, 1, "min_val", -1.0)), float(_arg(args, kwargs, 2, "max_val", 1.0))
        if (lo, hi) == (0.0, 6.0):
            return "relu6", ZONES["relu6"]
        return ("hardtanh", ("saturated", hi)) if lo == -hi else ("unknown", ZONES["unknown"])
    if name == "leaky_relu":
        return name, leaky_relu_rule(float(_arg(args, kwargs, 1, "negative_slope", 0.01)))
    if name == "elu":
        return name, elu_rule(float(_arg(args, kwargs, 1, "alpha", 1.0)))
    if name == "gelu" and _arg(args, kwargs, 1, "approximate", "none") != "none":
        return name, ZONES["gelu"]  # the tanh approximation: the same zone to 1e-3
    return (name, ZONES[name]) if name is not None else None


def first_tensor(args, kwargs):
    if args and isinstance(args[0], torch.Tensor):
        return args[0]
    return kwargs.get("input")
