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
    many = F.scaled_dot_product_attention(q.unsqueeze(0).expand(400, *q.shape), k, v, dropout_p=0.5)
    mean = many.detach().numpy().mean(axis=0)  # 400 independent draws
    np.testing.assert_allclose(mean, full.detach().numpy(), atol=0.15)
    # gradients through the dropped weights: finite differences under one fixed draw
    xs = [dw.tensor(t.detach().numpy(), dtype=dw.float64, requires_grad=True) for t in (q, k, v)]

    def fixed(q, k, v):
        dw.manual_seed(7)
        return F.scaled_dot_product_attention(q, k, v, dropout_p=0.3)

    dw.autograd.gradcheck(fixed, xs, atol=1e-5, rtol=1e-3)
    dw.autograd.gradgradcheck(fixed, xs, atol=1e-5, rtol=1e-3)


def test_sdpa_is_one_node_in_the_graph(rng):
    q, k, v = (dw.tensor(rng.standard_normal(s).astype(np.float32), requires_grad=True) for s in QKV)
    out = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    assert out.grad_fn.name == "ScaledDotProductAttention"
    assert all(t is not None and t.is_leaf for t in out.grad_fn.inputs[:3])  # straight from q, k, v


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


# ------------------------------------------------------------------------------- MultiheadAttention
E, H, N, L, S = 8, 2, 2, 4, 6


def _mha_pair(**kw):
    """The same layer in both frameworks: PyTorch's state_dict (same keys, same order) loaded into ours."""
    theirs = torch.nn.MultiheadAttention(E, H, **kw)
    ours = dw.nn.MultiheadAttention(E, H, **kw)
    sd = {k: v.detach().numpy() for k, v in theirs.state_dict().items()}
    assert list(sd) == list(ours.state_dict())
    for k, v in ours.state_dict().items():
        assert tuple(v.shape) == sd[k].shape, k
    ours.load_state_dict(sd)
    return ours, theirs


def _mask_rng():
    rng = np.random.default_rng(11)
    kpm = rng.random((N, S)) < 0.3
    kpm[:, 0] = False
    return {
        "kpm bool": {"key_padding_mask": kpm},
        "kpm float": {"key_padding_mask": np.where(kpm, -np.inf, 0.0).astype(np.float32)},
        "attn bool (L, S)": {"attn_mask": _bool(rng, (L, S)) == False},  # noqa: E712 (True = masked in MHA)
        "attn float (N*H, L, S)": {"attn_mask": rng.standard_normal((N * H, L, S)).astype(np.float32)},
        "attn bool + kpm bool": {"attn_mask": _bool(rng, (L, S)) == False, "key_padding_mask": kpm},  # noqa: E712
        "attn float + kpm bool": {"attn_mask": rng.standard_normal((L, S)).astype(np.float32),
                                  "key_padding_mask": kpm},
    }


MHA_CASES = [
    ("default", {}, {}),
    ("batch_first", {"batch_first": True}, {}),
    ("kdim/vdim", {"kdim": 5, "vdim": 3}, {}),
    ("kdim/vdim batch_first", {"kdim": 5, "vdim": 3, "batch_first": True}, {"masks": "attn bool + kpm bool"}),
    ("no bias", {"bias": False}, {}),
    ("add_bias_kv", {"add_bias_kv": True}, {"masks": "attn float + kpm bool"}),
    ("add_zero_attn", {"add_zero_attn": True}, {"masks": "kpm float"}),
    ("bias_kv + zero_attn", {"add_bias_kv": True, "add_zero_attn": True, "batch_first": True},
     {"masks": "attn bool + kpm bool"}),
    ("self-attention", {}, {"self": True}),
    ("self-attention batch_first", {"batch_first": True}, {"self": True, "masks": "kpm bool"}),
    ("need_weights False", {}, {"need_weights": False, "masks": "kpm bool"}),
    ("per-head weights", {"batch_first": True}, {"average": False, "masks": "attn float (N*H, L, S)"}),
] + [(f"masks: {m}", {}, {"masks": m}) for m in _mask_rng()]


