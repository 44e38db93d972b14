"""The autograd engine: the classic bugs (shared nodes, equal values, broadcasting, memory, depth),
backward semantics, grad mode, dtype through a training step (autograd.grad and hooks: test_autograd_grad.py)."""

import gc
import tracemalloc
import weakref

import numpy as np
import pytest

import deepwise as dw


def _np(t):
    return np.asarray(t.detach().numpy())


# ------------------------------------------------------------------------------ graph shapes
def test_value_used_twice():
    x = dw.tensor(3.0, requires_grad=True)
    (x * x).backward()
    assert x.grad.item() == 6.0
    y = dw.tensor(3.0, requires_grad=True)
    (y + y).backward()
    assert y.grad.item() == 2.0


def test_diamond_graph():
    x = dw.tensor(1.5, requires_grad=True)
    a = x * 2  # a is consumed by two branches that meet again
    b = a + 1
    c = a * 3
    d = b * c  # d = (2x+1)(6x) = 12x^2 + 6x  ->  dd/dx = 24x + 6
    d.backward()
    assert x.grad.item() == pytest.approx(24 * 1.5 + 6)


def test_two_equal_leaves_each_get_their_gradient():
    x = dw.tensor(2.0, requires_grad=True)
    y = dw.tensor(2.0, requires_grad=True)
    (x + y).backward()
    assert x.grad.item() == 1.0 and y.grad.item() == 1.0
    x.grad = y.grad = None
    (x * y).backward()
    assert x.grad.item() == 2.0 and y.grad.item() == 2.0
    assert x.grad is not y.grad


def test_bias_broadcast_gradient_shapes():
    n = 5
    b = dw.zeros(3, requires_grad=True)
    h = dw.randn(n, 3, requires_grad=True)
    (h + b).sum().backward()
    assert b.grad.shape == (3,) and h.grad.shape == (n, 3)
    np.testing.assert_array_equal(b.grad.numpy(), [n] * 3)
    s = dw.ones(1, 3, requires_grad=True)
    (h * s).sum().backward()
    assert s.grad.shape == (1, 3)
    np.testing.assert_allclose(s.grad.numpy(), h.detach().numpy().sum(0, keepdims=True), rtol=1e-6)


@pytest.mark.parametrize("keepdim", [False, True])
@pytest.mark.parametrize("dim", [(0, 2), (-1, 1), (0, 1, 2)], ids=str)
def test_reductions_over_dim_tuples(dim, keepdim):
    x = dw.randn(2, 3, 4, requires_grad=True)
    for op in ["sum", "mean", "amax", "logsumexp"]:
        x.grad = None
        out = getattr(x, op)(dim=dim, keepdim=keepdim)
        axes = tuple(d % 3 for d in dim)
        want_shape = tuple(1 if i in axes else n for i, n in enumerate(x.shape)) if keepdim else \
            tuple(n for i, n in enumerate(x.shape) if i not in axes)
        assert out.shape == want_shape, op
        out.sum().backward()
        assert x.grad.shape == x.shape, op
    x.grad = None
    x.sum(dim=dim, keepdim=keepdim).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), np.ones(x.shape))
    x.grad = None
    x.mean(dim=dim, keepdim=keepdim).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), np.full(x.shape, 1 / np.prod([x.shape[a] for a in axes])))


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")  # 3e38 - -3e38 -> inf, on purpose
@pytest.mark.parametrize("op", ["log_softmax", "logsumexp", "softmax"])
def test_huge_and_tiny_logits_are_finite(op):
    cases = [[[1e8, -1e8, 2e8]], [[-1e4, -1e4]]] + ([] if op == "log_softmax" else [[[3.0e38, -3.0e38]]])
    for data in cases:  # (log_softmax of [3e38, -3e38] is rightly -inf in float32: -6e38 overflows)
        x = dw.tensor(data, requires_grad=True)
        y = getattr(x, op)(dim=1)
        (y * dw.tensor(np.linspace(0.5, 1.5, y.numel()).reshape(y.shape))).sum().backward()
        assert np.isfinite(_np(y)).all() and np.isfinite(x.grad.numpy()).all(), (op, data)
    assert dw.tensor([-1e4, -1e4]).logsumexp(0).item() == pytest.approx(-1e4 + np.log(2))
    np.testing.assert_allclose(_np(dw.tensor([[1e8, 0.0]]).log_softmax(1)), [[0.0, -1e8]])
    np.testing.assert_allclose(_np(dw.tensor([[1e8, 0.0]]).softmax(1)), [[1.0, 0.0]])


# -------------------------------------------------------------------------------- dtypes
def test_dtype_promotion_rules():
    x32 = dw.randn(3)
    i64 = dw.tensor([1, 2, 3])
    assert i64.dtype == dw.int64
    assert (i64 * x32).dtype == dw.float32 and (x32 * i64).dtype == dw.float32
    assert (x32 * 2.5).dtype == dw.float32 and (2.5 * x32).dtype == dw.float32
    assert (x32 * 2).dtype == dw.float32 and (x32 ** 2).dtype == dw.float32
    assert (i64 / i64).dtype == dw.float32 and (i64 / 2).dtype == dw.float32
    assert (i64 * 2.5).dtype == dw.float32
    assert ((i64 > 1) * x32).dtype == dw.float32
    assert (x32 + np.float64(1.0)).dtype == dw.float32
    assert (x32 - dw.tensor(np.zeros(3))).dtype == dw.float32  # float64 NumPy data becomes float32


