"""Reductions (dim as int and tuple, keepdim both ways), softmax family, norms, cumsum."""

import numpy as np
import pytest

import deepwise as dw

torch = pytest.importorskip("torch")
F = torch.nn.functional

from parity.helpers import helper_test_op  # noqa: E402

DIMS = [None, 0, 1, -1, (0, 2), (-1, 0), (0, 1, 2)]
KEEP = [False, True]


def _kw(dim, keepdim):
    return {} if dim is None else {"dim": dim, "keepdim": keepdim}


@pytest.mark.parametrize("keepdim", KEEP)
@pytest.mark.parametrize("dim", DIMS, ids=str)
@pytest.mark.parametrize("op", ["sum", "mean", "amax", "amin", "logsumexp"])
def test_reduce(op, dim, keepdim):
    if op == "logsumexp" and dim is None:
        dim = (0, 1, 2)  # torch's logsumexp needs a dim
    kw = _kw(dim, keepdim)
    helper_test_op([(2, 3, 4)], lambda x: getattr(x, op)(**kw), lambda x: getattr(x, op)(**kw))


@pytest.mark.parametrize("op", ["sum", "mean", "amax", "logsumexp"])
def test_reduce_size1_dims_and_0d(op):
    helper_test_op([(3, 1, 4)], lambda x: getattr(x, op)(dim=1), lambda x: getattr(x, op)(dim=1))
    helper_test_op([(1, 1)], lambda x: getattr(x, op)(dim=(0, 1)), lambda x: getattr(x, op)(dim=(0, 1)))
    if op != "logsumexp":
        helper_test_op([()], lambda x: getattr(x, op)(), lambda x: getattr(x, op)())


@pytest.mark.parametrize("keepdim", KEEP)
@pytest.mark.parametrize("dim", [None, 0, 1, (0, 2), (-1, 1)], ids=str)
@pytest.mark.parametrize("op", ["var", "std"])
@pytest.mark.parametrize("kind", ["default", "unbiased_false", "correction0", "correction2"])
def test_var_std(op, kind, dim, keepdim):
    kw = {"default": {}, "unbiased_false": {"unbiased": False}, "correction0": {"correction": 0},
          "correction2": {"correction": 2}}[kind]
    if dim is not None:
        kw = dict(kw, dim=dim, keepdim=keepdim)
    elif "unbiased" in kw:
        kw = {"correction": 0}  # torch spells the all-dims biased form this way
    helper_test_op([(3, 4, 5)], lambda x: getattr(x, op)(**kw), lambda x: getattr(x, op)(**kw))


def test_var_legacy_positional_unbiased():
    helper_test_op([(3, 4)], lambda x: x.var(False), lambda x: x.var(False))
    helper_test_op([(3, 4)], lambda x: dw.std(x, 1, False), lambda x: torch.std(x, 1, False))


@pytest.mark.parametrize("keepdim", KEEP)
@pytest.mark.parametrize("dim", [None, 0, 1, -1], ids=str)
def test_prod(dim, keepdim):
    kw = _kw(dim, keepdim)
    helper_test_op([(3, 4)], lambda x: x.prod(**kw), lambda x: x.prod(**kw), low=0.5, high=1.5)


@pytest.mark.parametrize("dim", [None, 0, 1])
def test_prod_with_zeros(dim):
    data = [[[1.5, 0.0, 2.0, -1.0], [0.0, 0.0, 3.0, 0.5], [2.0, -1.0, 0.5, 1.5]]]  # one zero, two zeros, none
    kw = {} if dim is None else {"dim": dim}
    helper_test_op(None, lambda x: x.prod(**kw), lambda x: x.prod(**kw), data=data)
    helper_test_op(None, lambda x: x.prod(), lambda x: x.prod(), data=[[2.0, 0.0, 3.0]])
    helper_test_op(None, lambda x: x.prod(), lambda x: x.prod(), data=[[2.0, 0.0, 0.0]])


@pytest.mark.parametrize("keepdim", KEEP)
@pytest.mark.parametrize("dim", [0, 1, -1])
@pytest.mark.parametrize("op", ["max", "min"])
def test_max_min_with_dim_gives_values_and_indices(op, dim, keepdim):
    out = helper_test_op([(3, 4)], lambda x: getattr(x, op)(dim=dim, keepdim=keepdim),
                         lambda x: getattr(x, op)(dim=dim, keepdim=keepdim))
    values, indices = out
    assert indices.dtype == dw.int64 and not indices.requires_grad
    res = getattr(dw.tensor([[1.0, 2.0], [4.0, 3.0]]), op)(dim=1)
    assert res.values is res[0] and res.indices is res[1]
    np.testing.assert_array_equal(res.indices.numpy(), [1, 0] if op == "max" else [0, 1])


