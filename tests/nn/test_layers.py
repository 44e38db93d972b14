"""Layers against PyTorch: same weights in, same outputs and gradients (of inputs and parameters) out.
Plus dropout statistics, embedding gradients, shape layers, the F namespace and error messages."""

from __future__ import annotations

import numpy as np
import pytest

import deepwise as dw
import deepwise.nn as nn
import deepwise.nn.functional as F
from deepwise.autograd import gradcheck


def _pair(ours, theirs, x, torch, atol=1e-5, rtol=1e-4, int_input=False, check_input_grad=True):
    """Load theirs' weights into ours, run both on x, backprop sum(out * proj), compare everything."""
    if list(theirs.state_dict()):
        ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})
    needs = not int_input
    xd = dw.tensor(x, requires_grad=needs)
    xt = torch.tensor(x, requires_grad=needs)
    yd, yt = ours(xd), theirs(xt)
    assert yd.shape == tuple(yt.shape)
    np.testing.assert_allclose(yd.detach().numpy(), yt.detach().numpy(), atol=atol, rtol=rtol)
    proj = np.random.default_rng(1).standard_normal(yd.shape).astype(np.float32)
    (yd * dw.tensor(proj)).sum().backward()
    (yt * torch.tensor(proj)).sum().backward()
    if needs and check_input_grad:
        np.testing.assert_allclose(xd.grad.numpy(), xt.grad.numpy(), atol=atol, rtol=rtol, err_msg="input grad")
    for (name, p), (_, tp) in zip(ours.named_parameters(), theirs.named_parameters()):
        np.testing.assert_allclose(p.grad.numpy(), tp.grad.numpy(), atol=atol, rtol=rtol, err_msg=name)
    return yd


# ------------------------------------------------------------------------------------- Linear
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("shape", [(6, 5), (2, 3, 5), (5,)])
def test_linear_matches_torch(torch, bias, shape):
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    _pair(nn.Linear(5, 3, bias=bias), torch.nn.Linear(5, 3, bias=bias), x, torch)


def test_linear_layout_and_default_init_bounds():
    layer = nn.Linear(400, 300)
    assert layer.weight.shape == (300, 400) and layer.bias.shape == (300,)
    assert layer.weight.dtype == dw.float32 and layer.bias.dtype == dw.float32
    bound = 1.0 / np.sqrt(400)  # kaiming_uniform_(a=sqrt(5)) gives the same bound as the bias
    w, b = layer.weight.array, layer.bias.array
    assert np.abs(w).max() <= bound and np.abs(b).max() <= bound
    assert np.abs(w).max() > 0.98 * bound and np.abs(b).max() > 0.9 * bound  # the whole range is used
    np.testing.assert_allclose(w.std(), bound / np.sqrt(3), rtol=0.02)  # uniform's std
    assert abs(w.mean()) < 0.01 * bound * 10
    dw.manual_seed(3)
    a = nn.Linear(4, 4).weight.array.copy()
    dw.manual_seed(3)
    np.testing.assert_array_equal(nn.Linear(4, 4).weight.array, a)
    assert nn.Linear(4, 4, dtype=dw.float64).weight.dtype == dw.float64


def test_linear_wrong_feature_size_names_layer_and_shapes():
    layer = nn.Linear(4, 2)
    with pytest.raises(RuntimeError) as info:
        layer(dw.ones(3, 5))
    msg = str(info.value)
    assert "Linear(in_features=4, out_features=2, bias=True)" in msg
    assert "(3, 5)" in msg and "in_features=4" in msg
    with pytest.raises(ValueError, match="in_features must be a non-negative int"):
        nn.Linear(2.5, 3)


def test_linear_gradcheck_float64():
    layer = nn.Linear(3, 2).double()
    x = dw.tensor(np.random.default_rng(0).standard_normal((4, 3)), dtype=dw.float64, requires_grad=True)
    gradcheck(lambda x, w, b: F.linear(x, w, b), (x, layer.weight, layer.bias))


