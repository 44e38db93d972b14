"""Adadelta and LBFGS against PyTorch: the same steps on the same problem give the same parameters."""

from __future__ import annotations

import numpy as np
import pytest

import deepwise as dw
import deepwise.optim as dwo
from optim.optim_helpers import assert_params_match, dw_params, run_dw, run_torch, torch_params

torch = pytest.importorskip("torch")


@pytest.mark.parametrize("kwargs", [
    {}, {"lr": 0.5, "rho": 0.5}, {"weight_decay": 0.01}, {"maximize": True}, {"eps": 1e-3, "rho": 0.99},
])
def test_adadelta_matches_pytorch_for_100_steps(kwargs):
    sign = -1.0 if kwargs.get("maximize") else 1.0
    dw_p, th_p = dw_params(), torch_params(torch)
    dw_opt, th_opt = dwo.Adadelta(dw_p, **kwargs), torch.optim.Adadelta(th_p, **kwargs)
    run_dw(dw_opt, dw_p, 100, sign)
    run_torch(torch, th_opt, th_p, 100, sign)
    assert_params_match(dw_p, th_p)
    assert abs(float(dw_p[0].array.sum()) - float(dw_params()[0].array.sum())) > 1e-3
    assert dw_p[0].dtype == dw.float32
    state = dw_opt.state_dict()["state"][0]
    assert set(state) == {"step", "square_avg", "acc_delta"} and state["step"] == 100
    np.testing.assert_allclose(state["acc_delta"].numpy(), th_opt.state[th_p[0]]["acc_delta"].numpy(), rtol=1e-4)


def test_adadelta_rejects_a_bad_rho():
    with pytest.raises(ValueError, match="rho"):
        dwo.Adadelta(dw_params(), rho=1.5)


_rng = np.random.default_rng(0)
X = _rng.standard_normal((40, 6))
Y = np.sin(X @ _rng.standard_normal((6, 1)))
W1 = _rng.standard_normal((6, 8)) * 0.5
W2 = _rng.standard_normal((8, 1)) * 0.5


def _lbfgs_run(lib, steps, dtype, **kwargs):
    dt = getattr(lib, dtype)
    w1 = lib.tensor(W1.copy(), dtype=dt, requires_grad=True)
    w2 = lib.tensor(W2.copy(), dtype=dt, requires_grad=True)
    x, y = lib.tensor(X, dtype=dt), lib.tensor(Y, dtype=dt)
    opt = lib.optim.LBFGS([w1, w2], **kwargs)

    def closure():
        opt.zero_grad()
        loss = ((x @ w1).tanh() @ w2 - y).pow(2).mean()
        loss.backward()
        return loss

    losses = [float(opt.step(closure).detach()) for _ in range(steps)]
    state = opt.state[w1]
    return losses, [w1.detach().numpy(), w2.detach().numpy()], state["func_evals"], state["n_iter"]


@pytest.mark.parametrize("kwargs", [
    {}, {"line_search_fn": "strong_wolfe"}, {"history_size": 3, "max_iter": 7, "lr": 0.5},
    {"history_size": 4, "line_search_fn": "strong_wolfe", "max_iter": 10, "max_eval": 12},
])
def test_lbfgs_matches_pytorch_in_float64(kwargs):
    ours = _lbfgs_run(dw, 3, "float64", **kwargs)
    theirs = _lbfgs_run(torch, 3, "float64", **kwargs)
    np.testing.assert_allclose(ours[0], theirs[0], rtol=1e-6)
    for a, b in zip(ours[1], theirs[1]):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
    assert ours[2:] == theirs[2:]  # the same number of closure calls and iterations
    assert ours[0][-1] < 0.1 * ours[0][0]


def test_lbfgs_float32_stays_float32_and_descends_like_pytorch():
    ours = _lbfgs_run(dw, 3, "float32", line_search_fn="strong_wolfe")
    theirs = _lbfgs_run(torch, 3, "float32", line_search_fn="strong_wolfe")
    assert ours[1][0].dtype == np.float32
    np.testing.assert_allclose(ours[0][:2], theirs[0][:2], rtol=1e-4)
    assert ours[0][-1] < 0.05 * ours[0][0]


def test_lbfgs_rules():
    p = [dw.ones(2, requires_grad=True)]
    with pytest.raises(RuntimeError, match="closure"):
        dwo.LBFGS(p).step()
    with pytest.raises(ValueError, match="line_search_fn"):
        dwo.LBFGS(p, line_search_fn="armijo")
    with pytest.raises(ValueError, match="parameter groups"):
        dwo.LBFGS([{"params": p}, {"params": [dw.ones(1, requires_grad=True)]}])
    assert dwo.LBFGS(p, max_iter=8).param_groups[0]["max_eval"] == 10  # max_iter * 5 // 4, as torch
