"""deepwise.distributions next to torch.distributions: values and gradients of log_prob, entropy,
the moments and kl_divergence; reparameterised rsample; sampling statistics; argument checks."""

from __future__ import annotations

import numpy as np
import pytest

import deepwise as dw
from deepwise import distributions as D

torch = pytest.importorskip("torch")
TD = torch.distributions

RNG = np.random.default_rng(0)


def _pair(array, grad=True):
    """The same float32 values as a deepwise leaf and a torch leaf."""
    a = np.asarray(array, dtype=np.float32)
    return dw.tensor(a, requires_grad=grad), torch.tensor(a, requires_grad=grad)


def _check(ours, theirs, inputs, rtol=1e-5, atol=1e-6):
    """Same values, and the same gradients of a random weighting of them w.r.t. each input pair."""
    assert tuple(ours.shape) == tuple(theirs.shape)
    assert ours.dtype == dw.float32
    np.testing.assert_allclose(ours.detach().numpy(), theirs.detach().numpy(), rtol=rtol, atol=atol)
    w = RNG.standard_normal(tuple(ours.shape)).astype(np.float32)
    (ours * dw.tensor(w)).sum().backward()
    (theirs * torch.tensor(w)).sum().backward()
    for mine, ref in inputs:
        assert mine.grad is not None, "no gradient reached an input"
        np.testing.assert_allclose(mine.grad.numpy(), ref.grad.numpy(), rtol=rtol * 10, atol=atol * 10)


LOC = RNG.standard_normal((3, 4))
SCALE = RNG.uniform(0.3, 2.0, (3, 4))
VALUE = RNG.standard_normal((3, 4)) * 2


@pytest.mark.parametrize("what", ["log_prob", "entropy", "mean", "stddev", "variance"])
def test_normal_matches_torch(what):
    (ml, tl), (ms, ts), (mv, tv) = _pair(LOC), _pair(SCALE), _pair(VALUE)
    ours, theirs = D.Normal(ml, ms), TD.Normal(tl, ts)
    if what == "log_prob":
        _check(ours.log_prob(mv), theirs.log_prob(tv), [(ml, tl), (ms, ts), (mv, tv)])
    elif what == "entropy":
        _check(ours.entropy(), theirs.entropy(), [(ms, ts)])
    else:
        _check(getattr(ours, what), getattr(theirs, what), [(ms, ts)] if what != "mean" else [(ml, tl)])
    assert ours.batch_shape == tuple(theirs.batch_shape) and ours.event_shape == tuple(theirs.event_shape)


def test_normal_broadcasts_numbers_and_tensors_like_torch():
    ml, tl = _pair(LOC[0])
    ours, theirs = D.Normal(ml, 0.5), TD.Normal(tl, 0.5)
    assert ours.batch_shape == tuple(theirs.batch_shape) == (4,)
    _check(ours.log_prob(0.25), theirs.log_prob(torch.tensor(0.25)), [(ml, tl)])
    assert D.Normal(0.0, 1.0).log_prob(dw.zeros(2, 3)).shape == (2, 3)


def test_normal_rsample_is_reparameterised_and_sample_has_no_graph():
    loc, scale = _pair([0.5, -1.0, 2.0])[0], _pair([1.0, 0.5, 2.0])[0]
    dw.manual_seed(0)
    z = D.Normal(loc, scale).rsample((1000,))
    assert z.shape == (1000, 3) and z.dtype == dw.float32 and z.requires_grad
    z.sum().backward()
    np.testing.assert_allclose(loc.grad.numpy(), [1000.0] * 3)  # dz/dloc = 1 per draw
    eps = (z.detach().numpy() - loc.detach().numpy()) / scale.detach().numpy()
    np.testing.assert_allclose(scale.grad.numpy(), eps.sum(0), rtol=1e-4)  # dz/dscale = eps
    s = D.Normal(loc, scale).sample((20000,))
    assert not s.requires_grad and s.shape == (20000, 3)
    np.testing.assert_allclose(s.numpy().mean(0), [0.5, -1.0, 2.0], atol=0.05)
    np.testing.assert_allclose(s.numpy().std(0), [1.0, 0.5, 2.0], rtol=0.03)
    assert D.Normal(0.0, 1.0).has_rsample and TD.Normal(0.0, 1.0).has_rsample


