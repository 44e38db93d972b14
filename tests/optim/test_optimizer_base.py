"""Optimizer mechanics: state dicts, dtypes, gradient sharing, zero_grad, closures and errors."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

import deepwise.optim as dwo
from deepwise.autograd import is_grad_enabled, no_grad
from deepwise.optim import lr_scheduler
from deepwise.tensor import Tensor
from optim.optim_helpers import INITS, assert_params_match, dw_params, run_dw, run_torch, torch_params

CONFIGS = [
    ("SGD", {"lr": 0.05, "momentum": 0.9, "nesterov": True, "weight_decay": 0.01}),
    ("Adam", {"lr": 0.02, "amsgrad": True, "weight_decay": 0.01}),
    ("AdamW", {"lr": 0.02, "weight_decay": 0.1}),
    ("RMSprop", {"lr": 0.01, "centered": True, "momentum": 0.5, "weight_decay": 0.01}),
    ("Adagrad", {"lr": 0.1, "lr_decay": 0.01, "initial_accumulator_value": 0.1}),
]
IDS = [c[0] for c in CONFIGS]


def _copies(params):
    return [Tensor(p.array.copy(), requires_grad=True) for p in params]


def _state_arrays(opt):
    return [v.array for s in opt.state.values() for v in s.values() if isinstance(v, Tensor)]


@pytest.mark.parametrize("name,kwargs", CONFIGS, ids=IDS)
def test_state_dict_round_trip_mid_run_continues_identically(name, kwargs):
    cls = getattr(dwo, name)
    params_a = dw_params()
    opt_a = cls(params_a, **kwargs)
    run_dw(opt_a, params_a, 50)
    sd = opt_a.state_dict()

    # PyTorch's layout: integer indices in group order, every hyper-parameter in the group
    assert sorted(sd) == ["param_groups", "state"]
    assert sorted(sd["state"]) == [0, 1]
    assert sd["param_groups"][0]["params"] == [0, 1]
    for key, value in kwargs.items():
        assert sd["param_groups"][0][key] == value
    for per_param in sd["state"].values():
        for value in per_param.values():
            assert isinstance(value, (Tensor, int, float)), type(value)

    params_b = _copies(params_a)
    opt_b = cls(params_b, lr=0.5)  # a different lr: the loaded groups must replace it
    opt_b.load_state_dict(sd)
    assert opt_b.param_groups[0]["lr"] == kwargs["lr"]
    for arr_b in _state_arrays(opt_b):  # loaded state is copied, never shared with the source
        assert not any(np.shares_memory(arr_b, arr_a) for arr_a in _state_arrays(opt_a))

    run_dw(opt_a, params_a, 50, start=50)
    run_dw(opt_b, params_b, 50, start=50)
    for a, b in zip(params_a, params_b):
        np.testing.assert_array_equal(a.array, b.array)

    torch = pytest.importorskip("torch")
    th_params = torch_params(torch)
    run_torch(torch, getattr(torch.optim, name)(th_params, **kwargs), th_params, 100)
    assert_params_match(params_b, th_params)


@pytest.mark.parametrize("name,kwargs", CONFIGS, ids=IDS)
def test_state_dict_survives_json_and_plain_arrays(name, kwargs):
    """As written to a checkpoint: groups through JSON (tuples become lists, int keys strings) and
    state tensors as float64 NumPy arrays (safetensors-style); loading restores float32 Tensors."""
    cls = getattr(dwo, name)
    params_a = dw_params()
    opt_a = cls(params_a, **kwargs)
    run_dw(opt_a, params_a, 20)
    sd = opt_a.state_dict()
    plain = {
        "param_groups": json.loads(json.dumps(sd["param_groups"])),
        "state": {
            str(k): {n: (v.array.astype(np.float64) if isinstance(v, Tensor) else v) for n, v in s.items()}
            for k, s in sd["state"].items()
        },
    }
    params_b = _copies(params_a)
    opt_b = cls(params_b)
    opt_b.load_state_dict(plain)
    if "betas" in opt_b.param_groups[0]:
        assert isinstance(opt_b.param_groups[0]["betas"], tuple)
    for state in opt_b.state.values():
        for key, value in state.items():
            if key == "step":
                assert isinstance(value, int)
            else:
                assert isinstance(value, Tensor) and value.dtype == np.float32
    run_dw(opt_a, params_a, 10, start=20)
    run_dw(opt_b, params_b, 10, start=20)
    for a, b in zip(params_a, params_b):
        np.testing.assert_array_equal(a.array, b.array)


ALL_FEATURES = [
    ("SGD", {"lr": 0.05, "momentum": 0.9, "dampening": 0.1, "weight_decay": 0.01, "maximize": True}),
    ("SGD", {"lr": 0.05, "momentum": 0.9, "nesterov": True}),
    ("Adam", {"amsgrad": True, "weight_decay": 0.01, "maximize": True}),
    ("AdamW", {"amsgrad": True, "maximize": True}),
    ("RMSprop", {"centered": True, "momentum": 0.9, "weight_decay": 0.01, "maximize": True}),
    ("Adagrad", {"lr_decay": 0.1, "weight_decay": 0.01, "maximize": True}),
]


@pytest.mark.parametrize("name,kwargs", ALL_FEATURES, ids=[c[0] for c in ALL_FEATURES])
def test_parameters_and_state_stay_float32(name, kwargs):
    params = dw_params()
    opt = getattr(dwo, name)(params, **kwargs)
    run_dw(opt, params, 10)
    for p in params:
        assert p.array.dtype == np.float32
    for state in opt.state.values():
        assert state, "state was created"
        for key, value in state.items():
            if key == "step":
                assert type(value) is int and value == 10
            else:
                assert isinstance(value, Tensor) and value.dtype == np.float32, (key, value.dtype)


@pytest.mark.parametrize("name,kwargs", ALL_FEATURES, ids=[c[0] for c in ALL_FEATURES])
def test_shared_gradient_array_is_never_written(name, kwargs):
    """Two parameters share one gradient array (as after a broadcast or a tied op): the array must
    come through every step unchanged, so both parameters get the same update."""
    rng = np.random.default_rng(3)
    start = rng.standard_normal((4, 3)).astype(np.float32)
    p1, p2 = Tensor(start.copy(), requires_grad=True), Tensor(start.copy(), requires_grad=True)
    opt = getattr(dwo, name)([p1, p2], **kwargs)
    for _ in range(5):
        g = rng.standard_normal((4, 3)).astype(np.float32)
        snapshot = g.copy()
        p1.grad, p2.grad = Tensor._make(g), Tensor._make(g)
        opt.step()
        np.testing.assert_array_equal(g, snapshot)
        assert p1.grad.array is g and p2.grad.array is g
        np.testing.assert_array_equal(p1.array, p2.array)
    assert not np.array_equal(p1.array, start)


def test_params_without_grad_are_skipped():
    p_with, p_without = Tensor(np.ones(3, np.float32), requires_grad=True), Tensor(np.ones(2, np.float32),
                                                                                   requires_grad=True)
    opt = dwo.Adam([p_with, p_without], lr=0.1)
    p_with.grad = Tensor._make(np.ones(3, np.float32))
    opt.step()
    np.testing.assert_array_equal(p_without.array, np.ones(2, np.float32))
    assert p_without not in opt.state
    np.testing.assert_allclose(p_with.array, np.full(3, 0.9, np.float32), rtol=1e-6)
    assert list(opt.state_dict()["state"]) == [0]


def test_zero_grad_set_to_none_and_to_new_zero_arrays():
    params = dw_params()
    opt = dwo.SGD(params, lr=0.1)
    shared = np.ones((5, 3), np.float32)
    params[0].grad = Tensor._make(shared)
    opt.zero_grad(set_to_none=False)
    assert params[1].grad is None  # had none, gets none
    assert params[0].grad.array is not shared and params[0].grad.dtype == np.float32
    np.testing.assert_array_equal(params[0].grad.array, np.zeros((5, 3), np.float32))
    np.testing.assert_array_equal(shared, np.ones((5, 3), np.float32))  # the old array is untouched
    opt.zero_grad()
    assert params[0].grad is None


def test_step_runs_closure_with_grad_enabled_and_returns_its_loss():
    params = dw_params()
    opt = dwo.SGD(params, lr=0.1)
    seen = []

    def closure():
        seen.append(is_grad_enabled())
        for p, g in zip(params, [np.ones((5, 3), np.float32), np.ones(3, np.float32)]):
            p.grad = Tensor._make(g)
        return 1.5

    with no_grad():
        loss = opt.step(closure)
    assert loss == 1.5 and seen == [True]
    np.testing.assert_allclose(params[1].array, INITS[1] - 0.1, rtol=1e-6)


def test_named_parameters_and_groups():
    w, b = dw_params()
    opt = dwo.SGD([("weight", w), ("bias", b)], lr=0.1)
    assert opt.param_groups[0]["param_names"] == ["weight", "bias"]
    assert opt.state_dict()["param_groups"][0]["param_names"] == ["weight", "bias"]
    with pytest.raises(ValueError, match="with parameter names or all without"):
        opt.add_param_group({"params": [Tensor(np.ones(2, np.float32), requires_grad=True)]})


def test_add_param_group_fills_defaults_and_repr_lists_them():
    w, b = dw_params()
    opt = dwo.Adam([w], lr=0.01, betas=(0.8, 0.99))
    opt.add_param_group({"params": b, "lr": 0.1})
    group = opt.param_groups[1]
    assert len(group["params"]) == 1 and group["params"][0] is b
    assert group["lr"] == 0.1 and group["betas"] == (0.8, 0.99) and group["eps"] == 1e-8
    text = repr(opt)
    assert "Parameter Group 1" in text and "lr: 0.1" in text and "betas: (0.8, 0.99)" in text


def test_base_class_with_required_hyper_parameter():
    w, b = dw_params()

    class Plain(dwo.Optimizer):
        def __init__(self, params, lr=dwo.required):
            super().__init__(params, {"lr": lr})

        def step(self, closure=None):
            for group in self.param_groups:
                for p in group["params"]:
                    if p.grad is not None:
                        p.array -= group["lr"] * p.grad.array

    with pytest.raises(ValueError, match="does not give 'lr'"):
        Plain([w])
    opt = Plain([{"params": [w], "lr": 0.5}])
    w.grad = Tensor._make(np.ones_like(w.array))
    opt.step()
    np.testing.assert_allclose(w.array, INITS[0] - 0.5, rtol=1e-6)
    # a subclass that writes its own step() still counts as stepped for the schedulers' check
    sched = lr_scheduler.StepLR(opt, step_size=2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sched.step()


def test_scheduler_warns_when_stepped_before_the_optimizer():
    opt = dwo.SGD(dw_params(), lr=0.1)
    sched = lr_scheduler.StepLR(opt, step_size=2)
    with pytest.warns(UserWarning, match="before optimizer.step"):
        sched.step()


BAD_CONSTRUCTIONS = [
    (lambda p: dwo.SGD(p[0], lr=0.1), TypeError, "single Tensor"),
    (lambda p: dwo.SGD([], lr=0.1), ValueError, "empty parameter list"),
    (lambda p: dwo.SGD({p[0], p[1]}, lr=0.1), TypeError, "set"),
    (lambda p: dwo.SGD([p[0], np.ones(3)], lr=0.1), TypeError, "parameter 1 of param group 0 is a ndarray"),
    (lambda p: dwo.SGD([p[0], p[0]], lr=0.1), ValueError, "appears twice"),
    (lambda p: dwo.SGD([{"params": [p[0]]}, {"params": [p[1], p[0]]}]), ValueError, "more than one"),
    (lambda p: dwo.SGD([p[0] * 2.0], lr=0.1), ValueError, "not a leaf"),
    (lambda p: dwo.SGD(p, lr=-0.1), ValueError, "invalid lr -0.1"),
    (lambda p: dwo.SGD([{"params": [p[0]], "lr": -1.0}], lr=0.1), ValueError, r"param group 0"),
    (lambda p: dwo.SGD(p, lr=None), TypeError, "lr must be a number"),
    (lambda p: dwo.SGD(p, lr=0.1, momentum=-0.5), ValueError, "invalid momentum"),
    (lambda p: dwo.SGD(p, lr=0.1, nesterov=True), ValueError, "Nesterov momentum requires"),
    (lambda p: dwo.SGD(p, lr=0.1, momentum=0.9, dampening=0.1, nesterov=True), ValueError, "zero dampening"),
    (lambda p: dwo.SGD(p, weight_decay=-1e-4), ValueError, "invalid weight_decay"),
    (lambda p: dwo.Adam(p, betas=(1.0, 0.999)), ValueError, r"betas\[0\] 1.0"),
    (lambda p: dwo.Adam(p, betas=(0.9, -0.1)), ValueError, r"betas\[1\]"),
    (lambda p: dwo.Adam(p, betas=0.9), ValueError, "pair"),
    (lambda p: dwo.AdamW(p, eps=-1e-8), ValueError, "invalid eps"),
    (lambda p: dwo.RMSprop(p, alpha=-0.5), ValueError, "invalid alpha"),
    (lambda p: dwo.Adagrad(p, lr_decay=-1.0), ValueError, "invalid lr_decay"),
    (lambda p: dwo.Adagrad(p, initial_accumulator_value=-1.0), ValueError, "initial_accumulator_value"),
    (lambda p: dwo.Adam(p).add_param_group([p[0]]), TypeError, "must be a dict"),
]


@pytest.mark.parametrize("build,error,match", BAD_CONSTRUCTIONS, ids=[c[2] for c in BAD_CONSTRUCTIONS])
def test_bad_arguments_give_clear_errors(build, error, match):
    with pytest.raises(error, match=match):
        build(dw_params())


def test_gradient_of_wrong_shape_is_an_error():
    p = Tensor(np.ones((2, 3), np.float32), requires_grad=True)
    opt = dwo.SGD([p], lr=0.1)
    p.grad = Tensor._make(np.ones(3, np.float32))
    with pytest.raises(RuntimeError, match=r"shape \(2, 3\) has a gradient of shape \(3,\)"):
        opt.step()


def test_load_state_dict_checks_what_it_loads():
    params = dw_params()
    opt = dwo.Adam(params, lr=0.01)
    run_dw(opt, params, 3)
    sd = opt.state_dict()
    one_group = dwo.Adam([{"params": [params[0]]}, {"params": [params[1]]}])
    with pytest.raises(ValueError, match="1 parameter groups, this optimizer has 2"):
        one_group.load_state_dict(sd)
    fewer = dwo.Adam([params[0]])
    with pytest.raises(ValueError, match="group 0 has 2 parameters in the state dict but 1"):
        fewer.load_state_dict(sd)
    swapped = dwo.Adam([params[1], params[0]])
    with pytest.raises(ValueError, match=r"'exp_avg' of parameter 0 has shape \(5, 3\).*shape \(3,\)"):
        swapped.load_state_dict(sd)
    bad_key = {"state": {"x": {}}, "param_groups": sd["param_groups"]}
    with pytest.raises(ValueError, match="not a parameter index"):
        dwo.Adam(params).load_state_dict(bad_key)
    out_of_range = {"state": {7: sd["state"][0]}, "param_groups": sd["param_groups"]}
    with pytest.raises(ValueError, match="state for parameter 7"):
        dwo.Adam(params).load_state_dict(out_of_range)
    with pytest.raises(ValueError, match="'state' and 'param_groups'"):
        dwo.Adam(params).load_state_dict({"state": {}})
    negative_lr = {"state": {}, "param_groups": [dict(sd["param_groups"][0], lr=-1.0)]}
    with pytest.raises(ValueError, match="invalid lr"):
        dwo.Adam(params).load_state_dict(negative_lr)


def test_adamw_stays_decoupled_after_loading_an_adam_state_dict():
    params = dw_params()
    sd = dwo.Adam(params, weight_decay=0.1).state_dict()
    opt = dwo.AdamW(params)
    opt.load_state_dict(sd)
    assert opt.param_groups[0]["decoupled_weight_decay"] is True


@pytest.mark.parametrize("name,kwargs", ALL_FEATURES, ids=[c[0] for c in ALL_FEATURES])
def test_zero_dimensional_parameter_matches_pytorch(name, kwargs):
    """A 0-d parameter (a learnable scale): NumPy turns 0-d results into scalars unless written
    through out=, which would silently stop in-place state updates."""
    torch = pytest.importorskip("torch")
    ours = Tensor(np.array(0.5, np.float32), requires_grad=True)
    theirs = torch.tensor(0.5, requires_grad=True)
    opt_ours = getattr(dwo, name)([ours], **kwargs)
    opt_theirs = getattr(torch.optim, name)([theirs], **kwargs)
    sign = -1.0 if kwargs.get("maximize") else 1.0
    for k in range(30):
        target = 3.0 + np.sin(k)  # loss 0.5 * (s - target)^2, a moving target
        ours.grad = Tensor._make(np.array(sign * (ours.array - target), np.float32))
        theirs.grad = torch.tensor(sign * (theirs.item() - target), dtype=torch.float32)
        opt_ours.step()
        opt_theirs.step()
    assert isinstance(ours.array, np.ndarray) and ours.array.shape == () and ours.dtype == np.float32
    for key, value in opt_ours.state[ours].items():
        if isinstance(value, Tensor):
            assert isinstance(value.array, np.ndarray) and value.array.shape == (), key
    np.testing.assert_allclose(ours.array, theirs.item(), rtol=1e-5)
    assert abs(ours.item() - 0.5) > 0.02  # it moved (Adam at lr=1e-3 moves ~0.03 in 30 steps)
