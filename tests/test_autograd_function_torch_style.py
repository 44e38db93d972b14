"""Custom ``autograd.Function``s written as in PyTorch (Tensors in forward and backward,
``save_for_backward`` / ``saved_tensors``, ``needs_input_grad``, ``mark_non_differentiable``,
``setup_context``) run unchanged and give PyTorch's gradients; deepwise's array style still works."""

from __future__ import annotations

import numpy as np
import pytest

import deepwise as dw

torch = pytest.importorskip("torch")


def _functions(lib):
    class ScaledExp(lib.autograd.Function):
        @staticmethod
        def forward(ctx, x, k):
            y = (x * k).exp()
            ctx.save_for_backward(y)
            ctx.k = k
            return y

        @staticmethod
        def backward(ctx, g):
            (y,) = ctx.saved_tensors
            return g * y * ctx.k, None

    class MaxWithIndex(lib.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            v, i = x.max(dim=1)
            ctx.mark_non_differentiable(i)
            ctx.save_for_backward(x, i)
            return v, i

        @staticmethod
        def backward(ctx, gv, gi):
            x, i = ctx.saved_tensors
            out = lib.zeros_like(x)
            out[lib.arange(x.shape[0]), i] = gv
            return out

    class Mul(lib.autograd.Function):
        @staticmethod
        def forward(ctx, a, b):
            ctx.save_for_backward(a, b)
            return a * b

        @staticmethod
        def backward(ctx, g):
            a, b = ctx.saved_tensors
            ga = g * b if ctx.needs_input_grad[0] else None
            gb = g * a if ctx.needs_input_grad[1] else None
            return ga, gb

    class Cube(lib.autograd.Function):  # PyTorch 2's form: forward without ctx, then setup_context
        @staticmethod
        def forward(x):
            return x * x * x

        @staticmethod
        def setup_context(ctx, inputs, output):
            (x,) = inputs
            ctx.save_for_backward(x)

        @staticmethod
        def backward(ctx, g):
            (x,) = ctx.saved_tensors
            return 3 * g * x * x

    return ScaledExp, MaxWithIndex, Mul, Cube


A = np.random.default_rng(0).standard_normal((3, 4))
B = np.random.default_rng(1).standard_normal((3, 4))


def _run(lib):
    scaled_exp, max_with_index, mul, cube = _functions(lib)
    x = lib.tensor(A, requires_grad=True)
    w = lib.tensor(B, requires_grad=True)
    c = lib.tensor(B)  # needs no grad: its slot is None
    y = mul.apply(scaled_exp.apply(x, 0.5), w)
    v, i = max_with_index.apply(cube.apply(y) + mul.apply(x, c))
    v.sum().backward()
    return i, v, x.grad.numpy(), w.grad.numpy()


def test_gradients_match_pytorch():
    (i, v, gx, gw), (ti, _, tgx, tgw) = _run(dw), _run(torch)
    assert i.requires_grad is False and ti.requires_grad is False and v.requires_grad
    np.testing.assert_array_equal(i.numpy(), ti.numpy())
    np.testing.assert_allclose(gx, tgx, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(gw, tgw, rtol=1e-5, atol=1e-6)


def test_forward_sees_tensors_without_history_and_outputs_are_tensors():
    seen = {}

    class Probe(dw.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            seen["type"], seen["grad"] = type(x), x.requires_grad
            seen["mode"] = dw.is_grad_enabled()
            return x.sum()

        @staticmethod
        def backward(ctx, g):
            seen["g"] = type(g)
            return g * dw.ones(3)

    x = dw.ones(3, requires_grad=True)
    out = Probe.apply(x)
    assert isinstance(out, dw.Tensor) and out.requires_grad and out.grad_fn is not None
    out.backward()
    assert seen == {"type": dw.Tensor, "grad": False, "mode": False, "g": dw.Tensor}
    np.testing.assert_array_equal(x.grad.numpy(), [1.0, 1.0, 1.0])


def test_first_and_second_derivatives_pass_gradcheck():
    scaled_exp, _, mul, cube = _functions(dw)
    x = dw.tensor(A[0], dtype=dw.float64, requires_grad=True)
    w = dw.tensor(B[0], dtype=dw.float64, requires_grad=True)
    assert dw.autograd.gradcheck(lambda t: scaled_exp.apply(t, 0.7), [x])
    assert dw.autograd.gradcheck(lambda a, b: mul.apply(a, b), [x, w])
    assert dw.autograd.gradgradcheck(lambda t: cube.apply(t), [x])
    assert dw.autograd.gradgradcheck(lambda t: scaled_exp.apply(t, 0.7), [x])


def test_array_style_is_kept_for_functions_that_ask_for_it():
    class ArrayExp(dw.autograd.Function):
        array_style = True

        @staticmethod
        def forward(ctx, x):
            assert isinstance(x, np.ndarray)
            y = np.exp(x)
            ctx.save_for_backward(y)
            return y

        @staticmethod
        def backward(ctx, g):
            assert isinstance(g, np.ndarray)
            (y,) = ctx.saved
            return g * y

    x = dw.tensor([0.0, 1.0], requires_grad=True)
    ArrayExp.apply(x).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), np.exp([0.0, 1.0]), rtol=1e-6)
    assert dw.ops.unary.Exp.array_style is None and not dw.ops.unary.Exp._tensor_style  # deepwise's own ops


def test_set_materialize_grads_false_passes_none_for_an_unused_output_as_in_pytorch():
    import numpy as np
    import torch

    import deepwise as dw

    def make(lib):
        class Split(lib.autograd.Function):
            @staticmethod
            def forward(ctx, x, materialize):
                ctx.set_materialize_grads(materialize)
                return x * 2, x * 3

            @staticmethod
            def backward(ctx, ga, gb):
                seen.append((ga is None, gb is None))
                total = ga * 2 if ga is not None else 0
                if gb is not None:
                    total = total + gb * 3
                return total, None

        return Split

    for lib in (dw, torch):
        for materialize in (True, False):
            seen = []
            x = lib.tensor(np.array([1.0, 2.0], np.float32), requires_grad=True)
            a, _ = make(lib).apply(x, materialize)
            a.sum().backward()
            assert seen == [(False, not materialize)], (lib.__name__, materialize, seen)
            assert np.array_equal(np.asarray(x.grad.tolist()), [2.0, 2.0])
