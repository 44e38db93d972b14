"""autograd.grad (incl. create_graph), retain_grad, hooks and custom Functions."""


import numpy as np
import pytest

import deepwise as dw


def _np(t):
    return np.asarray(t.detach().numpy())


# ---------------------------------------------------------------------------- autograd.grad
def test_grad_returns_a_tuple_and_does_not_touch_dot_grad():
    x = dw.tensor([1.0, 2.0], requires_grad=True)
    w = dw.tensor([3.0, 4.0], requires_grad=True)
    y = (x * w).sum()
    gx, gw = dw.autograd.grad(y, [x, w], retain_graph=True)
    np.testing.assert_array_equal(gx.numpy(), [3.0, 4.0])
    np.testing.assert_array_equal(gw.numpy(), [1.0, 2.0])
    (gx_only,) = dw.autograd.grad(y, x)
    np.testing.assert_array_equal(gx_only.numpy(), [3.0, 4.0])
    assert x.grad is None and w.grad is None


def test_grad_allow_unused():
    x = dw.ones(2, requires_grad=True)
    unused = dw.ones(2, requires_grad=True)
    y = (x * 2).sum()
    with pytest.raises(RuntimeError, match="allow_unused"):
        dw.autograd.grad(y, [x, unused], retain_graph=True)
    gx, gu = dw.autograd.grad(y, [x, unused], allow_unused=True)
    assert gu is None
    np.testing.assert_array_equal(gx.numpy(), [2.0, 2.0])


def test_grad_with_respect_to_non_leaf():
    x = dw.tensor([1.0, -2.0, 3.0], requires_grad=True)
    h = x * 2
    y = (h * h).sum()
    gh, gx = dw.autograd.grad(y, [h, x])
    np.testing.assert_allclose(gh.numpy(), 2 * _np(h))
    np.testing.assert_allclose(gx.numpy(), 8 * _np(x))
    assert x.grad is None


def test_grad_with_grad_outputs():
    x = dw.tensor([1.0, 2.0], requires_grad=True)
    (g,) = dw.autograd.grad(x * x, x, grad_outputs=dw.tensor([1.0, 0.5]))
    np.testing.assert_allclose(g.numpy(), [2.0, 2.0])


def test_second_derivative_of_cube():
    x = dw.tensor([-1.5, 0.5, 2.0], requires_grad=True)
    (g,) = dw.autograd.grad((x ** 3).sum(), x, create_graph=True)
    np.testing.assert_allclose(_np(g), 3 * _np(x) ** 2, rtol=1e-6)
    assert g.requires_grad
    (gg,) = dw.autograd.grad(g.sum(), x)
    np.testing.assert_allclose(gg.numpy(), 6 * _np(x), rtol=1e-6)
    # the same through backward(create_graph=True)
    x.grad = None
    (x * x * x).sum().backward(create_graph=True)
    g1 = x.grad
    x.grad = None
    g1.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), 6 * _np(x), rtol=1e-6)


