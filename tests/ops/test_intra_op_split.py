"""The intra-op pool's elementwise and per-channel passes (``threads.run_split``): ReLU and the
normalisations give the same bits split over two threads as on one, and PyTorch's values."""

from __future__ import annotations

import numpy as np
import pytest

import deepwise as dw
from deepwise import threads

torch = pytest.importorskip("torch")
F = dw.nn.functional


@pytest.fixture
def split_everything(monkeypatch):
    """Every pass of any size is split (SPLIT_MIN 0); restores the thread count afterwards."""
    if not threads.blas_libraries():
        pytest.skip("no BLAS library found whose thread count can be set")
    before = threads.get_num_threads()
    monkeypatch.setattr(threads, "SPLIT_MIN", 0)
    monkeypatch.setattr(threads, "pool_ready", lambda: bool(threads._respin))  # even if a thread lingers
    yield
    threads.set_num_threads(before)


def _channels_first(a):
    """The array stored (C, N, H, W) behind its (N, C, H, W) shape, as a conv output is."""
    return np.ascontiguousarray(a.transpose(1, 0, 2, 3)).transpose(1, 0, 2, 3)


def _run(fn, arrays, n_threads):
    threads.set_num_threads(n_threads)
    ts = [dw.tensor(a, requires_grad=True) for a in arrays]
    out = fn(*ts)
    g = np.random.default_rng(1).standard_normal(out.shape).astype(out.dtype)
    out.backward(dw.tensor(g))
    return [out.detach().numpy().copy()] + [t.grad.numpy().copy() for t in ts], g


def _check(fn, torch_fn, arrays, rtol=1e-5, atol=1e-5):
    one, g = _run(fn, arrays, 1)
    two, _ = _run(fn, arrays, 2)
    for a, b in zip(one, two):
        assert a.tobytes() == b.tobytes()  # the same bits on two threads as on one
    ts = [torch.tensor(np.ascontiguousarray(a), requires_grad=True) for a in arrays]
    out = torch_fn(*ts)
    out.backward(torch.tensor(g))
    for a, r in zip(one, [out] + [t.grad for t in ts]):
        np.testing.assert_allclose(a, r.detach().numpy(), rtol=rtol, atol=atol)


@pytest.mark.parametrize("layout", ["nchw", "channels-first"])
@pytest.mark.parametrize("shape", [(4, 5, 3, 3), (3, 7, 2, 5), (1, 3, 4, 4)])
def test_batch_norm_split_over_channels(split_everything, layout, shape):
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape).astype(np.float32) * 3 + 1
    if layout == "channels-first":
        x = _channels_first(x)
    w = rng.standard_normal(shape[1]).astype(np.float32)
    b = rng.standard_normal(shape[1]).astype(np.float32)
    _check(lambda x, w, b: F.batch_norm(x, None, None, w, b, training=True),
           lambda x, w, b: torch.nn.functional.batch_norm(x, None, None, w, b, training=True), [x, w, b])
    _check(lambda x: F.batch_norm(x, None, None, training=True),
           lambda x: torch.nn.functional.batch_norm(x, None, None, training=True), [x])


@pytest.mark.parametrize("shape,k", [((2, 6, 5), 1), ((1, 4, 3), 1), ((1, 3, 4), 2), ((3, 5), 1)])
def test_layer_norm_is_unchanged_by_the_split(split_everything, shape, k):
    """LayerNorm's statistics are not per channel: it keeps its own path, whatever the shape."""
    rng = np.random.default_rng(2)
    x = rng.standard_normal(shape).astype(np.float32)
    w = rng.standard_normal(shape[-k:]).astype(np.float32)
    b = rng.standard_normal(shape[-k:]).astype(np.float32)
    _check(lambda x, w, b: F.layer_norm(x, shape[-k:], w, b),
           lambda x, w, b: torch.nn.functional.layer_norm(x, shape[-k:], w, b), [x, w, b])


def test_group_norm_is_unchanged_by_the_split(split_everything):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((3, 6, 4, 4)).astype(np.float32)
    w = rng.standard_normal(6).astype(np.float32)
    b = rng.standard_normal(6).astype(np.float32)
    _check(lambda x, w, b: F.group_norm(x, 3, w, b), lambda x, w, b: torch.nn.functional.group_norm(x, 3, w, b),
           [x, w, b])


@pytest.mark.parametrize("layout", ["nchw", "channels-first"])
def test_relu_split_is_pytorchs_relu_bit_for_bit(split_everything, layout):
    """NaN stays NaN, -inf and negatives give +0.0, -0.0 stays -0.0 (before: -inf gave NaN)."""
    rng = np.random.default_rng(4)
    x = rng.standard_normal((5, 3, 4, 4)).astype(np.float32)
    x[0, 0, 0, :4] = [np.nan, -0.0, np.inf, -np.inf]
    if layout == "channels-first":
        x = _channels_first(x)
    threads.set_num_threads(2)
    y = F.relu(dw.tensor(x)).numpy()
    ref = torch.relu(torch.tensor(np.ascontiguousarray(x))).numpy()
    assert np.array_equal(y, ref, equal_nan=True) and np.array_equal(np.signbit(y), np.signbit(ref))
    x[0, 0, 0, :4] = 0.5
    _check(F.relu, torch.relu, [x])


@pytest.mark.parametrize("layout", ["nchw", "channels-first"])
@pytest.mark.parametrize("kernel,stride", [(2, 2), (3, 3), (2, 3)])
def test_max_pool_split_along_the_storage_axis(split_everything, layout, kernel, stride):
    """The 2x2 pool and the scatter of any pool whose windows do not overlap, split over threads."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((5, 3, 9, 8)).astype(np.float32)
    x[1, 2, :2, :2] = 0.25  # ties: the first in scan order wins
    if layout == "channels-first":
        x = _channels_first(x)
    _check(lambda x: F.max_pool2d(x, kernel, stride), lambda x: torch.nn.functional.max_pool2d(x, kernel, stride),
           [x])
