"""BatchNorm from scratch: the test oracle and the ``kernel="reference"`` option.

Training-mode BN over the channel axis 1 of ``x`` (shape (N, C, *spatial)); with the reduction
set R (batch and spatial positions, n = |R| values per channel):

    mu      = (1/n) sum_R x                       batch mean
    var     = (1/n) sum_R (x - mu)^2              biased batch variance (used to normalise)
    invstd  = 1 / sqrt(var + eps)
    xhat    = (x - mu) * invstd
    y       = gamma * xhat + beta
    running_mean <- (1 - m) running_mean + m mu
    running_var  <- (1 - m) running_var  + m var * n / (n - 1)     (unbiased, as torch)

Backward (seed 003: the three paths from x to xhat, directly and through mu and var), with
g = dL/dy and dxhat = g * gamma:

    dL/dbeta  = sum_R g
    dL/dgamma = sum_R g * xhat
    dL/dx     = invstd / n * (n dxhat - sum_R dxhat - xhat * sum_R (dxhat * xhat))

The backward is written in differentiable torch ops on the saved inputs, so double backward
(gradgradcheck) works too. It agrees with torch's kernel to float rounding, not bit for bit.
"""

from __future__ import annotations

import torch


def _shape(t, x):
    return t.reshape((1, -1) + (1,) * (x.dim() - 2))


def _dims(x):
    return [0] + list(range(2, x.dim()))


def _stats(x, eps):
    dims = _dims(x)
    mu = x.mean(dims)
    var = ((x - _shape(mu, x)) ** 2).mean(dims)
    return mu, var, torch.rsqrt(var + eps)


class BatchNormFunction(torch.autograd.Function):
    """y, mean, invstd = BatchNormFunction.apply(x, weight, bias, eps); weight/bias may be None."""

    @staticmethod
    def forward(ctx, x, weight, bias, eps):
        mu, _, invstd = _stats(x, eps)
        xhat = (x - _shape(mu, x)) * _shape(invstd, x)
        y = xhat
        if weight is not None:
            y = y * _shape(weight, x)
        if bias is not None:
            y = y + _shape(bias, x)
        ctx.eps = eps
        ctx.has_weight, ctx.has_bias = weight is not None, bias is not None
        ctx.save_for_backward(x, weight)
        ctx.mark_non_differentiable(mu, invstd)
        return y, mu, invstd

    @staticmethod
    def backward(ctx, g, _gmu, _ginvstd):
        x, weight = ctx.saved_tensors
        dims = _dims(x)
        n = x.numel() // x.shape[1]
        mu, _, invstd = _stats(x, ctx.eps)
        xhat = (x - _shape(mu, x)) * _shape(invstd, x)
        dxhat = g * _shape(weight, x) if ctx.has_weight else g
        dx = _shape(invstd / n, x) * (
            n * dxhat - _shape(dxhat.sum(dims), x) - xhat * _shape((dxhat * xhat).sum(dims), x)
        )
        dgamma = (g * xhat).sum(dims) if ctx.has_weight else None
        dbeta = g.sum(dims) if ctx.has_bias else None
        return dx, dgamma, dbeta, None


def batch_norm_reference(x, running_mean, running_var, weight, bias, momentum, eps):
    """Training-mode BN with the reference maths; updates the running buffers when given.

    Half-precision input is computed in float32 and the output cast back, as torch's CPU kernel does.
    Returns (y, batch mean, batch invstd).
    """
    acc = torch.float32 if x.dtype in (torch.float16, torch.bfloat16) else x.dtype
    w = weight.to(acc) if weight is not None else None
    b = bias.to(acc) if bias is not None else None
    y, mu, invstd = BatchNormFunction.apply(x.to(acc), w, b, eps)
    if running_mean is not None and running_var is not None:
        with torch.no_grad():
            var = x.detach().to(acc).var(_dims(x), correction=1)
            running_mean.mul_(1 - momentum).add_(mu.to(running_mean.dtype), alpha=momentum)
            running_var.mul_(1 - momentum).add_(var.to(running_var.dtype), alpha=momentum)
    return y.to(x.dtype), mu, invstd
