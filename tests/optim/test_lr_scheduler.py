"""Learning-rate schedulers against PyTorch: 100 steps, learning rates (and momenta) step for step,
and a state-dict round trip (through JSON) in the middle."""

from __future__ import annotations

import json

import numpy as np
import pytest

import deepwise.optim as dwo
from deepwise.optim import lr_scheduler
from deepwise.tensor import Tensor

torch = pytest.importorskip("torch")

STEPS = 100


def _make_opt(framework, kind):
    """Two param groups with different learning rates."""
    if framework == "dw":
        params = [Tensor(np.ones(3, np.float32), requires_grad=True) for _ in range(2)]
        module = dwo
    else:
        params = [torch.ones(3, requires_grad=True) for _ in range(2)]
        module = torch.optim
    groups = [{"params": [params[0]]}, {"params": [params[1]], "lr": 0.02}]
    if kind == "adam":
        return module.Adam(groups, lr=0.1)
    return module.SGD(groups, lr=0.1, momentum=0.9)


def _snapshot(opt, sched):
    row = list(sched.get_last_lr()) + [g["lr"] for g in opt.param_groups]
    for g in opt.param_groups:
        row.append(g["betas"][0] if "betas" in g else g["momentum"])
    return row


def _run(factory, framework, kind, round_trip_at=None):
    mod = lr_scheduler if framework == "dw" else torch.optim.lr_scheduler
    opt = _make_opt(framework, kind)
    sched = factory(opt, mod)
    rows = [_snapshot(opt, sched)]
    for step in range(1, STEPS + 1):
        opt.step()
        sched.step()
        rows.append(_snapshot(opt, sched))
        if step == round_trip_at:
            opt_sd = json.loads(json.dumps(opt.state_dict()))
            sched_sd = json.loads(json.dumps(sched.state_dict()))
            opt = _make_opt(framework, kind)
            sched = factory(opt, mod)
            opt.load_state_dict(opt_sd)
            sched.load_state_dict(sched_sd)
    return np.array(rows, dtype=np.float64)


def _lambda_decay(epoch):
    return 1.0 / (1.0 + 0.05 * epoch)


def _lambda_wave(epoch):
    return 0.5 + 0.5 * np.cos(epoch / 7.0)


CASES = {
    "StepLR": ("sgd", lambda o, m: m.StepLR(o, step_size=7, gamma=0.5)),
    "MultiStepLR": ("sgd", lambda o, m: m.MultiStepLR(o, milestones=[10, 30, 30, 60], gamma=0.5)),
    "ExponentialLR": ("sgd", lambda o, m: m.ExponentialLR(o, gamma=0.97)),
    "CosineAnnealingLR-cycles": ("sgd", lambda o, m: m.CosineAnnealingLR(o, T_max=30, eta_min=0.001)),
    "CosineAnnealingLR-once": ("adam", lambda o, m: m.CosineAnnealingLR(o, T_max=100)),
    "LinearLR-warmup": ("sgd", lambda o, m: m.LinearLR(o, start_factor=0.1, end_factor=1.0, total_iters=10)),
    "LinearLR-decay": ("sgd", lambda o, m: m.LinearLR(o, start_factor=1.0, end_factor=0.2, total_iters=50)),
    "ConstantLR": ("sgd", lambda o, m: m.ConstantLR(o, factor=0.5, total_iters=8)),
    "PolynomialLR": ("sgd", lambda o, m: m.PolynomialLR(o, total_iters=60, power=2.0)),
    "LambdaLR": ("sgd", lambda o, m: m.LambdaLR(o, _lambda_decay)),
    "LambdaLR-per-group": ("sgd", lambda o, m: m.LambdaLR(o, [_lambda_decay, _lambda_wave])),
    "OneCycleLR-sgd-cos": ("sgd", lambda o, m: m.OneCycleLR(o, max_lr=[1.0, 0.5], total_steps=101)),
    "OneCycleLR-adam-three-phase-linear": ("adam", lambda o, m: m.OneCycleLR(
        o, max_lr=0.3, epochs=10, steps_per_epoch=11, anneal_strategy="linear", three_phase=True)),
    "OneCycleLR-no-momentum": ("sgd", lambda o, m: m.OneCycleLR(
        o, max_lr=0.5, total_steps=100, pct_start=0.5, div_factor=10.0, final_div_factor=100.0,
        cycle_momentum=False)),
    "SequentialLR-warmup-cosine": ("sgd", lambda o, m: m.SequentialLR(
        o, [m.LinearLR(o, start_factor=0.1, total_iters=5), m.CosineAnnealingLR(o, T_max=95)], milestones=[5])),
    "SequentialLR-three": ("adam", lambda o, m: m.SequentialLR(
        o, [m.ConstantLR(o, factor=0.25, total_iters=20), m.ExponentialLR(o, gamma=0.9),
            m.StepLR(o, step_size=5, gamma=0.7)], milestones=[10, 40])),
    "ChainedScheduler": ("sgd", lambda o, m: m.ChainedScheduler(
        [m.ConstantLR(o, factor=0.5, total_iters=10), m.ExponentialLR(o, gamma=0.98)])),
}


