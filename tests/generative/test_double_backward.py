"""Double backward for the ops a gradient penalty goes through.

For each op f, ``autograd.grad(sum(f(inputs) * v), x, create_graph=True)`` is a function of the
inputs; ``gradcheck`` (float64 finite differences) checks *its* gradients — i.e. the second
derivatives that backpropagating a gradient penalty needs. Inputs are drawn away from the kinks of
relu / leaky_relu so finite differences stay on one side.
"""

from __future__ import annotations

import numpy as np
import pytest

import deepwise as dw
from deepwise.autograd import enable_grad, grad, gradcheck
from deepwise.ops.activation import leaky_relu, relu
from deepwise.ops.conv import conv2d, conv_transpose2d
from deepwise.ops.linalg import linear
from deepwise.ops.unary import sigmoid, sqrt, tanh


def _t(a, requires_grad=True):
    return dw.tensor(np.asarray(a, dtype=np.float64), dtype=dw.float64, requires_grad=requires_grad)


def _away_from_zero(rng, shape, margin=0.2):
    a = rng.standard_normal(shape)
    return np.where(np.abs(a) < margin, np.sign(a + 1e-12) * (margin + np.abs(a)), a)


def first_derivative(fn, n_wrt, seed=0):
    """inputs -> d sum(fn(*inputs) * v) / d inputs[:n_wrt], built with create_graph=True."""

    def g(*inputs):
        with enable_grad():
            out = fn(*inputs)
            v = _t(np.random.default_rng(seed).standard_normal(out.shape), requires_grad=False)
            return grad((out * v).sum(), list(inputs[:n_wrt]), create_graph=True, allow_unused=True)

    return g


def _check(fn, inputs, n_wrt=1):
    derivs = first_derivative(fn, n_wrt)(*inputs)
    assert all(d is None or d.requires_grad for d in derivs)
    assert gradcheck(first_derivative(fn, n_wrt), inputs, atol=1e-5, rtol=1e-4)


