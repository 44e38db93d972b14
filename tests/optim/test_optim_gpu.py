"""The optimizers and clipping on CuPy arrays give what they give on NumPy (needs CuPy and a GPU)."""

from __future__ import annotations

import numpy as np
import pytest

import deepwise.optim as dwo
from deepwise.tensor import Tensor
from optim.optim_helpers import INITS, grads_at

pytestmark = pytest.mark.gpu

CONFIGS = [
    ("SGD", {"lr": 0.05, "momentum": 0.9, "nesterov": True, "weight_decay": 0.01}),
    ("Adam", {"lr": 0.02, "amsgrad": True, "maximize": True}),
    ("AdamW", {"lr": 0.02}),
    ("RMSprop", {"lr": 0.01, "centered": True, "momentum": 0.5}),
    ("Adagrad", {"lr": 0.1, "lr_decay": 0.01}),
]


def _run(name, kwargs, device, steps=30):
    cupy = pytest.importorskip("cupy")
    params = [Tensor(a.copy(), requires_grad=True, device=device) for a in INITS]
    opt = getattr(dwo, name)(params, **kwargs)
    sign = -1.0 if kwargs.get("maximize") else 1.0
    for k in range(steps):
        host = [cupy.asnumpy(p.array) if device == "cuda" else p.array for p in params]
        for p, g in zip(params, grads_at(host, k, sign)):
            p.grad = Tensor._make(cupy.asarray(g) if device == "cuda" else g)
        opt.step()
    return opt, params


@pytest.mark.parametrize("name,kwargs", CONFIGS, ids=[c[0] for c in CONFIGS])
def test_optimizer_on_cuda_matches_cpu(name, kwargs):
    cupy = pytest.importorskip("cupy")
    opt_gpu, on_gpu = _run(name, kwargs, "cuda")
    _, on_cpu = _run(name, kwargs, "cpu")
    for g, c in zip(on_gpu, on_cpu):
        assert isinstance(g.array, cupy.ndarray) and g.dtype == np.float32
        np.testing.assert_allclose(cupy.asnumpy(g.array), c.array, rtol=1e-5, atol=1e-6)
    for state in opt_gpu.state.values():
        for value in state.values():
            if isinstance(value, Tensor):
                assert isinstance(value.array, cupy.ndarray) and value.dtype == np.float32
    # a CPU state dict loads onto the GPU parameters
    opt_cpu, _ = _run(name, kwargs, "cpu", steps=3)
    opt_gpu.load_state_dict(opt_cpu.state_dict())
    for state in opt_gpu.state.values():
        for value in state.values():
            if isinstance(value, Tensor):
                assert isinstance(value.array, cupy.ndarray)


def test_clip_grad_norm_on_cuda():
    cupy = pytest.importorskip("cupy")
    rng = np.random.default_rng(0)
    host = [rng.standard_normal(s).astype(np.float32) for s in [(4, 5), (7,)]]
    params = [Tensor(np.zeros(h.shape, np.float32), requires_grad=True, device="cuda") for h in host]
    for p, h in zip(params, host):
        p.grad = Tensor._make(cupy.asarray(h))
    total = dwo.clip_grad_norm_(params, 1.0)
    expected = np.sqrt(sum(float((h.astype(np.float64) ** 2).sum()) for h in host))
    assert isinstance(total.array, cupy.ndarray)
    assert total.item() == pytest.approx(expected, rel=1e-5)
    for p, h in zip(params, host):
        np.testing.assert_allclose(cupy.asnumpy(p.grad.array), h / (expected + 1e-6), rtol=1e-5)
    inf_total = dwo.clip_grad_norm_(params, 0.1, norm_type="inf")
    assert inf_total.item() == pytest.approx(max(float(np.abs(cupy.asnumpy(p.grad.array)).max()) for p in params),
                                             rel=1e-6)
