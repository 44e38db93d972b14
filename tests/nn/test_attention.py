"""Attention against PyTorch: ``F.scaled_dot_product_attention`` (forward, input and mask gradients,
float64 finite differences, double backward) and ``nn.MultiheadAttention`` loaded with PyTorch's
weights; fully masked rows stay finite; wrong masks give errors naming the op or layer."""

from __future__ import annotations

import numpy as np
import pytest

import deepwise as dw
import deepwise.nn.functional as F
from parity.helpers import check_double_backward, helper_test_op

torch = pytest.importorskip("torch")
TF = torch.nn.functional

QKV = [(2, 3, 4, 8), (2, 3, 6, 8), (2, 3, 6, 5)]  # (N, H, L, E), (N, H, S, E), (N, H, S, Ev)


def _bool(rng, shape, p=0.7):
    m = rng.random(shape) < p
    m[..., 0] = True  # every row sees at least one key (a fully masked row is tested on its own)
    return m


def _both(fn_kwargs):
    """The same call in both frameworks; mask arrays become each framework's tensors."""
    def mine(q, k, v):
        kw = {n: dw.tensor(a, dtype=q.dtype if a.dtype.kind == "f" else None) if isinstance(a, np.ndarray)
              else a for n, a in fn_kwargs.items()}
        return F.scaled_dot_product_attention(q, k, v, **kw)

    def theirs(q, k, v):
        kw = {n: torch.tensor(a, dtype=q.dtype if a.dtype.kind == "f" else None) if isinstance(a, np.ndarray)
              else a for n, a in fn_kwargs.items()}
        return TF.scaled_dot_product_attention(q, k, v, **kw)

    return mine, theirs


def _cases():
    rng = np.random.default_rng(0)
    return {
        "plain": {},
        "scale": {"scale": 0.3},
        "causal": {"is_causal": True},
        "bool mask (L, S)": {"attn_mask": _bool(rng, (4, 6))},
        "bool mask (N, H, L, S)": {"attn_mask": _bool(rng, (2, 3, 4, 6))},
        "float mask (H, L, S)": {"attn_mask": rng.standard_normal((3, 4, 6))},
        "float mask (N, 1, 1, S)": {"attn_mask": np.where(rng.random((2, 1, 1, 6)) < 0.3, -np.inf, 0.0)},
    }


@pytest.mark.parametrize("case", list(_cases()))
def test_sdpa_matches_torch_with_gradcheck(case):
    kwargs = _cases()[case]
    mine, theirs = _both(kwargs)
    # the double backward is checked below in float64 against finite differences and PyTorch
    helper_test_op(QKV, mine, theirs, double=False)


@pytest.mark.parametrize("L,S", [(4, 6), (6, 4), (5, 5)])
def test_sdpa_causal_with_l_not_s_is_aligned_top_left(L, S):
    mine, theirs = _both({"is_causal": True})
    helper_test_op([(2, L, 8), (2, S, 8), (2, S, 3)], mine, theirs, double=False)


def test_sdpa_unbatched_and_broadcast_batch_dims():
    mine, theirs = _both({})
    helper_test_op([(4, 8), (6, 8), (6, 5)], mine, theirs, double=False)
    helper_test_op([(2, 3, 4, 8), (1, 3, 6, 8), (2, 1, 6, 5)], mine, theirs, gradcheck=False)


def test_sdpa_enable_gqa_shares_key_heads():
    mine, theirs = _both({"enable_gqa": True})
    helper_test_op([(2, 4, 3, 8), (2, 2, 5, 8), (2, 2, 5, 6)], mine, theirs, double=False)


