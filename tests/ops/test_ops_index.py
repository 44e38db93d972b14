"""Indexing (basic and advanced, with repeated indices accumulating), gather/scatter_add,
masked_fill, one_hot, sort/topk values."""

import numpy as np
import pytest

import deepwise as dw

torch = pytest.importorskip("torch")
F = torch.nn.functional

from parity.helpers import helper_test_op  # noqa: E402

MASK = np.random.default_rng(7).random((3, 4)) > 0.4
ROWS = np.array([0, 2, 0, 0, 1])  # repeats must accumulate in backward

GETITEM = {
    "int": lambda x: x[1],
    "neg_int": lambda x: x[-1],
    "two_ints": lambda x: x[1, 2],
    "three_ints_0d": lambda x: x[1, 2, 3],
    "slice": lambda x: x[1:],
    "slice_step": lambda x: x[::2, 1::2],
    "neg_slice": lambda x: x[:, -3:-1],
    "none": lambda x: x[None, 1],
    "none_mid": lambda x: x[:, None, 2:],
    "ellipsis": lambda x: x[..., 1],
    "ellipsis_mid": lambda x: x[0, ..., 2:4],
    "int_list_repeats": lambda x: x[ROWS.tolist()],
    "int_array_tensor": lambda x: x[dw.tensor(ROWS)] if isinstance(x, dw.Tensor) else x[torch.tensor(ROWS)],
    "int_array_with_slice": lambda x: x[:, [3, 0, 3]],
    "two_int_arrays": lambda x: x[[0, 2, 2], [1, 1, 3]],
    "array_and_int": lambda x: x[[1, 1], 2],
    "bool_mask": lambda x: x[0][dw.tensor(MASK)] if isinstance(x, dw.Tensor) else x[0][torch.tensor(MASK)],
    "bool_mask_rows": lambda x: x[dw.tensor([True, False, True])] if isinstance(x, dw.Tensor)
    else x[torch.tensor([True, False, True])],
    "bool_from_compare": lambda x: x[x > 0.5],
}


@pytest.mark.parametrize("name", list(GETITEM))
def test_getitem(name):
    shape = {"int_list_repeats": (3, 4), "int_array_tensor": (3, 4), "bool_mask": (2, 3, 4)}.get(name, (3, 4, 5))
    helper_test_op([shape], GETITEM[name])


def test_repeated_indices_accumulate():
    x = dw.tensor([1.0, 2.0, 3.0], requires_grad=True)
    x[[0, 0, 2, 0]].sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [3.0, 0.0, 1.0])


def test_getitem_without_grad_is_a_view():
    x = dw.arange(6).reshape(2, 3)
    row = x[1]
    x[1, 0] = 100
    assert row[0].item() == 100


@pytest.mark.parametrize("dim", [0, 1, -1])
def test_gather(dim):
    rng = np.random.default_rng(3)
    idx = rng.integers(0, 3 if dim == 0 else 4, size=(3, 4))  # with repeats
    helper_test_op([(3, 4)], lambda x: x.gather(dim, dw.tensor(idx)), lambda x: x.gather(dim, torch.tensor(idx)))
    helper_test_op([(3, 4)], lambda x: dw.gather(x, dim, dw.tensor(idx)),
                   lambda x: torch.gather(x, dim, torch.tensor(idx)))


def test_gather_smaller_index():
    idx = np.array([[0, 0], [1, 0], [2, 2]])
    helper_test_op([(3, 3)], lambda x: x.gather(1, dw.tensor(idx)), lambda x: x.gather(1, torch.tensor(idx)))


@pytest.mark.parametrize("dim", [0, 1])
def test_scatter_add(dim):
    idx = np.array([[0, 1, 0, 2], [2, 2, 0, 1]]) if dim == 0 else np.array([[0, 0, 3, 1], [2, 2, 2, 1]])
    helper_test_op([(3, 4), (2, 4)], lambda x, s: x.scatter_add(dim, dw.tensor(idx), s),
                   lambda x, s: x.scatter_add(dim, torch.tensor(idx), s))
    helper_test_op([(3, 4), (2, 4)], lambda x, s: dw.scatter_add(x, dim, dw.tensor(idx), s),
                   lambda x, s: torch.scatter_add(x, dim, torch.tensor(idx), s))


def test_gather_index_smaller_in_other_dims():
    idx = np.array([[3, 0], [1, 1]])
    helper_test_op([(3, 4)], lambda x: x.gather(1, dw.tensor(idx)), lambda x: x.gather(1, torch.tensor(idx)))
    helper_test_op([(3, 4)], lambda x: x.gather(0, dw.tensor(idx[:, :1] % 3)),
                   lambda x: x.gather(0, torch.tensor(idx[:, :1] % 3)))
    with pytest.raises(RuntimeError, match=r"gather: index of shape \(4, 1\)"):
        dw.ones(3, 4).gather(1, dw.zeros(4, 1, dtype=dw.int64))


