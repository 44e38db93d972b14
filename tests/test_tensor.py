"""Tensor creation (dtype policy, sharing), seeding, attributes, conversions and __repr__."""

import numpy as np
import pytest

import deepwise as dw


# ------------------------------------------------------------------------------ from data
def test_tensor_from_lists_and_scalars():
    t = dw.tensor([[1.0, 2.0], [3.0, 4.5]])
    assert t.dtype == dw.float32 and t.shape == (2, 2)
    np.testing.assert_array_equal(t.numpy(), [[1.0, 2.0], [3.0, 4.5]])
    assert dw.tensor([1, 2, 3]).dtype == dw.int64
    assert dw.tensor([True, False]).dtype == dw.bool_
    assert dw.tensor(2.5).shape == () and dw.tensor(2.5).dtype == dw.float32
    assert dw.tensor(7).dtype == dw.int64
    assert dw.tensor([1, 2.5]).dtype == dw.float32
    assert dw.tensor([]).shape == (0,)
    with pytest.raises((TypeError, ValueError), match="ragged"):
        dw.tensor([[1.0, 2.0], [3.0]])


def test_tensor_from_numpy_dtype_policy():
    a64 = np.arange(6, dtype=np.float64).reshape(2, 3)
    t = dw.tensor(a64)
    assert t.dtype == dw.float32
    assert dw.tensor(a64, dtype=dw.float64).dtype == dw.float64
    assert dw.tensor(a64, dtype="float64").dtype == dw.float64
    assert dw.tensor(np.arange(3, dtype=np.int32)).dtype == dw.int32
    assert dw.tensor(np.arange(3, dtype=np.float16)).dtype == dw.float16
    assert dw.tensor([1.0, 2.0], dtype=dw.int64).dtype == dw.int64
    # tensor() copies
    a = np.ones(3, dtype=np.float32)
    t = dw.tensor(a)
    a[0] = 5
    assert t[0].item() == 1.0


def test_tensor_of_a_tensor_copies():
    x = dw.tensor([1.0, 2.0])
    y = dw.tensor(x)
    y.array[0] = 9
    assert x[0].item() == 1.0
    z = dw.tensor([x[0], x[1], 3.0])
    np.testing.assert_array_equal(z.numpy(), [1.0, 2.0, 3.0])


def test_from_numpy_shares_memory_and_keeps_dtype():
    for dtype in (np.float64, np.float32, np.int32, np.uint8):
        a = np.arange(4, dtype=dtype)
        t = dw.from_numpy(a)
        assert t.dtype == np.dtype(dtype)
        a[1] = 3
        assert t[1].item() == 3
        t.array[2] = 0
        assert a[2] == 0
        assert np.shares_memory(t.numpy(), a)
    with pytest.raises(TypeError, match="from_numpy"):
        dw.from_numpy([1, 2])


def test_as_tensor_reuses_tensors():
    x = dw.ones(2)
    assert dw.as_tensor(x) is x
    assert dw.as_tensor([1.0]).dtype == dw.float32
    assert dw.as_tensor(x, dtype=dw.float64).dtype == dw.float64


def test_requires_grad_at_creation():
    x = dw.tensor([1.0, 2.0], requires_grad=True)
    assert x.requires_grad and x.is_leaf and x.grad is None
    with pytest.raises(RuntimeError, match="floating"):
        dw.tensor([1, 2], requires_grad=True)


# ------------------------------------------------------------------------------ factories
def test_zeros_ones_full_empty():
    assert dw.zeros(2, 3).shape == (2, 3) and dw.zeros((2, 3)).shape == (2, 3)
    assert dw.zeros(2, 3).dtype == dw.float32 and not dw.zeros(2).numpy().any()
    np.testing.assert_array_equal(dw.ones(3, dtype=dw.int64).numpy(), [1, 1, 1])
    assert dw.ones(3, dtype=dw.int64).dtype == dw.int64
    assert dw.ones([2, 2]).shape == (2, 2)
    assert dw.zeros(()).shape == ()
    f = dw.full((2, 2), 1.5)
    assert f.dtype == dw.float32 and (f.numpy() == 1.5).all()
    assert dw.full((2,), 3).dtype == dw.int64 and dw.full((2,), True).dtype == dw.bool_
    assert dw.full(3, 0.5).shape == (3,)
    e = dw.empty(4, 5, dtype=dw.float64)
    assert e.shape == (4, 5) and e.dtype == dw.float64
    assert dw.zeros(2, requires_grad=True).requires_grad


