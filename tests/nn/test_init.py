"""nn.init: gains and fans equal PyTorch's, each initialiser's statistics, in-place float32 writes,
and reproducibility under dw.manual_seed."""

from __future__ import annotations

import math

import numpy as np
import pytest

import deepwise as dw
import deepwise.nn as nn
from deepwise.nn import init


def test_calculate_gain_equals_torch(torch):
    tinit = torch.nn.init
    assert init.calculate_gain("identity") == 1.0
    for name in ["linear", "conv1d", "conv2d", "conv3d", "conv_transpose2d", "sigmoid", "tanh",
                 "relu", "leaky_relu", "selu"]:
        assert init.calculate_gain(name) == pytest.approx(tinit.calculate_gain(name)), name
    for slope in (0.0, 0.2, 1.0, math.sqrt(5)):
        assert init.calculate_gain("leaky_relu", slope) == pytest.approx(tinit.calculate_gain("leaky_relu", slope))
    with pytest.raises(ValueError, match="unsupported nonlinearity 'swish'"):
        init.calculate_gain("swish")
    with pytest.raises(ValueError, match="not a number"):
        init.calculate_gain("leaky_relu", "0.1")


def test_fan_in_and_fan_out_equal_torch(torch):
    for shape in [(3, 5), (16, 3, 3, 3), (8, 4, 5), (2, 6, 2, 2, 2)]:
        ours = init._calculate_fan_in_and_fan_out(dw.zeros(*shape))
        theirs = torch.nn.init._calculate_fan_in_and_fan_out(torch.zeros(*shape))
        assert ours == theirs, shape
    with pytest.raises(ValueError, match="at least 2 dimensions"):
        init._calculate_fan_in_and_fan_out(dw.zeros(4))


def _filled(fn, shape, *args, **kwargs):
    t = nn.Parameter(dw.zeros(*shape))
    data = t.array
    out = fn(t, *args, **kwargs)
    assert out is t and t.array is data  # in place, same array
    assert t.dtype == dw.float32 and t.requires_grad and t.is_leaf and t.grad is None
    return t.array.astype(np.float64)


def test_uniform_normal_constant_fills():
    u = _filled(init.uniform_, (300, 300), -2.0, 3.0)
    assert u.min() >= -2.0 and u.max() < 3.0 and abs(u.mean() - 0.5) < 0.03
    np.testing.assert_allclose(u.var(), 25 / 12, rtol=0.02)
    n = _filled(init.normal_, (300, 300), 1.0, 0.5)
    assert abs(n.mean() - 1.0) < 0.01 and abs(n.std() - 0.5) < 0.005
    assert np.all(_filled(init.constant_, (3, 4), 0.25) == 0.25)
    assert np.all(_filled(init.zeros_, (3,)) == 0) and np.all(_filled(init.ones_, (2, 2)) == 1)
    np.testing.assert_array_equal(_filled(init.eye_, (3, 5)), np.eye(3, 5))
    with pytest.raises(ValueError, match="only 2-D"):
        init.eye_(dw.zeros(3))


def test_trunc_normal_stays_in_bounds():
    t = _filled(init.trunc_normal_, (200, 200), 0.0, 1.0, -0.5, 1.5)
    assert t.min() >= -0.5 and t.max() <= 1.5
    assert t.min() < -0.49 and t.max() > 1.49
    # truncated N(0,1) on [-0.5, 1.5]: mean = (phi(-0.5) - phi(1.5)) / (Phi(1.5) - Phi(-0.5))
    phi = lambda z: math.exp(-z * z / 2) / math.sqrt(2 * math.pi)  # noqa: E731
    Phi = lambda z: 0.5 * (1 + math.erf(z / math.sqrt(2)))  # noqa: E731
    mean = (phi(-0.5) - phi(1.5)) / (Phi(1.5) - Phi(-0.5))
    assert abs(t.mean() - mean) < 0.01


@pytest.mark.parametrize("shape", [(256, 512), (64, 32, 3, 3)])
def test_xavier_variances(shape):
    fan_in, fan_out = init._calculate_fan_in_and_fan_out(dw.zeros(*shape))
    var = 2.0 / (fan_in + fan_out)
    u = _filled(init.xavier_uniform_, shape, gain=2.0)
    bound = 2.0 * math.sqrt(6.0 / (fan_in + fan_out))
    assert np.abs(u).max() <= bound
    np.testing.assert_allclose(u.var(), 4.0 * var, rtol=0.03)
    n = _filled(init.xavier_normal_, shape)
    np.testing.assert_allclose(n.var(), var, rtol=0.03)
    assert abs(n.mean()) < 0.01 * math.sqrt(var) * 10


@pytest.mark.parametrize("mode", ["fan_in", "fan_out"])
def test_kaiming_variances(mode):
    shape = (128, 64, 3, 3)
    fan = 64 * 9 if mode == "fan_in" else 128 * 9
    n = _filled(init.kaiming_normal_, shape, mode=mode, nonlinearity="relu")
    np.testing.assert_allclose(n.var(), 2.0 / fan, rtol=0.03)
    u = _filled(init.kaiming_uniform_, shape, a=0.1, mode=mode)  # leaky_relu with slope 0.1
    gain2 = 2.0 / (1 + 0.01)
    assert np.abs(u).max() <= math.sqrt(3 * gain2 / fan)
    np.testing.assert_allclose(u.var(), gain2 / fan, rtol=0.03)
    with pytest.raises(ValueError, match="'fan_in' or 'fan_out'"):
        init.kaiming_normal_(dw.zeros(3, 3), mode="fan")


@pytest.mark.parametrize("shape", [(6, 10), (10, 6), (8, 8), (4, 2, 3, 3)])
def test_orthogonal(shape):
    w = _filled(init.orthogonal_, shape, gain=1.5).reshape(shape[0], -1)
    rows, cols = w.shape
    if rows <= cols:
        np.testing.assert_allclose(w @ w.T, 2.25 * np.eye(rows), atol=1e-5)
    else:
        np.testing.assert_allclose(w.T @ w, 2.25 * np.eye(cols), atol=1e-5)
    with pytest.raises(ValueError, match="2 or more dimensions"):
        init.orthogonal_(dw.zeros(5))


def test_dirac_makes_a_conv_kernel_pass_channels_through():
    w = _filled(init.dirac_, (4, 3, 3, 3))
    for o in range(4):
        for i in range(3):
            assert w[o, i, 1, 1] == (1.0 if o == i else 0.0)
    assert w.sum() == 3.0


def test_sparse_zeroes_a_share_of_each_column():
    w = _filled(init.sparse_, (10, 20), 0.3)
    assert np.all((w == 0).sum(axis=0) == 3)


def test_inits_follow_manual_seed_and_keep_float64_tensors_float64():
    dw.manual_seed(11)
    a = init.kaiming_uniform_(dw.zeros(5, 5)).numpy()
    dw.manual_seed(11)
    b = init.kaiming_uniform_(dw.zeros(5, 5)).numpy()
    np.testing.assert_array_equal(a, b)
    t = init.normal_(dw.zeros(4, dtype=dw.float64))
    assert t.dtype == dw.float64
    x = dw.zeros(3)
    x.uniform_(2.0, 3.0)  # Tensor.uniform_ goes through nn.init
    assert np.all((x.numpy() >= 2.0) & (x.numpy() < 3.0))
    own = np.random.default_rng(0)
    c = init.normal_(dw.zeros(4), generator=own).numpy()
    d = init.normal_(dw.zeros(4), generator=np.random.default_rng(0)).numpy()
    np.testing.assert_array_equal(c, d)