@pytest.mark.parametrize("op", ["max", "min"])
def test_max_min_without_dim(op):
    helper_test_op([(3, 4)], lambda x: getattr(x, op)(), lambda x: getattr(x, op)())
    helper_test_op([(3, 4), (3, 4)], lambda x, y: getattr(dw, op)(x, y), lambda x, y: getattr(torch, op)(x, y))
    # ties: the full reduction spreads the gradient evenly, like torch
    helper_test_op(None, lambda x: getattr(x, op)(), lambda x: getattr(x, op)(),
                   data=[[1.0, 3.0, 3.0, -3.0, -3.0]], gradcheck=False)


def test_max_empty_is_an_error():
    with pytest.raises(RuntimeError, match="max"):
        dw.zeros(0).max()


NORM_CASES = [(dim, keepdim) for dim in [None, 1, (0, 2)] for keepdim in KEEP if dim is not None or not keepdim]


@pytest.mark.parametrize("p", [2, 1, float("inf"), float("-inf"), 3, 0.5, "fro"], ids=str)
@pytest.mark.parametrize("dim, keepdim", NORM_CASES, ids=str)
def test_norm(p, dim, keepdim):
    low = 0.2 if p == 0.5 else -2.0  # |x|^0.5 has an infinite slope at 0
    kw = {} if dim is None else {"dim": dim, "keepdim": keepdim}
    helper_test_op([(2, 3, 4)], lambda x: x.norm(p=p, **kw), lambda x: x.norm(p=p, **kw), low=low)


def test_norm_of_zero_vector_has_zero_gradient():
    x = dw.zeros(3, requires_grad=True)
    x.norm().backward()
    np.testing.assert_array_equal(x.grad.numpy(), np.zeros(3, np.float32))


@pytest.mark.parametrize("dim", [None, 1], ids=str)
def test_norm_of_zero_vector_has_zero_gradient_with_create_graph(dim):
    # PyTorch gives 0, not NaN, both in a plain backward and in one that builds a graph. Its second
    # derivative at a zero row is NaN; ours is 0 there (the sqrt's gradient is masked at 0 at every
    # order), and matches PyTorch's on the nonzero row
    data = np.array([[0.0, 0.0, 0.0], [1.0, -2.0, 2.0]])
    for dtype in (dw.float32, dw.float64):
        x = dw.tensor(data, dtype=dtype, requires_grad=True)
        (plain,) = dw.autograd.grad(x.norm(dim=dim).sum(), x)
        (graph,) = dw.autograd.grad(x.norm(dim=dim).sum(), x, create_graph=True)
        assert graph.requires_grad
        np.testing.assert_array_equal(graph.detach().numpy(), plain.numpy())
        (second,) = dw.autograd.grad((graph * graph).sum(), x)
        tx = torch.tensor(data, dtype=torch.float32 if dtype == dw.float32 else torch.float64,
                          requires_grad=True)
        (tg,) = torch.autograd.grad(tx.norm(dim=dim).sum(), tx, create_graph=True)
        (tsecond,) = torch.autograd.grad((tg * tg).sum(), tx)
        np.testing.assert_allclose(plain.numpy(), tg.detach().numpy(), rtol=1e-6, atol=1e-7)
        rows = slice(None) if dim is None else 1  # the norm over everything is not at 0
        np.testing.assert_allclose(second.numpy()[rows], tsecond.numpy()[rows], rtol=1e-6, atol=1e-7)
        if dim is not None:
            np.testing.assert_array_equal(second.numpy()[0], np.zeros(3))
        assert np.isfinite(second.numpy()).all()
    z = dw.zeros(3, requires_grad=True)
    (g,) = dw.autograd.grad(z.norm(), z, create_graph=True)
    np.testing.assert_array_equal(g.detach().numpy(), np.zeros(3, np.float32))


@pytest.mark.parametrize("dim", [0, 1, -1])
@pytest.mark.parametrize("op", ["softmax", "log_softmax"])
def test_softmax_family(op, dim):
    helper_test_op([(3, 4, 5)], lambda x: getattr(x, op)(dim), lambda x: getattr(x, op)(dim))
    helper_test_op([(3, 4, 5)], lambda x: getattr(dw, op)(x, dim=dim), lambda x: getattr(F, op)(x, dim=dim))


