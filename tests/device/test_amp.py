"""Mixed precision: autocast's per-op dtypes against PyTorch's policy, GradScaler's dynamic loss
scaling (skipped steps, halving, growth, state_dict), float16 reductions accumulated in float32."""

from __future__ import annotations

import numpy as np
import pytest

import deepwise as dw
import deepwise.nn.functional as F
from deepwise import backend

rng = np.random.default_rng(0)
X = rng.standard_normal((4, 8)).astype(np.float32)
W = rng.standard_normal((8, 8)).astype(np.float32)
IMG = rng.standard_normal((2, 3, 8, 8)).astype(np.float32)
K = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
T = np.array([0, 3, 1, 7])
P = rng.uniform(0.1, 0.9, (4, 8)).astype(np.float32)

# name -> a function of a namespace (F-like module, tensor maker), the same code for both frameworks
CASES = {
    "matmul": lambda f, t: t(X) @ t(W),
    "linear": lambda f, t: f.linear(t(X), t(W), t(W[0])),
    "conv2d": lambda f, t: f.conv2d(t(IMG), t(K), padding=1),
    "conv1d": lambda f, t: f.conv1d(t(IMG[:, :, 0]), t(K[:, :, 0])),
    "conv_transpose2d": lambda f, t: f.conv_transpose2d(t(IMG), t(K.transpose(1, 0, 2, 3))),
    "softmax": lambda f, t: f.softmax(t(X), dim=1),
    "log_softmax": lambda f, t: f.log_softmax(t(X), dim=1),
    "cross_entropy": lambda f, t: f.cross_entropy(t(X), t(T)),
    "nll_loss": lambda f, t: f.nll_loss(f.log_softmax(t(X), dim=1), t(T)),
    "mse_loss": lambda f, t: f.mse_loss(t(X), t(P)),
    "l1_loss": lambda f, t: f.l1_loss(t(X), t(P)),
    "smooth_l1_loss": lambda f, t: f.smooth_l1_loss(t(X), t(P)),
    "huber_loss": lambda f, t: f.huber_loss(t(X), t(P)),
    "bce": lambda f, t: f.binary_cross_entropy(t(P), t(P[::-1].copy())),
    "bce_with_logits": lambda f, t: f.binary_cross_entropy_with_logits(t(X), t(P)),
    "kl_div": lambda f, t: f.kl_div(f.log_softmax(t(X), dim=1), t(P), reduction="batchmean"),
    "layer_norm": lambda f, t: f.layer_norm(t(X), (8,)),
    "group_norm": lambda f, t: f.group_norm(t(IMG), 3),
    "relu": lambda f, t: f.relu(t(X)),
    "gelu": lambda f, t: f.gelu(t(X)),
    "sum": lambda f, t: t(X).sum(),
    "mean": lambda f, t: t(X).mean(),
    "exp": lambda f, t: t(X).exp(),
    "max_pool2d": lambda f, t: f.max_pool2d(t(IMG), 2),
    "linear_then_loss": lambda f, t: f.cross_entropy(f.linear(t(X), t(W)), t(T)),
    "prelu": lambda f, t: f.prelu(t(X), t(np.array([0.25], np.float32))),
    "sdpa": lambda f, t: f.scaled_dot_product_attention(t(X[None]), t(W[None, :4]), t(W[None, 4:])),
}


def _dtype(t):
    return str(t.dtype).replace("torch.", "")


@pytest.mark.parametrize("name", list(CASES))
@pytest.mark.parametrize("low, input_dtype", [("float16", "float32"), ("float16", "float16"),
                                              ("bfloat16", "float32"), ("bfloat16", "bfloat16"),
                                              ("bfloat16", "float16")])
def test_cpu_autocast_picks_each_ops_dtype_as_pytorch_does(torch, name, low, input_dtype):
    """Under autocast("cpu", float16 or bfloat16): the same output dtype as PyTorch's CPU autocast,
    for float32 inputs and low-precision ones, and values within low-precision rounding of PyTorch's."""
    import torch.nn.functional as TF

    if "bfloat16" in (low, input_dtype):
        pytest.importorskip("ml_dtypes")

    def t_dw(a):
        a = np.asarray(a)
        return dw.tensor(a) if a.dtype.kind != "f" else dw.tensor(a).to(getattr(dw, input_dtype))

    def t_torch(a):
        a = np.asarray(a)
        return torch.tensor(a) if a.dtype.kind != "f" else torch.tensor(a).to(getattr(torch, input_dtype))

    with dw.autocast("cpu", dtype=getattr(dw, low)):
        ours = CASES[name](F, t_dw)
    with torch.autocast("cpu", dtype=getattr(torch, low)):
        theirs = CASES[name](TF, t_torch)
    assert str(ours.dtype) == _dtype(theirs), f"{name}: deepwise {ours.dtype}, torch {_dtype(theirs)}"
    np.testing.assert_allclose(ours.float().numpy(), theirs.float().numpy(), rtol=2e-2, atol=2e-2)
    assert not dw.amp.is_autocast_enabled("cpu")


