"""matmul with PyTorch's 1-D and batched broadcasting rules, and the fused linear."""

import pytest

import deepwise as dw
from deepwise.ops.linalg import linear

torch = pytest.importorskip("torch")
F = torch.nn.functional

from parity.helpers import helper_test_op  # noqa: E402

MATMUL_SHAPES = {
    "1d@1d": [(4,), (4,)],
    "1d@2d": [(4,), (4, 3)],
    "2d@1d": [(3, 4), (4,)],
    "2d@2d": [(3, 4), (4, 5)],
    "3d@2d": [(2, 3, 4), (4, 5)],
    "2d@3d": [(3, 4), (2, 4, 5)],
    "3d@3d": [(2, 3, 4), (2, 4, 5)],
    "broadcast-batch": [(2, 1, 3, 4), (3, 4, 2)],
    "1d@3d": [(4,), (2, 4, 3)],
    "3d@1d": [(2, 3, 4), (4,)],
    "size1": [(1, 4), (4, 1)],
}


@pytest.mark.parametrize("name", list(MATMUL_SHAPES))
def test_matmul(name):
    shapes = MATMUL_SHAPES[name]
    helper_test_op(shapes, lambda a, b: a @ b)
    helper_test_op(shapes, lambda a, b: dw.matmul(a, b), lambda a, b: torch.matmul(a, b))


def test_mm_bmm_dot():
    helper_test_op([(3, 4), (4, 2)], lambda a, b: dw.mm(a, b), lambda a, b: torch.mm(a, b))
    helper_test_op([(2, 3, 4), (2, 4, 2)], lambda a, b: dw.bmm(a, b), lambda a, b: torch.bmm(a, b))
    helper_test_op([(5,), (5,)], lambda a, b: dw.dot(a, b), lambda a, b: torch.dot(a, b))


def test_matmul_with_constant_operand():
    # the constant in the operand's dtype: the double-backward check runs in float64, where torch
    # refuses a float32 operand (deepwise promotes it)
    helper_test_op([(3, 4)], lambda a: a @ dw.ones(4, 2, dtype=a.dtype),
                   lambda a: a @ torch.ones(4, 2, dtype=a.dtype))
    helper_test_op([(4, 2)], lambda b: dw.ones(3, 4, dtype=b.dtype) @ b,
                   lambda b: torch.ones(3, 4, dtype=b.dtype) @ b)


@pytest.mark.parametrize("x_shape", [(5, 4), (4,), (2, 3, 4), (1, 4)], ids=str)
@pytest.mark.parametrize("bias", [True, False])
def test_linear(x_shape, bias):
    shapes = [x_shape, (3, 4)] + ([(3,)] if bias else [])
    helper_test_op(shapes, lambda x, w, *b: linear(x, w, *b), lambda x, w, *b: F.linear(x, w, *b))


def test_linear_is_exported_as_functional():
    helper_test_op([(2, 4), (3, 4), (3,)], lambda x, w, b: dw.linear(x, w, b), lambda x, w, b: F.linear(x, w, b))