@pytest.mark.parametrize("name", list(CASES))
def test_learning_rates_match_pytorch_step_for_step(name):
    kind, factory = CASES[name]
    ours = _run(factory, "dw", kind)
    theirs = _run(factory, "torch", kind)
    np.testing.assert_allclose(ours, theirs, rtol=1e-10, atol=1e-15)
    assert len(np.unique(ours[:, 0])) >= 2, "the schedule changed the learning rate"


@pytest.mark.parametrize("name", list(CASES))
def test_state_dict_round_trip_through_json_continues_the_schedule(name):
    kind, factory = CASES[name]
    uninterrupted = _run(factory, "dw", kind)
    resumed = _run(factory, "dw", kind, round_trip_at=50)
    np.testing.assert_array_equal(resumed, uninterrupted)
    np.testing.assert_allclose(resumed, _run(factory, "torch", kind), rtol=1e-10, atol=1e-15)


def test_multistep_state_dict_is_plain():
    opt = _make_opt("dw", "sgd")
    sd = lr_scheduler.MultiStepLR(opt, milestones=[30, 10, 30]).state_dict()
    assert sd["milestones"] == [10, 30, 30]
    assert "optimizer" not in sd
    json.dumps(sd)


def test_lambda_object_state_is_saved():
    class Warmup:
        def __init__(self, n):
            self.n = n

        def __call__(self, epoch):
            return min(1.0, (epoch + 1) / self.n)

    opt = _make_opt("dw", "sgd")
    sched = lr_scheduler.LambdaLR(opt, Warmup(4))
    sd = sched.state_dict()
    assert sd["lr_lambdas"] == [{"n": 4}, {"n": 4}]  # one entry per param group
    other = lr_scheduler.LambdaLR(_make_opt("dw", "sgd"), Warmup(99))
    other.load_state_dict(json.loads(json.dumps(sd)))
    assert other.lr_lambdas[0].n == 4


def test_step_with_epoch_uses_the_closed_form():
    ours_opt, theirs_opt = _make_opt("dw", "sgd"), _make_opt("torch", "sgd")
    ours = lr_scheduler.StepLR(ours_opt, step_size=10, gamma=0.5)
    theirs = torch.optim.lr_scheduler.StepLR(theirs_opt, step_size=10, gamma=0.5)
    ours_opt.step()
    theirs_opt.step()
    with pytest.warns(UserWarning, match="deprecated"):
        ours.step(25)
    with pytest.warns(UserWarning):
        theirs.step(25)
    assert ours.get_last_lr() == pytest.approx(theirs.get_last_lr(), rel=1e-12)
    assert ours.get_last_lr() == pytest.approx([0.025, 0.005])


METRICS = [1.0 / (1.0 + 0.1 * k) for k in range(20)] + [
    0.5 + 0.01 * np.sin(k) + (0.02 if k % 17 == 0 else 0.0) - 0.0005 * k for k in range(80)
]
PLATEAU_CASES = {
    "defaults": {},
    "max-abs-cooldown": {"mode": "max", "patience": 2, "threshold": 0.01, "threshold_mode": "abs", "cooldown": 3},
    "impatient-min-lr-list": {"patience": 0, "factor": 0.5, "min_lr": [0.01, 0.001], "cooldown": 1},
    "rel-big-eps": {"patience": 1, "factor": 0.7, "threshold": 0.05, "eps": 0.004},
}


def _run_plateau(framework, kwargs, round_trip_at=None):
    mod = lr_scheduler if framework == "dw" else torch.optim.lr_scheduler
    opt = _make_opt(framework, "sgd")
    sched = mod.ReduceLROnPlateau(opt, **kwargs)
    sign = -1.0 if kwargs.get("mode") == "max" else 1.0
    rows = []
    for step, metric in enumerate(METRICS, start=1):
        opt.step()
        sched.step(sign * metric)
        rows.append(list(sched.get_last_lr()) + [sched.num_bad_epochs, sched.cooldown_counter, sched.best])
        if step == round_trip_at:
            opt_sd, sched_sd = opt.state_dict(), json.loads(json.dumps(sched.state_dict()))
            opt = _make_opt(framework, "sgd")
            sched = mod.ReduceLROnPlateau(opt, **kwargs)
            opt.load_state_dict(opt_sd)
            sched.load_state_dict(sched_sd)
    return np.array(rows, dtype=np.float64)


@pytest.mark.parametrize("name", list(PLATEAU_CASES))
def test_reduce_lr_on_plateau_matches_pytorch(name):
    kwargs = PLATEAU_CASES[name]
    ours = _run_plateau("dw", kwargs)
    np.testing.assert_allclose(ours, _run_plateau("torch", kwargs), rtol=1e-12)
    assert ours[-1, 0] < 0.1, "the rate was reduced at least once"
    np.testing.assert_array_equal(_run_plateau("dw", kwargs, round_trip_at=37), ours)


