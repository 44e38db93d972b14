"""Activation checkpointing (dw.utils.checkpoint) and what the graph keeps between forward and backward."""

from __future__ import annotations

import gc
import tracemalloc
import weakref

import numpy as np
import pytest

import deepwise as dw
from deepwise import nn
from deepwise.utils.checkpoint import checkpoint, checkpoint_sequential


def _mlp(seed=0, width=64, depth=4, p=0.0):
    dw.manual_seed(seed)
    layers = []
    for _ in range(depth):
        layers += [nn.Linear(width, width), nn.Tanh()]
        if p:
            layers.append(nn.Dropout(p))
    return nn.Sequential(*layers)


def _grads(model, x, use_checkpoint, seed=1, segments=2):
    model.zero_grad()
    x = x.detach().requires_grad_(True)
    dw.manual_seed(seed)
    if use_checkpoint:
        blocks = list(model.children())
        half = len(blocks) // segments
        h = x
        for k in range(segments):
            part = nn.Sequential(*blocks[k * half:(k + 1) * half])
            h = checkpoint(part, h, use_reentrant=False)
    else:
        h = model(x)
    loss = (h * h).mean()
    loss.backward()
    return [loss.item(), x.grad.numpy()] + [p.grad.numpy() for p in model.parameters()]


def test_gradients_are_identical_with_and_without_checkpoint():
    model = _mlp()
    x = dw.randn(8, 64)
    plain = _grads(model, x, False)
    ckpt = _grads(model, x, True)
    assert plain[0] == ckpt[0]
    for a, b in zip(plain[1:], ckpt[1:]):
        assert a.dtype == np.float32 and b.dtype == np.float32
        np.testing.assert_array_equal(a, b)


def test_dropout_masks_are_replayed_in_the_recomputation():
    model = _mlp(p=0.5)
    x = dw.randn(8, 64)
    plain = _grads(model, x, False)
    ckpt = _grads(model, x, True)
    for a, b in zip(plain, ckpt):
        np.testing.assert_array_equal(a, b)
    # the random stream after the step is where it is without checkpointing
    dw.manual_seed(1)
    _ = model(x)
    after_plain = dw.rand(3).numpy()
    _grads(model, x, True)
    np.testing.assert_array_equal(dw.rand(3).numpy(), after_plain)


def test_without_preserve_rng_state_dropout_draws_a_new_mask():
    model = _mlp(p=0.5, depth=1)
    x = dw.randn(8, 64, requires_grad=True)
    dw.manual_seed(3)
    out = checkpoint(model, x, preserve_rng_state=False)
    out.sum().backward()
    dw.manual_seed(3)
    ref = model(x.detach().requires_grad_(True))
    # the forward used one mask, the recomputed backward another: gradients no longer match the plain run
    x2 = x.detach().requires_grad_(True)
    dw.manual_seed(3)
    model(x2).sum().backward()
    assert ref.shape == out.shape
    assert not np.array_equal(x.grad.numpy(), x2.grad.numpy())


def test_autograd_grad_and_a_matching_torch_model():
    torch = pytest.importorskip("torch")
    import torch.utils.checkpoint as tcp

    rng = np.random.default_rng(0)
    w1, w2 = rng.standard_normal((2, 16, 16)).astype(np.float32)
    xs = rng.standard_normal((4, 16)).astype(np.float32)

    def block(x, w1, w2):
        return (x @ w1).tanh() @ w2

    dws = [dw.tensor(a, requires_grad=True) for a in (xs, w1, w2)]
    ths = [torch.tensor(a, requires_grad=True) for a in (xs, w1, w2)]
    dg = dw.autograd.grad(checkpoint(block, *dws).sigmoid().sum(), dws)
    tg = torch.autograd.grad(tcp.checkpoint(block, *ths, use_reentrant=False).sigmoid().sum(), ths)
    for a, b in zip(dg, tg):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-6)
    assert all(t.grad is None for t in dws)  # grad() returns, it does not accumulate


def test_parameters_closed_over_get_their_gradient_once():
    w = dw.randn(5, 5, requires_grad=True)
    x = dw.randn(3, 5, requires_grad=True)
    checkpoint(lambda h: (h @ w).relu(), x).sum().backward()
    got = w.grad.numpy().copy()
    w.grad = None
    x2 = x.detach().requires_grad_(True)
    (x2 @ w).relu().sum().backward()
    np.testing.assert_array_equal(got, w.grad.numpy())
    np.testing.assert_array_equal(x.grad.numpy(), x2.grad.numpy())


def test_multiple_outputs_and_an_output_without_gradient():
    x = dw.randn(4, requires_grad=True)
    a, b, idx = checkpoint(lambda t: (t.exp(), t * 3, t.argmax()), x)
    assert idx.requires_grad is False and a.requires_grad and b.requires_grad
    (a.sum() + b.sum()).backward()
    np.testing.assert_allclose(x.grad.numpy(), np.exp(x.detach().numpy()) + 3, rtol=1e-6)


def test_checkpoint_sequential_matches_the_plain_model():
    model = _mlp(depth=6)
    x = dw.randn(4, 64, requires_grad=True)
    checkpoint_sequential(model, 3, x).sum().backward()
    got = [p.grad.numpy().copy() for p in model.parameters()]
    model.zero_grad()
    model(x.detach()).sum().backward()
    for a, p in zip(got, model.parameters()):
        np.testing.assert_array_equal(a, p.grad.numpy())


