"""Where each activation saturates or dies, from its derivative.

The zone of an activation f is where its gradient has (almost) vanished: |f'(y)| below
``DERIVATIVE_FRACTION`` (5 %) of its maximum, on the side(s) where it stays below it from there on.
y is what the activation receives (the BN output, or the BN output plus what was added to it).

==========================  =========  ================  ==============================================
activation                  rule       threshold         y is in the zone when
==========================  =========  ================  ==============================================
sigmoid                     saturated  4.3567            |y| >= t: sigmoid' < 5 % of its max (1/4)
tanh                        saturated  2.1779            |y| >= t: tanh' < 5 % of its max (1)
hardtanh (-a, a)            saturated  a (1 by default)  |y| >= a (zero gradient)
relu, relu6                 dead       0                 y <= 0 (zero gradient; relu6's upper clip ignored)
leaky_relu (slope a)        dead       0                 y <= 0 when a < 5 % (default 0.01); else no zone
elu (alpha a)               dead       log(0.05 / a)     y <= t: a e^y < 5 % (a = 1: -2.9957)
gelu                        dead       -2.2786           y <= t: |gelu'| < 5 % of its max (1.1289)
silu                        dead       -3.9299           y <= t: |silu'| < 5 % of its max (1.0998)
hardswish                   dead       -3                y <= -3 (zero gradient)
none, unknown               bound      6                 |y| >= 6 (far outside a normalised range)
==========================  =========  ================  ==============================================

GELU and SiLU are not dead at y <= 0: their gradient there reaches -0.13 / -0.10. "No zone" (a
leaky slope of 5 % or more) uses the bound rule, as for no activation.
"""

from __future__ import annotations

import difflib
import math

DERIVATIVE_FRACTION = 0.05
NO_ZONE = ("bound", 6.0)


def _sigmoid_threshold(frac: float) -> float:
    # sigmoid' = s (1 - s) = frac / 4  ->  s = (1 + sqrt(1 - frac)) / 2, y = logit(s)
    s = (1.0 + math.sqrt(1.0 - frac)) / 2.0
    return math.log(s / (1.0 - s))


def _tanh_threshold(frac: float) -> float:
    # tanh' = 1 - tanh^2 = frac  ->  y = atanh(sqrt(1 - frac))
    return math.atanh(math.sqrt(1.0 - frac))


def _gelu_grad(y: float) -> float:
    cdf = 0.5 * (1.0 + math.erf(y / math.sqrt(2.0)))
    return cdf + y * math.exp(-0.5 * y * y) / math.sqrt(2.0 * math.pi)


def _silu_grad(y: float) -> float:
    s = 1.0 / (1.0 + math.exp(-y))
    return s * (1.0 + y * (1.0 - s))


def _left_threshold(grad, frac: float) -> float:
    """The largest t < 0 with |grad(y)| < frac x max grad for every y <= t: grad's tail decays
    monotonically left of its negative extreme (gelu: -1.41, silu: -2.40), where the search starts."""
    peak = max(grad(i / 100) for i in range(0, 600))
    limit = frac * peak
    lo, hi = -40.0, min((grad(-i / 100), -i / 100) for i in range(1000))[1]
    for _ in range(200):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if abs(grad(mid)) < limit else (lo, mid)
    return lo


def elu_rule(alpha: float) -> tuple[str, float]:
    """ELU's zone: alpha e^y < 5 % of its maximum slope, max(1, alpha)."""
    if alpha <= 0:
        return NO_ZONE
    return "dead", math.log(DERIVATIVE_FRACTION * max(1.0, alpha) / alpha)


def leaky_relu_rule(slope: float) -> tuple[str, float]:
    return ("dead", 0.0) if abs(slope) < DERIVATIVE_FRACTION else NO_ZONE


ZONES: dict[str, tuple[str, float]] = {
    "sigmoid": ("saturated", _sigmoid_threshold(DERIVATIVE_FRACTION)),
    "tanh": ("saturated", _tanh_threshold(DERIVATIVE_FRACTION)),
    "hardtanh": ("saturated", 1.0),
    "relu": ("dead", 0.0),
    "relu6": ("dead", 0.0),
    "leaky_relu": leaky_relu_rule(0.01),
    "elu": elu_rule(1.0),
    "gelu": ("dead", _left_threshold(_gelu_grad, DERIVATIVE_FRACTION)),
    "silu": ("dead", _left_threshold(_silu_grad, DERIVATIVE_FRACTION)),
    "hardswish": ("dead", -3.0),
    "none": NO_ZONE,
    "unknown": NO_ZONE,
}
ACTIVATIONS = tuple(ZONES)
RULE_TEXT = (
    f"zone where the activation's derivative is below {DERIVATIVE_FRACTION:.0%} of its maximum "
    "(hooks/zone_rules.py); none/unknown: |y| >= 6"
)


def zone_of(activation: str) -> tuple[str, float]:
    """(zone_rule, zone_threshold) for an activation name from ``ACTIVATIONS`` (default parameters)."""
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
