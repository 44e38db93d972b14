"""Pooling (max, avg, adaptive, 1-D) and interpolate: parity with PyTorch, finite differences in
float64, the documented tie rule of max pooling, double backward, and the error messages."""

import numpy as np
import pytest

import deepwise as dw
from deepwise.autograd import gradcheck
from deepwise.ops import adaptive_pool as ap
from deepwise.ops import interpolate as ip
from deepwise.ops import pool

torch = pytest.importorskip("torch")
F = torch.nn.functional


def _parity(dw_fn, torch_fn, shape, seed=0, x=None, tol=1e-5):
    """Output (and indices, when a pair comes back) and input gradient against PyTorch."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape).astype(np.float32) if x is None else x
    tx, dx = torch.tensor(x, requires_grad=True), dw.tensor(x, requires_grad=True)
    ty, y = torch_fn(tx), dw_fn(dx)
    if isinstance(ty, tuple):
        assert y[1].dtype == np.int64
        np.testing.assert_array_equal(y[1].numpy(), ty[1].numpy())
        ty, y = ty[0], y[0]
    assert y.shape == tuple(ty.shape) and y.dtype == np.float32
    g = rng.standard_normal(tuple(ty.shape)).astype(np.float32)
    ty.backward(torch.tensor(g))
    y.backward(dw.tensor(g))
    np.testing.assert_allclose(y.detach().numpy(), ty.detach().numpy(), rtol=tol, atol=tol)
    np.testing.assert_allclose(dx.grad.numpy(), tx.grad.numpy(), rtol=tol, atol=tol)


# kernel, stride, padding, dilation, ceil_mode
MAX_CASES = [
    (2, None, 0, 1, False), (3, 2, 1, 1, False), (3, 2, 1, 2, True), ((2, 3), (1, 2), (1, 1), 1, True),
    (3, 3, 1, 1, True), (3, 1, 0, 1, False), ((1, 4), (1, 3), (0, 2), (1, 2), True), (9, 1, 0, 1, False),
]


@pytest.mark.parametrize("k,s,p,d,c", MAX_CASES)
@pytest.mark.parametrize("shape", [(2, 3, 9, 10), (1, 2, 11, 9)])
def test_max_pool2d_matches_torch(k, s, p, d, c, shape):
    _parity(lambda x: pool.max_pool2d(x, k, s, p, d, c, return_indices=True),
            lambda x: F.max_pool2d(x, k, s, p, d, c, return_indices=True), shape)


@pytest.mark.parametrize("k,s,p,c,cip", [(2, None, 0, False, True), (3, 2, 1, False, True), (3, 2, 1, True, False),
                                          ((2, 3), (1, 2), (1, 1), True, True), (3, 2, 1, True, True),
                                          (5, 3, 2, True, False), ((3, 1), 1, (1, 0), False, False)])
@pytest.mark.parametrize("shape", [(2, 3, 9, 10), (1, 2, 6, 7)])
def test_avg_pool2d_matches_torch(k, s, p, c, cip, shape):
    _parity(lambda x: pool.avg_pool2d(x, k, s, p, c, cip), lambda x: F.avg_pool2d(x, k, s, p, c, cip), shape)


def test_avg_pool2d_divisor_override_and_unbatched():
    _parity(lambda x: pool.avg_pool2d(x, 3, 2, 1, divisor_override=4),
            lambda x: F.avg_pool2d(x, 3, 2, 1, divisor_override=4), (2, 2, 7, 7))
    _parity(lambda x: pool.max_pool2d(x, 2), lambda x: F.max_pool2d(x, 2), (3, 6, 6))
    _parity(lambda x: pool.avg_pool2d(x, 2), lambda x: F.avg_pool2d(x, 2), (3, 6, 6))


@pytest.mark.parametrize("out", [1, 3, (2, 5), (4, None), 7, (9, 10), (12, 4)])
def test_adaptive_pools_match_torch(out):
    _parity(lambda x: ap.adaptive_avg_pool2d(x, out), lambda x: F.adaptive_avg_pool2d(x, out), (2, 3, 9, 10))
    _parity(lambda x: ap.adaptive_max_pool2d(x, out, True),
            lambda x: F.adaptive_max_pool2d(x, out, True), (2, 3, 9, 10))


def test_pool1d_match_torch():
    shape = (2, 3, 13)
    _parity(lambda x: pool.max_pool1d(x, 3, 2, 1, 2, True, True), lambda x: F.max_pool1d(x, 3, 2, 1, 2, True, True),
            shape)
    _parity(lambda x: pool.max_pool1d(x, 2), lambda x: F.max_pool1d(x, 2), shape)
    _parity(lambda x: pool.avg_pool1d(x, 4, 3, 2, True, False), lambda x: F.avg_pool1d(x, 4, 3, 2, True, False), shape)
    _parity(lambda x: ap.adaptive_avg_pool1d(x, 5), lambda x: F.adaptive_avg_pool1d(x, 5), shape)
    _parity(lambda x: ap.adaptive_max_pool1d(x, 5, True), lambda x: F.adaptive_max_pool1d(x, 5, True), shape)


def test_max_pool_ties_go_to_first_in_scan_order():
    # every 2x2 window of the 3x3 plane (stride 1) is constant except for where a later tie sits
    x = np.array([[[[1.0, 1.0, 0.0],
                    [1.0, 1.0, 2.0],
                    [0.0, 2.0, 2.0]]]], dtype=np.float32)
    dx = dw.tensor(x, requires_grad=True)
    y, idx = pool.max_pool2d(dx, 2, 1, return_indices=True)
    # window (0,0): all ones -> first = (0,0)=0; (0,1): max 2 at (1,2)=5; (1,0): 2 at (2,1)=7;
    # (1,1): 2 at (1,2), (2,1), (2,2) -> first in row-major scan: (1,2)=5
    np.testing.assert_array_equal(idx.numpy(), [[[[0, 5], [7, 5]]]])
    y.sum().backward()
    np.testing.assert_array_equal(dx.grad.numpy(), [[[[1, 0, 0], [0, 0, 2], [0, 1, 0]]]])
    _parity(lambda x: pool.max_pool2d(x, 2, 1, return_indices=True),
            lambda x: F.max_pool2d(x, 2, 1, return_indices=True), None, x=x)
    ties = np.ones((1, 1, 4, 6), np.float32)
    _parity(lambda x: ap.adaptive_max_pool2d(x, (3, 4), True),
            lambda x: F.adaptive_max_pool2d(x, (3, 4), True), None, x=ties)
    y, idx = pool.max_pool2d(dw.tensor(ties), 2, return_indices=True)  # the 2x2 / stride 2 fast path
    np.testing.assert_array_equal(idx.numpy(), [[[[0, 2, 4], [12, 14, 16]]]])
    many = np.random.default_rng(0).integers(0, 3, (2, 3, 9, 8)).astype(np.float32)  # ties everywhere
    for k, s in [(2, 2), (2, 1), (3, 2), (3, 3)]:
        _parity(lambda x, k=k, s=s: pool.max_pool2d(x, k, s, return_indices=True),
                lambda x, k=k, s=s: F.max_pool2d(x, k, s, return_indices=True), None, x=many)


def test_max_pool_nan_wins():
    x = np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4)
    x[0, 0, 0, 1] = np.nan
    x[0, 0, 0, 2] = x[0, 0, 1, 2] = np.nan  # two NaNs in one window: the last one in scan order is kept
    y, idx = pool.max_pool2d(dw.tensor(x), 2, return_indices=True)
    assert np.isnan(y.numpy()[0, 0, 0, 0]) and idx.numpy()[0, 0, 0, 0] == 1
    assert idx.numpy()[0, 0, 0, 1] == 6
    for ours, ref in [(pool.max_pool2d(dw.tensor(x), 2, return_indices=True),
                       F.max_pool2d(torch.tensor(x), 2, return_indices=True)),
                      (ap.adaptive_max_pool2d(dw.tensor(x), 2, return_indices=True),
                       F.adaptive_max_pool2d(torch.tensor(x), 2, return_indices=True))]:
        np.testing.assert_array_equal(ours[1].numpy(), ref[1].numpy())
        np.testing.assert_array_equal(ours[0].numpy(), ref[0].numpy())


def _f64(shape, seed=0):
    # distinct values, so max pooling has no ties for finite differences to straddle
    rng = np.random.default_rng(seed)
    x = rng.permutation(np.prod(shape)).reshape(shape) / np.prod(shape) + 0.01 * rng.standard_normal(shape)
    return dw.tensor(x, dtype=dw.float64, requires_grad=True)


def test_gradcheck_pools():
    x = _f64((2, 2, 5, 6))
    assert gradcheck(lambda x: pool.max_pool2d(x, 3, 2, 1, 1, True), (x,))
    assert gradcheck(lambda x: pool.max_pool2d(x, 2, 1, 0, 2), (x,))
    assert gradcheck(lambda x: pool.avg_pool2d(x, 3, 2, 1, True, False), (x,))
    assert gradcheck(lambda x: ap.adaptive_avg_pool2d(x, (3, 4)), (x,))
    assert gradcheck(lambda x: ap.adaptive_max_pool2d(x, (3, 4)), (x,))
    x1 = _f64((2, 2, 7), seed=1)
    assert gradcheck(lambda x: pool.max_pool1d(x, 3, 2, 1), (x1,))
    assert gradcheck(lambda x: pool.avg_pool1d(x, 3, 2, 1), (x1,))


def test_gradcheck_interpolate():
    x = _f64((1, 2, 3, 4))
    for kw in (dict(scale_factor=2, mode="bilinear"), dict(size=(5, 3), mode="bilinear", align_corners=True),
               dict(scale_factor=(1.5, 2.0), mode="nearest"), dict(size=(2, 3), mode="area"),
               dict(size=(4, 7), mode="nearest-exact")):
        assert gradcheck(lambda x, kw=kw: ip.interpolate(x, **kw), (x,))


INTERP_SIZES = [dict(scale_factor=2), dict(size=(5, 13)), dict(scale_factor=1.5), dict(scale_factor=(0.7, 2.3)),
                dict(size=(3, 4)), dict(size=(7, 9)), dict(size=1)]
INTERP_MODES = [("nearest", None), ("nearest-exact", None), ("bilinear", False), ("bilinear", True), ("area", None)]


@pytest.mark.parametrize("size", INTERP_SIZES)
@pytest.mark.parametrize("mode,ac", INTERP_MODES)
def test_interpolate_matches_torch(size, mode, ac):
    if mode == "area" and "scale_factor" in size:
        size = dict(size=(4, 5))
    _parity(lambda x: ip.interpolate(x, mode=mode, align_corners=ac, **size),
            lambda x: F.interpolate(x, mode=mode, align_corners=ac, **size), (2, 3, 7, 9))


def test_interpolate_1d_and_recompute():
    _parity(lambda x: ip.interpolate(x, scale_factor=2.5, mode="linear"),
            lambda x: F.interpolate(x, scale_factor=2.5, mode="linear"), (2, 3, 5))
    _parity(lambda x: ip.interpolate(x, size=4, mode="nearest"), lambda x: F.interpolate(x, size=4, mode="nearest"),
            (2, 3, 9))
    _parity(lambda x: ip.interpolate(x, scale_factor=1.7, mode="bilinear", recompute_scale_factor=True),
            lambda x: F.interpolate(x, scale_factor=1.7, mode="bilinear", recompute_scale_factor=True), (1, 2, 5, 6))


def test_double_backward_pools_match_torch():
    """Gradient penalty through max/avg/adaptive pooling and bilinear upsampling."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 2, 6, 6))

    def penalty(lib, t, fns):
        y = t
        for f in fns:
            y = f(y)
        y = (y * y * y).sum()
        (g,) = lib.autograd.grad(y, [t], create_graph=True)
        (g * g).sum().backward()
        return t.grad.numpy()

    ours = penalty(dw, dw.tensor(x, dtype=dw.float64, requires_grad=True),
                   [lambda y: pool.max_pool2d(y, 2), lambda y: pool.avg_pool2d(y, 2, 1, 1),
                    lambda y: ip.interpolate(y, scale_factor=2, mode="bilinear"),
                    lambda y: ap.adaptive_avg_pool2d(y, 3), lambda y: ap.adaptive_max_pool2d(y, 2)])
    ref = penalty(torch, torch.tensor(x, requires_grad=True),
                  [lambda y: F.max_pool2d(y, 2), lambda y: F.avg_pool2d(y, 2, 1, 1),
                   lambda y: F.interpolate(y, scale_factor=2, mode="bilinear"),
                   lambda y: F.adaptive_avg_pool2d(y, 3), lambda y: F.adaptive_max_pool2d(y, 2)])
    np.testing.assert_allclose(ours, ref, rtol=1e-8, atol=1e-10)