def test_autocast_leaves_float64_other_devices_and_disabled_blocks_alone():
    x64, w64 = dw.tensor(X, dtype=dw.float64), dw.tensor(W, dtype=dw.float64)
    x, w = dw.tensor(X), dw.tensor(W)
    with dw.autocast("cpu", dtype=dw.float16):
        assert (x64 @ w64).dtype == dw.float64  # as in PyTorch: float64 is never cast
        assert (x @ w).dtype == dw.float16
        with dw.autocast("cpu", enabled=False):
            assert (x @ w).dtype == dw.float32 and not dw.amp.is_autocast_enabled("cpu")
        assert dw.amp.is_autocast_enabled("cpu") and dw.amp.get_autocast_dtype("cpu") == dw.float16
    with dw.autocast("cuda"):  # another device type: CPU tensors are untouched
        assert (x @ w).dtype == dw.float32

    @dw.autocast("cpu", dtype=dw.float16)
    def product(a, b):
        return a @ b

    assert product(x, w).dtype == dw.float16 and (x @ w).dtype == dw.float32


def test_the_default_low_dtype_is_pytorchs_bfloat16_on_cpu_and_float16_on_cuda(torch):
    pytest.importorskip("ml_dtypes")
    assert str(dw.autocast("cpu").fast_dtype) == str(torch.autocast("cpu").fast_dtype).replace("torch.", "")
    assert dw.autocast("cpu").fast_dtype == dw.bfloat16 and dw.autocast("cuda").fast_dtype == dw.float16
    assert dw.amp.get_autocast_dtype("cpu") == dw.bfloat16 and dw.amp.get_autocast_dtype("cuda") == dw.float16
    x, w = dw.tensor(X), dw.tensor(W)
    with dw.autocast("cpu"):
        assert (x @ w).dtype == dw.bfloat16 and dw.amp.get_autocast_dtype("cpu") == dw.bfloat16
        assert F.softmax(x @ w, dim=1).dtype == dw.bfloat16  # not on the CPU's float32 list, as in torch


def test_other_dtypes_and_bfloat16_without_ml_dtypes_are_refused_clearly(monkeypatch):
    monkeypatch.setattr(backend, "_bfloat16", [None])  # as if ml_dtypes were not installed
    with pytest.raises(TypeError, match=r'bfloat16 needs the ml_dtypes package.*deepwise\[bf16\]'):
        dw.autocast("cpu", dtype="bfloat16")
    with pytest.raises(TypeError, match=r'the CPU default dtype, bfloat16 needs.*dtype=dw.float16'):
        dw.autocast("cpu")
    assert dw.autocast("cpu", dtype=dw.float16).fast_dtype == dw.float16
    assert not dw.autocast("cpu", enabled=False).enabled  # a disabled block needs no low dtype
    monkeypatch.undo()
    with pytest.raises(TypeError, match="float16 or dw.bfloat16"):
        dw.autocast("cpu", dtype=dw.float32)
    with pytest.raises(ValueError, match="device"):
        dw.autocast("tpu")


@pytest.mark.parametrize("low", ["float16", "bfloat16"])
def test_gradients_reach_float32_parameters_in_float32(low):
    if low == "bfloat16":
        pytest.importorskip("ml_dtypes")
    w = dw.tensor(W, requires_grad=True)
    b = dw.zeros(8, requires_grad=True)
    with dw.autocast("cpu", dtype=getattr(dw, low)):
        logits = F.linear(dw.tensor(X), w, b)
        loss = F.cross_entropy(logits, dw.tensor(T))
    assert logits.dtype == getattr(dw, low) and loss.dtype == dw.float32
    loss.backward()
    assert w.grad.dtype == dw.float32 and b.grad.dtype == dw.float32
    ref_w = dw.tensor(W, requires_grad=True)
    F.cross_entropy(F.linear(dw.tensor(X), ref_w, dw.zeros(8)), dw.tensor(T)).backward()
    np.testing.assert_allclose(w.grad.numpy(), ref_w.grad.numpy(), rtol=2e-2, atol=2e-3)