def test_float32_preserved_through_a_whole_step():
    dw.manual_seed(3)
    w = dw.randn(4, 3, requires_grad=True)
    b = dw.zeros(3, requires_grad=True)
    x = dw.tensor(np.random.default_rng(0).standard_normal((8, 4)))  # float64 data -> float32
    labels = dw.tensor([0, 2, 1, 1, 0, 2, 2, 1])
    assert x.dtype == dw.float32 and labels.dtype == dw.int64
    logits = (x @ w + b) * 0.5 - 1
    logp = logits.log_softmax(dim=1)
    nll = -logp[dw.arange(8), labels].mean()
    acc = (logits.argmax(1) == labels).float().mean()
    onehot_term = (dw.one_hot(labels, 3) * logp).sum() / labels.shape[0]  # int64 one-hot * float32
    loss = nll + 1e-3 * (w ** 2).sum() + 0.0 * onehot_term + labels.sum() * 0.0 + 2 / (1 + acc)
    for t in (logits, logp, nll, acc, onehot_term, loss):
        assert t.dtype == dw.float32
    loss.backward()
    assert w.grad.dtype == dw.float32 and b.grad.dtype == dw.float32
    with dw.no_grad():
        w.array -= 0.1 * w.grad.array
        b -= 0.1 * b.grad  # out-of-place under no_grad, still float32
    assert w.dtype == dw.float32 and b.dtype == dw.float32


# -------------------------------------------------------------------------- memory and depth
def _small_step(x, w):
    h = (x @ w).relu()
    loss = (h * h).mean() + h.logsumexp(dim=1).sum()
    loss.backward()
    return loss.item()


def test_memory_stays_flat_over_many_steps():
    x = dw.randn(16, 8)
    w = dw.randn(8, 8, requires_grad=True)
    for _ in range(20):  # warm caches before measuring
        w.grad = None
        _small_step(x, w)
    tracemalloc.start()
    try:
        gc.collect()  # also empties CPython's object free lists, which fill up (boundedly) as we run
        base, _ = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        for _ in range(1000):
            w.grad = None
            _small_step(x, w)
        _, peak = tracemalloc.get_traced_memory()
        gc.collect()
        current, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert current - base < 16 * 1024, f"memory grew by {(current - base) / 1024:.0f} KiB over 1000 steps"
    assert peak - base < 1024 * 1024, f"peak grew by {(peak - base) / 1024:.0f} KiB over 1000 steps"


def test_graph_nodes_are_freed_without_the_garbage_collector():
    gc.disable()
    try:
        x = dw.randn(4, 4, requires_grad=True)
        h = (x * 2).relu()
        ref, values = weakref.ref(h), weakref.ref(h.array)
        loss = (h @ x).sum()
        del h
        assert ref() is None  # the graph keeps an edge to the tensor's node, not the tensor ...
        assert values() is not None  # ... and the values matmul's backward saved
        loss.backward()
        del loss
        assert values() is None, "a saved array outlived its graph (a reference cycle?)"
        h = x.exp()
        ref = weakref.ref(h)
        loss = h.sum() * 3
        del h, loss  # a graph dropped without backward is freed too
        assert ref() is None
        h = x * 3
        ref = weakref.ref(h)
        h.retain_grad()
        h.register_hook(lambda g: g * 2)
        (h * h).sum().backward()
        del h
        assert ref() is None, "retain_grad/register_hook kept the tensor alive"
    finally:
        gc.enable()


def test_backward_through_a_10000_op_chain():
    x = dw.tensor(1.0, requires_grad=True)
    y = x
    for _ in range(10_000):
        y = y * 1.0001
    y.backward()
    assert x.grad.item() == pytest.approx(1.0001 ** 10_000, rel=1e-3)
    z = x
    for _ in range(5_000):  # x feeds every link: 10,000 nodes, 5,001 paths into the same leaf
        z = z + x * 0.5
    (g,) = dw.autograd.grad(z, x)
    assert g.item() == pytest.approx(1 + 0.5 * 5_000, rel=1e-5)


# ------------------------------------------------------------------------ backward semantics
def test_gradients_accumulate_on_leaves():
    x = dw.tensor([1.0, 2.0], requires_grad=True)
    (x * 3).sum().backward()
    (x * x).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [3 + 2, 3 + 4])


