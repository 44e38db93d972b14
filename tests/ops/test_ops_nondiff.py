"""Ops without a gradient (comparisons, arg-reductions, predicates) against PyTorch, the error
messages of shape mismatches, and a check that the parity helper itself catches wrong ops."""

import numpy as np
import pytest

import deepwise as dw
from deepwise.tensor import Tensor

torch = pytest.importorskip("torch")

from parity.helpers import helper_test_op  # noqa: E402

COMPARISONS = {
    "eq": lambda a, b: a == b, "ne": lambda a, b: a != b, "lt": lambda a, b: a < b,
    "le": lambda a, b: a <= b, "gt": lambda a, b: a > b, "ge": lambda a, b: a >= b,
}


@pytest.mark.parametrize("shapes", [[(3, 4), (3, 4)], [(3, 4), (4,)], [(3, 1), (1, 4)]], ids=str)
@pytest.mark.parametrize("name", list(COMPARISONS))
def test_comparisons(name, shapes):
    # small integers as floats, so equal elements occur
    out = helper_test_op(shapes, COMPARISONS[name], low=-2, high=2, dtype="int", forward_only=True)
    assert out[0].dtype == dw.bool_
    data = [np.array([[0.0, 1.0, 2.0], [2.0, 1.0, 0.0]]), np.array([1.0, 1.0, 1.0])]
    helper_test_op(None, COMPARISONS[name], data=data, forward_only=True)


@pytest.mark.parametrize("name", list(COMPARISONS))
def test_comparisons_with_scalars_and_methods(name):
    helper_test_op(None, lambda a: COMPARISONS[name](a, 1.0), data=[[0.0, 1.0, 2.0]], forward_only=True)
    helper_test_op(None, lambda a: COMPARISONS[name](1, a), data=[[0.0, 1.0, 2.0]], forward_only=True)
    helper_test_op(None, lambda a, b: getattr(a, name)(b), data=[[0.0, 1.0, 2.0], [2.0, 1.0, 0.0]],
                   forward_only=True)


def test_comparison_result_has_no_grad():
    x = dw.ones(3, requires_grad=True)
    assert not (x > 0).requires_grad and (x > 0).grad_fn is None


@pytest.mark.parametrize("kw", [{}, {"dim": 0}, {"dim": 1}, {"dim": -1, "keepdim": True}, {"dim": 0, "keepdim": True}],
                         ids=str)
@pytest.mark.parametrize("op", ["argmax", "argmin"])
def test_argmax_argmin(op, kw):
    out = helper_test_op([(3, 4)], lambda x: getattr(x, op)(**kw), lambda x: getattr(x, op)(**kw),
                         forward_only=True)
    assert out[0].dtype == dw.int64
    helper_test_op([(3, 4)], lambda x: getattr(dw, op)(x, **kw), lambda x: getattr(torch, op)(x, **kw),
                   forward_only=True)


def test_argmax_first_occurrence_on_ties():
    data = [[[1.0, 3.0, 3.0], [2.0, 2.0, 0.0]]]
    helper_test_op(None, lambda x: x.argmax(dim=1), lambda x: x.argmax(dim=1), data=data, forward_only=True)
    helper_test_op(None, lambda x: x.argmin(dim=0), lambda x: x.argmin(dim=0), data=data, forward_only=True)


@pytest.mark.parametrize("descending", [False, True])
def test_sort_argsort_indices(descending):
    helper_test_op([(4, 6)], lambda x: x.sort(descending=descending).indices,
                   lambda x: x.sort(descending=descending).indices, forward_only=True)
    helper_test_op([(4, 6)], lambda x: dw.argsort(x, 0, descending), lambda x: torch.argsort(x, 0, descending),
                   forward_only=True)
    # integer tensors sort too
    helper_test_op([(8,)], lambda x: x.sort(descending=descending, stable=True),
                   lambda x: x.sort(descending=descending, stable=True), dtype="int", low=-3, high=3)


@pytest.mark.parametrize("largest", [True, False])
def test_topk_indices(largest):
    helper_test_op([(5, 6)], lambda x: x.topk(3, largest=largest).indices,
                   lambda x: x.topk(3, largest=largest).indices, forward_only=True)


NAN_DATA = [[1.0, float("nan"), float("inf"), -float("inf"), 0.0, -2.5]]


@pytest.mark.parametrize("op", ["isnan", "isfinite", "isinf"])
def test_predicates(op):
    out = helper_test_op(None, lambda x: getattr(x, op)() if hasattr(x, op) else getattr(dw, op)(x),
                         lambda x: getattr(torch, op)(x), data=NAN_DATA, forward_only=True)
    assert out[0].dtype == dw.bool_


@pytest.mark.parametrize("kw", [{}, {"dim": 0}, {"dim": 1}, {"dim": 1, "keepdim": True}], ids=str)
@pytest.mark.parametrize("op", ["any", "all"])
def test_any_all(op, kw):
    data = [[[True, False, False], [True, True, True]]]
    helper_test_op(None, lambda x: getattr((x > 0.5), op)(**kw), lambda x: getattr((x > 0.5), op)(**kw),
                   data=data, forward_only=True)


