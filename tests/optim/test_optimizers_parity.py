"""Each optimizer, over a grid of its options, against PyTorch: 100 steps on the same gradients."""

from __future__ import annotations

import itertools

import pytest

import deepwise.optim as dwo
from optim.optim_helpers import assert_params_match, dw_params, run_dw, run_torch, torch_params

torch = pytest.importorskip("torch")

STEPS = 100


def _grid(**axes):
    keys = list(axes)
    return [dict(zip(keys, values)) for values in itertools.product(*axes.values())]


SGD_CASES = [
    c for c in _grid(lr=[0.05], momentum=[0, 0.9], dampening=[0, 0.3], nesterov=[False, True],
                     weight_decay=[0, 0.01], maximize=[False, True])
    if not (c["nesterov"] and (c["momentum"] == 0 or c["dampening"] != 0))
]
ADAM_CASES = _grid(lr=[0.02], betas=[(0.9, 0.999), (0.3, 0.9)], weight_decay=[0, 0.05], amsgrad=[False, True],
                   maximize=[False, True], decoupled_weight_decay=[False, True])
ADAMW_CASES = _grid(lr=[0.02], weight_decay=[0.01, 0.1], amsgrad=[False, True], maximize=[False, True])
RMSPROP_CASES = _grid(lr=[0.01], alpha=[0.99, 0.5], centered=[False, True], momentum=[0, 0.5],
                      weight_decay=[0, 0.01], maximize=[False, True])
ADAGRAD_CASES = [
    dict(c, initial_accumulator_value=init, eps=eps)
    for c in _grid(lr=[0.1], lr_decay=[0, 0.05], weight_decay=[0, 0.01], maximize=[False, True])
    for init, eps in [(0, 1e-10), (0.1, 1e-3)]
]

CASES = (
    [("SGD", c) for c in SGD_CASES] + [("Adam", c) for c in ADAM_CASES] + [("AdamW", c) for c in ADAMW_CASES]
    + [("RMSprop", c) for c in RMSPROP_CASES] + [("Adagrad", c) for c in ADAGRAD_CASES]
)


def _id(case):
    name, kw = case
    return name + "-" + "-".join(f"{k}={v}" for k, v in kw.items() if k != "lr")


@pytest.mark.parametrize("case", CASES, ids=[_id(c) for c in CASES])
def test_matches_pytorch_for_100_steps(case):
    name, kwargs = case
    sign = -1.0 if kwargs.get("maximize") else 1.0
    dw_p, th_p = dw_params(), torch_params(torch)
    dw_opt = getattr(dwo, name)(dw_p, **kwargs)
    th_opt = getattr(torch.optim, name)(th_p, **kwargs)
    run_dw(dw_opt, dw_p, STEPS, sign)
    run_torch(torch, th_opt, th_p, STEPS, sign)
    assert_params_match(dw_p, th_p)
    # the run really moved the parameters (a no-op optimizer would fail above only by luck)
    assert abs(float(dw_p[0].array.sum()) - float(dw_params()[0].array.sum())) > 1e-3


GROUP_CASES = [
    ("SGD", {"momentum": 0.9}, [{"lr": 0.05, "weight_decay": 0.01}, {"lr": 0.2, "weight_decay": 0.0}]),
    ("Adam", {}, [{"lr": 0.01, "weight_decay": 0.1}, {"lr": 0.05, "betas": (0.5, 0.9)}]),
    ("AdamW", {"lr": 0.03}, [{"weight_decay": 0.2}, {"weight_decay": 0.0, "amsgrad": True}]),
    ("RMSprop", {"lr": 0.01}, [{"centered": True}, {"lr": 0.003, "momentum": 0.8, "weight_decay": 0.02}]),
    ("Adagrad", {"lr": 0.1}, [{"lr_decay": 0.1}, {"lr": 0.3, "weight_decay": 0.05}]),
]


@pytest.mark.parametrize("name,defaults,groups", GROUP_CASES, ids=[c[0] for c in GROUP_CASES])
def test_param_groups_with_their_own_hyper_parameters(name, defaults, groups):
    dw_p, th_p = dw_params(), torch_params(torch)
    dw_opt = getattr(dwo, name)([dict(groups[0], params=[dw_p[0]]), dict(groups[1], params=[dw_p[1]])],
                                **defaults)
    th_opt = getattr(torch.optim, name)([dict(groups[0], params=[th_p[0]]), dict(groups[1], params=[th_p[1]])],
                                        **defaults)
    run_dw(dw_opt, dw_p, STEPS)
    run_torch(torch, th_opt, th_p, STEPS)
    assert_params_match(dw_p, th_p)
    for g_dw, g_th in zip(dw_opt.param_groups, th_opt.param_groups):
        for key in g_dw:
            if key != "params":
                assert g_dw[key] == g_th[key], key


def test_add_param_group_later_matches_pytorch():
    dw_p, th_p = dw_params(), torch_params(torch)
    dw_opt = dwo.Adagrad([dw_p[0]], lr=0.1)
    th_opt = torch.optim.Adagrad([th_p[0]], lr=0.1)
    dw_opt.add_param_group({"params": [dw_p[1]], "lr": 0.05})
    th_opt.add_param_group({"params": [th_p[1]], "lr": 0.05})
    # PyTorch's Adagrad only creates state in __init__; give the new parameter the same start
    th_opt.state[th_p[1]] = {"step": torch.tensor(0.0), "sum": torch.zeros_like(th_p[1])}
    run_dw(dw_opt, dw_p, 30)
    run_torch(torch, th_opt, th_p, 30)
    assert_params_match(dw_p, th_p)


def test_lr_changed_between_steps_is_used():
    dw_p, th_p = dw_params(), torch_params(torch)
    dw_opt, th_opt = dwo.SGD(dw_p, lr=0.1, momentum=0.5), torch.optim.SGD(th_p, lr=0.1, momentum=0.5)
    for k in range(20):
        for opt in (dw_opt, th_opt):
            opt.param_groups[0]["lr"] = 0.1 / (1 + k)
        run_dw(dw_opt, dw_p, 1)
        run_torch(torch, th_opt, th_p, 1)
    assert_params_match(dw_p, th_p)
