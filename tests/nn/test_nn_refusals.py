"""Inputs PyTorch refuses are refused here too (same exception type), with a message naming the op or
layer — not a silent cast, not NumPy's message."""

import numpy as np
import pytest

import deepwise as dw
import deepwise.nn.functional as F


def test_linear_refuses_integer_input_as_pytorch_does(torch):
    x = np.arange(6).reshape(2, 3)
    with pytest.raises(RuntimeError, match="must have the same dtype"):
        torch.nn.Linear(3, 2)(torch.from_numpy(x))
    for bad in (x, x.astype(np.int32), x > 2):
        with pytest.raises(RuntimeError, match=rf"linear: mat1 and mat2 must have the same dtype, but got "
                                               rf"{bad.dtype} input and float32 weight"):
            dw.nn.Linear(3, 2)(dw.tensor(bad))
    out = dw.nn.Linear(3, 2)(dw.tensor(x.astype(np.float32)))
    assert out.dtype == dw.float32 and out.shape == (2, 2)


@pytest.mark.parametrize("op", ["mse_loss", "l1_loss"])
def test_loss_with_shapes_that_cannot_broadcast_names_the_op(torch, op):
    with pytest.raises(RuntimeError), pytest.warns(UserWarning):
        getattr(torch.nn.functional, op)(torch.zeros(4, 3), torch.zeros(4))
    with pytest.raises(RuntimeError, match=rf"{op}: input of shape \(4, 3\) and target of shape \(4,\) cannot be "
                                           "broadcast together"):
        getattr(F, op)(dw.zeros(4, 3), dw.zeros(4))
    with pytest.warns(UserWarning, match="they will be broadcast"):  # broadcastable: warned, as in PyTorch
        got = getattr(F, op)(dw.ones(4, 3), dw.zeros(3))
    assert float(got.item()) == pytest.approx(1.0)


@pytest.mark.parametrize("value", [[1, 2], "weights", None, 3])
def test_load_state_dict_of_something_not_a_dict(torch, value):
    with pytest.raises(TypeError):
        torch.nn.Linear(3, 2).load_state_dict(value)
    with pytest.raises(TypeError, match=rf"Linear.load_state_dict: expected state_dict to be dict-like .* got "
                                        rf"{type(value).__name__}"):
        dw.nn.Linear(3, 2).load_state_dict(value)