def test_logical_ops():
    a = np.array([True, True, False, False])
    b = np.array([True, False, True, False])
    da, db, ta, tb = dw.tensor(a), dw.tensor(b), torch.tensor(a), torch.tensor(b)
    for dw_out, th_out in [(da & db, ta & tb), (da | db, ta | tb), (da ^ db, ta ^ tb), (~da, ~ta),
                           (dw.logical_and(da, db), torch.logical_and(ta, tb)),
                           (dw.logical_not(da), torch.logical_not(ta))]:
        np.testing.assert_array_equal(dw_out.numpy(), th_out.numpy())


# ------------------------------------------------------------------------------ error messages
@pytest.mark.parametrize("name, fn", [
    ("add", lambda a, b: a + b), ("sub", lambda a, b: a - b), ("mul", lambda a, b: a * b),
    ("div", lambda a, b: a / b), ("pow", lambda a, b: a ** b), ("maximum", dw.maximum),
    ("minimum", dw.minimum), ("where", lambda a, b: dw.where(a > 0, a, b)), ("eq", lambda a, b: a == b),
    ("lt", lambda a, b: a < b),
])
@pytest.mark.parametrize("requires_grad", [False, True])
def test_broadcast_errors_name_op_and_shapes(name, fn, requires_grad):
    a, b = dw.ones(2, 3, requires_grad=requires_grad), dw.ones(4, 5)
    with pytest.raises(RuntimeError, match=rf"{name}.*\(2, 3\).*\(4, 5\)"):
        fn(a, b)


@pytest.mark.parametrize("a, b", [((2, 3), (4, 5)), ((3,), (4,)), ((2, 3), (2,)), ((2, 2, 3), (3, 3, 4))], ids=str)
def test_matmul_error(a, b):
    with pytest.raises(RuntimeError, match=rf"matmul.*{a}.*{b}".replace("(", r"\(").replace(")", r"\)")):
        dw.ones(*a) @ dw.ones(*b)


def test_linear_error():
    with pytest.raises(RuntimeError, match=r"linear.*\(2, 3\).*\(5, 4\)"):
        dw.linear(dw.ones(2, 3), dw.ones(5, 4))
    with pytest.raises(RuntimeError, match=r"linear.*bias.*\(3,\)"):
        dw.linear(dw.ones(2, 4), dw.ones(5, 4), dw.ones(3))


def test_cat_and_stack_errors():
    with pytest.raises(RuntimeError, match=r"cat.*\(2, 4\).*\(2, 3\)"):
        dw.cat([dw.ones(2, 3), dw.ones(2, 4)], dim=0)
    with pytest.raises(RuntimeError, match=r"stack.*\(2, 4\).*\(2, 3\)"):
        dw.stack([dw.ones(2, 3), dw.ones(2, 4)])


def test_reshape_expand_errors():
    with pytest.raises(RuntimeError, match=r"reshape.*\(2, 3\)"):
        dw.ones(2, 3).reshape(4, 2)
    with pytest.raises(RuntimeError, match=r"expand.*\(2, 3\)"):
        dw.ones(2, 3).expand(4, 3)
    with pytest.raises(IndexError, match="sum.*dim 3"):
        dw.ones(2, 3).sum(3)
    with pytest.raises(IndexError, match=r"\(2, 3\)"):
        dw.ones(2, 3)[5]


# ------------------------------------------------------------------------- the helper itself
def test_helper_catches_wrong_forward_gradient_and_dtype():
    with pytest.raises(AssertionError):
        helper_test_op([(3,)], lambda x: x * 2, lambda x: x * 2.001)
    with pytest.raises(AssertionError):  # right values, wrong dtype
        helper_test_op([(3,)], lambda x: x.double(), lambda x: x.float(), gradcheck=False)
    with pytest.raises(AssertionError):  # right forward, wrong backward
        helper_test_op([(3,)], lambda x: x * 2, lambda x: x * 2 + (x - x.detach()) * 0.5, gradcheck=False)


def test_gradcheck_catches_a_wrong_backward():
    class BadSquare(dw.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            ctx.x = x
            return x * x

        @staticmethod
        def backward(ctx, g):
            return g * ctx.x  # should be 2 * g * x

    x = dw.tensor([0.5, -1.0, 2.0], dtype=dw.float64, requires_grad=True)
    with pytest.raises(dw.autograd.GradcheckError, match="input 0"):
        dw.autograd.gradcheck(lambda t: BadSquare.apply(t), [x])
    assert dw.autograd.gradcheck(lambda t: t * t, [x])
    with pytest.raises(ValueError, match="float64"):
        dw.autograd.gradcheck(lambda t: t * t, [dw.ones(2, requires_grad=True)])


def test_gradcheck_perturbs_inputs_stored_with_any_strides():
    """An input whose array is a transposed view is perturbed in place, not through a flattened copy
    (which would give all-zero finite differences)."""
    data = np.random.default_rng(0).standard_normal((3, 2)).T
    x = Tensor._make(data).requires_grad_()
    assert not x.array.flags.c_contiguous
    w = dw.tensor(np.arange(6.0).reshape(2, 3))
    assert dw.autograd.gradcheck(lambda t: (t * t * w).sum(), [x])
    np.testing.assert_array_equal(x.array, data)  # every perturbation was undone