# PyTorch's CUDA autocast lists (torch/csrc/autocast_mode.cpp) for the ops in CASES: lower_precision_fp
# gives float16; fp32 and fp32_set_opt_dtype give float32; the rest keep the input's dtype.
CUDA_FLOAT16 = {"matmul", "linear", "conv2d", "conv1d", "conv_transpose2d", "prelu", "sdpa"}
CUDA_FLOAT32 = {"softmax", "log_softmax", "cross_entropy", "nll_loss", "mse_loss", "l1_loss", "smooth_l1_loss",
                "huber_loss", "bce", "bce_with_logits", "kl_div", "layer_norm", "group_norm", "sum", "exp",
                "linear_then_loss"}


@pytest.mark.parametrize("name", list(CASES))
def test_cuda_autocast_follows_pytorchs_cuda_lists_on_the_double(name):
    def t16(a):
        a = np.asarray(a)
        return dw.tensor(a.astype(np.float16) if a.dtype.kind == "f" else a, device="cuda")

    with dw.autocast("cuda", dtype=dw.float16):
        out32 = CASES[name](F, lambda a: dw.tensor(a, device="cuda"))
        out16 = CASES[name](F, t16)
    assert out32.device.type == "cuda"
    want16 = "float16" if name in CUDA_FLOAT16 else "float32" if name in CUDA_FLOAT32 else "float16"
    want32 = "float16" if name in CUDA_FLOAT16 else "float32"
    assert (str(out32.dtype), str(out16.dtype)) == (want32, want16), name


def test_float16_sums_accumulate_in_float32():
    x = dw.tensor(np.array([2048.0] + [1.0] * 1000, np.float16))
    assert x.sum().dtype == dw.float16 and x.sum().item() == 3048.0  # float16 steps by 2 above 2048
    assert x.mean().item() == pytest.approx(3048 / 1001, rel=1e-3)
    y = dw.tensor(np.full(4096, 0.1, np.float16))
    assert y.var().item() == pytest.approx(0.0, abs=1e-6)


# ---------------------------------------------------------------------------------------- GradScaler
def _mlp(seed):
    dw.manual_seed(seed)
    return dw.nn.Sequential(dw.nn.Linear(8, 32), dw.nn.ReLU(), dw.nn.Linear(32, 4))


def _train(mixed, device="cpu", steps=40, low=None):
    model = _mlp(3).to(device)
    opt = dw.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    scaler = dw.amp.GradScaler(device)  # no growth in 40 steps: no overflow, no skipped step
    data = np.random.default_rng(5)
    xs = data.standard_normal((steps, 16, 8)).astype(np.float32)
    ys = (xs[:, :, :4].argmax(-1)).astype(np.int64)
    losses = []
    for x, y in zip(xs, ys):
        opt.zero_grad()
        with dw.autocast(device, dtype=low, enabled=mixed):
            loss = F.cross_entropy(model(dw.tensor(x, device=device)), dw.tensor(y, device=device))
        if mixed:
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
        else:
            loss.backward()
            opt.step()
        losses.append(loss.item())
    assert all(p.dtype == dw.float32 for p in model.parameters())
    return np.array(losses), scaler


@pytest.mark.parametrize("device, low", [("cpu", "float16"), ("cpu", "bfloat16"), ("cuda", "float16"),
                                         ("cuda", "bfloat16")])
