"""Losses: values and gradients against PyTorch, float64 gradchecks, stability and error messages."""

import numpy as np
import pytest

import deepwise as dw
from deepwise.autograd import gradcheck
from deepwise.nn.layers import loss as layers
from deepwise.ops.loss import (
    binary_cross_entropy,
    binary_cross_entropy_with_logits,
    cross_entropy,
    huber_loss,
    kl_div,
    l1_loss,
    mse_loss,
    nll_loss,
    smooth_l1_loss,
)

REDUCTIONS = ["mean", "sum", "none"]


@pytest.fixture(scope="module")
def torch():
    return pytest.importorskip("torch")


def rng(seed=0):
    return np.random.default_rng(seed)


def randn(*shape, seed=0):
    return rng(seed).standard_normal(shape).astype(np.float32)


def check(torch, dw_fn, torch_fn, arrays, grads=(0,), atol=1e-5, rtol=1e-5):
    """Run both frameworks on the same arrays; compare the output and the gradients of ``grads``
    (indices into ``arrays``) for a random upstream gradient."""
    ours = [dw.tensor(a, requires_grad=i in grads) for i, a in enumerate(arrays)]
    theirs = [torch.tensor(a, requires_grad=i in grads) for i, a in enumerate(arrays)]
    out, ref = dw_fn(*ours), torch_fn(*theirs)
    assert out.shape == tuple(ref.shape)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out.detach().numpy(), ref.detach().numpy(), rtol=rtol, atol=atol)
    up = randn(*ref.shape, seed=7)
    (out * dw.tensor(up)).sum().backward()
    (ref * torch.tensor(up)).sum().backward()
    for i in grads:
        assert ours[i].grad is not None, f"no gradient for input {i}"
        assert ours[i].grad.dtype == np.float32
        np.testing.assert_allclose(ours[i].grad.numpy(), theirs[i].grad.numpy(), rtol=rtol, atol=atol,
                                   err_msg=f"gradient of input {i}")
    return out


# -------------------------------------------------------------------------------- regression
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("name,kw", [("mse_loss", {}), ("l1_loss", {}), ("smooth_l1_loss", {"beta": 0.5}),
                                     ("smooth_l1_loss", {"beta": 0.0}), ("huber_loss", {"delta": 0.7})])
def test_regression_losses_match_torch(torch, name, kw, reduction):
    ours = {"mse_loss": mse_loss, "l1_loss": l1_loss, "smooth_l1_loss": smooth_l1_loss,
            "huber_loss": huber_loss}[name]
    x, y = randn(4, 3, 5), randn(4, 3, 5, seed=1)
    x[0, 0, 0] = y[0, 0, 0]  # d = 0: the subgradient choice matters for L1
    check(torch, lambda a, b: ours(a, b, reduction=reduction, **kw),
          lambda a, b: getattr(torch.nn.functional, name)(a, b, reduction=reduction, **kw), [x, y], grads=(0, 1))


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("name", ["mse_loss", "l1_loss", "huber_loss"])
def test_weighted_regression_losses_match_torch(torch, name, reduction):
    ours = {"mse_loss": mse_loss, "l1_loss": l1_loss, "huber_loss": huber_loss}[name]
    x, y = randn(6, 4), randn(6, 4, seed=1) * 2
    w = rng(2).random((6, 4)).astype(np.float32)
    check(torch, lambda a, b: ours(a, b, reduction=reduction, weight=dw.tensor(w)),
          lambda a, b: getattr(torch.nn.functional, name)(a, b, reduction=reduction, weight=torch.tensor(w)),
          [x, y], grads=(0, 1))


def test_regression_broadcast_target_warns_and_matches(torch):
    x, y = randn(4, 3), randn(1, 3, seed=1)
    with pytest.warns(UserWarning, match="broadcast"):
        check(torch, lambda a, b: mse_loss(a, b), lambda a, b: torch.nn.functional.mse_loss(a, b), [x, y],
              grads=(0, 1))