def test_the_blocks_activations_are_not_kept_between_forward_and_backward():
    inside = []

    def block(x):
        h = (x * 2).tanh()
        inside.append(weakref.ref(h.array))
        return h.sum(dim=1)

    x = dw.randn(4, 8, requires_grad=True)
    loss = block(x).sum()
    assert inside[-1]() is not None  # without checkpoint tanh's output is saved for its backward
    del loss
    loss = checkpoint(block, x).sum()
    gc.collect()
    assert inside[-1]() is None  # with it, nothing of the block outlives its forward
    loss.backward()
    np.testing.assert_allclose(x.grad.numpy(), 2 * (1 - np.tanh(2 * x.detach().numpy()) ** 2), rtol=1e-5)


def _peak_bytes(step):
    gc.collect()
    tracemalloc.start()
    try:
        step()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_checkpointing_an_mlp_lowers_peak_memory():
    # 16 Linear+ReLU layers, batch 1024 x 128: each activation is 512 KiB, a weight 64 KiB
    dw.manual_seed(0)
    layers = []
    for _ in range(16):
        layers += [nn.Linear(128, 128), nn.ReLU()]
    model = nn.Sequential(*layers)
    x = dw.randn(1024, 128)
    for p in model.parameters():
        p.grad = dw.zeros_like(p)  # gradients exist in both runs, as in training

    def step(segments):
        def run():
            h = checkpoint_sequential(model, segments, x) if segments else model(x)
            h.sum().backward()
        return run

    plain, ckpt = _peak_bytes(step(0)), _peak_bytes(step(4))
    # measured: 11.0 MiB without, 6.2 MiB with 4 segments
    assert ckpt < 0.7 * plain, f"checkpoint peak {ckpt / 2**20:.1f} MiB vs plain {plain / 2**20:.1f} MiB"


def test_create_graph_through_checkpoint_is_refused():
    x = dw.randn(3, requires_grad=True)
    y = checkpoint(lambda t: (t * t).sum(), x)
    with pytest.raises(RuntimeError, match="checkpoint: create_graph"):
        dw.autograd.grad(y, x, create_graph=True)


def test_bad_arguments():
    with pytest.raises(TypeError, match="callable"):
        checkpoint(3, dw.randn(2))
    with pytest.raises(TypeError, match="Tensor or a tuple"):
        checkpoint(lambda t: 3, dw.randn(2, requires_grad=True))
    with pytest.raises(ValueError, match="segments"):
        checkpoint_sequential([lambda t: t], 0, dw.randn(2))
    with dw.no_grad():  # no graph: just the call
        assert checkpoint(lambda t: t + 1, dw.ones(2)).tolist() == [2.0, 2.0]


# ------------------------------------------------------------------- what the graph keeps, engine side
def test_an_input_no_backward_needs_is_freed_while_the_graph_lives():
    x = dw.randn(64, 64, requires_grad=True)
    h = x * 2  # tanh's backward needs its output, not h
    values = weakref.ref(h.array)
    y = h.tanh()
    del h
    assert values() is None
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), 2 * (1 - np.tanh(2 * x.detach().numpy()) ** 2), rtol=1e-5)


def test_saved_arrays_are_freed_by_backward_and_a_second_backward_says_why():
    x = dw.randn(8, requires_grad=True)
    e = x.exp()
    saved = weakref.ref(e.array)
    loss = e.sum()
    del e
    assert saved() is not None  # exp keeps its output for backward
    loss.backward()
    assert saved() is None
    with pytest.raises(RuntimeError, match="second time.*retain_graph=True"):
        loss.backward()
    y = x.exp().sum()
    y.backward(retain_graph=True)
    y.backward()  # retained: a second pass works and adds up
    np.testing.assert_allclose(x.grad.numpy(), 3 * np.exp(x.detach().numpy()), rtol=1e-6)


_KEEPERS = {  # op -> (h, c, functional namespace) -> output; c needs no gradient
    "mul_constant": lambda h, c, F: h * c,
    "div_by_constant": lambda h, c, F: h / c,
    "matmul_frozen": lambda h, c, F: h @ c,
    "linear_frozen": lambda h, c, F: F.linear(h, c),
    "relu": lambda h, c, F: F.relu(h),
    "leaky_relu": lambda h, c, F: F.leaky_relu(h, 0.1),
}


@pytest.mark.parametrize("op", sorted(_KEEPERS))
def test_ops_keep_only_what_their_backward_needs(op):
    torch = pytest.importorskip("torch")
    fn = _KEEPERS[op]
    x = dw.randn(16, 16, requires_grad=True)
    c = dw.randn(16, 16).abs() + 1
    h = x + 1  # add keeps nothing, so h lives only as long as someone keeps it
    values = weakref.ref(h.array)
    y = fn(h, c, dw.nn.functional)
    del h
    assert values() is None, f"{op} kept an input its backward does not need"
    y.sum().backward()
    tx = torch.tensor(x.detach().numpy(), requires_grad=True)
    ty = fn(tx + 1, torch.tensor(c.numpy()), torch.nn.functional)
    ty.sum().backward()
    np.testing.assert_allclose(y.detach().numpy(), ty.detach().numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), rtol=1e-5, atol=1e-6)


def test_nested_checkpoints_and_an_input_without_grad():
    dw.manual_seed(0)
    inner, outer_layer = nn.Linear(6, 6), nn.Linear(6, 6)
    x = dw.randn(5, 6)  # data: no gradient wanted, only the parameters'

    def block(h):
        return checkpoint(lambda t: inner(t).tanh(), outer_layer(h)).relu()

    checkpoint(block, x).sum().backward()
    got = [p.grad.numpy().copy() for p in (*inner.parameters(), *outer_layer.parameters())]
    for p in (*inner.parameters(), *outer_layer.parameters()):
        p.grad = None
    inner(outer_layer(x)).tanh().relu().sum().backward()
    want = [p.grad.numpy() for p in (*inner.parameters(), *outer_layer.parameters())]
    for a, b in zip(got, want):
        np.testing.assert_array_equal(a, b)
