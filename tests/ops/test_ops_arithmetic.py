"""Binary arithmetic, reflected forms with Python scalars, maximum/minimum, where, clamp."""

import numpy as np
import pytest

import deepwise as dw

torch = pytest.importorskip("torch")

from parity.helpers import helper_test_op  # noqa: E402

BROADCAST_PAIRS = [
    [(3, 4), (3, 4)],
    [(3, 4), (4,)],
    [(4,), (3, 4)],
    [(3, 1), (1, 4)],
    [(2, 3, 4), (3, 1)],
    [(), (2, 3)],
    [(2, 3), ()],
    [(1,), (2, 3)],
    [(2, 1, 3), (4, 1)],
]


@pytest.mark.parametrize("shapes", BROADCAST_PAIRS)
def test_add(shapes):
    helper_test_op(shapes, lambda x, y: x + y)


@pytest.mark.parametrize("shapes", BROADCAST_PAIRS)
def test_sub(shapes):
    helper_test_op(shapes, lambda x, y: x - y)


@pytest.mark.parametrize("shapes", BROADCAST_PAIRS)
def test_mul(shapes):
    helper_test_op(shapes, lambda x, y: x * y)


@pytest.mark.parametrize("shapes", BROADCAST_PAIRS)
def test_div(shapes):
    helper_test_op(shapes, lambda x, y: x / y, low=[-2, 0.5], high=[2, 2])


@pytest.mark.parametrize("shapes", BROADCAST_PAIRS)
def test_pow_tensor_exponent(shapes):
    helper_test_op(shapes, lambda x, y: x ** y, low=[0.5, -2], high=[2, 2])


@pytest.mark.parametrize("shapes", BROADCAST_PAIRS)
def test_logaddexp(shapes):
    helper_test_op(shapes, lambda x, y: dw.logaddexp(x, y), lambda x, y: torch.logaddexp(x, y), low=-30, high=30)


def test_functional_names():
    helper_test_op([(3, 4), (4,)], lambda x, y: dw.add(x, y, alpha=2.5), lambda x, y: torch.add(x, y, alpha=2.5))
    helper_test_op([(3, 4), (4,)], lambda x, y: dw.sub(x, y, alpha=-1.5), lambda x, y: torch.sub(x, y, alpha=-1.5))
    helper_test_op([(3, 4), (3, 4)], lambda x, y: dw.mul(x, y), lambda x, y: torch.mul(x, y))
    helper_test_op([(3, 4), (3, 4)], lambda x, y: dw.div(x, y), lambda x, y: torch.div(x, y), low=[-2, 0.5])
    helper_test_op([(3, 4)], lambda x: x.pow(3), lambda x: x.pow(3))


SCALAR_FORMS = {
    "x+s": lambda x: x + 2.5,
    "s+x": lambda x: 2.5 + x,
    "x+int": lambda x: x + 3,
    "x-s": lambda x: x - 1.5,
    "s-x": lambda x: 1.5 - x,
    "int-x": lambda x: 3 - x,
    "x*s": lambda x: x * 2.5,
    "s*x": lambda x: -2.5 * x,
    "int*x": lambda x: 3 * x,
    "x/s": lambda x: x / 4.0,
    "x/int": lambda x: x / 3,
    "s/x": lambda x: 2.0 / x,
    "x**2": lambda x: x ** 2,
    "x**3": lambda x: x ** 3,
    "x**0.5": lambda x: x ** 0.5,
    "x**-1.5": lambda x: x ** -1.5,
    "x**0": lambda x: x ** 0,
    "2**x": lambda x: 2 ** x,
    "0.5**x": lambda x: 0.5 ** x,
    "-x": lambda x: -x,
    "+x": lambda x: +(x * 1.0),
    "chain": lambda x: (1 - x) * 2 / (x * x + 1) - 0.5 ** x,
}


@pytest.mark.parametrize("name", list(SCALAR_FORMS))
def test_python_scalars_either_side(name):
    positive = name in ("s/x", "x**0.5", "x**-1.5")
    out = helper_test_op([(3, 4)], SCALAR_FORMS[name], low=0.5 if positive else -2.0)
    assert out[0].dtype == dw.float32


def test_numpy_array_on_the_left_gives_a_tensor():
    x = dw.tensor([1.0, 2.0], requires_grad=True)
    y = np.array([3.0, 4.0]) * x
    assert isinstance(y, dw.Tensor) and y.dtype == dw.float32
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [3.0, 4.0])
    for scalar in (np.float32(2.0), np.float64(2.0), np.int64(2), np.array(2.0)):
        for y in (scalar * x, scalar + x, scalar - x, scalar / x):
            assert isinstance(y, dw.Tensor) and y.dtype == dw.float32 and y.requires_grad, type(scalar)


