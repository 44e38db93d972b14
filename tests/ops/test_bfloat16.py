"""bfloat16 tensors (ml_dtypes' type) side by side with PyTorch's CPU bfloat16: dtypes of values and
gradients, elementwise ops rounded per op, matmul/conv/reductions/softmax/norms computed in float32
and rounded once."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import deepwise as dw
import deepwise.nn.functional as F
from deepwise import backend

torch = pytest.importorskip("torch")
TF = torch.nn.functional
pytest.importorskip("ml_dtypes")


def _pair(shape, rng, positive=False):
    a = rng.standard_normal(shape).astype(np.float32)
    if positive:
        a = np.abs(a) + 0.1
    return (dw.tensor(a).to(dw.bfloat16).requires_grad_(), torch.tensor(a).bfloat16().requires_grad_())


def _both(dw_fn, torch_fn=None):
    return lambda *xs: (dw_fn if isinstance(xs[0], dw.Tensor) else (torch_fn or dw_fn))(*xs)


# name -> (function of tensors, shapes; a trailing "+" marks a positive input)
CASES = {
    "add": (lambda a, b: a + b, [(3, 4), (3, 4)]),
    "mul_broadcast": (lambda a, b: a * b, [(3, 4), (4,)]),
    "div": (lambda a, b: a / b, [(3, 4), (3, 4, "+")]),
    "exp": (lambda a: a.exp(), [(3, 4)]),
    "tanh": (lambda a: a.tanh(), [(3, 4)]),
    "sigmoid": (lambda a: a.sigmoid(), [(3, 4)]),
    "log": (lambda a: a.log(), [(3, 4, "+")]),
    "sqrt": (lambda a: a.sqrt(), [(3, 4, "+")]),
    "python_scalars": (lambda a: a * 3.0 + 1.5, [(3, 4)]),
    "clamp": (lambda a: a.clamp(-0.5, 0.5), [(4, 5)]),
    "matmul": (lambda a, b: a @ b, [(5, 64), (64, 3)]),
    "bmm": (lambda a, b: a @ b, [(2, 5, 64), (2, 64, 3)]),
    "sum": (lambda a: a.sum(), [(64, 33)]),
    "sum_dim": (lambda a: a.sum(1), [(8, 300)]),
    "mean": (lambda a: a.mean(0), [(300, 8)]),
    "var": (lambda a: a.var(1), [(8, 100)]),
    "softmax": (lambda a: a.softmax(-1), [(4, 50)]),
    "log_softmax": (lambda a: a.log_softmax(-1), [(4, 50)]),
    "logsumexp": (lambda a: a.logsumexp(1), [(4, 50)]),
    "norm": (lambda a: a.norm(), [(10, 10)]),
    "amax": (lambda a: a.amax(1), [(4, 5)]),
    "gelu": (_both(F.gelu, TF.gelu), [(3, 4)]),
    "silu": (_both(F.silu, TF.silu), [(3, 4)]),
    "linear": (_both(F.linear, TF.linear), [(6, 40), (7, 40), (7,)]),
    "layer_norm": (_both(lambda x, w, b: F.layer_norm(x, (20,), w, b), lambda x, w, b: TF.layer_norm(x, (20,), w, b)),
                   [(6, 20), (20,), (20,)]),
    "group_norm": (_both(lambda x, w, b: F.group_norm(x, 2, w, b), lambda x, w, b: TF.group_norm(x, 2, w, b)),
                   [(2, 4, 5, 5), (4,), (4,)]),
    "batch_norm": (_both(lambda x, w, b: F.batch_norm(x, None, None, w, b, training=True),
                         lambda x, w, b: TF.batch_norm(x, None, None, w, b, training=True)),
                   [(6, 4, 3, 3), (4,), (4,)]),
    "conv2d": (_both(lambda x, w, b: F.conv2d(x, w, b, padding=1), lambda x, w, b: TF.conv2d(x, w, b, padding=1)),
               [(2, 3, 8, 8), (5, 3, 3, 3), (5,)]),
    "conv1d": (_both(F.conv1d, TF.conv1d), [(2, 3, 10), (5, 3, 3), (5,)]),
    "conv_transpose2d": (_both(lambda x, w, b: F.conv_transpose2d(x, w, b, stride=2),
                               lambda x, w, b: TF.conv_transpose2d(x, w, b, stride=2)),
                         [(2, 3, 5, 5), (3, 4, 3, 3), (4,)]),
    "max_pool2d": (_both(lambda x: F.max_pool2d(x, 2), lambda x: TF.max_pool2d(x, 2)), [(2, 3, 8, 8)]),
    "avg_pool2d": (_both(lambda x: F.avg_pool2d(x, 2), lambda x: TF.avg_pool2d(x, 2)), [(2, 3, 8, 8)]),
    "cross_entropy": (_both(lambda x: F.cross_entropy(x, dw.tensor([1, 0, 3])),
                            lambda x: TF.cross_entropy(x, torch.tensor([1, 0, 3]))), [(3, 5)]),
    "mse_loss": (_both(F.mse_loss, TF.mse_loss), [(30, 5), (30, 5)]),
    "attention": (_both(F.scaled_dot_product_attention, TF.scaled_dot_product_attention),
                  [(2, 4, 8), (2, 4, 8), (2, 4, 8)]),
    "adaptive_avg_pool2d": (_both(lambda x: F.adaptive_avg_pool2d(x, 3), lambda x: TF.adaptive_avg_pool2d(x, 3)),
                            [(2, 3, 8, 8)]),
    "interpolate_bilinear": (_both(lambda x: F.interpolate(x, size=(5, 5), mode="bilinear"),
                                   lambda x: TF.interpolate(x, size=(5, 5), mode="bilinear")), [(2, 3, 8, 8)]),
    "bce_with_logits": (_both(lambda x, y: F.binary_cross_entropy_with_logits(x, y.sigmoid()),
                              lambda x, y: TF.binary_cross_entropy_with_logits(x, y.sigmoid())), [(4, 6), (4, 6)]),
    "smooth_l1_loss": (_both(F.smooth_l1_loss, TF.smooth_l1_loss), [(4, 6), (4, 6)]),
    "prod": (lambda a: a.prod(1), [(4, 6, "+")]),
    "cumsum": (lambda a: a.cumsum(1), [(4, 6)]),
}

# where deepwise's result is torch's bit for bit (one rounding of a float32 result, or one bfloat16 op)
EXACT = {"add", "mul_broadcast", "exp", "log", "sqrt", "python_scalars", "clamp", "matmul", "bmm", "sum",
         "sum_dim", "mean", "var", "softmax", "linear", "conv2d", "conv1d", "conv_transpose2d", "amax"}


def _close(ours, theirs, what):
    ours, theirs = ours.float().numpy(), theirs.float().numpy()
    scale = max(float(np.abs(theirs).max()), 1e-3)  # a few bfloat16 ulps of the result's magnitude
    np.testing.assert_allclose(ours, theirs, rtol=2e-2, atol=2e-2 * scale, err_msg=what)


@pytest.mark.parametrize("name", sorted(CASES))
def test_op_on_bfloat16_matches_torch(name):
    fn, shapes = CASES[name]
    rng = np.random.default_rng(0)
    ours, theirs = zip(*[_pair(tuple(s for s in sh if s != "+"), rng, "+" in sh) for sh in shapes])
    out, ref = fn(*ours), fn(*theirs)
    assert out.dtype == dw.bfloat16 and ref.dtype == torch.bfloat16
    if name in EXACT:
        np.testing.assert_array_equal(out.detach().float().numpy(), ref.detach().float().numpy())
    else:
        _close(out.detach(), ref.detach(), f"{name} forward")
    g = rng.standard_normal(tuple(ref.shape)).astype(np.float32)
    out.backward(dw.tensor(g).to(dw.bfloat16))
    ref.backward(torch.tensor(g).bfloat16())
    for i, (a, t) in enumerate(zip(ours, theirs)):
        assert a.grad.dtype == dw.bfloat16, f"{name}: gradient {i} is {a.grad.dtype}"
        _close(a.grad, t.grad, f"{name} gradient {i}")


def test_reductions_accumulate_in_float32_not_bfloat16():
    # 4096 values of 1 + 1/128: a bfloat16 running sum stops growing long before the end
    x = np.full(4096, 1 + 1 / 128, np.float32)
    got = dw.tensor(x).to(dw.bfloat16).sum().item()
    want = torch.tensor(x).bfloat16().sum().item()
    assert got == want == float(np.float32(x.sum()).astype(dw.bfloat16))
    m = dw.tensor(x).to(dw.bfloat16).reshape(64, 64)
    np.testing.assert_array_equal((m @ m).float().numpy(), (torch.tensor(x).bfloat16().reshape(64, 64) @
                                                            torch.tensor(x).bfloat16().reshape(64, 64)).float().numpy())


def test_bfloat16_tensors_as_pytorch_makes_them():
    bf = dw.bfloat16
    assert bf == backend.bfloat16_dtype() and str(bf) == "bfloat16"
    for make in (dw.zeros, dw.ones, dw.empty):
        assert make(2, 3, dtype=bf).dtype == bf and make(2, 3, dtype=bf).shape == (2, 3)
    assert dw.full((2,), 1.5, dtype=bf).tolist() == [1.5, 1.5]
    t = dw.tensor([1.0, 3.14159, -2.5], dtype=bf)
    assert t.tolist() == torch.tensor([1.0, 3.14159, -2.5], dtype=torch.bfloat16).tolist()  # 3.140625
    assert t.is_floating_point() and dw.ones(2).is_floating_point()
    assert not dw.ones(2, dtype=dw.int64).is_floating_point()
    assert dw.ones(3).to(bf).dtype == bf and dw.ones(3).bfloat16().dtype == bf and t.float().dtype == dw.float32
    assert t[1].item() == 3.140625 and isinstance(t[1].item(), float)
    assert t.numpy().dtype == bf
    assert repr(t) == "tensor([ 1.    ,  3.1406, -2.5   ], dtype=bfloat16)"
    p = dw.zeros(2, dtype=bf, requires_grad=True)
    assert p.requires_grad and p.dtype == bf
    # gradients of a bfloat16 leaf are bfloat16, and an int op keeps no graph
    (p * 2.0).sum().backward()
    assert p.grad.dtype == bf and p.grad.tolist() == [2.0, 2.0]
    assert (dw.ones(2, dtype=bf) + dw.ones(2)).dtype == dw.float32  # promotion: bfloat16 + float32 -> float32


def _train(dtype, steps=30):
    dw.manual_seed(0)
    model = dw.nn.Sequential(dw.nn.Linear(8, 32), dw.nn.ReLU(), dw.nn.Linear(32, 3)).to(dtype)
    opt = dw.optim.SGD(model.parameters(), lr=0.5)
    x = dw.randn(64, 8)
    y = (x[:, 0] > 0).long() + (x[:, 1] > 0).long()
    x = x.to(dtype)
    losses = []
    for _ in range(steps):
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        assert all(p.grad.dtype == dtype for p in model.parameters())
        opt.step()
        losses.append(loss.item())
    assert all(p.dtype == dtype for p in model.parameters())
    return np.array(losses)


def test_a_bfloat16_model_trains_like_the_float32_one():
    low, full = _train(dw.bfloat16), _train(dw.float32)
    assert full[-1] < 0.6 * full[0]
    np.testing.assert_allclose(low, full, rtol=0.05, atol=0.02)


def test_double_backward_through_a_float32_computed_bfloat16_op_says_so():
    x = dw.randn(3, 4).to(dw.bfloat16).requires_grad_()
    y = x.softmax(-1)[:, 0].sum()
    with pytest.raises(RuntimeError, match="Softmax: double backward .* bfloat16"):
        dw.autograd.grad(y, [x], create_graph=True)


def test_importing_deepwise_does_not_import_ml_dtypes_until_bfloat16_is_named():
    code = ("import sys, deepwise as dw; assert 'ml_dtypes' not in sys.modules; "
            "t = dw.tensor([1.0], dtype='bfloat16'); assert 'ml_dtypes' in sys.modules; "
            "assert t.dtype == dw.bfloat16; print('ok')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "ok", out.stderr


def test_a_pure_bfloat16_model_steps_through_gradscaler_unchanged():
    dw.manual_seed(0)
    model = dw.nn.Linear(4, 2).to(dw.bfloat16)
    opt = dw.optim.SGD(model.parameters(), lr=0.1)
    scaler = dw.amp.GradScaler("cpu")
    x = dw.randn(8, 4).to(dw.bfloat16)
    loss = F.mse_loss(model(x), dw.zeros(8, 2).to(dw.bfloat16))
    scaled = scaler.scale(loss)
    assert scaled.dtype == dw.bfloat16 and scaled.item() == loss.item() * 2.0**16  # no overflow: float32's range
    before = model.weight.detach().float().numpy().copy()
    scaled.backward()
    scaler.step(opt)
    scaler.update()
    assert model.weight.grad.dtype == dw.bfloat16 and scaler.get_scale() == 2.0**16
    assert not np.array_equal(model.weight.detach().float().numpy(), before)  # the step was taken


def test_a_bfloat16_batchnorm_layer_keeps_bfloat16_running_stats_as_torch():
    x = np.random.default_rng(0).standard_normal((6, 3, 4, 4)).astype(np.float32)
    ours, theirs = dw.nn.BatchNorm2d(3).to(dw.bfloat16), torch.nn.BatchNorm2d(3).bfloat16()
    for _ in range(3):
        ours(dw.tensor(x).to(dw.bfloat16)), theirs(torch.tensor(x).bfloat16())
    assert ours.running_mean.dtype == dw.bfloat16 and ours.running_var.dtype == dw.bfloat16
    _close(ours.running_mean, theirs.running_mean, "running_mean")
    _close(ours.running_var, theirs.running_var, "running_var")
    ours.eval(), theirs.eval()
    with dw.no_grad(), torch.no_grad():
        _close(ours(dw.tensor(x).to(dw.bfloat16)), theirs(torch.tensor(x).bfloat16()), "eval output")


def test_a_bfloat16_model_fits_with_the_trainer():
    dw.manual_seed(0)
    model = dw.nn.Sequential(dw.nn.Linear(4, 16), dw.nn.ReLU(), dw.nn.Linear(16, 3)).to(dw.bfloat16)
    x = np.random.default_rng(0).standard_normal((64, 4)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64) + (x[:, 1] > 0)
    trainer = dw.Trainer(model, optimizer=dw.optim.SGD(model.parameters(), lr=0.5), loss="cross_entropy",
                         metrics=["accuracy"])
    history = trainer.fit(dw.tensor(x).to(dw.bfloat16), dw.tensor(y), epochs=5, batch_size=16, verbose=0,
                          callbacks=[dw.callbacks.TerminateOnNaN()])
    losses = history.history["loss"]
    assert len(losses) == 5 and losses[-1] < 0.7 * losses[0]
    assert history.history["accuracy"][-1] > 0.7
    assert all(p.dtype == dw.bfloat16 for p in model.parameters())


def test_linear_of_a_bfloat16_input_and_a_float32_weight_casts_the_input_as_for_float16():
    x, w = dw.randn(2, 4), dw.randn(3, 4)
    assert F.linear(x.to(dw.bfloat16), w).dtype == F.linear(x.half(), w).dtype == dw.float32
    with pytest.raises(RuntimeError, match="mat1 and mat2 must have the same dtype"):
        F.linear(dw.ones(2, 4, dtype=dw.int64), w)