def test_mixed_precision_training_with_gradscaler_matches_float32_training(device, low):
    """bfloat16 needs no loss scaling, but a GradScaler left in the loop works unchanged."""
    if low == "bfloat16":
        pytest.importorskip("ml_dtypes")
    full, _ = _train(False, device)
    mixed, scaler = _train(True, device, low=getattr(dw, low))
    assert full[-5:].mean() < 0.6 * full[:5].mean()  # it learns
    np.testing.assert_allclose(mixed, full, rtol=0.05, atol=0.02)
    assert scaler.get_scale() == 2.0**16 and scaler.state_dict()["_growth_tracker"] == 40  # none skipped


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning", "ignore:invalid value:RuntimeWarning")
def test_an_overflow_step_is_skipped_and_the_scale_halves(torch):
    model = _mlp(1)
    opt = dw.optim.SGD(model.parameters(), lr=0.1)
    scaler = dw.amp.GradScaler("cpu", init_scale=2.0**40, growth_interval=3)  # float16 grads overflow
    before = [p.detach().numpy().copy() for p in model.parameters()]
    with dw.autocast("cpu", dtype=dw.float16):
        loss = F.cross_entropy(model(dw.tensor(X)), dw.tensor(T % 4))
    scaler.scale(loss).backward()
    assert scaler.step(opt) is None
    for p, b in zip(model.parameters(), before):
        np.testing.assert_array_equal(p.detach().numpy(), b)
    scaler.update()
    assert scaler.get_scale() == 2.0**39
    # the same sequence of scales as PyTorch's GradScaler for the same finite/overflow pattern
    theirs = torch.amp.GradScaler("cpu", init_scale=8.0, growth_interval=3)
    ours = dw.amp.GradScaler("cpu", init_scale=8.0, growth_interval=3)
    w_t, w_d = torch.zeros(2, requires_grad=True), dw.zeros(2, requires_grad=True)
    o_t, o_d = torch.optim.SGD([w_t], lr=0.1), dw.optim.SGD([w_d], lr=0.1)
    scales = []
    for overflow in (False, False, False, True, False, False, False, False):
        g = [np.inf, 1.0] if overflow else [1.0, 2.0]
        theirs.scale(torch.tensor(1.0)), ours.scale(dw.tensor(1.0))  # torch's scaler wants a scale() first
        w_t.grad, w_d.grad = torch.tensor(g) * theirs.get_scale(), dw.tensor(g) * ours.get_scale()
        theirs.step(o_t), ours.step(o_d)
        theirs.update(), ours.update()
        scales.append((theirs.get_scale(), ours.get_scale()))
        np.testing.assert_allclose(w_d.detach().numpy(), w_t.detach().numpy(), rtol=1e-6)
    assert [a for a, _ in scales] == [b for _, b in scales]
    assert set(ours.state_dict()) == set(theirs.state_dict())
    assert ours.state_dict()["scale"] == theirs.state_dict()["scale"]
    assert ours.state_dict()["_growth_tracker"] == theirs.state_dict()["_growth_tracker"]


def test_gradscaler_state_dict_unscale_rules_and_disabled_passthrough():
    scaler = dw.amp.GradScaler("cpu", init_scale=1024.0, growth_interval=7)
    w = dw.ones(3, requires_grad=True)
    opt = dw.optim.SGD([w], lr=1.0)
    (scaler.scale(w.sum())).backward()
    assert w.grad.tolist() == [1024.0] * 3
    scaler.unscale_(opt)
    assert w.grad.tolist() == [1.0] * 3
    with pytest.raises(RuntimeError, match="already been called"):
        scaler.unscale_(opt)
    scaler.step(opt)
    scaler.update()
    assert w.tolist() == [0.0] * 3
    state = scaler.state_dict()
    assert state == {"scale": 1024.0, "growth_factor": 2.0, "backoff_factor": 0.5, "growth_interval": 7,
                     "_growth_tracker": 1}
    other = dw.amp.GradScaler("cpu")
    other.load_state_dict(state)
    assert other.state_dict() == state
    with pytest.raises(RuntimeError, match="no inf checks"):
        other.update()
    half = dw.tensor([2.0], dtype=dw.float16)
    scaled = dw.amp.GradScaler("cpu").scale(half)  # 2 * 65536 is beyond float16: PyTorch gives float32
    assert scaled.dtype == dw.float32 and scaled.item() == 2.0**17
    off = dw.amp.GradScaler("cpu", enabled=False)
    loss = w.sum()
    assert off.scale(loss) is loss and off.get_scale() == 1.0 and off.state_dict() == {}
    with pytest.raises(ValueError, match="backoff_factor"):
        dw.amp.GradScaler(backoff_factor=2.0)


def test_gradscaler_checks_device_gradients_with_one_read_per_device(double_only):
    from device import double

    w = dw.ones(4, device="cuda", requires_grad=True)
    opt = dw.optim.SGD([w], lr=0.5)
    scaler = dw.amp.GradScaler("cuda", init_scale=4.0)
    w.grad = dw.tensor([4.0, np.nan, 4.0, 4.0], device="cuda")
    syncs = double.stats["syncs"]
    assert scaler.step(opt) is None and double.stats["syncs"] == syncs + 1
    scaler.update()
    assert scaler.get_scale() == 2.0 and w.cpu().tolist() == [1.0] * 4
    assert backend.is_device_array(w.grad.array)