# -------------------------------------------------------------------------------- activations
ACTIVATIONS = [
    ("ReLU", (), {}), ("ReLU6", (), {}), ("Hardtanh", (-0.5, 1.5), {}), ("LeakyReLU", (0.2,), {}),
    ("ELU", (0.7,), {}), ("CELU", (1.3,), {}), ("SELU", (), {}), ("GELU", (), {}),
    ("GELU", (), {"approximate": "tanh"}), ("SiLU", (), {}), ("Mish", (), {}), ("Sigmoid", (), {}),
    ("Tanh", (), {}), ("Softsign", (), {}), ("LogSigmoid", (), {}), ("Hardsigmoid", (), {}),
    ("Hardswish", (), {}), ("Softplus", (), {}), ("Softplus", (2.0, 3.0), {}), ("Softmax", (), {"dim": 1}),
    ("LogSoftmax", (), {"dim": -1}), ("Softmin", (), {"dim": 0}), ("GLU", (), {"dim": 1}), ("PReLU", (), {}),
    ("PReLU", (4,), {"init": 0.1}), ("Identity", (), {}),
]


@pytest.mark.parametrize("name,args,kwargs", ACTIVATIONS, ids=[f"{a[0]}{a[1]}{a[2]}" for a in ACTIVATIONS])
def test_activation_modules_match_torch(torch, name, args, kwargs):
    ours, theirs = getattr(nn, name)(*args, **kwargs), getattr(torch.nn, name)(*args, **kwargs)
    assert repr(ours) == repr(theirs)
    x = np.random.default_rng(0).uniform(-4, 4, (3, 4, 5)).astype(np.float32)
    x[0, 0, :3] = [-20.0, 25.0, 0.3]  # saturating tails
    _pair(ours, theirs, x, torch, atol=2e-5)


def test_activation_reprs_with_inplace_match_torch(torch):
    for name in ["ReLU", "ReLU6", "SELU", "SiLU", "Mish", "LeakyReLU", "ELU"]:
        assert repr(getattr(nn, name)(inplace=True)) == repr(getattr(torch.nn, name)(inplace=True))


def test_prelu_weight_is_a_parameter_in_the_state_dict(torch):
    ours, theirs = nn.PReLU(3), torch.nn.PReLU(3)
    assert list(ours.state_dict()) == list(theirs.state_dict()) == ["weight"]
    np.testing.assert_allclose(ours.weight.array, theirs.weight.detach().numpy())
    with pytest.raises(ValueError, match="3 slopes need an input with 3 channels"):
        ours(dw.ones(2, 4))


# ------------------------------------------------------------------------------------ dropout
def test_dropout_eval_is_identity_and_matches_torch(torch):
    x = np.random.default_rng(0).standard_normal((4, 6)).astype(np.float32)
    for cls in ["Dropout", "Dropout1d", "Dropout2d", "AlphaDropout"]:
        ours, theirs = getattr(nn, cls)(0.4).eval(), getattr(torch.nn, cls)(0.4).eval()
        assert repr(ours) == repr(theirs)
        shape = (2, 2, 6) if cls != "Dropout2d" else (2, 2, 2, 3)
        y = _pair(ours, theirs, x.reshape(shape), torch)
        np.testing.assert_array_equal(y.detach().numpy(), x.reshape(shape))


def test_dropout_training_statistics_and_gradient():
    p = 0.3
    layer = nn.Dropout(p)
    x = dw.ones(200, 500, requires_grad=True)
    y = layer(x)
    out = y.detach().numpy()
    zero_share = (out == 0).mean()
    assert abs(zero_share - p) < 0.01
    kept = out[out != 0]
    np.testing.assert_allclose(kept, 1.0 / (1.0 - p), rtol=1e-6)  # inverted dropout scaling
    assert abs(out.mean() - 1.0) < 0.01  # the mean is preserved
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), out)  # gradient flows through survivors only, scaled
    assert y.dtype == dw.float32


def test_dropout_is_reproducible_under_manual_seed_and_varies_otherwise():
    x = dw.ones(50, 50)
    layer = nn.Dropout(0.5)
    dw.manual_seed(7)
    a = layer(x).numpy()
    b = layer(x).numpy()
    dw.manual_seed(7)
    np.testing.assert_array_equal(layer(x).numpy(), a)
    assert not np.array_equal(a, b)


