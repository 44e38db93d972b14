"""Activations written without a per-element select (a select on random signs mispredicts a branch
per element): the same bits as the select they replace, PyTorch's values at the extremes."""

from __future__ import annotations

import numpy as np
import pytest

import deepwise as dw
from deepwise.ops import dual

torch = pytest.importorskip("torch")
F = dw.nn.functional

SPECIAL = [np.nan, -0.0, 0.0, np.inf, -np.inf, 1e-30, -1e-30, 88.7, -88.7, 104.0, -104.0]


def _values(dtype, n=20001, scale=30.0):
    x = (np.random.default_rng(0).standard_normal(n) * scale).astype(dtype)
    x[:len(SPECIAL)] = SPECIAL
    return x


def _same_bits(a, b):
    return a.dtype == b.dtype and a.tobytes() == b.tobytes()


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_sigmoid_has_the_bits_of_the_overflow_free_select(dtype):
    x = _values(dtype)
    with np.errstate(over="ignore"):
        e = np.exp(-np.abs(x))
        select = np.where(x >= 0, 1 / (1 + e), e / (1 + e)).astype(dtype)
    assert _same_bits(dual.sigmoid(x), select)
    ref = torch.sigmoid(torch.tensor(x)).numpy()
    # torch flushes results below ~1e-38 to 0 where the select keeps them subnormal: atol
    np.testing.assert_allclose(dual.sigmoid(x), ref, rtol=2e-3 if dtype == np.float16 else 2e-6, atol=1e-30)


@pytest.mark.parametrize("alpha", [1.0, 0.3, 2.5])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_elu_forward_and_backward_have_the_bits_of_the_select(dtype, alpha):
    x = _values(dtype, scale=5.0)
    g = np.random.default_rng(1).standard_normal(x.shape).astype(dtype)
    with np.errstate(invalid="ignore", over="ignore"):
        y_select = np.where(x > 0, x, alpha * np.expm1(np.minimum(dtype(0), x))).astype(dtype)
        g_select = (g * np.where(x > 0, 1, y_select + alpha)).astype(dtype)
    t = dw.tensor(x, dtype=x.dtype, requires_grad=True)
    y = F.elu(t, alpha)
    y.backward(dw.tensor(g, dtype=x.dtype))
    assert _same_bits(y.detach().numpy(), y_select) and _same_bits(t.grad.numpy(), g_select)
    ref = torch.nn.functional.elu(torch.tensor(x), alpha).numpy()
    np.testing.assert_array_equal(np.signbit(y.detach().numpy()), np.signbit(ref))  # -0.0 stays -0.0 (it was +0.0)
    np.testing.assert_allclose(y.detach().numpy(), ref, rtol=1e-6)


@pytest.mark.parametrize("beta,threshold", [(1.0, 20.0), (2.0, 5.0), (0.5, 30.0)])
def test_softplus_at_the_extremes_matches_torch(beta, threshold):
    x = _values(np.float32)
    t = dw.tensor(x, requires_grad=True)
    y = F.softplus(t, beta, threshold)
    y.sum().backward()
    tx = torch.tensor(x, requires_grad=True)
    ry = torch.nn.functional.softplus(tx, beta, threshold)
    ry.sum().backward()
    np.testing.assert_allclose(y.detach().numpy(), ry.detach().numpy(), rtol=1e-6, atol=1e-30)
    np.testing.assert_allclose(t.grad.numpy(), tx.grad.numpy(), rtol=1e-6, atol=1e-30)
    assert np.isfinite(y.detach().numpy()[4]) and y.detach().numpy()[4] == 0.0  # softplus(-inf) = 0
