"""Anomaly mode names the first op whose forward or backward went non-finite, and the user's line;
explain_nan finds the same op after the fact."""

from __future__ import annotations

import numpy as np
import pytest

import deepwise as dw
from deepwise import nn
from deepwise.autograd import anomaly
from deepwise.diagnostics.anomaly import explain_nan, find_nan, hint


def _line_of(marker: str) -> int:
    """The 1-based number of the line of this file that holds ``marker`` as code (not in a call)."""
    with open(__file__, encoding="utf-8") as fh:
        lines = fh.read().splitlines()
    return 1 + next(i for i, line in enumerate(lines) if marker in line and "_line_of" not in line)


def test_forward_nan_names_log_its_inputs_and_the_user_line():
    x = dw.tensor([[1.0, -3.0, 2.0], [0.5, 4.0, 1.0]], requires_grad=True)
    w = dw.tensor([[2.0], [1.0], [0.5]], requires_grad=True)
    with dw.autograd.detect_anomaly(), np.errstate(invalid="ignore"):
        with pytest.raises(FloatingPointError) as info:
            h = (x @ w).tanh() * 3
            _ = ((h - 1).log() + h.exp()).sum()  # MARK-forward
    err = info.value
    assert err.op == "Log" and err.phase == "forward"
    assert err.input_shapes == [(2, 1)]
    assert err.filename == __file__ and err.lineno == _line_of("# MARK-forward")
    assert "(h - 1).log()" in err.line
    text = str(err)
    assert "the forward of Log produced 1 NaN of 2 values (inputs: (2, 1) float32)" in text
    assert f"{__file__}:{err.lineno}:" in text
    assert "hint: log is NaN for negative inputs" in text and "1 negative value" in text


def test_backward_inf_of_sqrt_at_zero():
    a = dw.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    b = dw.tensor([[1.0, 2.0], [3.0, 1.0]], requires_grad=True)  # row 0 equals a's
    with dw.autograd.detect_anomaly(), np.errstate(divide="ignore"):
        dist = ((a - b) ** 2).sum(dim=1).sqrt()  # MARK-backward
        loss = dist.mean()  # forward is finite: sqrt(0) = 0
        assert np.isfinite(loss.item())
        with pytest.raises(FloatingPointError) as info:
            loss.backward()
    err = info.value
    assert err.op == "Sqrt" and err.phase == "backward"
    assert err.lineno == _line_of("# MARK-backward")
    assert "the backward of Sqrt produced a NaN or Inf gradient for input 0" in str(err)
    assert "1/(2*sqrt(x)), is infinite at x = 0 and the input has 1 zero" in str(err)


def test_nan_already_in_the_data_is_not_blamed_on_an_op():
    model = nn.Sequential(nn.Linear(3, 2), nn.ReLU())
    x = dw.tensor([[1.0, float("nan"), 0.0]])
    with dw.autograd.detect_anomaly(), pytest.raises(FloatingPointError) as info:
        model(x)  # MARK-data
    err = info.value
    assert err.op == "Linear" and err.lineno == _line_of("# MARK-data")
    assert "Linear received 1 NaN of 3 values in its input 0" in str(err)
    assert "they come from the data" in str(err)
    assert "via Sequential.forward > Linear.forward" in str(err)


def test_anomaly_mode_costs_nothing_when_off_and_is_restored():
    x = dw.tensor([-1.0, 2.0], requires_grad=True)
    with np.errstate(invalid="ignore"):
        y = x.log()  # no error outside the block
    assert y._ctx.stack is None  # nothing recorded
    assert not anomaly.anomaly_enabled()
    with dw.autograd.detect_anomaly():
        z = x * 2
        assert z._ctx.stack is not None and z._ctx.stack[0].filename == __file__
        with dw.autograd.detect_anomaly(check_nan=False), np.errstate(invalid="ignore"):
            (x - 5).log()  # recorded, not checked
        with pytest.raises(FloatingPointError), np.errstate(invalid="ignore"):
            (x - 5).log()  # the outer block checks again
    assert not anomaly.anomaly_enabled()


def test_decorator_form():
    @dw.autograd.detect_anomaly()
    def f(t):
        return (t / 0.0).sum()

    with np.errstate(divide="ignore", invalid="ignore"), pytest.raises(FloatingPointError, match="Div"):
        f(dw.tensor([1.0, 0.0]))


def test_explain_nan_after_the_fact():
    x = dw.tensor([[4.0, -1.0], [1.0, 9.0]], requires_grad=True)
    with np.errstate(invalid="ignore"):
        loss = (x.sqrt() * 2 + 1).exp().sum()
    source = find_nan(loss)
    assert source.op == "Sqrt" and source.input_shapes == [(2, 2)] and source.output_shape == (2, 2)
    assert source.filename is None  # not built in anomaly mode
    text = explain_nan(loss)
    assert "first appears in the output of Sqrt" in text and "detect_anomaly" in text
    assert explain_nan(x) == "the tensor of shape (2, 2) holds no NaN or Inf"
    bad = dw.tensor([float("inf"), 1.0], requires_grad=True)
    assert find_nan((bad * 2).sum()).op == "input"
    loss.backward()
    with pytest.raises(RuntimeError, match="freed by backward"):
        find_nan(loss)


def test_explain_nan_says_when_the_values_before_the_nan_are_gone():
    # the graph keeps only what backward needs: w * 3 is not kept (Sqrt keeps its output), so the
    # explainer cannot clear or blame what came before Sqrt and must say so, not "no op produced it"
    w = dw.tensor([1.0, -1.0], requires_grad=True)
    with np.errstate(invalid="ignore"):
        loss = ((w * 3).sqrt() * 2).exp().sum()
    source = find_nan(loss)
    assert source.op == "Sqrt" and source.uncertain
    text = explain_nan(loss)
    assert "output of Sqrt" in text and "or came from an op before it" in text and "detect_anomaly" in text
    with np.errstate(invalid="ignore"), dw.autograd.detect_anomaly(), pytest.raises(FloatingPointError, match="Sqrt"):
        ((w * 3).sqrt() * 2).exp().sum()


def test_hints_for_common_culprits():
    assert "division by zero" in hint("Div", "forward", [np.ones(3, np.float32), np.array([1, 0, 2], np.float32)])
    assert "logsumexp" in hint("Exp", "forward", [np.array([100.0], np.float32)])
    assert "bce_with_logits" in hint("BinaryCrossEntropy", "forward", [np.array([1.0], np.float32)])
    assert "learning rate" in hint("MatMul", "forward", [np.array([1e30], np.float32)])
    with pytest.raises(ValueError, match="phase"):
        hint("Log", "sideways", [])