def test_dropout_edge_probabilities_and_validation():
    x = dw.ones(10, 10, requires_grad=True)
    assert F.dropout(x, 0.0) is x
    assert float(F.dropout(x, 1.0).abs().sum()) == 0.0
    assert F.dropout(x, 0.5, training=False) is x
    for bad in (-0.1, 1.5, "0.5", True):
        with pytest.raises(ValueError, match="between 0 and 1"):
            nn.Dropout(bad)
    with pytest.raises(TypeError, match="floating-point"):
        F.dropout(dw.tensor([1, 2]), 0.5)


def test_dropout2d_and_1d_drop_whole_channels():
    x = dw.ones(64, 32, 4, 5)
    y = nn.Dropout2d(0.5)(x).numpy()
    per_channel = y.reshape(64, 32, -1)
    assert np.all((per_channel == 0).all(-1) | (per_channel == 2.0).all(-1))  # each map all-or-nothing
    assert abs((per_channel[..., 0] == 0).mean() - 0.5) < 0.05
    z = nn.Dropout1d(0.25)(dw.ones(40, 50, 7)).numpy()
    assert np.all((z == 0).all(-1) | np.isclose(z, 1 / 0.75).all(-1))
    unbatched = nn.Dropout1d(0.5)(dw.ones(30, 7)).numpy()  # (C, L)
    assert np.all((unbatched == 0).all(-1) | (unbatched == 2.0).all(-1))
    with pytest.raises(ValueError, match="dropout2d: expected a 3-D .* or 4-D"):
        dw.nn.functional.dropout2d(dw.ones(2, 3))
    with pytest.warns(UserWarning, match="2-D input"):  # the layer warns instead, as PyTorch's does
        nn.Dropout2d()(dw.ones(2, 3))


def test_alpha_dropout_keeps_selu_statistics():
    x = dw.randn(400, 500)
    y = nn.AlphaDropout(0.2)(x).numpy()
    assert abs(y.mean()) < 0.02 and abs(y.std() - 1.0) < 0.02


# ---------------------------------------------------------------------------------- embedding
@pytest.mark.parametrize("padding_idx", [None, 0, 3, -1])
def test_embedding_matches_torch_with_repeated_indices(torch, padding_idx):
    ours, theirs = nn.Embedding(7, 4, padding_idx=padding_idx), torch.nn.Embedding(7, 4, padding_idx=padding_idx)
    assert repr(ours) == repr(theirs)
    ids = np.array([[0, 3, 3, 6], [3, 1, 0, 3]], dtype=np.int64)  # repeats accumulate
    _pair(ours, theirs, ids, torch, int_input=True)
    if padding_idx is not None:
        row = padding_idx % 7
        assert np.all(ours.weight.grad.numpy()[row] == 0)
        assert np.all(nn.Embedding(7, 4, padding_idx=padding_idx).weight.array[row] == 0)  # starts at zero


def test_embedding_scale_grad_by_freq_matches_torch(torch):
    ours, theirs = nn.Embedding(5, 3, scale_grad_by_freq=True), torch.nn.Embedding(5, 3, scale_grad_by_freq=True)
    _pair(ours, theirs, np.array([1, 1, 1, 4, 2], dtype=np.int64), torch, int_input=True)


def test_embedding_init_shapes_and_errors():
    emb = nn.Embedding(1000, 64)
    w = emb.weight.array
    assert w.shape == (1000, 64) and w.dtype == np.float32
    assert abs(w.mean()) < 0.01 and abs(w.std() - 1.0) < 0.01  # N(0, 1)
    assert emb(dw.tensor([[1, 2, 3]])).shape == (1, 3, 64)
    with pytest.raises(IndexError, match="index 1000 is out of range for an embedding of 1000 rows"):
        emb(dw.tensor([0, 1000]))
    with pytest.raises(TypeError, match="integer"):
        emb(dw.tensor([0.0, 1.0]))
    with pytest.raises(NotImplementedError, match="max_norm"):
        nn.Embedding(4, 2, max_norm=1.0)
    with pytest.raises(ValueError, match="padding_idx 5"):
        nn.Embedding(4, 2, padding_idx=5)
    pre = nn.Embedding.from_pretrained(dw.tensor([[1.0, 2.0], [3.0, 4.0]]))
    assert not pre.weight.requires_grad and pre(dw.tensor([1])).tolist() == [[3.0, 4.0]]


