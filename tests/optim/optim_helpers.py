"""Shared fixtures of the optimizer tests: a fixed least-squares problem whose gradients are computed
in NumPy from the current parameters, and fed identically to deepwise and to PyTorch.

The optimum lies far from the start (every weight 6 away), so in 100 steps no gradient component
comes near zero: adaptive methods (Adam, RMSprop with small alpha) turn near-zero gradients into
sign-like steps whose last-bit rounding differences grow chaotically, which would test luck, not
the update rule.
"""

from __future__ import annotations

import numpy as np

from deepwise.tensor import Tensor

_rng = np.random.default_rng(1234)
X = _rng.standard_normal((32, 5)).astype(np.float32)
W0 = _rng.standard_normal((5, 3)).astype(np.float32)
B0 = _rng.standard_normal(3).astype(np.float32)
Y = (X @ (W0 + 6.0) + (B0 + 6.0) + 0.1 * _rng.standard_normal((32, 3))).astype(np.float32)
INITS = (W0, B0)


def grads_at(arrays, step, sign=1.0):
    """Gradients of sign * mean squared error of ``X @ W + b`` against ``Y`` on minibatch ``step``
    (8 of the 32 rows, cycling; float64 maths, float32 results). Minibatches make the gradients
    vary from step to step, as in training, so RMSprop's centered variance is not ~0.
    ``sign=-1`` is the gradient of the negated loss, for ``maximize=True``."""
    rows = (8 * step + np.arange(8)) % len(X)
    x, y = X[rows].astype(np.float64), Y[rows]
    w = np.asarray(arrays[0], dtype=np.float64)
    b = np.asarray(arrays[1], dtype=np.float64)
    r = x @ w + b - y
    return [(sign * x.T @ r / len(x)).astype(np.float32), (sign * r.mean(0)).astype(np.float32)]


def dw_params(inits=INITS):
    return [Tensor(a.copy(), requires_grad=True) for a in inits]


def torch_params(torch, inits=INITS):
    return [torch.tensor(a.copy(), requires_grad=True) for a in inits]


def run_dw(opt, params, steps, sign=1.0, start=0):
    for k in range(start, start + steps):
        for p, g in zip(params, grads_at([p.array for p in params], k, sign)):
            p.grad = Tensor._make(g)
        opt.step()


def run_torch(torch, opt, params, steps, sign=1.0, start=0):
    for k in range(start, start + steps):
        for p, g in zip(params, grads_at([p.detach().numpy() for p in params], k, sign)):
            p.grad = torch.from_numpy(g)
        opt.step()


def assert_params_match(dw_list, torch_list, rtol=1e-5, atol=0.0):
    for i, (a, b) in enumerate(zip(dw_list, torch_list)):
        ref = b.detach().numpy()
        assert a.array.dtype == np.float32, f"parameter {i} became {a.array.dtype}"
        np.testing.assert_allclose(a.array, ref, rtol=rtol, atol=atol, err_msg=f"parameter {i}")
