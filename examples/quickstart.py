"""The smallest complete deepwise program: a two-layer network learns XOR-like spirals by backprop.

Raw tensors and autograd only (no nn, no optim), to show the whole mechanism in a few lines.
"""

import numpy as np

import deepwise as dw

dw.manual_seed(0)
rng = np.random.default_rng(0)
n = 200
t = rng.uniform(0, 3 * np.pi, n)
label = rng.integers(0, 2, n)
r = t / (3 * np.pi)
xy = np.stack([r * np.cos(t + np.pi * label), r * np.sin(t + np.pi * label)], 1) + rng.normal(0, 0.02, (n, 2))
x, y = dw.tensor(xy), dw.tensor(label)

w1 = (dw.randn(2, 64) * 1.0).requires_grad_()
b1 = dw.zeros(64, requires_grad=True)
w2 = (dw.randn(64, 2) * 0.1).requires_grad_()
b2 = dw.zeros(2, requires_grad=True)
params = [w1, b1, w2, b2]

for step in range(1, 1501):
    h = (x @ w1 + b1).tanh()
    logits = h @ w2 + b2
    loss = -logits.log_softmax(dim=1).gather(1, y.unsqueeze(1)).mean()
    for p in params:
        p.grad = None
    loss.backward()
    with dw.no_grad():
        for p in params:
            p.array -= 0.5 * p.grad.array
    if step % 300 == 0:
        acc = (logits.argmax(dim=1) == y).float().mean().item()
        print(f"step {step:4d}  loss {loss.item():.4f}  accuracy {acc:.3f}")
