"""The full-tensor truth for the sampled statistics: own forward hooks and numpy, nothing from bnviz.

``Truth(model)`` keeps, for the first forward after ``reset()``, the whole input and output of every
BatchNorm module (and its eps, weight, bias) and the whole input of every call of every activation
module, in float64. The functions below compute from them what a recording estimates, over every
value; the statistical bounds compare a recording with it.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

ACTIVATION_MODULES = (
    nn.ReLU,
    nn.ReLU6,
    nn.LeakyReLU,
    nn.ELU,
    nn.GELU,
    nn.SiLU,
    nn.Sigmoid,
    nn.Tanh,
    nn.Hardtanh,
    nn.Hardswish,
)


def _np(t):
    return t.detach().double().cpu().numpy().copy()


class Truth:
    def __init__(self, model: nn.Module):
        self.bn: dict[str, dict] = {}
        self.act: dict[str, list[np.ndarray]] = {}
        self.handles = []
        for path, m in model.named_modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                self.handles.append(m.register_forward_hook(self._bn_hook(path)))
            elif isinstance(m, ACTIVATION_MODULES):
                self.handles.append(m.register_forward_pre_hook(self._act_hook(path)))

    def _bn_hook(self, path):
        def hook(m, args, out):
            if path not in self.bn:
                self.bn[path] = {
                    "x": _np(args[0]),
                    "y": _np(out),
                    "eps": m.eps,
                    "training": m.training,
                    "running_mean": None if m.running_mean is None else _np(m.running_mean),
                    "running_var": None if m.running_var is None else _np(m.running_var),
                }

        return hook

    def _act_hook(self, path):
        def hook(m, args):
            self.act.setdefault(path, []).append(_np(args[0]))

        return hook

    def reset(self):
        self.bn, self.act = {}, {}

    def remove(self):
        for h in self.handles:
            h.remove()


def per_channel(a: np.ndarray) -> np.ndarray:
    """(N, C, *spatial) -> (C, N * spatial)."""
    return np.moveaxis(a, 1, 0).reshape(a.shape[1], -1)


def xhat(d: dict) -> np.ndarray:
    """x normalised with the full batch statistics (training) or the running ones (eval)."""
    x = per_channel(d["x"])
    if d["training"] or d["running_mean"] is None:
        mean, var = x.mean(1), x.var(1)
    else:
        mean, var = d["running_mean"], d["running_var"]
    return (x - mean[:, None]) / np.sqrt(var[:, None] + d["eps"])


def zone_fraction(values: np.ndarray, rule: str, threshold: float) -> np.ndarray:
    """Per-channel share of (C, M) values in the zone: |v| >= t (saturated, bound) or v <= t (dead)."""
    inside = np.abs(values) >= threshold if rule in ("saturated", "bound") else values <= threshold
    return inside.mean(1)


def binomial_se(fraction: np.ndarray, samples: int, population: int) -> np.ndarray:
    """Standard error of a share estimated from ``samples`` of ``population`` values drawn at random
    without replacement (finite population correction)."""
    fpc = max(0.0, (population - samples) / max(population - 1, 1))
    return np.sqrt(fraction * (1 - fraction) / samples * fpc)


def rank_error(values: np.ndarray, estimates: np.ndarray, qs) -> np.ndarray:
    """Share of all ``values`` below each estimated quantile, minus its level q (0: unbiased)."""
    flat = np.sort(values.reshape(-1))
    below = np.searchsorted(flat, estimates, side="left") / flat.size
    at = np.searchsorted(flat, estimates, side="right") / flat.size
    # ties: any rank between 'below' and 'at' is right
    q = np.asarray(qs)
    return np.where(q < below, below - q, np.where(q > at, at - q, 0.0))


def rank_se(qs, samples: int) -> np.ndarray:
    q = np.asarray(qs)
    return np.sqrt(q * (1 - q) / samples)


def histogram_shares(values: np.ndarray, lo: float, hi: float, bins: int) -> np.ndarray:
    """Shares of all values in ``bins`` equal bins on [lo, hi), then below, above."""
    v = values.reshape(-1)
    inside = np.histogram(v[(v >= lo) & (v < hi)], bins=bins, range=(lo, hi))[0]
    return np.concatenate([inside, [(v < lo).sum(), (v >= hi).sum()]]) / v.size


def mean_abs_ratio(errors: np.ndarray, se: np.ndarray) -> float:
    """mean |error| / mean standard error (about sqrt(2 / pi) = 0.8 for an unbiased estimate)."""
    return float(np.mean(np.abs(errors)) / max(np.mean(se), 1e-12))


SQRT_2_OVER_PI = math.sqrt(2 / math.pi)


def image_batch(n: int, channels: int, size: int, generator: torch.Generator) -> torch.Tensor:
    """Inputs with spatial structure: a bright centre, a dark border, and noise (like photos)."""
    r = torch.linspace(-1, 1, size)
    radius = (r.view(-1, 1) ** 2 + r.view(1, -1) ** 2).sqrt()
    centre = (1.5 - 2.5 * radius).view(1, 1, size, size)
    noise = torch.randn(n, channels, size, size, generator=generator)
    return centre + 0.7 * noise