@pytest.mark.parametrize("shapes", [[(3, 4), (3, 4)], [(3, 4), (4,)], [(2, 1, 3), (4, 1)]])
@pytest.mark.parametrize("op", ["maximum", "minimum"])
def test_maximum_minimum(shapes, op):
    helper_test_op(shapes, lambda x, y: getattr(dw, op)(x, y), lambda x, y: getattr(torch, op)(x, y))


@pytest.mark.parametrize("op", ["maximum", "minimum"])
def test_maximum_minimum_ties_split_the_gradient(op):
    data = [[1.0, 2.0, -3.0, 0.5], [1.0, 1.0, -3.0, 4.0]]
    helper_test_op(None, lambda x, y: getattr(dw, op)(x, y), lambda x, y: getattr(torch, op)(x, y),
                   data=data, gradcheck=False)


@pytest.mark.parametrize("shapes", [[(3, 4), (3, 4)], [(3, 4), (4,)], [(3, 1), (1, 4)]])
def test_where(shapes):
    cond = np.random.default_rng(5).random((3, 4)) > 0.5
    helper_test_op(shapes, lambda x, y: dw.where(dw.tensor(cond), x, y),
                   lambda x, y: torch.where(torch.tensor(cond), x, y))


def test_where_with_scalars():
    cond = np.array([[True, False, True], [False, False, True]])
    helper_test_op([(2, 3)], lambda x: dw.where(dw.tensor(cond), x, 0.0),
                   lambda x: torch.where(torch.tensor(cond), x, 0.0))
    helper_test_op([(2, 3)], lambda x: dw.where(dw.tensor(cond), 1.5, x),
                   lambda x: torch.where(torch.tensor(cond), 1.5, x))
    helper_test_op([(2, 3)], lambda x: dw.where(x > 0, x, x * 0.1), lambda x: torch.where(x > 0, x, x * 0.1))


@pytest.mark.parametrize("bounds", [(-0.5, 0.5), (-0.5, None), (None, 0.7), (0, 1)])
def test_clamp(bounds):
    lo, hi = bounds
    helper_test_op([(3, 5)], lambda x: x.clamp(lo, hi), lambda x: x.clamp(lo, hi))
    helper_test_op([(3, 5)], lambda x: dw.clip(x, min=lo, max=hi), lambda x: torch.clip(x, min=lo, max=hi))


def test_clamp_boundaries_pass_gradient():
    data = [[-1.0, -0.5, 0.0, 0.5, 1.0]]
    helper_test_op(None, lambda x: x.clamp(-0.5, 0.5), lambda x: x.clamp(-0.5, 0.5), data=data, gradcheck=False)


def test_clamp_int_tensor():
    i = np.array([-3, 0, 2, 5])
    helper_test_op(None, lambda x: x.clamp(0, 3), data=[i], dtype="int")
    helper_test_op(None, lambda x: x.clamp(0.5, 2.5), data=[i], dtype="int")


def test_clamp_needs_a_bound():
    with pytest.raises(ValueError, match="clamp"):
        dw.ones(3).clamp()


def test_int_tensor_arithmetic_dtypes():
    a, b = dw.tensor([1, 2, 3]), dw.tensor([2, 2, 2])
    assert (a + b).dtype == dw.int64 and (a * 2).dtype == dw.int64
    assert (a / b).dtype == dw.float32
    np.testing.assert_allclose((a / b).numpy(), [0.5, 1.0, 1.5])
    assert (a * 2.5).dtype == dw.float32
    assert (a * dw.ones(3)).dtype == dw.float32
    assert (dw.ones(3, dtype=dw.float64) + dw.ones(3)).dtype == dw.float64
    assert (dw.ones(3) + np.float64(2.0)).dtype == dw.float32
    np.testing.assert_array_equal((a // b).numpy(), [0, 1, 1])
    np.testing.assert_array_equal((a % b).numpy(), [1, 0, 1])
    np.testing.assert_array_equal(dw.div(dw.tensor([-7, 7]), 2, rounding_mode="floor").numpy(), [-4, 3])
    np.testing.assert_array_equal(dw.div(dw.tensor([-7, 7]), 2, rounding_mode="trunc").numpy(), [-3, 3])