def test_sdpa_float_mask_gradient_matches_torch(rng):
    q, k, v = (rng.standard_normal(s).astype(np.float32) for s in QKV)
    mask = rng.standard_normal((3, 4, 6)).astype(np.float32)
    dm, tm = dw.tensor(mask, requires_grad=True), torch.tensor(mask, requires_grad=True)
    g = rng.standard_normal((2, 3, 4, 5)).astype(np.float32)
    ours = F.scaled_dot_product_attention(dw.tensor(q), dw.tensor(k), dw.tensor(v), attn_mask=dm)
    theirs = TF.scaled_dot_product_attention(torch.tensor(q), torch.tensor(k), torch.tensor(v), attn_mask=tm)
    ours.backward(dw.tensor(g))
    theirs.backward(torch.tensor(g))
    np.testing.assert_allclose(dm.grad.numpy(), tm.grad.numpy(), atol=1e-5, rtol=1e-4)


def _math_sdpa(q, k, v, attn_mask=None, is_causal=False):
    """PyTorch's reference formulation (differentiable twice in float64) as the second-order oracle."""
    L, S = q.shape[-2], k.shape[-2]
    s = q @ k.transpose(-2, -1) / np.sqrt(q.shape[-1])
    if is_causal:
        s = s.masked_fill(~torch.ones(L, S, dtype=torch.bool).tril(), float("-inf"))
    if attn_mask is not None:
        s = s.masked_fill(~attn_mask, float("-inf")) if attn_mask.dtype == torch.bool else s + attn_mask
    return torch.softmax(s, dim=-1) @ v


@pytest.mark.parametrize("case", ["plain", "causal", "bool mask (L, S)", "float mask (H, L, S)"])
def test_sdpa_double_backward(case):
    kwargs = _cases()[case]
    if "attn_mask" in kwargs:  # smaller shapes: masks cut to (L, S) = (3, 5)
        m = kwargs["attn_mask"][..., :3, :5]
        kwargs = dict(kwargs, attn_mask=m[:2] if m.ndim == 3 else m)  # and 2 heads
    mine, _ = _both(kwargs)

    def theirs(q, k, v):
        kw = {n: torch.tensor(a) if isinstance(a, np.ndarray) else a for n, a in kwargs.items()}
        return _math_sdpa(q, k, v, **kw)

    arrays = [np.random.default_rng(3).uniform(-1, 1, s) for s in [(1, 2, 3, 4), (1, 2, 5, 4), (1, 2, 5, 3)]]
    check_double_backward(arrays, mine, theirs)


def test_sdpa_fully_masked_rows_give_zeros_and_finite_grads(rng):
    q, k, v = (dw.tensor(rng.standard_normal(s).astype(np.float32), requires_grad=True) for s in QKV)
    mask = _bool(rng, (4, 6))
    mask[1] = False
    fmask = np.where(mask, 0.0, -np.inf).astype(np.float32)
    for m in (dw.tensor(mask), dw.tensor(fmask)):
        for t in (q, k, v):
            t.grad = None
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=m)
        assert np.all(out.detach().numpy()[:, :, 1] == 0)
        assert np.all(np.isfinite(out.detach().numpy()))
        (out * out).sum().backward()
        for t in (q, k, v):
            assert np.all(np.isfinite(t.grad.numpy()))
        assert np.all(q.grad.numpy()[:, :, 1] == 0)
        # the other rows are what PyTorch gives
        tq, tk, tv = (torch.tensor(t.detach().numpy()) for t in (q, k, v))
        ref = TF.scaled_dot_product_attention(tq, tk, tv, attn_mask=torch.tensor(mask))
        np.testing.assert_allclose(out.detach().numpy(), ref.numpy(), atol=1e-5)


def test_sdpa_fully_masked_rows_are_finite_under_double_backward():
    arrays = [np.random.default_rng(4).uniform(-1, 1, s) for s in [(1, 3, 4), (1, 5, 4), (1, 5, 3)]]
    mask = np.ones((3, 5), dtype=bool)
    mask[2] = False
    xs = [dw.tensor(a, dtype=dw.float64, requires_grad=True) for a in arrays]
    out = F.scaled_dot_product_attention(*xs, attn_mask=dw.tensor(mask))
    gq, gk, gv = dw.autograd.grad((out * out).sum(), xs, create_graph=True)
    second = dw.autograd.grad((gq * gq).sum() + (gk * gk).sum() + (gv * gv).sum(), xs)
    for s in second:
        assert np.all(np.isfinite(s.numpy()))
    dw.autograd.gradgradcheck(lambda q, k, v: F.scaled_dot_product_attention(q, k, v, attn_mask=dw.tensor(mask)),
                              xs, atol=1e-5, rtol=1e-3)