def test_embedding_functional_gradcheck():
    w = dw.tensor(np.random.default_rng(0).standard_normal((5, 3)), dtype=dw.float64, requires_grad=True)
    ids = dw.tensor([[0, 2, 2], [4, 0, 1]])
    gradcheck(lambda w: F.embedding(ids, w), (w,))  # (the padding row is exempt from gradients by design)


# ------------------------------------------------------------------------------ shape layers
def test_flatten_unflatten_identity_match_torch(torch):
    x = np.random.default_rng(0).standard_normal((2, 3, 4, 5)).astype(np.float32)
    for ours, theirs in [
        (nn.Flatten(), torch.nn.Flatten()), (nn.Flatten(0, 2), torch.nn.Flatten(0, 2)),
        (nn.Flatten(2), torch.nn.Flatten(2)), (nn.Identity(), torch.nn.Identity()),
    ]:
        assert repr(ours) == repr(theirs)
        _pair(ours, theirs, x, torch)
    ours, theirs = nn.Unflatten(1, (2, 6)), torch.nn.Unflatten(1, (2, 6))
    assert repr(ours) == repr(theirs)
    _pair(ours, theirs, x.reshape(2, 12, 5), torch)
    with pytest.raises(TypeError, match="tuple of ints"):
        nn.Unflatten(1, 6)


# ------------------------------------------------------------------------------- F namespace
def test_functional_namespace_matches_torch(torch):
    tF = torch.nn.functional
    x = np.random.default_rng(0).standard_normal((4, 6)).astype(np.float32)
    xd, xt = dw.tensor(x), torch.tensor(x)
    for name, args in [
        ("relu", ()), ("leaky_relu", (0.1,)), ("elu", ()), ("gelu", ()), ("silu", ()), ("softplus", ()),
        ("sigmoid", ()), ("tanh", ()), ("softmax", (1,)), ("log_softmax", (0,)), ("hardtanh", ()),
        ("relu6", ()), ("selu", ()), ("celu", ()), ("mish", ()), ("softsign", ()), ("hardsigmoid", ()),
        ("hardswish", ()), ("logsigmoid", ()), ("softmin", (1,)), ("glu", ()),
    ]:
        got = getattr(F, name)(xd, *args).numpy()
        want = getattr(tF, name)(xt, *args).numpy()
        np.testing.assert_allclose(got, want, atol=1e-5, rtol=1e-5, err_msg=name)
    np.testing.assert_array_equal(
        F.one_hot(dw.tensor([0, 2]), 3).numpy(), tF.one_hot(torch.tensor([0, 2]), 3).numpy()
    )
    np.testing.assert_allclose(
        F.pad(xd, (1, 2)).numpy(), tF.pad(xt, (1, 2)).numpy()
    )
    w = np.ones((3, 6), np.float32)
    np.testing.assert_allclose(F.linear(xd, dw.tensor(w)).numpy(), tF.linear(xt, torch.tensor(w)).numpy(), rtol=1e-6)
    for name in ["mse_loss", "l1_loss", "smooth_l1_loss", "huber_loss", "cross_entropy", "nll_loss",
                 "binary_cross_entropy", "binary_cross_entropy_with_logits", "kl_div", "batch_norm",
                 "layer_norm", "group_norm", "dropout", "dropout2d", "embedding"]:
        assert callable(getattr(F, name)), name


def test_dropout_and_selu_gradchecks():
    x = dw.tensor(np.random.default_rng(0).standard_normal((3, 4)), dtype=dw.float64, requires_grad=True)
    gradcheck(lambda x: F.selu(x) + F.mish(x) + F.hardswish(x * 0.3), (x,))
    dw.manual_seed(5)
    mask = (F.dropout(dw.ones(3, 4, dtype=dw.float64), 0.5) != 0).numpy()

    def fn(x):
        dw.manual_seed(5)  # the same mask at every evaluation
        return F.dropout(x, 0.5)

    gradcheck(fn, (x,))
    assert mask.any() and not mask.all()