def test_errors():
    x = dw.zeros(1, 2, 4, 4)
    with pytest.raises(ValueError, match=r"max_pool2d: padding \(2, 2\) must be at most half of the kernel size"):
        pool.max_pool2d(x, 3, padding=2)
    with pytest.raises(RuntimeError, match=r"max_pool2d: window 5 .* does not fit the padded input height 4"):
        pool.max_pool2d(x, 5)
    with pytest.raises(RuntimeError, match=r"avg_pool2d: expected a 3-D \(C, H, W\) or 4-D"):
        pool.avg_pool2d(dw.zeros(4), 2)
    with pytest.raises(ValueError, match="adaptive_avg_pool2d: output_size must be positive"):
        ap.adaptive_avg_pool2d(x, 0)
    with pytest.raises(ValueError, match="interpolate: give exactly one of size and scale_factor"):
        ip.interpolate(x)
    with pytest.raises(ValueError, match="interpolate: mode 'linear' is not supported for 4-D input"):
        ip.interpolate(x, scale_factor=2, mode="linear")
    with pytest.raises(ValueError, match="align_corners can only be set"):
        ip.interpolate(x, scale_factor=2, align_corners=True)


def test_channels_first_layout_input():
    """Conv outputs are stored (C, N, H, W) behind their NCHW shape; pools must read and keep them."""
    from deepwise.tensor import Tensor

    rng = np.random.default_rng(5)
    x = np.ascontiguousarray(rng.standard_normal((3, 2, 7, 8)).astype(np.float32)).transpose(1, 0, 2, 3)
    cases = [(lambda t: pool.max_pool2d(t, 3, 2, 1, 1, True), lambda t: F.max_pool2d(t, 3, 2, 1, 1, True)),
             (lambda t: pool.max_pool2d(t, 2), lambda t: F.max_pool2d(t, 2)),
             (lambda t: pool.avg_pool2d(t, 3, 2, 1, True), lambda t: F.avg_pool2d(t, 3, 2, 1, True))]
    for ours, ref in cases:
        dx = Tensor._make(x).requires_grad_()  # wraps the array as is: no copy, no change of layout
        assert dx.array.strides[1] > dx.array.strides[0]
        tx = torch.tensor(x, requires_grad=True)
        y, ty = ours(dx), ref(tx)
        assert y.array.strides[1] > y.array.strides[0]  # the layout is kept
        g = rng.standard_normal(tuple(ty.shape)).astype(np.float32)
        y.backward(dw.tensor(g))
        ty.backward(torch.tensor(g))
        np.testing.assert_allclose(y.detach().numpy(), ty.detach().numpy(), rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(dx.grad.numpy(), tx.grad.numpy(), rtol=1e-6, atol=1e-6)
    with dw.no_grad():  # no graph: the argmax is not kept, the values are the same
        np.testing.assert_array_equal(pool.max_pool2d(Tensor._make(x), 2).numpy(),
                                      F.max_pool2d(torch.tensor(x), 2).numpy())
    ties = rng.integers(0, 3, (3, 2, 7, 8)).astype(np.float32).transpose(1, 0, 2, 3)  # the 2x2 fast path
    y, idx = pool.max_pool2d(Tensor._make(ties), 2, return_indices=True)
    ty, tidx = F.max_pool2d(torch.tensor(ties), 2, return_indices=True)
    np.testing.assert_array_equal(idx.numpy(), tidx.numpy())
    np.testing.assert_array_equal(y.numpy(), ty.numpy())