# ---------------------------------------------------------------------------- cross-entropy
def _ce(torch, reduction, weight, ignore_index, smoothing):
    def ours(a, t):
        return cross_entropy(a, t, weight=None if weight is None else dw.tensor(weight), ignore_index=ignore_index,
                             reduction=reduction, label_smoothing=smoothing)

    def ref(a, t):
        return torch.nn.functional.cross_entropy(a, t, weight=None if weight is None else torch.tensor(weight),
                                                 ignore_index=ignore_index, reduction=reduction,
                                                 label_smoothing=smoothing)

    return ours, ref


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("smoothing", [0.0, 0.15])
@pytest.mark.parametrize("shape", [(6, 5), (3, 5, 4, 2), (5,)])
def test_cross_entropy_class_indices_match_torch(torch, reduction, weighted, smoothing, shape):
    x = randn(*shape)
    tshape = () if len(shape) == 1 else (shape[0],) + shape[2:]
    t = rng(3).integers(0, 5, tshape)
    if t.ndim:
        t.reshape(-1)[::4] = -100  # some ignored positions
    w = rng(4).random(5).astype(np.float32) + 0.5 if weighted else None
    ours, ref = _ce(torch, reduction, w, -100, smoothing)
    check(torch, ours, ref, [x, t])


def test_cross_entropy_custom_ignore_index(torch):
    x, t = randn(8, 4), rng(1).integers(0, 4, 8)
    w = np.array([1.0, 2.0, 0.5, 3.0], np.float32)
    for smoothing in (0.0, 0.2):
        ours, ref = _ce(torch, "mean", w, 2, smoothing)
        check(torch, ours, ref, [x, t])


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("smoothing", [0.0, 0.2])
@pytest.mark.parametrize("shape", [(6, 5), (3, 5, 4)])
def test_cross_entropy_probabilities_match_torch(torch, reduction, weighted, smoothing, shape):
    x = randn(*shape)
    p = rng(5).random(shape).astype(np.float32)
    p /= p.sum(axis=1, keepdims=True)
    w = rng(4).random(5).astype(np.float32) + 0.5 if weighted else None
    ours, ref = _ce(torch, reduction, w, -100, smoothing)
    check(torch, ours, ref, [x, p], grads=(0, 1))


def test_cross_entropy_huge_logits_are_finite_and_match_torch(torch):
    x = randn(8, 10) * 1e8
    t = rng(1).integers(0, 10, 8)
    out = check(torch, lambda a, b: cross_entropy(a, b), lambda a, b: torch.nn.functional.cross_entropy(a, b),
                [x, t], rtol=1e-6, atol=1e-3)
    assert np.isfinite(out.item()) and out.item() > 1e6


def test_cross_entropy_all_ignored_mean_is_nan_like_torch(torch):
    x, t = randn(3, 4), np.full(3, -100)
    out = cross_entropy(dw.tensor(x), dw.tensor(t))
    ref = torch.nn.functional.cross_entropy(torch.tensor(x), torch.tensor(t))
    assert np.isnan(out.item()) and np.isnan(ref.item())
    assert cross_entropy(dw.tensor(x), dw.tensor(t), reduction="sum").item() == 0.0


def test_cross_entropy_is_one_fused_node():
    x = dw.tensor(randn(4, 3), requires_grad=True)
    out = cross_entropy(x, dw.tensor([0, 1, 2, 1]))
    assert out.grad_fn.name == "CrossEntropy"
    assert out.grad_fn.inputs[0] is x


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("shape", [(6, 5), (3, 5, 4)])
def test_nll_loss_matches_torch(torch, reduction, weighted, shape):
    x = randn(*shape)
    t = rng(3).integers(0, 5, (shape[0],) + shape[2:])
    t.reshape(-1)[1::3] = 4 if weighted else -100
    w = rng(4).random(5).astype(np.float32) + 0.5 if weighted else None
    ii = 4 if weighted else -100
    check(torch,
          lambda a, b: nll_loss(dw.log_softmax(a, 1), b, weight=None if w is None else dw.tensor(w), ignore_index=ii,
                                reduction=reduction),
          lambda a, b: torch.nn.functional.nll_loss(torch.log_softmax(a, 1), b, ignore_index=ii, reduction=reduction,
                                                    weight=None if w is None else torch.tensor(w)),
          [x, t])