def test_the_same_seed_gives_the_same_samples():
    dw.manual_seed(3)
    a = D.Normal(dw.zeros(5), 1.0).sample((2,)).numpy()
    dw.manual_seed(3)
    assert np.array_equal(a, D.Normal(dw.zeros(5), 1.0).sample((2,)).numpy())


LOGITS = RNG.standard_normal((5, 4)) * 2


@pytest.mark.parametrize("param", ["logits", "probs"])
def test_categorical_log_prob_and_entropy_match_torch(param):
    raw = LOGITS if param == "logits" else np.exp(LOGITS) * 3  # unnormalised probs: both normalise them
    (mp, tp) = _pair(raw)
    ours, theirs = D.Categorical(**{param: mp}), TD.Categorical(**{param: tp})
    value = np.array([0, 3, 1, 1, 2])
    _check(ours.log_prob(dw.tensor(value)), theirs.log_prob(torch.tensor(value)), [(mp, tp)])
    mp.grad, tp.grad = None, None
    ours, theirs = D.Categorical(**{param: mp}), TD.Categorical(**{param: tp})
    _check(ours.entropy(), theirs.entropy(), [(mp, tp)])
    np.testing.assert_allclose(ours.probs.detach().numpy(), theirs.probs.detach().numpy(), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(ours.logits.detach().numpy(), theirs.logits.detach().numpy(), rtol=1e-5, atol=1e-5)
    assert ours.batch_shape == tuple(theirs.batch_shape) == (5,)
    assert ours.param_shape == tuple(theirs.param_shape)


def test_categorical_log_prob_broadcasts_values_over_the_batch_like_torch():
    mp, tp = _pair(LOGITS)
    values = np.array([[0], [1], [3]])  # (3, 1) against a batch of 5: (3, 5)
    _check(D.Categorical(logits=mp).log_prob(dw.tensor(values)),
           TD.Categorical(logits=tp).log_prob(torch.tensor(values)), [(mp, tp)])
    support = D.Categorical(logits=mp).enumerate_support()
    assert support.tolist() == TD.Categorical(logits=tp).enumerate_support().tolist()


def test_categorical_samples_follow_the_probabilities():
    p = np.array([[0.1, 0.6, 0.3], [0.5, 0.0, 0.5]], dtype=np.float32)
    dw.manual_seed(0)
    s = D.Categorical(probs=dw.tensor(p)).sample((20000,))
    assert s.shape == tuple(TD.Categorical(probs=torch.tensor(p)).sample((20000,)).shape) == (20000, 2)
    assert s.dtype == dw.int64
    for row in range(2):
        np.testing.assert_allclose(np.bincount(s.numpy()[:, row], minlength=3) / 20000, p[row], atol=0.015)
    assert D.Categorical(probs=dw.tensor(p)).sample().shape == (2,)


@pytest.mark.parametrize("param", ["probs", "logits"])
def test_bernoulli_matches_torch(param):
    raw = RNG.uniform(0.05, 0.95, (6,)) if param == "probs" else RNG.standard_normal(6) * 3
    mp, tp = _pair(raw)
    value = np.array([1, 0, 0, 1, 1, 0], dtype=np.float32)
    _check(D.Bernoulli(**{param: mp}).log_prob(dw.tensor(value)),
           TD.Bernoulli(**{param: tp}).log_prob(torch.tensor(value)), [(mp, tp)])
    for what in ("entropy", "mean", "variance", "stddev"):
        mp.grad, tp.grad = None, None  # a fresh pair each time: each backward frees its graph
        ours, theirs = D.Bernoulli(**{param: mp}), TD.Bernoulli(**{param: tp})
        o = ours.entropy() if what == "entropy" else getattr(ours, what)
        t = theirs.entropy() if what == "entropy" else getattr(theirs, what)
        _check(o, t, [(mp, tp)])


def test_bernoulli_samples_are_floats_at_the_rate_of_probs():
    dw.manual_seed(1)
    s = D.Bernoulli(probs=dw.tensor([0.2, 0.9])).sample((20000,))
    assert s.dtype == dw.float32 and set(np.unique(s.numpy()).tolist()) <= {0.0, 1.0}
    np.testing.assert_allclose(s.numpy().mean(0), [0.2, 0.9], atol=0.015)


def test_uniform_matches_torch():
    value, q = [0.5, 2.0, 2.1], [0.1, 0.5, 0.9]
    quantities = {
        "log_prob": lambda d, t: d.log_prob(t(value)), "cdf": lambda d, t: d.cdf(t(value)),
        "icdf": lambda d, t: d.icdf(t(q)), "entropy": lambda d, t: d.entropy(),
        "mean": lambda d, t: d.mean, "stddev": lambda d, t: d.stddev, "variance": lambda d, t: d.variance,
    }
    for f in quantities.values():
        (ml, tl), (mh, th) = _pair([0.0, -1.0, 2.0]), _pair([1.0, 3.0, 2.5])
        ours, theirs = f(D.Uniform(ml, mh), dw.tensor), f(TD.Uniform(tl, th), torch.tensor)
        _check(ours, theirs, [(ml, tl), (mh, th)])


def test_uniform_rsample_lies_in_the_interval_and_is_differentiable():
    low, high = _pair([0.0, -1.0, 2.0])[0], _pair([1.0, 3.0, 2.5])[0]
    dw.manual_seed(0)
    r = D.Uniform(low, high).rsample((5000,))
    x = r.detach().numpy()
    assert x.shape == (5000, 3) and (x >= [0.0, -1.0, 2.0]).all() and (x < [1.0, 3.0, 2.5]).all()
    r.sum().backward()
    u = (x - low.detach().numpy()) / (high.detach().numpy() - low.detach().numpy())
    np.testing.assert_allclose(high.grad.numpy(), u.sum(0), rtol=1e-4)  # d/dhigh of low + u (high - low)
    np.testing.assert_allclose(low.grad.numpy(), (1 - u).sum(0), rtol=1e-4)


def test_uniform_outside_its_support_is_an_error_or_minus_infinity():
    with pytest.raises(ValueError, match="support"):
        TD.Uniform(0.0, 1.0).log_prob(torch.tensor(1.5))
    with pytest.raises(ValueError, match="support"):
        D.Uniform(0.0, 1.0).log_prob(dw.tensor(1.5))
    got = D.Uniform(0.0, 1.0, validate_args=False).log_prob(dw.tensor([1.5, 0.5]))
    assert got.numpy()[0] == -np.inf
    assert got.numpy()[0] == TD.Uniform(0.0, 1.0, validate_args=False).log_prob(torch.tensor(1.5)).item()


@pytest.mark.parametrize("pair", ["normal", "categorical", "bernoulli", "uniform", "independent"])
def test_kl_divergence_matches_torch(pair):
    if pair in ("normal", "independent"):
        (a, ta), (b, tb) = _pair(LOC), _pair(SCALE)
        (c, tc), (d, td) = _pair(LOC[::-1].copy()), _pair(SCALE.T.reshape(3, 4))
        ours_p, ours_q = D.Normal(a, b), D.Normal(c, d)
        theirs_p, theirs_q = TD.Normal(ta, tb), TD.Normal(tc, td)
        if pair == "independent":
            ours_p, ours_q = D.Independent(ours_p, 1), D.Independent(ours_q, 1)
            theirs_p, theirs_q = TD.Independent(theirs_p, 1), TD.Independent(theirs_q, 1)
        inputs = [(a, ta), (b, tb), (c, tc), (d, td)]
    elif pair == "categorical":
        (a, ta), (c, tc) = _pair(LOGITS), _pair(LOGITS[::-1].copy())
        ours_p, ours_q = D.Categorical(logits=a), D.Categorical(logits=c)
        theirs_p, theirs_q = TD.Categorical(logits=ta), TD.Categorical(logits=tc)
        inputs = [(a, ta), (c, tc)]
    elif pair == "bernoulli":
        (a, ta), (c, tc) = _pair(RNG.uniform(0.1, 0.9, 5)), _pair(RNG.uniform(0.1, 0.9, 5))
        ours_p, ours_q = D.Bernoulli(probs=a), D.Bernoulli(probs=c)
        theirs_p, theirs_q = TD.Bernoulli(probs=ta), TD.Bernoulli(probs=tc)
        inputs = [(a, ta), (c, tc)]
    else:
        (a, ta), (b, tb) = _pair([0.2, -1.0]), _pair([0.5, 1.0])
        ours_p, ours_q = D.Uniform(a, b), D.Uniform(a.detach() - 1, b.detach() + 1)
        theirs_p, theirs_q = TD.Uniform(ta, tb), TD.Uniform(ta.detach() - 1, tb.detach() + 1)
        inputs = [(a, ta), (b, tb)]
    _check(D.kl_divergence(ours_p, ours_q), TD.kl_divergence(theirs_p, theirs_q), inputs, rtol=1e-5, atol=1e-5)


def test_kl_of_a_normal_against_the_standard_one_is_the_vae_term():
    mu, log_var = _pair(LOC)[0], _pair(SCALE - 1)[0]
    std = (0.5 * log_var).exp()
    ours = D.kl_divergence(D.Normal(mu, std), D.Normal(0.0, 1.0)).sum()
    closed = -0.5 * (1 + log_var - mu ** 2 - log_var.exp()).sum()  # the formula VAE programs write out
    np.testing.assert_allclose(ours.item(), closed.item(), rtol=1e-5)
    with pytest.raises(NotImplementedError, match="no closed form for KL"):
        D.kl_divergence(D.Normal(0.0, 1.0), D.Uniform(0.0, 1.0))


def test_register_kl_adds_a_pair():
    class Point(D.Distribution):
        pass

    @D.register_kl(Point, Point)
    def _(p, q):
        return dw.zeros(())

    assert D.kl_divergence(Point(), Point()).item() == 0.0


def test_independent_sums_the_reinterpreted_dimensions_like_torch():
    (ml, tl), (ms, ts), (mv, tv) = _pair(LOC), _pair(SCALE), _pair(VALUE)
    ours, theirs = D.Independent(D.Normal(ml, ms), 1), TD.Independent(TD.Normal(tl, ts), 1)
    assert ours.batch_shape == tuple(theirs.batch_shape) == (3,)
    assert ours.event_shape == tuple(theirs.event_shape) == (4,)
    _check(ours.log_prob(mv), theirs.log_prob(tv), [(ml, tl), (ms, ts), (mv, tv)])
    assert ours.rsample((2,)).shape == (2, 3, 4)
    with pytest.raises(ValueError, match="reinterpreted_batch_ndims"):
        D.Independent(D.Normal(ml, ms), 3)


@pytest.mark.parametrize("make", [
    lambda M, t: M.Normal(t([0.0, 1.0]), t([1.0, -1.0])),
    lambda M, t: M.Bernoulli(probs=t([0.5, 1.5])),
    lambda M, t: M.Uniform(t([0.0]), t([0.0])),
    lambda M, t: M.Categorical(probs=t([0.5, -0.1])),
], ids=["normal-scale", "bernoulli-probs", "uniform-bounds", "categorical-probs"])
def test_invalid_parameters_are_value_errors_as_in_torch(make):
    with pytest.raises(ValueError, match="Expected parameter"):
        make(TD, torch.tensor)
    with pytest.raises(ValueError, match="Expected parameter .* of distribution"):
        make(D, dw.tensor)


def test_categorical_and_bernoulli_values_outside_their_support_are_errors():
    with pytest.raises(ValueError, match="support"):
        D.Categorical(logits=dw.zeros(3)).log_prob(dw.tensor(3))
    with pytest.raises(ValueError, match="support"):
        TD.Categorical(logits=torch.zeros(3)).log_prob(torch.tensor(3))
    with pytest.raises(ValueError, match="support"):
        D.Bernoulli(probs=dw.tensor(0.3)).log_prob(dw.tensor(0.5))
    with pytest.raises(ValueError, match="both"):
        D.Categorical(probs=dw.ones(2), logits=dw.ones(2))


def test_a_policy_gradient_step_through_categorical_log_prob():
    # REINFORCE: the gradient of -(log pi(a) * R) raises the logit of a rewarded action
    logits = dw.zeros(1, 3, requires_grad=True)
    dist = D.Categorical(logits=logits)
    action = dw.tensor([2])
    loss = -(dist.log_prob(action) * 1.0).mean()
    loss.backward()
    g = logits.grad.numpy()[0]
    np.testing.assert_allclose(g, [1 / 3, 1 / 3, -2 / 3], rtol=1e-5)  # softmax - onehot


def test_module_paths_are_torchs():
    from deepwise.distributions.categorical import Categorical
    from deepwise.distributions.kl import kl_divergence
    from deepwise.distributions.normal import Normal

    assert Normal is dw.distributions.Normal and Categorical is D.Categorical and kl_divergence is D.kl_divergence
    assert repr(D.Normal(0.0, 1.0)) == repr(TD.Normal(0.0, 1.0)) == "Normal(loc: 0.0, scale: 1.0)"