def _run_mha(ours, theirs, rng, *, batch_first=False, kdim=E, vdim=E, masks=None, self_attn=False,
             need_weights=True, average=True, is_causal=False, unbatched=False):
    Lq, Sk = (S, S) if self_attn else (L, S)  # self-attention: queries are the S keys

    def shape(n, f):
        if unbatched:
            return (n, f)
        return (N, n, f) if batch_first else (n, N, f)

    xs = [rng.standard_normal(shape(Lq, E)).astype(np.float32)]
    xs += [xs[0], xs[0]] if self_attn else [rng.standard_normal(shape(Sk, kdim)).astype(np.float32),
                                            rng.standard_normal(shape(Sk, vdim)).astype(np.float32)]
    if self_attn:
        d = [dw.tensor(xs[0], requires_grad=True)] * 3
        t = [torch.tensor(xs[0], requires_grad=True)] * 3
    else:
        d = [dw.tensor(x, requires_grad=True) for x in xs]
        t = [torch.tensor(x, requires_grad=True) for x in xs]
    masks = masks or {}
    kw_d = {n: dw.tensor(m) for n, m in masks.items()}
    kw_t = {n: torch.tensor(m) for n, m in masks.items()}
    opts = {"need_weights": need_weights, "average_attn_weights": average, "is_causal": is_causal}
    out, w = ours(*d, **kw_d, **opts)
    t_out, t_w = theirs(*t, **kw_t, **opts)
    np.testing.assert_allclose(out.detach().numpy(), t_out.detach().numpy(), atol=1e-5, rtol=1e-4, err_msg="output")
    assert out.dtype == dw.float32
    if need_weights:
        assert tuple(w.shape) == tuple(t_w.shape)
        np.testing.assert_allclose(w.detach().numpy(), t_w.detach().numpy(), atol=1e-5, rtol=1e-4, err_msg="weights")
    else:
        assert w is None and t_w is None
    p = rng.standard_normal(tuple(t_out.shape)).astype(np.float32)
    loss, t_loss = (out * dw.tensor(p)).sum(), (t_out * torch.tensor(p)).sum()
    if need_weights:  # the weights carry gradient too
        pw = rng.standard_normal(tuple(t_w.shape)).astype(np.float32)
        loss, t_loss = loss + (w * dw.tensor(pw)).sum(), t_loss + (t_w * torch.tensor(pw)).sum()
    loss.backward()
    t_loss.backward()
    for i, (a, b) in enumerate(zip(d[:1] if self_attn else d, t[:1] if self_attn else t)):
        np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), atol=2e-5, rtol=1e-4, err_msg=f"input {i} grad")
    named = dict(theirs.named_parameters())
    for name, param in ours.named_parameters():
        np.testing.assert_allclose(param.grad.numpy(), named[name].grad.numpy(), atol=2e-5, rtol=1e-4, err_msg=name)
    return out, w


@pytest.mark.parametrize("case", MHA_CASES, ids=[c[0] for c in MHA_CASES])
def test_mha_matches_torch(case, rng):
    _, ctor, call = case
    ours, theirs = _mha_pair(**ctor)
    masks = _mask_rng()[call["masks"]] if "masks" in call else None
    _run_mha(ours, theirs, rng, batch_first=ctor.get("batch_first", False), kdim=ctor.get("kdim", E),
             vdim=ctor.get("vdim", E), masks=masks, self_attn=call.get("self", False),
             need_weights=call.get("need_weights", True), average=call.get("average", True))


@pytest.mark.parametrize("need_weights", [False, True])
def test_mha_is_causal_hint_with_its_mask(need_weights, rng):
    ours, theirs = _mha_pair(batch_first=True)
    causal = torch.nn.Transformer.generate_square_subsequent_mask(S).numpy()
    _run_mha(ours, theirs, rng, batch_first=True, self_attn=True, masks={"attn_mask": causal},
             need_weights=need_weights, is_causal=True)


def test_mha_unbatched_input(rng):
    ours, theirs = _mha_pair()
    kpm = np.zeros(S, dtype=bool)
    kpm[-2:] = True
    out, w = _run_mha(ours, theirs, rng, unbatched=True, masks={"key_padding_mask": kpm})
    assert tuple(out.shape) == (L, E) and tuple(w.shape) == (L, S)
    ours, theirs = _mha_pair()
    per_head = rng.standard_normal((H, L, S)).astype(np.float32)  # unbatched: (num_heads, L, S)
    _run_mha(ours, theirs, rng, unbatched=True, masks={"attn_mask": per_head}, average=False)


def test_mha_double_backward_float64(rng):
    mha = dw.nn.MultiheadAttention(4, 2, batch_first=True, dtype=dw.float64)
    kpm = dw.tensor(np.array([[False, False, True], [False, False, False]]))
    xs = [dw.tensor(rng.standard_normal((2, 3, 4)), dtype=dw.float64, requires_grad=True) for _ in range(3)]

    def fn(q, k, v):
        out, w = mha(q, k, v, key_padding_mask=kpm)
        return out, w

    dw.autograd.gradcheck(fn, xs, atol=1e-5, rtol=1e-3)
    dw.autograd.gradgradcheck(fn, xs, atol=1e-5, rtol=1e-3)


