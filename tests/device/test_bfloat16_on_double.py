"""bfloat16 tensors on the device double: the same values and gradients as on the CPU (CuPy >= 14
holds ml_dtypes' bfloat16), moving between devices exactly, under the double's CuPy rules."""

from __future__ import annotations

import numpy as np
import pytest

import deepwise as dw
import deepwise.nn.functional as F

pytest.importorskip("ml_dtypes")


def _net(x, w, b, k):
    h = F.conv2d(x, k, padding=1).relu()
    h = F.layer_norm(h.reshape(h.shape[0], -1), (h.shape[1] * h.shape[2] * h.shape[3],))
    return F.cross_entropy(F.linear(h, w, b).log_softmax(-1) * 1.5, dw.tensor([0, 2], device=x.device))


def test_bfloat16_ops_on_the_double_equal_the_cpu_ones():
    rng = np.random.default_rng(0)
    arrays = [rng.standard_normal(s).astype(np.float32) for s in ((2, 3, 6, 6), (4, 4 * 36), (4,), (4, 3, 3, 3))]
    grads = {}
    for device in ("cpu", "cuda"):
        ts = [dw.tensor(a, device=device).to(dw.bfloat16).requires_grad_() for a in arrays]
        loss = _net(*ts)
        assert loss.dtype == dw.bfloat16 and loss.device.type == device
        loss.backward()
        assert all(t.grad.dtype == dw.bfloat16 and t.grad.device.type == device for t in ts)
        grads[device] = [loss.detach().cpu().float().numpy()] + [t.grad.cpu().float().numpy() for t in ts]
    for ours, cpu in zip(grads["cuda"], grads["cpu"]):
        np.testing.assert_array_equal(ours, cpu)


def test_bfloat16_moves_between_devices_exactly():
    x = dw.tensor([1.0, 3.140625, -2.0**100], dtype=dw.bfloat16)  # bfloat16 reaches float32's range
    on = x.to("cuda")
    assert on.dtype == dw.bfloat16 and on.device.type == "cuda"
    assert on.cpu().tolist() == x.tolist() and (on * 2.0).cpu().tolist() == [2.0, 6.28125, -2.0**101]
