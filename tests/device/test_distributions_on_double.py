"""torch.distributions and the legacy dw.cuda constructors on the device double: parameters on
"cuda" give samples, log-probabilities, entropies and KLs on "cuda", gradients flow back there,
and the argument checks work without moving anything implicitly."""

from __future__ import annotations

import numpy as np
import pytest

import deepwise as dw
from deepwise import distributions as D


def _cuda(values, grad=False):
    return dw.tensor(np.asarray(values, dtype=np.float32), device="cuda", requires_grad=grad)


def test_the_legacy_cuda_constructors_make_cuda_tensors():
    a = dw.cuda.FloatTensor(2, 3)
    b = dw.cuda.LongTensor([1, 2])
    assert a.device.type == "cuda" and a.shape == (2, 3) and a.dtype == dw.float32
    assert b.device.type == "cuda" and b.dtype == dw.int64 and b.cpu().tolist() == [1, 2]


def test_normal_samples_and_gradients_stay_on_the_device():
    loc, scale = _cuda([0.0, 1.0], grad=True), _cuda([1.0, 2.0], grad=True)
    d = D.Normal(loc, scale)
    z = d.rsample((5,))
    assert z.device.type == "cuda" and z.shape == (5, 2)
    loss = (d.log_prob(z.detach()).sum() + D.kl_divergence(d, D.Normal(0.0, 1.0)).sum() + z.sum()
            + d.entropy().sum())
    loss.backward()
    assert loc.grad.device.type == "cuda" and scale.grad.device.type == "cuda"
    with pytest.raises(ValueError, match="Expected parameter scale"):
        D.Normal(loc, _cuda([1.0, -1.0]))


@pytest.mark.parametrize("make", [
    lambda: D.Categorical(logits=_cuda([[0.0, 1.0, 2.0], [1.0, 1.0, 1.0]], grad=True)),
    lambda: D.Bernoulli(probs=_cuda([0.2, 0.7], grad=True)),
    lambda: D.Uniform(_cuda([0.0, 1.0], grad=True), _cuda([1.0, 3.0], grad=True)),
], ids=["categorical", "bernoulli", "uniform"])
def test_discrete_and_uniform_distributions_on_the_device(make):
    d = make()
    s = d.sample((4,))
    assert s.device.type == "cuda" and s.shape == (4, *d.batch_shape)
    lp = d.log_prob(s)
    assert lp.device.type == "cuda" and lp.shape == (4, *d.batch_shape)
    (lp.sum() + d.entropy().sum() + D.kl_divergence(d, d).sum()).backward()