def test_mha_fully_padded_sample_is_finite_where_torch_gives_nan(rng):
    ours, theirs = _mha_pair(batch_first=True)
    x = rng.standard_normal((N, S, E)).astype(np.float32)
    kpm = np.zeros((N, S), dtype=bool)
    kpm[0] = True  # sample 0: every key padded
    d = dw.tensor(x, requires_grad=True)
    out, w = ours(d, d, d, key_padding_mask=dw.tensor(kpm))
    t_out, _ = theirs(*[torch.tensor(x)] * 3, key_padding_mask=torch.tensor(kpm))
    assert np.isnan(t_out.detach().numpy()[0]).all()  # PyTorch's behaviour, which we do not copy
    assert np.all(w.detach().numpy()[0] == 0)
    # a query with nothing to attend to outputs out_proj's bias (zero attention output)
    np.testing.assert_allclose(out.detach().numpy()[0], np.broadcast_to(ours.out_proj.bias.detach().numpy(), (S, E)))
    np.testing.assert_allclose(out.detach().numpy()[1], t_out.detach().numpy()[1], atol=1e-5)
    out.sum().backward()
    assert np.all(np.isfinite(d.grad.numpy()))


def test_mha_dropout_only_in_training(rng):
    mha = dw.nn.MultiheadAttention(E, H, dropout=0.5, batch_first=True)
    x = dw.tensor(rng.standard_normal((N, L, E)).astype(np.float32))
    mha.eval()
    a, w_eval = mha(x, x, x, average_attn_weights=False)
    b, _ = mha(x, x, x)
    np.testing.assert_array_equal(a.detach().numpy(), b.detach().numpy())
    mha.train()
    c, w = mha(x, x, x, average_attn_weights=False)
    assert not np.allclose(a.detach().numpy(), c.detach().numpy())
    ws = w.detach().numpy()
    kept = ws != 0  # dropped entries are zero, kept ones scaled by 1 / (1 - p)
    assert 0.3 < kept.mean() < 0.7
    np.testing.assert_allclose(ws[kept], 2 * w_eval.detach().numpy()[kept], rtol=1e-5)


def test_mha_parameters_keys_and_init():
    mha = dw.nn.MultiheadAttention(E, H, kdim=5, vdim=3, add_bias_kv=True)
    keys = list(mha.state_dict())
    theirs = list(torch.nn.MultiheadAttention(E, H, kdim=5, vdim=3, add_bias_kv=True).state_dict())
    assert keys == theirs
    assert mha.in_proj_weight is None and tuple(mha.k_proj_weight.shape) == (E, 5)
    assert np.all(mha.in_proj_bias.detach().numpy() == 0) and np.all(mha.out_proj.bias.detach().numpy() == 0)
    packed = dw.nn.MultiheadAttention(64, 4)
    bound = np.sqrt(6.0 / (64 + 3 * 64))  # xavier_uniform_ over the stacked (3E, E) weight, as PyTorch
    w = packed.in_proj_weight.detach().numpy()
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.9 * bound
    assert "embed_dim=64, num_heads=4" in repr(packed)
    assert list(dw.nn.MultiheadAttention(E, H, bias=False).state_dict()) == ["in_proj_weight", "out_proj.weight"]


def test_mha_errors_name_the_layer_the_mask_and_the_shape(rng):
    mha = dw.nn.MultiheadAttention(E, H, batch_first=True)
    x = dw.tensor(rng.standard_normal((N, L, E)).astype(np.float32))
    y = dw.tensor(rng.standard_normal((N, S, E)).astype(np.float32))
    with pytest.raises(ValueError, match=r"MultiheadAttention: key_padding_mask of shape \(2, 5\) should be "
                                         r"\(N, S\) = \(2, 6\)"):
        mha(x, y, y, key_padding_mask=dw.tensor(np.zeros((N, 5), dtype=bool)))
    with pytest.raises(ValueError, match=r"MultiheadAttention: attn_mask of shape \(4, 4\) should be \(L, S\) = "
                                         r"\(4, 6\) or \(N \* num_heads, L, S\) = \(4, 4, 6\)"):
        mha(x, y, y, attn_mask=dw.tensor(np.zeros((L, L), dtype=bool)))
    with pytest.raises(TypeError, match="MultiheadAttention: attn_mask must be bool .* or float"):
        mha(x, y, y, attn_mask=dw.tensor(np.zeros((L, S), dtype=np.int64)))
    with pytest.raises(TypeError, match="MultiheadAttention: a float key_padding_mask must have the query's dtype"):
        mha(x, y, y, key_padding_mask=dw.tensor(np.zeros((N, S)), dtype=dw.float64))
    with pytest.raises(ValueError, match=r"MultiheadAttention: query of shape \(2, 4, 5\) has 5 features, expected 8"):
        mha(dw.tensor(np.zeros((N, L, 5), np.float32)), y, y)
    with pytest.raises(RuntimeError, match="is_causal=True is a hint"):
        mha(x, x, x, is_causal=True)
    with pytest.raises(ValueError, match="divisible by num_heads"):
        dw.nn.MultiheadAttention(10, 3)