# ----------------------------------------------------------------------------------- binary
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("weighted", [False, True])
def test_binary_cross_entropy_matches_torch_including_0_and_1(torch, reduction, weighted):
    p = rng(1).random((5, 3)).astype(np.float32)
    y = rng(2).random((5, 3)).astype(np.float32)
    p[0], y[0] = [0.0, 1.0, 0.0], [0.0, 1.0, 1.0]  # exact 0/1 probabilities, one of them wrong
    w = rng(3).random(3).astype(np.float32) if weighted else None

    def ours(a, b):
        return binary_cross_entropy(a, b, weight=None if w is None else dw.tensor(w), reduction=reduction)

    def ref(a, b):
        return torch.nn.functional.binary_cross_entropy(a, b, weight=None if w is None else torch.tensor(w),
                                                        reduction=reduction)

    out = check(torch, ours, ref, [p, y], grads=(0,), rtol=1e-5, atol=1e-4)
    assert np.all(np.isfinite(out.detach().numpy()))
    # target gradient: log(1-p) - log(p) with the forward's clamps (finite at p = 0 or 1, where
    # PyTorch's unclamped logs give inf); equal to PyTorch's inside (0, 1)
    check(torch, ours, ref, [p[1:], y[1:]], grads=(0, 1))
    yt = dw.tensor(y, requires_grad=True)
    binary_cross_entropy(dw.tensor(p), yt, reduction="sum").backward()
    np.testing.assert_allclose(yt.grad.numpy()[0], [100.0, -100.0, 100.0], rtol=1e-6)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("pos", [False, True])
@pytest.mark.parametrize("weighted", [False, True])
def test_bce_with_logits_matches_torch(torch, reduction, pos, weighted):
    x = randn(6, 4) * 4
    x[0] = [100.0, -100.0, 30.0, -30.0]  # far in the tails: still finite
    y = rng(2).random((6, 4)).astype(np.float32)
    pw = rng(3).random(4).astype(np.float32) * 3 if pos else None
    w = rng(4).random((6, 1)).astype(np.float32) if weighted else None
    out = check(torch,
                lambda a, b: binary_cross_entropy_with_logits(
                    a, b, weight=None if w is None else dw.tensor(w), reduction=reduction,
                    pos_weight=None if pw is None else dw.tensor(pw)),
                lambda a, b: torch.nn.functional.binary_cross_entropy_with_logits(
                    a, b, weight=None if w is None else torch.tensor(w), reduction=reduction,
                    pos_weight=None if pw is None else torch.tensor(pw)),
                [x, y], grads=(0, 1), atol=2e-5)
    assert np.all(np.isfinite(out.detach().numpy()))


# -------------------------------------------------------------------------------------- KL
@pytest.mark.filterwarnings("ignore:reduction. 'mean' divides")
@pytest.mark.parametrize("reduction", REDUCTIONS + ["batchmean"])
@pytest.mark.parametrize("log_target", [False, True])
def test_kl_div_matches_torch(torch, reduction, log_target):
    x = np.log(rng(1).dirichlet(np.ones(5), 4)).astype(np.float32)
    q = rng(2).dirichlet(np.ones(5), 4).astype(np.float32)
    t = np.log(q) if log_target else q
    check(torch, lambda a, b: kl_div(a, b, reduction=reduction, log_target=log_target),
          lambda a, b: torch.nn.functional.kl_div(a, b, reduction=reduction, log_target=log_target),
          [x, t.astype(np.float32)], grads=(0, 1))


def test_kl_div_zero_target_contributes_zero(torch):
    x = np.log(np.full((2, 3), 1 / 3, np.float32))
    t = np.array([[0.0, 0.5, 0.5], [1.0, 0.0, 0.0]], np.float32)
    check(torch, lambda a, b: kl_div(a, b, reduction="sum"),
          lambda a, b: torch.nn.functional.kl_div(a, b, reduction="sum"), [x, t])


