"""Gradient clipping against PyTorch, and the promise never to write into a gradient array."""

from __future__ import annotations

import math

import numpy as np
import pytest

from deepwise.optim import clip_grad_norm_, clip_grad_value_
from deepwise.tensor import Tensor

torch = pytest.importorskip("torch")

SHAPES = [(4, 5), (5,), (2, 3, 3), ()]


def _grads(seed=0, scale=1.0):
    rng = np.random.default_rng(seed)
    return [np.asarray(scale * rng.standard_normal(s), dtype=np.float32) for s in SHAPES]


def _pair(grads):
    dw_p, th_p = [], []
    for g in grads:
        p = Tensor(np.zeros(g.shape, np.float32), requires_grad=True)
        p.grad = Tensor._make(g.copy())
        dw_p.append(p)
        t = torch.zeros(g.shape, requires_grad=True)
        t.grad = torch.from_numpy(g.copy())
        th_p.append(t)
    return dw_p, th_p


@pytest.mark.parametrize("norm_type", [2.0, math.inf, 1.0, 3.0, "inf"])
@pytest.mark.parametrize("max_norm", [0.5, 1e4])
def test_clip_grad_norm_matches_pytorch(norm_type, max_norm):
    dw_p, th_p = _pair(_grads())
    ours = clip_grad_norm_(dw_p, max_norm, norm_type=norm_type)
    theirs = torch.nn.utils.clip_grad_norm_(th_p, max_norm, norm_type=norm_type)
    assert isinstance(ours, Tensor) and ours.shape == () and ours.dtype == np.float32
    np.testing.assert_allclose(ours.item(), theirs.item(), rtol=1e-5)
    for p, t in zip(dw_p, th_p):
        assert p.grad.dtype == np.float32
        np.testing.assert_allclose(p.grad.array, t.grad.numpy(), rtol=1e-5, atol=1e-7)
    clipped_norm = clip_grad_norm_(dw_p, 1e9, norm_type=norm_type).item()
    assert clipped_norm == pytest.approx(min(max_norm, ours.item()), rel=1e-4)


def test_no_clipping_keeps_the_gradient_tensors():
    dw_p, _ = _pair(_grads())
    before = [p.grad for p in dw_p]
    clip_grad_norm_(dw_p, 1e6)
    assert all(p.grad is g for p, g in zip(dw_p, before))


def test_shared_gradients_are_not_corrupted():
    """One gradient array behind two parameters, and one gradient *tensor* behind two more: each
    parameter's gradient is scaled exactly once, and the shared array is left as it was."""
    g = np.arange(1.0, 7.0, dtype=np.float32).reshape(2, 3)
    snapshot = g.copy()
    params = [Tensor(np.zeros((2, 3), np.float32), requires_grad=True) for _ in range(4)]
    params[0].grad = Tensor._make(g)
    params[1].grad = Tensor._make(g)
    shared_tensor = Tensor._make(g)
    params[2].grad = shared_tensor
    params[3].grad = shared_tensor
    total = clip_grad_norm_(params, 1.0)
    np.testing.assert_array_equal(g, snapshot)
    np.testing.assert_array_equal(shared_tensor.array, snapshot)
    # reference: PyTorch on four independent copies of the same gradient
    refs = [torch.zeros(2, 3, requires_grad=True) for _ in range(4)]
    for r in refs:
        r.grad = torch.from_numpy(snapshot.copy())
    ref_total = torch.nn.utils.clip_grad_norm_(refs, 1.0)
    np.testing.assert_allclose(total.item(), ref_total.item(), rtol=1e-6)
    for p, r in zip(params, refs):
        np.testing.assert_allclose(p.grad.array, r.grad.numpy(), rtol=1e-6)


def test_non_finite_norm():
    grads = _grads()
    grads[1][2] = np.nan
    dw_p, th_p = _pair(grads)
    with pytest.raises(RuntimeError, match="non-finite"):
        clip_grad_norm_(dw_p, 1.0, error_if_nonfinite=True)
    assert dw_p[0].grad.array[0, 0] == grads[0][0, 0]  # nothing was scaled before the error
    ours = clip_grad_norm_(dw_p, 1.0)
    theirs = torch.nn.utils.clip_grad_norm_(th_p, 1.0)
    assert math.isnan(ours.item()) and math.isnan(theirs.item())
    for p, t in zip(dw_p, th_p):
        np.testing.assert_array_equal(np.isnan(p.grad.array), np.isnan(t.grad.numpy()))


def test_single_tensor_no_grads_and_bad_arguments():
    p = Tensor(np.zeros(3, np.float32), requires_grad=True)
    total = clip_grad_norm_(p, 1.0)
    assert total.item() == 0.0 and total.dtype == np.float32 and p.grad is None
    p.grad = Tensor._make(np.array([3.0, 4.0, 0.0], np.float32))
    assert clip_grad_norm_(p, 1.0).item() == pytest.approx(5.0)
    np.testing.assert_allclose(p.grad.array, [0.6, 0.8, 0.0], rtol=1e-5)
    with pytest.raises(TypeError, match="max_norm must be a number"):
        clip_grad_norm_([p], "big")
    with pytest.raises(TypeError, match="parameter 1 is a ndarray"):
        clip_grad_norm_([p, np.ones(3)], 1.0)
    with pytest.raises(ValueError, match="clip_value must be >= 0"):
        clip_grad_value_([p], -1.0)


def test_clip_grad_value_matches_pytorch_and_leaves_arrays_alone():
    grads = _grads(seed=5, scale=2.0)
    originals = [g.copy() for g in grads]
    dw_p, th_p = _pair(grads)
    shared = dw_p[0].grad.array
    dw_p[1].grad = Tensor._make(dw_p[1].grad.array)
    clip_grad_value_(dw_p, 0.75)
    torch.nn.utils.clip_grad_value_(th_p, 0.75)
    for p, t in zip(dw_p, th_p):
        np.testing.assert_array_equal(p.grad.array, t.grad.numpy())
        assert p.grad.dtype == np.float32
    np.testing.assert_array_equal(shared, originals[0])