@pytest.mark.parametrize("op", ["softmax", "log_softmax"])
def test_softmax_1d_and_size1(op):
    helper_test_op([(6,)], lambda x: getattr(x, op)(0), lambda x: getattr(x, op)(0))
    helper_test_op([(4, 1)], lambda x: getattr(x, op)(1), lambda x: getattr(x, op)(1))
    helper_test_op([(4, 1)], lambda x: getattr(x, op)(0), lambda x: getattr(x, op)(0))


def test_softmax_needs_dim_for_2d():
    with pytest.raises(ValueError, match="softmax"):
        dw.softmax(dw.ones(2, 3))


@pytest.mark.parametrize("op", ["softmax", "log_softmax", "logsumexp"])
@pytest.mark.parametrize("data", [[[1e8, -1e8, 3e8], [-2e8, 5e7, 1.0]], [[-1e4, -1e4], [1e4, 1e4]],
                                  [[88.0, 89.0, -104.0], [-1000.0, 0.0, 1000.0]]], ids=["1e8", "1e4", "exp-limits"])
def test_extreme_logits_are_finite_and_correct(op, data):
    kw = {"dim": 1}
    out = helper_test_op(None, lambda x: getattr(x, op)(**kw), lambda x: getattr(x, op)(**kw), data=[data],
                         gradcheck=False, atol=1e-5, rtol=1e-6)[0]
    x = dw.tensor(data, requires_grad=True)
    y = getattr(x, op)(**kw)
    y.sum().backward()
    assert np.isfinite(out.detach().numpy()).all() and np.isfinite(x.grad.numpy()).all()


def test_logsumexp_values():
    x = dw.tensor([-1e4, -1e4])
    np.testing.assert_allclose(x.logsumexp(dim=0).item(), -1e4 + np.log(2), rtol=1e-7)
    np.testing.assert_allclose(dw.tensor([-1e4, -1e4]).log_softmax(0).numpy(), [-np.log(2)] * 2, rtol=1e-6)
    np.testing.assert_allclose(dw.tensor([-1e4, -1e4]).softmax(0).numpy(), [0.5, 0.5])
    inf = dw.tensor([float("-inf"), float("-inf")]).logsumexp(dim=0)
    assert inf.item() == float("-inf")


@pytest.mark.parametrize("dim", [0, 1, -1])
def test_cumsum(dim):
    helper_test_op([(3, 4, 2)], lambda x: x.cumsum(dim), lambda x: x.cumsum(dim))
    helper_test_op([(5,)], lambda x: dw.cumsum(x, dim=0), lambda x: torch.cumsum(x, dim=0))


def test_integer_reductions():
    i = dw.tensor([[1, 2], [3, 4]])
    assert i.sum().dtype == dw.int64 and i.sum().item() == 10
    assert dw.tensor([True, True, False]).sum().item() == 2
    np.testing.assert_array_equal(i.cumsum(0).numpy(), [[1, 2], [4, 6]])
    np.testing.assert_array_equal(i.prod(1).numpy(), [2, 12])
    np.testing.assert_array_equal(i.amax(1).numpy(), [2, 4])
    with pytest.raises(TypeError, match="mean"):
        i.mean()
    assert i.float().mean().item() == 2.5


@pytest.mark.parametrize("op", ["sum", "mean", "amax", "amin", "logsumexp", "var"])
def test_empty_dim_tuple_reduces_everything(op):
    # torch agrees for sum/mean/amax/amin and var's forward (its var backward gives inf there, and its
    # logsumexp refuses dim=()), so those two are checked against deepwise's own dim=None
    torch_fn = {"var": lambda x: x.var(dim=None), "logsumexp": lambda x: x.logsumexp(dim=(0, 1))}.get(
        op, lambda x: getattr(x, op)(dim=()))
    helper_test_op([(2, 3)], lambda x: getattr(x, op)(dim=()), torch_fn)
    torch_fn = {"var": lambda x: x.var(dim=None, keepdim=True),
                "logsumexp": lambda x: x.logsumexp(dim=(0, 1), keepdim=True)}.get(
        op, lambda x: getattr(x, op)(dim=[], keepdim=True))
    helper_test_op([(2, 3)], lambda x: getattr(x, op)(dim=[], keepdim=True), torch_fn)