# ------------------------------------------------------------------------------- gradchecks
def _f64(*shape, seed=0, requires_grad=True):
    return dw.tensor(rng(seed).standard_normal(shape), dtype=dw.float64, requires_grad=requires_grad)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_gradcheck_regression_and_kl(reduction):
    x, y = _f64(3, 4), _f64(3, 4, seed=1)
    w = dw.tensor(rng(2).random((3, 4)), dtype=dw.float64)
    gradcheck(lambda a, b: mse_loss(a, b, reduction=reduction, weight=w), [x, y])
    gradcheck(lambda a, b: l1_loss(a, b, reduction=reduction), [x, y])
    gradcheck(lambda a, b: smooth_l1_loss(a, b, reduction=reduction, beta=0.8), [x, y])
    gradcheck(lambda a, b: huber_loss(a, b, reduction=reduction, delta=0.6, weight=w), [x, y])
    q = dw.tensor(rng(3).dirichlet(np.ones(4), 3), dtype=dw.float64, requires_grad=True)
    gradcheck(lambda a, b: kl_div(a, b, reduction=reduction), [x, q])
    gradcheck(lambda a, b: kl_div(a, b, reduction=reduction, log_target=True), [x, _f64(3, 4, seed=4)])


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_gradcheck_classification(reduction):
    x = _f64(4, 3, 2)
    t = dw.tensor([[0, 2], [1, -100], [2, 2], [1, 0]])
    w = dw.tensor([0.5, 2.0, 1.5], dtype=dw.float64)
    gradcheck(lambda a: cross_entropy(a, t, weight=w, reduction=reduction, label_smoothing=0.1), [x])
    gradcheck(lambda a: nll_loss(a, t, weight=w, reduction=reduction), [x])
    probs = dw.tensor(rng(5).dirichlet(np.ones(3), (4, 2)).transpose(0, 2, 1), dtype=dw.float64,
                      requires_grad=True)
    gradcheck(lambda a, b: cross_entropy(a, b, weight=w, reduction=reduction, label_smoothing=0.2), [x, probs])
    p = dw.tensor(rng(6).uniform(0.05, 0.95, (3, 4)), dtype=dw.float64, requires_grad=True)
    y = dw.tensor(rng(7).random((3, 4)), dtype=dw.float64, requires_grad=True)
    gradcheck(lambda a, b: binary_cross_entropy(a, b, reduction=reduction), [p, y])
    pw = dw.tensor([0.5, 1.0, 2.0, 3.0], dtype=dw.float64)
    gradcheck(lambda a, b: binary_cross_entropy_with_logits(a, b, reduction=reduction, pos_weight=pw),
              [_f64(3, 4), y])


# -------------------------------------------------------------------------------- dtypes
def test_float32_with_int64_labels_stays_float32():
    x = dw.tensor(randn(4, 3), requires_grad=True)
    t = dw.tensor([0, 1, 2, 0])
    assert t.dtype == np.int64
    for fn in (cross_entropy, lambda a, b: nll_loss(a.log_softmax(1), b)):
        out = fn(x, t)
        assert out.dtype == np.float32
        out.backward()
        assert x.grad.dtype == np.float32
        x.grad = None
    assert mse_loss(x, dw.tensor([[1, 2, 3]] * 4)).dtype == np.float32


# ------------------------------------------------------------------------------------ errors
def test_error_messages():
    x = dw.tensor(randn(4, 5))
    with pytest.raises(ValueError, match=r"cross_entropy.*\(3,\).*\(4, 5\).*\(4,\).*batch 3 != input batch 4"):
        cross_entropy(x, dw.tensor([0, 1, 2]))
    with pytest.raises(IndexError, match=r"cross_entropy: target class 7 is out of range for 5 classes"):
        cross_entropy(x, dw.tensor([0, 7, 2, 1]))
    with pytest.raises(IndexError, match=r"nll_loss: target class -3 is out of range for 5 classes"):
        nll_loss(x, dw.tensor([0, -3, 2, 1]))
    with pytest.raises(ValueError, match=r"cross_entropy: a floating-point target .*\(4, 5\).*\(4,\).*long"):
        cross_entropy(x, dw.tensor([0.0, 1.0, 2.0, 1.0]))
    with pytest.raises(ValueError, match=r"cross_entropy: weight .*5 classes.*\(5,\), got \(4,\)"):
        cross_entropy(x, dw.tensor([0, 1, 2, 1]), weight=dw.ones(4))
    with pytest.raises(ValueError, match=r"cross_entropy: reduction must be one of"):
        cross_entropy(x, dw.tensor([0, 1, 2, 1]), reduction="avg")
    with pytest.raises(ValueError, match=r"label_smoothing must be in \[0, 1\]"):
        cross_entropy(x, dw.tensor([0, 1, 2, 1]), label_smoothing=1.5)
    with pytest.raises(TypeError, match=r"nll_loss: target must hold integer class indices"):
        nll_loss(x, dw.tensor(randn(4)))
    with pytest.raises(ValueError, match=r"binary_cross_entropy: input must hold probabilities in \[0, 1\]"):
        binary_cross_entropy(dw.tensor([0.5, 1.5]), dw.tensor([0.0, 1.0]))
    with pytest.raises(ValueError, match=r"binary_cross_entropy_with_logits: target of shape \(4,\) .*\(4, 1\)"):
        binary_cross_entropy_with_logits(dw.tensor(randn(4, 1)), dw.tensor(randn(4)))
    with pytest.raises(ValueError, match=r"pos_weight of shape \(3,\) does not broadcast.*\(4, 5\)"):
        binary_cross_entropy_with_logits(x, x, pos_weight=dw.ones(3))
    with pytest.raises(ValueError, match=r"kl_div: reduction must be one of .*'batchmean'"):
        kl_div(x, x, reduction="batch")