def test_gradient_penalty_matches_torch(torch):
    rng = np.random.default_rng(0)
    xv, wv = rng.standard_normal((5, 4)).astype(np.float32), rng.standard_normal((4, 3)).astype(np.float32)

    x, w = dw.tensor(xv, requires_grad=True), dw.tensor(wv, requires_grad=True)
    (gx,) = dw.autograd.grad((x @ w).relu().sum(), x, create_graph=True)
    penalty = (gx ** 2).sum()
    penalty.backward()

    tx, tw = torch.tensor(xv, requires_grad=True), torch.tensor(wv, requires_grad=True)
    (tgx,) = torch.autograd.grad((tx @ tw).relu().sum(), tx, create_graph=True)
    (tgx ** 2).sum().backward()

    np.testing.assert_allclose(_np(gx), tgx.detach().numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(penalty.item(), (tgx ** 2).sum().item(), rtol=1e-5)
    np.testing.assert_allclose(w.grad.numpy(), tw.grad.numpy(), rtol=1e-5, atol=1e-5)


def test_wgan_style_penalty_with_norm_matches_torch(torch):
    rng = np.random.default_rng(1)
    xv, wv, bv = (rng.standard_normal(s).astype(np.float32) for s in [(6, 4), (3, 4), (3,)])

    x, w, b = (dw.tensor(v, requires_grad=True) for v in (xv, wv, bv))
    out = dw.linear(x, w, b).tanh().sum()
    (gx,) = dw.autograd.grad(out, x, create_graph=True)
    pen = ((gx.norm(2, dim=1) - 1) ** 2).mean()
    pen.backward()

    tx, tw, tb = (torch.tensor(v, requires_grad=True) for v in (xv, wv, bv))
    tout = torch.nn.functional.linear(tx, tw, tb).tanh().sum()
    (tgx,) = torch.autograd.grad(tout, tx, create_graph=True)
    tpen = ((tgx.norm(2, dim=1) - 1) ** 2).mean()
    tpen.backward()

    np.testing.assert_allclose(pen.item(), tpen.item(), rtol=1e-5)
    for mine, theirs in [(w, tw), (b, tb), (x, tx)]:
        np.testing.assert_allclose(mine.grad.numpy(), theirs.grad.numpy(), rtol=1e-4, atol=1e-5)


class _ArrayOnlyCube(dw.autograd.Function):
    """An op whose backward works on arrays only and that offers no composite."""

    array_backward = True

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * x * x

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved
        return 3 * g * x * x


def test_create_graph_unsupported_op_says_so():
    x = dw.ones(3, requires_grad=True)
    (g,) = dw.autograd.grad(_ArrayOnlyCube.apply(x).sum(), x)  # first order works
    np.testing.assert_array_equal(g.numpy(), [3.0, 3.0, 3.0])
    with pytest.raises(RuntimeError, match="_ArrayOnlyCube does not support create_graph"):
        dw.autograd.grad(_ArrayOnlyCube.apply(x).sum(), x, create_graph=True)


def test_prod_supports_create_graph():
    # d2/dx2 of prod(x) . 1 for x = (2, 3, 0): the Hessian is prod of the others-but-one
    x = dw.tensor([2.0, 3.0, 0.0], dtype=dw.float64, requires_grad=True)
    (g,) = dw.autograd.grad(x.prod(), x, create_graph=True)
    np.testing.assert_array_equal(g.detach().numpy(), [0.0, 0.0, 6.0])
    (h,) = dw.autograd.grad(g.sum(), x)
    np.testing.assert_array_equal(h.numpy(), [0.0 + 3.0, 0.0 + 2.0, 3.0 + 2.0])


# ----------------------------------------------------------------------- retain_grad, hooks
def test_retain_grad():
    x = dw.tensor([1.0, 2.0], requires_grad=True)
    h = x * 3
    h.retain_grad()
    k = x * 4
    (h * h + k).sum().backward()
    np.testing.assert_allclose(h.grad.numpy(), 2 * _np(h))
    assert k.grad is None  # not retained
    x.retain_grad()  # a no-op on leaves
    assert x.grad is not None


def test_register_hook_on_leaf_and_non_leaf():
    seen = []
    x = dw.tensor([1.0, 2.0], requires_grad=True)
    x.register_hook(lambda g: seen.append(g.numpy().copy()))
    h = x * 2
    h.register_hook(lambda g: g * 10)  # replaces the gradient flowing on through h
    (h * x.detach()).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [20.0, 40.0])
    np.testing.assert_array_equal(seen[0], [20.0, 40.0])
    x2 = dw.tensor([1.0, 2.0], requires_grad=True)
    x2.register_hook(lambda g: g * 0.5)
    (x2 * 4).sum().backward()
    np.testing.assert_array_equal(x2.grad.numpy(), [2.0, 2.0])
    with pytest.raises(RuntimeError, match="register_hook"):
        dw.ones(2).register_hook(lambda g: g)


def test_hook_and_retain_grad_on_the_same_tensor():
    x = dw.ones(2, requires_grad=True)
    h = x * 1.0
    h.retain_grad()
    h.register_hook(lambda g: g * 3)
    (h * 2).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [6.0, 6.0])
    np.testing.assert_array_equal(h.grad.numpy(), [6.0, 6.0])


# ----------------------------------------------------------------------- custom Function
def test_custom_function_with_two_outputs_and_a_constant():
    class SplitScale(dw.autograd.Function):
        @staticmethod
        def forward(ctx, x, scale):
            ctx.scale = scale
            return x * scale, x + 1

        @staticmethod
        def backward(ctx, g_scaled, g_plus):
            return g_scaled * ctx.scale + g_plus, None

    x = dw.tensor([1.0, 2.0], requires_grad=True)
    a, b = SplitScale.apply(x, 3.0)
    assert a.grad_fn is b.grad_fn
    a.sum().backward()  # b unused: its gradient slot arrives as zeros
    np.testing.assert_array_equal(x.grad.numpy(), [3.0, 3.0])
    assert dw.autograd.gradcheck(lambda t: SplitScale.apply(t, 3.0), [dw.tensor([0.5, 1.5], dtype=dw.float64,
                                                                                 requires_grad=True)])


def test_backward_returning_a_wrong_shape_is_reported():
    class Bad(dw.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            return x * 2

        @staticmethod
        def backward(ctx, g):
            return g.sum(0)

    x = dw.ones(2, 3, requires_grad=True)
    with pytest.raises(RuntimeError, match=r"Bad.*\(3,\).*\(2, 3\)"):
        Bad.apply(x).sum().backward()


def test_detect_anomaly_names_the_op():
    x = dw.tensor([0.0, 1.0], requires_grad=True)
    with dw.autograd.detect_anomaly():
        with pytest.raises(FloatingPointError, match="Log"):
            with np.errstate(divide="ignore"):
                (x.log() * 0).sum()