def test_like_functions():
    x = dw.ones(2, 3, dtype=dw.float64)
    for fn in (dw.zeros_like, dw.ones_like, dw.empty_like, dw.rand_like, dw.randn_like):
        y = fn(x)
        assert y.shape == (2, 3) and y.dtype == dw.float64, fn.__name__
    assert dw.zeros_like(x, dtype=dw.float32).dtype == dw.float32
    assert (dw.full_like(x, 7.0).numpy() == 7.0).all()
    assert (dw.ones_like(x).numpy() == 1).all() and not dw.zeros_like(x).numpy().any()
    assert dw.zeros_like(x, requires_grad=True).requires_grad


def test_arange_linspace_eye():
    a = dw.arange(5)
    assert a.dtype == dw.int64 and a.tolist() == [0, 1, 2, 3, 4]
    assert dw.arange(2, 8, 3).tolist() == [2, 5]
    f = dw.arange(0, 1, 0.25)
    assert f.dtype == dw.float32 and f.tolist() == [0.0, 0.25, 0.5, 0.75]
    assert dw.arange(3, dtype=dw.float32).dtype == dw.float32
    ls = dw.linspace(0, 1, 5)
    assert ls.dtype == dw.float32
    np.testing.assert_allclose(ls.numpy(), [0, 0.25, 0.5, 0.75, 1.0])
    np.testing.assert_array_equal(dw.eye(3).numpy(), np.eye(3))
    assert dw.eye(3).dtype == dw.float32 and dw.eye(2, 4).shape == (2, 4)


def test_random_factories():
    r = dw.rand(1000)
    assert r.dtype == dw.float32 and r.shape == (1000,)
    assert 0 <= r.numpy().min() and r.numpy().max() < 1 and abs(r.numpy().mean() - 0.5) < 0.05
    n = dw.randn(2000)
    assert n.dtype == dw.float32 and abs(n.numpy().mean()) < 0.1 and abs(n.numpy().std() - 1) < 0.1
    assert dw.randn(2, 3).shape == (2, 3) and dw.randn((2, 3)).shape == (2, 3)
    assert dw.randn(3, dtype=dw.float64).dtype == dw.float64
    i = dw.randint(0, 5, (200,))
    assert i.dtype == dw.int64 and set(i.tolist()) == {0, 1, 2, 3, 4}
    assert dw.randint(3, size=(4, 2)).shape == (4, 2) and dw.randint(3, size=(10,)).numpy().max() < 3
    p = dw.randperm(6)
    assert sorted(p.tolist()) == list(range(6)) and p.dtype == dw.int64
    assert dw.randn(3, requires_grad=True).requires_grad


def test_manual_seed_reproducibility():
    def draw():
        return [dw.rand(3).numpy(), dw.randn(2, 2).numpy(), dw.randint(0, 100, (5,)).numpy(),
                dw.randperm(5).numpy()]

    dw.manual_seed(42)
    first = draw()
    dw.manual_seed(42)
    second = draw()
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)
    dw.manual_seed(43)
    assert not np.array_equal(dw.rand(3).numpy(), first[0])


def test_rng_state_roundtrip():
    import json

    dw.manual_seed(5)
    dw.rand(2)
    state = json.loads(json.dumps(dw.get_rng_state()))
    a = dw.randn(4).numpy()
    dw.set_rng_state(state)
    np.testing.assert_array_equal(dw.randn(4).numpy(), a)


# ------------------------------------------------------------------------------ attributes
def test_attributes():
    x = dw.randn(2, 3, 4)
    assert x.shape == (2, 3, 4) and x.ndim == 3 and x.dim() == 3
    assert x.size() == (2, 3, 4) and x.size(1) == 3 and x.size(-1) == 4
    assert x.numel() == 24 and len(x) == 2
    assert x.dtype == dw.float32 and x.device == dw.device("cpu") and str(x.device) == "cpu"
    assert x.is_leaf and not x.requires_grad and x.grad is None and x.grad_fn is None
    assert x.T.shape == (4, 3, 2)
    np.testing.assert_array_equal(dw.tensor([[1, 2], [3, 4]]).T.numpy(), [[1, 3], [2, 4]])
    with pytest.raises(TypeError):
        len(dw.tensor(1.0))


