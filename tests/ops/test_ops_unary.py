"""Elementwise functions of one tensor and the activations, against PyTorch and finite differences."""

import numpy as np
import pytest

import deepwise as dw

torch = pytest.importorskip("torch")
F = torch.nn.functional

from parity.helpers import helper_test_op  # noqa: E402

SHAPES = [(3, 4), (), (2, 1, 3)]

# name -> (deepwise fn, torch fn, low, high)
UNARY = {
    "neg": (lambda x: x.neg(), lambda x: x.neg(), -2, 2),
    "abs": (lambda x: x.abs(), lambda x: x.abs(), -2, 2),
    "abs_builtin": (lambda x: abs(x), lambda x: abs(x), -2, 2),
    "exp": (lambda x: x.exp(), lambda x: x.exp(), -2, 2),
    "log": (lambda x: x.log(), lambda x: x.log(), 0.1, 3),
    "log1p": (lambda x: x.log1p(), lambda x: x.log1p(), -0.9, 3),
    "sqrt": (lambda x: x.sqrt(), lambda x: x.sqrt(), 0.1, 3),
    "rsqrt": (lambda x: x.rsqrt(), lambda x: x.rsqrt(), 0.1, 3),
    "sin": (lambda x: x.sin(), lambda x: x.sin(), -3, 3),
    "cos": (lambda x: x.cos(), lambda x: x.cos(), -3, 3),
    "tanh": (lambda x: x.tanh(), lambda x: x.tanh(), -3, 3),
    "sigmoid": (lambda x: x.sigmoid(), lambda x: x.sigmoid(), -5, 5),
    "square": (lambda x: x.square(), lambda x: x.square(), -2, 2),
    "relu": (lambda x: x.relu(), lambda x: x.relu(), -2, 2),
    "leaky_relu": (lambda x: dw.leaky_relu(x), lambda x: F.leaky_relu(x), -2, 2),
    "leaky_relu_0.2": (lambda x: x.leaky_relu(0.2), lambda x: F.leaky_relu(x, 0.2), -2, 2),
    "elu": (lambda x: dw.elu(x), lambda x: F.elu(x), -3, 2),
    "elu_0.5": (lambda x: dw.elu(x, alpha=0.5), lambda x: F.elu(x, alpha=0.5), -3, 2),
    "gelu": (lambda x: dw.gelu(x), lambda x: F.gelu(x), -4, 4),
    "gelu_tanh": (lambda x: dw.gelu(x, approximate="tanh"), lambda x: F.gelu(x, approximate="tanh"), -4, 4),
    "silu": (lambda x: x.silu(), lambda x: F.silu(x), -4, 4),
    "softplus": (lambda x: dw.softplus(x), lambda x: F.softplus(x), -4, 4),
    "softplus_beta2": (lambda x: dw.softplus(x, beta=2.0), lambda x: F.softplus(x, beta=2.0), -4, 4),
    "softplus_threshold": (lambda x: dw.softplus(x, beta=1.5, threshold=1.0),
                           lambda x: F.softplus(x, beta=1.5, threshold=1.0), -4, 4),
}


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("name", list(UNARY))
def test_unary(name, shape):
    dw_fn, th_fn, lo, hi = UNARY[name]
    out = helper_test_op([shape], dw_fn, th_fn, low=lo, high=hi)
    assert out[0].dtype == dw.float32


def test_functional_forms():
    for name in ["exp", "log", "sqrt", "sin", "cos", "tanh", "sigmoid", "abs", "relu", "rsqrt", "log1p"]:
        helper_test_op([(5,)], getattr(dw, name), getattr(torch, name), low=0.2, high=2)


@pytest.mark.parametrize("name", ["sigmoid", "tanh", "softplus", "silu", "gelu", "elu"])
def test_activations_finite_for_large_inputs(name):
    x = dw.tensor([-1e4, -100.0, -30.0, 0.0, 30.0, 100.0, 1e4], requires_grad=True)
    y = getattr(dw, name)(x)
    y.sum().backward()
    assert np.isfinite(y.detach().numpy()).all() and np.isfinite(x.grad.numpy()).all()
    want = getattr(F, name)(torch.tensor(x.detach().numpy())) if hasattr(F, name) else None
    if want is None:
        want = getattr(torch, name)(torch.tensor(x.detach().numpy()))
    np.testing.assert_allclose(y.detach().numpy(), want.numpy(), rtol=1e-5, atol=1e-6)


def test_int_inputs_become_float32():
    i = dw.tensor([1, 2, 3])
    for name in ["exp", "log", "sqrt", "sin", "cos", "tanh", "sigmoid"]:
        out = getattr(dw, name)(i)
        assert out.dtype == dw.float32, name
        np.testing.assert_allclose(out.numpy(), getattr(torch, name)(torch.tensor([1.0, 2.0, 3.0])).numpy(),
                                   rtol=1e-6)


def test_gelu_rejects_unknown_approximation():
    with pytest.raises(ValueError, match="gelu"):
        dw.gelu(dw.ones(2), approximate="fast")


def test_non_differentiable_unaries_match_torch():
    x = np.array([-2.5, -1.5, -0.4, 0.0, 0.6, 1.5, 2.5], dtype=np.float32)
    for name in ["sign", "floor", "ceil", "round"]:
        np.testing.assert_array_equal(getattr(dw, name)(dw.tensor(x)).numpy(),
                                      getattr(torch, name)(torch.tensor(x)).numpy(), err_msg=name)


@pytest.mark.parametrize("slope", [0.0, 0.01, 0.2, 1.0, 1.5, -0.1])
def test_leaky_relu_at_the_edges_matches_torch_bit_for_bit(slope):
    # slopes in (0, 1] take the max(x, slope * x) path, the others a select: both must give PyTorch's
    # values (signed zeros, inf, NaN) and gradients exactly, on a 0-d input too
    torch = pytest.importorskip("torch")
    import deepwise.nn.functional as F

    x = np.array([-2.0, -0.0, 0.0, 1.5, np.nan, np.inf, -np.inf, 3.0], np.float32)
    g = np.arange(1, 9, dtype=np.float32)
    for values, grad in ((x, g), (x[3], g[3])):
        a, t = dw.tensor(values, requires_grad=True), torch.tensor(values, requires_grad=True)
        with np.errstate(invalid="ignore"):
            ya = F.leaky_relu(a, slope)
            ya.backward(dw.tensor(grad))
        yt = torch.nn.functional.leaky_relu(t, slope)
        yt.backward(torch.tensor(grad))
        want, got = yt.detach().numpy(), ya.detach().numpy()
        assert ya.dtype == dw.float32 and a.grad.dtype == dw.float32
        assert np.array_equal(got, want, equal_nan=True) and np.array_equal(np.signbit(got), np.signbit(want))
        assert np.array_equal(a.grad.numpy(), t.grad.numpy())
