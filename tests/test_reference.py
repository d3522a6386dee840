"""The from-scratch BN (reference.py): its explicit backward is right, and it matches torch."""

import pytest
import torch
import torch.nn.functional as F

from bnviz.hooks.reference import BatchNormFunction, batch_norm_reference


def inputs(shape, affine=True, bias=True, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = (torch.randn(shape, generator=g, dtype=torch.float64) * 1.5 + 0.3).requires_grad_()
    c = shape[1]
    w = (torch.rand(c, generator=g, dtype=torch.float64) + 0.5).requires_grad_() if affine else None
    b = torch.randn(c, generator=g, dtype=torch.float64).requires_grad_() if affine and bias else None
    return x, w, b


def apply(x, w, b):
    return BatchNormFunction.apply(x, w, b, 1e-5)[0]


@pytest.mark.parametrize("shape", [(6, 3), (4, 3, 5), (3, 2, 3, 3)])
@pytest.mark.parametrize("affine,bias", [(True, True), (True, False), (False, False)])
def test_gradcheck_and_gradgradcheck(shape, affine, bias):
    x, w, b = inputs(shape, affine, bias)
    args = tuple(t for t in (x, w, b))
    assert torch.autograd.gradcheck(apply, args)
    assert torch.autograd.gradgradcheck(apply, args)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_matches_torch(dtype):
    x, w, b = (t.detach().to(dtype).requires_grad_() for t in inputs((8, 4, 5, 5)))
    rm, rv = torch.zeros(4, dtype=dtype), torch.ones(4, dtype=dtype)
    rm2, rv2 = rm.clone(), rv.clone()
    y, mean, invstd = batch_norm_reference(x, rm, rv, w, b, 0.1, 1e-5)
    grad = torch.randn_like(y)
    gx, gw, gb = torch.autograd.grad(y, (x, w, b), grad)
    y2 = F.batch_norm(x, rm2, rv2, w, b, True, 0.1, 1e-5)
    gx2, gw2, gb2 = torch.autograd.grad(y2, (x, w, b), grad)
    tol = dict(rtol=1e-5, atol=1e-5) if dtype == torch.float32 else dict(rtol=1e-10, atol=1e-10)
    for a, e in ((y, y2), (gx, gx2), (gw, gw2), (gb, gb2), (rm, rm2), (rv, rv2)):
        torch.testing.assert_close(a, e, **tol)
    torch.testing.assert_close(mean, x.mean((0, 2, 3)), **tol)
    torch.testing.assert_close(invstd, torch.rsqrt(x.var((0, 2, 3), correction=0) + 1e-5), **tol)


def test_half_input_computed_in_float():
    x = torch.randn(8, 3, 4, 4).to(torch.bfloat16)
    y, mean, _ = batch_norm_reference(x, None, None, None, None, 0.1, 1e-5)
    assert y.dtype == torch.bfloat16 and mean.dtype == torch.float32
    torch.testing.assert_close(y, F.batch_norm(x, None, None, None, None, True), rtol=2e-2, atol=2e-2)