def test_item_numpy_tolist():
    assert dw.tensor([[2.5]]).item() == 2.5 and isinstance(dw.tensor(3).item(), int)
    with pytest.raises(ValueError, match=r"item.*\(2,\)"):
        dw.ones(2).item()
    x = dw.tensor([[1.0, 2.0]])
    assert isinstance(x.numpy(), np.ndarray) and x.numpy().dtype == np.float32
    assert x.tolist() == [[1.0, 2.0]] and dw.tensor(3).tolist() == 3
    y = dw.ones(2, requires_grad=True)
    with pytest.raises(RuntimeError, match="detach"):
        y.numpy()
    np.testing.assert_array_equal(y.detach().numpy(), [1.0, 1.0])
    assert float(dw.tensor(1.5)) == 1.5 and int(dw.tensor(3)) == 3
    assert np.asarray(x).shape == (1, 2)


def test_bool_of_tensors():
    assert bool(dw.tensor(1.0)) and not bool(dw.tensor(0))
    with pytest.raises(RuntimeError, match="ambiguous"):
        bool(dw.ones(2))


def test_clone_is_a_differentiable_copy():
    x = dw.tensor([1.0, 2.0], requires_grad=True)
    c = x.clone()
    assert not np.shares_memory(c.array, x.array) and c.grad_fn is not None
    (c * 3).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [3.0, 3.0])


def test_to_dtype_and_casts():
    x = dw.tensor([1.7, -2.2])
    assert x.to(dw.float64).dtype == dw.float64
    assert x.double().dtype == dw.float64 and x.half().dtype == dw.float16
    assert x.long().dtype == dw.int64 and x.long().tolist() == [1, -2]
    assert x.int().dtype == dw.int32 and x.bool().dtype == dw.bool_
    i = dw.tensor([1, 2])
    assert i.float().dtype == dw.float32 and i.float().tolist() == [1.0, 2.0]
    assert x.float() is x  # already float32: no copy, as in torch
    assert x.to(dw.float32, copy=True) is not x
    assert x.to("cpu") is x and x.cpu() is x
    assert x.to(dw.zeros(1, dtype=dw.float64)).dtype == dw.float64
    assert x.type() == "float32"
    g = dw.tensor([1.0, 2.0], requires_grad=True)
    (g.double() * 2).sum().backward()  # gradient flows back through the cast, in the leaf's dtype
    assert g.grad.dtype == dw.float32 and g.grad.tolist() == [2.0, 2.0]
    assert not g.long().requires_grad


def test_cuda_without_cupy_is_a_clear_error():
    pytest.importorskip("numpy")
    try:
        import cupy  # noqa: F401

        pytest.skip("CuPy is installed")
    except ImportError:
        pass
    with pytest.raises(RuntimeError, match="CuPy"):
        dw.ones(2).to("cuda")
    with pytest.raises(ValueError, match="device"):
        dw.device("tpu")


def test_requires_grad_and_inplace_helpers():
    x = dw.ones(3)
    assert x.requires_grad_() is x and x.requires_grad
    x.requires_grad_(False)
    assert not x.requires_grad
    z = dw.ones(2, 2)
    assert z.zero_() is z and not z.numpy().any()
    z.fill_(2.0).add_(1.0).mul_(2.0)
    assert (z.numpy() == 6.0).all()
    p = dw.ones(2, requires_grad=True)
    with pytest.raises(RuntimeError, match="no_grad"):
        p.zero_()
    with dw.no_grad():
        p.zero_()
    assert not p.detach().numpy().any()
    y = p * 2
    with pytest.raises(RuntimeError, match="detach"):
        y.requires_grad_(False)