def test_leaf_grads_are_private_so_manual_sgd_works():
    a = dw.ones(2, requires_grad=True)
    b = dw.ones(2, requires_grad=True)
    c = dw.ones(2, 3, requires_grad=True)
    (a + b).sum().backward()  # the same (read-only, broadcast) array flows to both leaves
    a.grad.zero_()
    np.testing.assert_array_equal(b.grad.numpy(), [1.0, 1.0])
    b.grad.array[0] = 5.0
    np.testing.assert_array_equal(a.grad.numpy(), [0.0, 0.0])
    (c.reshape(6) * 2).sum().backward()  # reshape hands back a view
    c.grad.zero_()
    assert not c.grad.numpy().any()
    # the classic manual loop: step under no_grad, then zero the grads in place
    w = dw.tensor([1.0, -2.0], requires_grad=True)
    for _ in range(3):
        loss = (w * w).sum()
        loss.backward()
        with dw.no_grad():
            w -= 0.25 * w.grad
        w.grad.zero_()
    np.testing.assert_allclose(w.detach().numpy(), [0.125, -0.25])


def test_retain_graph():
    x = dw.tensor([1.0, 2.0], requires_grad=True)
    y = (x * x).sum()
    y.backward(retain_graph=True)
    y.backward()
    np.testing.assert_array_equal(x.grad.numpy(), [4.0, 8.0])
    with pytest.raises(RuntimeError, match="retain_graph=True"):
        y.backward()
    z = (x.exp() * 2).sum()
    z.backward()
    with pytest.raises(RuntimeError, match="second time"):
        z.backward()


def test_backward_of_non_scalar_needs_a_gradient():
    x = dw.ones(2, 3, requires_grad=True)
    y = x * 2
    with pytest.raises(RuntimeError, match=r"scalar.*\(2, 3\)"):
        y.backward()
    y.backward(dw.full((2, 3), 0.5))
    np.testing.assert_array_equal(x.grad.numpy(), np.ones((2, 3)))
    with pytest.raises(RuntimeError, match=r"shape \(3,\)"):
        (x * 2).backward(dw.ones(3))


def test_backward_without_grad_is_an_error():
    with pytest.raises(RuntimeError, match="does not require grad"):
        dw.ones(2).sum().backward()
    x = dw.ones(2, requires_grad=True)
    with dw.no_grad():
        y = (x * 2).sum()
    with pytest.raises(RuntimeError, match="does not require grad"):
        y.backward()


def test_backward_with_inputs_only_fills_those():
    x = dw.ones(2, requires_grad=True)
    w = dw.ones(2, requires_grad=True)
    (x * w * 3).sum().backward(inputs=[w])
    assert x.grad is None
    np.testing.assert_array_equal(w.grad.numpy(), [3.0, 3.0])


def test_leaf_and_non_leaf_flags():
    x = dw.ones(2, requires_grad=True)
    c = dw.ones(2)
    y = x * c
    assert x.is_leaf and c.is_leaf and not y.is_leaf
    assert y.requires_grad and not c.requires_grad and (c * 2).is_leaf
    y.sum().backward()
    assert y.grad is None and c.grad is None  # only leaves that require grad get .grad
    with pytest.raises(RuntimeError, match="floating"):
        dw.tensor([1, 2]).requires_grad_()


# ------------------------------------------------------------------------------- grad mode
def test_no_grad_context_manager():
    x = dw.ones(3, requires_grad=True)
    with dw.no_grad():
        y = x * 2
        assert not dw.is_grad_enabled()
        with dw.enable_grad():
            z = x * 2
    assert dw.is_grad_enabled()
    assert not y.requires_grad and y.grad_fn is None and y.is_leaf
    assert z.requires_grad and z.grad_fn is not None


def test_no_grad_and_enable_grad_as_decorators():
    x = dw.ones(3, requires_grad=True)

    @dw.no_grad()
    def f(t):
        return t * 2

    @dw.no_grad
    def g(t):
        return t * 2

    @dw.enable_grad()
    def h(t):
        return t * 2

    assert not f(x).requires_grad and not g(x).requires_grad
    with dw.no_grad():
        assert h(x).requires_grad
        assert not (x * 2).requires_grad
    assert dw.is_grad_enabled() and f.__name__ == "f"


def test_grad_mode_is_restored_after_an_exception():
    with pytest.raises(ValueError):
        with dw.no_grad():
            raise ValueError("boom")
    assert dw.is_grad_enabled()


def test_set_grad_enabled_function_and_context_manager():
    x = dw.ones(2, requires_grad=True)
    with dw.set_grad_enabled(False):
        assert not (x * 2).requires_grad
    assert (x * 2).requires_grad
    dw.set_grad_enabled(False)
    assert not dw.is_grad_enabled()
    dw.set_grad_enabled(True)
    assert dw.is_grad_enabled()


def test_detach():
    x = dw.tensor([1.0, 2.0], requires_grad=True)
    d = (x * 2).detach()
    assert not d.requires_grad and d.grad_fn is None
    np.testing.assert_array_equal(d.numpy(), [2.0, 4.0])
    xd = x.detach()
    assert xd.array is x.array or np.shares_memory(xd.array, x.array)
    y = (x * x.detach()).sum()  # gradient flows only through the first factor
    y.backward()
    np.testing.assert_array_equal(x.grad.numpy(), [1.0, 2.0])