def test_sdpa_dropout_scales_kept_weights_and_is_seeded(rng):
    q, k, v = (dw.tensor(rng.standard_normal(s).astype(np.float32), requires_grad=True) for s in QKV)
    dw.manual_seed(5)
    a = F.scaled_dot_product_attention(q, k, v, dropout_p=0.5)
    dw.manual_seed(5)
    b = F.scaled_dot_product_attention(q, k, v, dropout_p=0.5)
    np.testing.assert_array_equal(a.detach().numpy(), b.detach().numpy())
    full = F.scaled_dot_product_attention(q, k, v)
    assert not np.allclose(a.detach().numpy(), full.detach().numpy())
    # the expectation over many draws is the undropped output
    dw.manual_seed(6)
    mean = sum(F.scaled_dot_product_attention(q, k, v, dropout_p=0.5).detach().numpy() for _ in range(400)) / 400
    np.testing.assert_allclose(mean, full.detach().numpy(), atol=0.15)
    # gradients through the dropped weights: finite differences under one fixed draw
    xs = [dw.tensor(t.detach().numpy(), dtype=dw.float64, requires_grad=True) for t in (q, k, v)]

    def fixed(q, k, v):
        dw.manual_seed(7)
        return F.scaled_dot_product_attention(q, k, v, dropout_p=0.3)

    dw.autograd.gradcheck(fixed, xs, atol=1e-5, rtol=1e-3)
    dw.autograd.gradgradcheck(fixed, xs, atol=1e-5, rtol=1e-3)


def test_sdpa_keeps_float32(rng):
    q, k, v = (dw.tensor(rng.standard_normal(s).astype(np.float32), requires_grad=True) for s in QKV)
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=dw.tensor(rng.standard_normal((4, 6)).astype(np.float32)),
                                         scale=0.5)
    assert out.dtype == dw.float32
    out.sum().backward()
    assert q.grad.dtype == k.grad.dtype == v.grad.dtype == dw.float32


def test_sdpa_errors_name_the_op_and_the_shapes(rng):
    q, k, v = (dw.tensor(rng.standard_normal(s).astype(np.float32)) for s in QKV)
    with pytest.raises(ValueError, match=r"scaled_dot_product_attention: attn_mask of shape \(5, 6\).*\(4, 6\)"):
        F.scaled_dot_product_attention(q, k, v, attn_mask=dw.tensor(np.ones((5, 6), dtype=bool)))
    with pytest.raises(TypeError, match="attn_mask must be bool .* float32.*float64"):
        F.scaled_dot_product_attention(q, k, v, attn_mask=dw.tensor(np.zeros((4, 6)), dtype=dw.float64))
    with pytest.raises(TypeError, match="attn_mask must be bool"):
        F.scaled_dot_product_attention(q, k, v, attn_mask=dw.tensor(np.zeros((4, 6), dtype=np.int64)))
    with pytest.raises(ValueError, match="either attn_mask or is_causal"):
        F.scaled_dot_product_attention(q, k, v, attn_mask=dw.tensor(np.ones((4, 6), dtype=bool)), is_causal=True)
    with pytest.raises(ValueError, match=r"query of shape \(2, 3, 4, 8\) and key of shape \(2, 3, 6, 7\)"):
        F.scaled_dot_product_attention(q, dw.tensor(np.zeros((2, 3, 6, 7), np.float32)), v)
    with pytest.raises(ValueError, match="same length S"):
        F.scaled_dot_product_attention(q, k, dw.tensor(np.zeros((2, 3, 5, 5), np.float32)))
    with pytest.raises(TypeError, match="same dtype"):
        F.scaled_dot_product_attention(q, k, v.double())
    with pytest.raises(ValueError, match="dropout_p"):
        F.scaled_dot_product_attention(q, k, v, dropout_p=1.5)