def test_augmented_assignment():
    z = dw.ones(3)
    alias = z
    z += 1
    z *= dw.tensor([1.0, 2.0, 3.0])
    z -= 0.5
    z /= 2
    assert z is alias and z.tolist() == [0.75, 1.75, 2.75] and z.dtype == dw.float32
    w = dw.tensor([1.0, 2.0], requires_grad=True)
    w.grad = dw.tensor([0.5, 0.5])
    with dw.no_grad():
        w -= 2 * w.grad  # the optimizer idiom: the same leaf, updated in place
    assert w.requires_grad and w.is_leaf and w.detach().tolist() == [0.0, 1.0]
    h = w * 2
    h_before = h
    h += 1  # recorded by the graph: rebinds, so the gradient stays right
    assert h is not h_before and h.grad_fn is not None
    h.sum().backward()
    assert w.grad.tolist() == [2.5, 2.5]
    i = dw.tensor([1, 2])
    with pytest.raises(TypeError):
        i += 0.5  # as in torch: a float result cannot be written into an int tensor


def test_setitem():
    x = dw.zeros(2, 3)
    x[0, 1] = 5.0
    x[1] = dw.tensor([1.0, 2.0, 3.0])
    x[x > 2.5] = -1.0
    assert x.tolist() == [[0.0, -1.0, 0.0], [1.0, 2.0, -1.0]]
    p = dw.ones(2, requires_grad=True)
    with pytest.raises(RuntimeError, match="no_grad"):
        p[0] = 3.0


# ------------------------------------------------------------------------------ repr
def test_repr_shows_values_dtype_and_grad_fn():
    r = repr(dw.tensor([1.5, 2.0]))
    assert r.startswith("tensor(") and "1.5" in r and "dtype" not in r
    r = repr(dw.tensor([1, 2]))
    assert "1, 2" in r and "dtype" not in r
    r = repr(dw.tensor([1.0], dtype=dw.float64))
    assert "dtype=float64" in r
    assert "dtype=int32" in repr(dw.tensor(np.array([3], dtype=np.int32)))
    x = dw.tensor([1.0, 2.0], requires_grad=True)
    assert "requires_grad=True" in repr(x)
    r = repr(x * 2)
    assert "grad_fn=<MulBackward>" in r and "2." in r and "4." in r
    assert "grad_fn=<SumBackward>" in repr((x * 2).sum())
    big = repr(dw.zeros(1000))
    assert "..." in big and len(big) < 300


def test_equality_operators_return_tensors_and_hash_by_identity():
    a, b = dw.tensor(2.0), dw.tensor(2.0)
    assert (a == b).item() is True
    assert len({a, b}) == 2
    assert dw.equal(dw.ones(2), dw.ones(2)) and not dw.equal(dw.ones(2), dw.ones(3))


def test_one_dtype_policy_for_creation_collate_and_arithmetic():
    from deepwise import backend
    from deepwise.data.collate import default_collate

    assert backend.default_dtype(np.float64) == np.float32
    assert backend.default_dtype(np.int32) == np.int32 and backend.default_dtype(np.uint8) == np.uint8
    assert backend.default_dtype(np.int32, from_python=True) == np.int64
    assert backend.default_dtype(np.float16, from_python=True) == np.float32
    # the three users agree
    assert dw.tensor(np.zeros(2)).dtype == dw.float32 and dw.tensor([1, 2]).dtype == dw.int64
    assert default_collate([np.zeros(2), np.zeros(2)]).dtype == dw.float32
    assert default_collate([1, 2]).dtype == dw.int64 and default_collate([1.5, 2.0]).dtype == dw.float32
    assert (dw.ones(2) + np.ones(2)).dtype == dw.float32
    assert dw.tensor(np.arange(3, dtype=np.uint8)).dtype == dw.uint8


def test_data_is_a_history_free_tensor_sharing_the_array_as_in_pytorch():
    p = dw.Tensor(np.ones(3, np.float32), requires_grad=True)
    (p * 2).sum().backward()
    d = p.data
    assert isinstance(d, dw.Tensor) and not d.requires_grad and d.grad_fn is None
    assert d.array is p.array  # shares the values
    p.data.add_(p.grad, alpha=-0.5)  # PyTorch's hand-written SGD step
    np.testing.assert_array_equal(p.array, [0.0, 0.0, 0.0])
    assert p.requires_grad and p.is_leaf
    p.data = dw.Tensor(np.full(3, 4.0, np.float32))  # replaces the values, keeps the parameter
    assert p.requires_grad and p.array.tolist() == [4.0, 4.0, 4.0]
    p.data[1] = 7.0
    assert p.array.tolist() == [4.0, 7.0, 4.0]