def test_reduce_lr_on_plateau_accepts_a_tensor_metric_and_starts_from_the_current_lr():
    opt = _make_opt("dw", "sgd")
    sched = lr_scheduler.ReduceLROnPlateau(opt, patience=0)
    assert sched.get_last_lr() == [0.1, 0.02]
    sched.step(Tensor(np.float32(1.0)))
    sched.step(Tensor(np.float32(2.0)))
    assert sched.get_last_lr() == pytest.approx([0.01, 0.002])


def _dw_opt():
    return _make_opt("dw", "sgd")


BAD = [
    (lambda: lr_scheduler.StepLR(object(), step_size=3), TypeError, "expected a deepwise Optimizer"),
    (lambda: lr_scheduler.StepLR(_dw_opt(), step_size=0), ValueError, "step_size must be an integer >= 1"),
    (lambda: lr_scheduler.LinearLR(_dw_opt(), start_factor=0.0), ValueError, r"start_factor must be in \(0, 1\]"),
    (lambda: lr_scheduler.CosineAnnealingLR(_dw_opt(), T_max=0), ValueError, "T_max"),
    (lambda: lr_scheduler.LambdaLR(_dw_opt(), [_lambda_decay]), ValueError, "1 values but the optimizer has 2"),
    (lambda: lr_scheduler.StepLR(_dw_opt(), step_size=3, last_epoch=4), KeyError, "initial_lr"),
    (lambda: lr_scheduler.OneCycleLR(_dw_opt(), max_lr=0.1), ValueError, "total_steps, or both epochs"),
    (lambda: lr_scheduler.OneCycleLR(_dw_opt(), max_lr=0.1, total_steps=10, anneal_strategy="exp"),
     ValueError, "anneal_strategy"),
    (lambda: lr_scheduler.OneCycleLR(_dw_opt(), max_lr=0.1, total_steps=10, pct_start=1.5), ValueError,
     "pct_start"),
    (lambda: lr_scheduler.OneCycleLR(dwo.Adagrad([Tensor(np.ones(2, np.float32), requires_grad=True)]),
                                     max_lr=0.1, total_steps=10), ValueError, "'momentum' or 'betas'"),
    (lambda: lr_scheduler.ReduceLROnPlateau(_dw_opt(), factor=1.0), ValueError, "factor must be < 1.0"),
    (lambda: lr_scheduler.ReduceLROnPlateau(_dw_opt(), mode="median"), ValueError, "'min' or 'max'"),
    (lambda: lr_scheduler.ReduceLROnPlateau(_dw_opt(), threshold_mode="pct"), ValueError, "'rel' or 'abs'"),
    (lambda: lr_scheduler.ReduceLROnPlateau(_dw_opt(), min_lr=[0.1]), ValueError, "min_lr has 1 values"),
    (lambda: lr_scheduler.ReduceLROnPlateau(_dw_opt()).step("high"), TypeError, "metric must be a number"),
]


@pytest.mark.parametrize("build,error,match", BAD, ids=[c[2] for c in BAD])
def test_bad_scheduler_arguments(build, error, match):
    with pytest.raises(error, match=match):
        build()


def test_composite_scheduler_errors():
    opt, other = _dw_opt(), _dw_opt()
    a, b = lr_scheduler.ExponentialLR(opt, 0.9), lr_scheduler.ExponentialLR(other, 0.9)
    with pytest.raises(ValueError, match="2 schedulers need 1 milestones, got 0"):
        lr_scheduler.SequentialLR(opt, [a, lr_scheduler.StepLR(opt, 3)], milestones=[])
    with pytest.raises(ValueError, match="belongs to another optimizer"):
        lr_scheduler.SequentialLR(opt, [a, b], milestones=[3])
    with pytest.raises(ValueError, match="cannot hold ReduceLROnPlateau"):
        lr_scheduler.ChainedScheduler([a, lr_scheduler.ReduceLROnPlateau(opt)])
    with pytest.raises(ValueError, match="at least one scheduler"):
        lr_scheduler.ChainedScheduler([])


def test_one_cycle_refuses_to_step_past_total_steps():
    opt = _dw_opt()
    sched = lr_scheduler.OneCycleLR(opt, max_lr=0.1, total_steps=3)
    for _ in range(3):
        opt.step()
        sched.step()
    with pytest.raises(ValueError, match="stepped 4 times, but total_steps is 3"):
        sched.step()


def test_load_state_dict_from_another_scheduler_is_refused():
    opt = _dw_opt()
    plateau_sd = lr_scheduler.ReduceLROnPlateau(opt).state_dict()
    with pytest.raises(ValueError, match="lacks"):
        lr_scheduler.StepLR(opt, step_size=2).load_state_dict(plateau_sd)
    step_sd = lr_scheduler.StepLR(opt, step_size=2).state_dict()
    one_group = dwo.SGD([Tensor(np.ones(2, np.float32), requires_grad=True)], lr=0.1)
    with pytest.raises(ValueError, match="'base_lrs' has 2 entries but the optimizer has 1"):
        lr_scheduler.StepLR(one_group, step_size=2).load_state_dict(step_sd)