# ----------------------------------------------------------------------------------- modules
def test_loss_modules_match_functional_and_hold_buffers(torch):
    x, p = randn(6, 4), rng(1).random((6, 4)).astype(np.float32)
    t = rng(2).integers(0, 4, 6)
    w = np.array([1.0, 2.0, 0.5, 1.5], np.float32)
    cases = [
        (layers.MSELoss(reduction="sum"), torch.nn.MSELoss(reduction="sum"), x, p),
        (layers.L1Loss(), torch.nn.L1Loss(), x, p),
        (layers.SmoothL1Loss(beta=0.3), torch.nn.SmoothL1Loss(beta=0.3), x, p),
        (layers.HuberLoss(delta=0.4), torch.nn.HuberLoss(delta=0.4), x, p),
        (layers.CrossEntropyLoss(weight=dw.tensor(w), label_smoothing=0.1, ignore_index=3),
         torch.nn.CrossEntropyLoss(weight=torch.tensor(w), label_smoothing=0.1, ignore_index=3), x, t),
        (layers.NLLLoss(weight=dw.tensor(w)), torch.nn.NLLLoss(weight=torch.tensor(w)), x, t),
        (layers.BCELoss(weight=dw.tensor(w)), torch.nn.BCELoss(weight=torch.tensor(w)), p, p[::-1].copy()),
        (layers.BCEWithLogitsLoss(pos_weight=dw.tensor(w)), torch.nn.BCEWithLogitsLoss(pos_weight=torch.tensor(w)),
         x, p),
        (layers.KLDivLoss(reduction="batchmean"), torch.nn.KLDivLoss(reduction="batchmean"), x, p),
    ]
    for ours, theirs, a, b in cases:
        check(torch, ours, theirs, [a, b])
        sd, ref_sd = ours.state_dict(), theirs.state_dict()
        assert list(sd) == list(ref_sd), type(ours).__name__
        for k in sd:
            np.testing.assert_array_equal(sd[k].numpy(), ref_sd[k].numpy())
            assert sd[k].dtype == np.float32


def test_loss_module_reprs(torch):
    for name in ["MSELoss", "L1Loss", "SmoothL1Loss", "HuberLoss", "CrossEntropyLoss", "NLLLoss", "BCELoss",
                 "BCEWithLogitsLoss", "KLDivLoss"]:
        assert repr(getattr(layers, name)()) == repr(getattr(torch.nn, name)())
    assert repr(layers.CrossEntropyLoss(label_smoothing=0.1)) == "CrossEntropyLoss(label_smoothing=0.1)"
    assert repr(layers.KLDivLoss(reduction="batchmean", log_target=True)) == \
        "KLDivLoss(reduction='batchmean', log_target=True)"
    with pytest.raises(ValueError, match=r"MSELoss: reduction must be one of"):
        layers.MSELoss(reduction="batchmean")
    with pytest.warns(UserWarning, match="reduction='sum'"):
        assert layers.L1Loss(size_average=False).reduction == "sum"