def test_scatter_add_index_smaller_than_input_and_src():
    idx = np.array([[1, 0], [0, 0]])
    x, src = np.arange(12.0).reshape(3, 4), np.arange(10.0, 19.0).reshape(3, 3)
    helper_test_op(None, lambda x, s: x.scatter_add(1, dw.tensor(idx), s),
                   lambda x, s: x.scatter_add(1, torch.tensor(idx), s), data=[x, src], forward_only=True)
    # torch's own backward refuses a src larger than the index; check the gradient by hand and by
    # finite differences: src elements outside the index's block get zero gradient
    s = dw.tensor(src, requires_grad=True)
    (dw.tensor(x).scatter_add(1, dw.tensor(idx), s) * dw.arange(12.0).reshape(3, 4)).sum().backward()
    np.testing.assert_array_equal(s.grad.numpy(), [[1.0, 0.0, 0.0], [4.0, 4.0, 0.0], [0.0, 0.0, 0.0]])
    dw.autograd.gradcheck(lambda x, s: x.scatter_add(1, dw.tensor(idx), s),
                          [dw.tensor(x, dtype=dw.float64, requires_grad=True),
                           dw.tensor(src, dtype=dw.float64, requires_grad=True)])


def test_scatter_add_into_zeros_constant():
    idx = np.array([0, 2, 0, 0])
    # the zeros take src's dtype: the double-backward check runs in float64, where torch needs one dtype
    helper_test_op([(4,)], lambda s: dw.zeros(3, dtype=s.dtype).scatter_add(0, dw.tensor(idx), s),
                   lambda s: torch.zeros(3, dtype=s.dtype).scatter_add(0, torch.tensor(idx), s))


@pytest.mark.parametrize("mask_shape", [(3, 4), (4,), (3, 1)], ids=str)
def test_masked_fill(mask_shape):
    mask = np.random.default_rng(11).random(mask_shape) > 0.5
    helper_test_op([(3, 4)], lambda x: x.masked_fill(dw.tensor(mask), -1.5),
                   lambda x: x.masked_fill(torch.tensor(mask), -1.5))
    mask[..., 0] = False  # keep one logit per row, so the softmax below stays finite
    helper_test_op([(3, 4)], lambda x: dw.masked_fill(x, dw.tensor(mask), float("-inf")).softmax(-1),
                   lambda x: torch.masked_fill(x, torch.tensor(mask), float("-inf")).softmax(-1))


def test_masked_fill_rejects_non_bool_mask():
    with pytest.raises(TypeError, match="masked_fill"):
        dw.ones(2).masked_fill(dw.tensor([1, 0]), 0.0)


@pytest.mark.parametrize("dim", [0, 1])
def test_index_select(dim):
    idx = np.array([2, 0, 2])
    helper_test_op([(3, 4)], lambda x: x.index_select(dim, dw.tensor(idx)),
                   lambda x: x.index_select(dim, torch.tensor(idx)))


def test_one_hot():
    labels = np.array([[0, 3], [2, 2], [1, 0]])
    for n in (-1, 5):
        got = dw.one_hot(dw.tensor(labels), n)
        want = F.one_hot(torch.tensor(labels), n)
        assert got.dtype == dw.int64 and got.shape == tuple(want.shape)
        np.testing.assert_array_equal(got.numpy(), want.numpy())
    with pytest.raises(ValueError, match="one_hot"):
        dw.one_hot(dw.tensor([0, 5]), 3)
    with pytest.raises(TypeError, match="one_hot"):
        dw.one_hot(dw.tensor([0.0, 1.0]), 3)


@pytest.mark.parametrize("dim", [0, 1, -1])
@pytest.mark.parametrize("descending", [False, True])
def test_sort_values_and_indices(dim, descending):
    helper_test_op([(3, 4, 5)], lambda x: x.sort(dim, descending=descending),
                   lambda x: x.sort(dim, descending=descending))
    helper_test_op([(3, 4)], lambda x: x.argsort(dim, descending=descending),
                   lambda x: x.argsort(dim, descending=descending), forward_only=True)


@pytest.mark.parametrize("k", [1, 3])
@pytest.mark.parametrize("dim", [0, -1])
@pytest.mark.parametrize("largest", [True, False])
def test_topk(k, dim, largest):
    helper_test_op([(4, 5)], lambda x: x.topk(k, dim=dim, largest=largest),
                   lambda x: x.topk(k, dim=dim, largest=largest))
    helper_test_op([(4, 5)], lambda x: dw.topk(x, k, dim, largest), lambda x: torch.topk(x, k, dim, largest))


def test_topk_bad_k():
    with pytest.raises(ValueError, match="topk"):
        dw.ones(3).topk(4)