def test_first_derivative_helper_catches_a_wrong_second_derivative():
    """The check must be able to fail. BadSquare saves an intermediate (2x) that depends on its
    input: under create_graph it comes back as a constant, so the first derivative is right and the
    second is lost -- the mistake the rule in autograd/function.py warns about."""
    from deepwise.autograd.function import Function

    class BadSquare(Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(2 * x)
            return x * x

        @staticmethod
        def backward(ctx, g):
            (two_x,) = ctx.saved
            return g * two_x

    x = _t(np.random.default_rng(0).standard_normal(5))
    assert gradcheck(lambda x: BadSquare.apply(x), (x,))  # first order is right
    with pytest.raises(RuntimeError, match="does not require grad"):  # the gradient is cut from x
        gradcheck(first_derivative(lambda x: BadSquare.apply(x), 1), (x,))
    with pytest.raises(AssertionError):  # gradgradcheck also perturbs v: the x-path is missing
        dw.autograd.gradgradcheck(lambda x: BadSquare.apply(x), (x,))


def test_linear():
    rng = np.random.default_rng(1)
    x, w, b = _t(rng.standard_normal((4, 5))), _t(rng.standard_normal((3, 5))), _t(rng.standard_normal(3))
    _check(lambda x, w, b: tanh(linear(x, w, b)), (x, w, b), n_wrt=3)


def test_linear_leaky_relu_weight_path():
    """The derivative w.r.t. x of leaky_relu(x W^T + b) depends on W: its gradient w.r.t. W is what
    a penalty on the discriminator's input gradient trains."""
    rng = np.random.default_rng(2)
    x, w, b = _t(rng.standard_normal((4, 5))), _t(rng.standard_normal((3, 5))), _t(rng.standard_normal(3))
    pre = x.detach().numpy() @ w.detach().numpy().T + b.detach().numpy()
    assert np.abs(pre).min() > 1e-3  # no kink within the finite-difference step
    _check(lambda x, w, b: leaky_relu(linear(x, w, b), 0.2), (x, w, b), n_wrt=1)


@pytest.mark.parametrize("transposed", [False, True])
def test_conv(transposed):
    rng = np.random.default_rng(3)
    if transposed:
        x, w, b = _t(rng.standard_normal((2, 3, 3, 3))), _t(rng.standard_normal((3, 2, 4, 4)) * 0.3), \
            _t(rng.standard_normal(2))
        fn = lambda x, w, b: tanh(conv_transpose2d(x, w, b, stride=2, padding=1))  # noqa: E731
    else:
        x, w, b = _t(rng.standard_normal((2, 2, 6, 6))), _t(rng.standard_normal((3, 2, 4, 4)) * 0.3), \
            _t(rng.standard_normal(3))
        fn = lambda x, w, b: tanh(conv2d(x, w, b, stride=2, padding=1))  # noqa: E731
    _check(fn, (x, w, b), n_wrt=3)


@pytest.mark.parametrize("name", ["relu", "leaky_relu", "sigmoid", "tanh", "sqrt", "pow", "mul", "sum", "mean"])
def test_elementwise_and_reductions(name):
    rng = np.random.default_rng(4)
    x = _t(_away_from_zero(rng, (3, 4)))
    y = _t(rng.standard_normal((3, 4)))
    pos = _t(np.abs(rng.standard_normal((3, 4))) + 0.5)
    cases = {
        # relu / leaky_relu are piecewise linear: the interesting second derivative is through the
        # product with y (d/dy of y * relu'(x)), the pure second derivative is 0 (checked too)
        "relu": (lambda x, y: relu(x) * y, (x, y), 2),
        "leaky_relu": (lambda x, y: leaky_relu(x, 0.1) * y * y, (x, y), 2),
        "sigmoid": (lambda x: sigmoid(x), (x,), 1),
        "tanh": (lambda x: tanh(x), (x,), 1),
        "sqrt": (lambda p: sqrt(p), (pos,), 1),
        "pow": (lambda p, y: p ** 3 + p ** 0.5 * y, (pos, y), 2),
        "mul": (lambda x, y: x * y * x, (x, y), 2),
        "sum": (lambda x: (x * x).sum(dim=1) ** 2, (x,), 1),
        "mean": (lambda x: (x * x).mean(dim=0) ** 2 + (x * x * x).mean(), (x,), 1),
    }
    fn, inputs, n = cases[name]
    _check(fn, inputs, n_wrt=n)


def test_relu_second_derivative_is_zero_and_first_is_the_mask():
    x = _t([-1.5, -0.3, 0.4, 2.0])
    (g,) = grad(relu(x).sum() * 3.0, x, create_graph=True)
    np.testing.assert_array_equal(g.detach().numpy(), [0.0, 0.0, 3.0, 3.0])
    if g.requires_grad:  # a constant mask times the incoming gradient: nothing to differentiate
        (gg,) = grad((g * g).sum(), x, allow_unused=True)
        assert gg is None or np.array_equal(gg.numpy(), np.zeros(4))


def test_penalty_through_a_discriminator_gradchecks():
    """An R1-style penalty sum ||d D(x)/dx||^2 through conv -> leaky_relu -> conv -> flatten -> linear:
    written with the ops and the weights as inputs it agrees with finite differences, and the
    Discriminator module computes the same penalty and the same weight gradients."""
    from deepwise.models.generative import Discriminator
    from deepwise.ops.shape import reshape

    dw.manual_seed(0)
    disc = Discriminator(1, 4, base_channels=2, n_downsample=2, init_std=0.5).double()
    params = list(disc.parameters())
    assert len(params) == 6
    x = _t(np.random.default_rng(5).random((2, 1, 4, 4)), requires_grad=False)

    def penalty_of_weights(*ws):
        with enable_grad():
            xi = x.detach()
            xi.requires_grad_(True)
            h = leaky_relu(conv2d(xi, ws[0], ws[1], stride=2, padding=1), 0.2)
            h = leaky_relu(conv2d(h, ws[2], ws[3], stride=2, padding=1), 0.2)
            out = linear(reshape(h, (h.shape[0], -1)), ws[4], ws[5])
            (g,) = grad(out.sum(), xi, create_graph=True)
            return (g * g).sum()

    weights = [_t(p.array.copy()) for p in params]
    assert gradcheck(penalty_of_weights, weights, atol=1e-5, rtol=1e-4)

    xi = x.detach()
    xi.requires_grad_(True)
    (g,) = grad(disc(xi).sum(), xi, create_graph=True)
    module_penalty = (g * g).sum()
    module_penalty.backward()
    reference = penalty_of_weights(*weights)
    np.testing.assert_allclose(module_penalty.item(), reference.item(), rtol=1e-12)
    # the penalty depends on the weights (not on the biases: leaky_relu's slopes are piecewise constant)
    expected = grad(reference, weights, allow_unused=True)
    for i, (p, e) in enumerate(zip(params, expected)):
        if i % 2 == 0:
            assert e is not None and np.abs(e.numpy()).sum() > 0
        if e is None:
            assert p.grad is None or not np.abs(p.grad.numpy()).any()
        else:
            np.testing.assert_allclose(p.grad.numpy(), e.numpy(), rtol=1e-10, atol=1e-12)
