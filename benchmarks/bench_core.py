"""Core workloads: per-op dispatch overhead and a hand-written MLP training step."""

from __future__ import annotations

import numpy as np
from harness import Result, setup_torch, time_pair

import deepwise as dw


def dispatch_overhead(torch):
    """Forward + backward of a 20-op expression on tiny tensors: pure framework overhead."""
    rng = np.random.default_rng(0)
    a_np, b_np = rng.standard_normal((4, 4)).astype(np.float32), rng.standard_normal((4, 4)).astype(np.float32)
    a, b = dw.tensor(a_np, requires_grad=True), dw.tensor(b_np, requires_grad=True)

    def expr(x, y):
        z = x * y + x
        z = z - y * 0.5
        z = z.tanh() * z.sigmoid()
        z = z.exp().log() + z.relu()
        z = (z @ y).abs() + z * z
        z = z / (y.abs() + 1.0)
        z = z.sum(dim=1, keepdim=True) * z - z.mean()
        return z.sum()

    def dw_step():
        a.grad = b.grad = None
        expr(a, b).backward()

    th_step = None
    if torch is not None:
        ta, tb = torch.tensor(a_np, requires_grad=True), torch.tensor(b_np, requires_grad=True)

        def th_step():
            ta.grad = tb.grad = None
            expr(ta, tb).backward()

    dw_s, th_s, _ = time_pair(dw_step, th_step, repeats=200, warmup=20)
    return Result("core", "20-op expression fwd+bwd (4x4)", dw_s, th_s, note="per-op dispatch overhead")


def mlp_sgd_step(torch):
    """784-512-256-10 MLP, batch 128, hand-written SGD on raw tensors (no nn, no optim)."""
    rng = np.random.default_rng(0)
    sizes = [784, 512, 256, 10]
    ws = [rng.standard_normal((i, o)).astype(np.float32) * np.float32(np.sqrt(2 / i)) for i, o in zip(sizes, sizes[1:])]
    bs = [np.zeros(o, np.float32) for o in sizes[1:]]
    x_np = rng.standard_normal((128, 784)).astype(np.float32)
    y_np = rng.integers(0, 10, 128)
    lr = 0.01

    dw_params = [dw.tensor(p, requires_grad=True) for pair in zip(ws, bs) for p in pair]
    x, y = dw.tensor(x_np), dw.tensor(y_np)
    onehot = dw.one_hot(y, 10).float()

    def dw_step():
        h = x
        for i in range(0, len(dw_params), 2):
            h = h @ dw_params[i] + dw_params[i + 1]
            if i < len(dw_params) - 2:
                h = h.relu()
        loss = -(h.log_softmax(dim=1) * onehot).sum() / 128
        for p in dw_params:
            p.grad = None
        loss.backward()
        with dw.no_grad():
            for p in dw_params:
                p.array -= lr * p.grad.array

    th_step = None
    if torch is not None:
        th_params = [torch.tensor(p, requires_grad=True) for pair in zip(ws, bs) for p in pair]
        tx, ty = torch.tensor(x_np), torch.tensor(y_np)
        tonehot = torch.nn.functional.one_hot(ty, 10).float()

        def th_step():
            h = tx
            for i in range(0, len(th_params), 2):
                h = h @ th_params[i] + th_params[i + 1]
                if i < len(th_params) - 2:
                    h = h.relu()
            loss = -(h.log_softmax(dim=1) * tonehot).sum() / 128
            for p in th_params:
                p.grad = None
            loss.backward()
            with torch.no_grad():
                for p in th_params:
                    p -= lr * p.grad

    dw_s, th_s, mem = time_pair(dw_step, th_step, repeats=40, warmup=5)
    return Result("core", "MLP 784-512-256-10 step, batch 128, hand SGD", dw_s, th_s, target=1.2, extra=mem)


def run():
    torch = setup_torch()
    return [dispatch_overhead(torch), mlp_sgd_step(torch)]
