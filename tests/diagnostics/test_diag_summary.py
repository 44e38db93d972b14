"""summary(): output shapes from one sample, parameter counts per layer, totals and memory."""

from __future__ import annotations

import numpy as np
import pytest

import deepwise as dw
from deepwise import nn
from deepwise.nn.summary import human_bytes, summary


def test_mlp_counts_shapes_and_memory_match_hand_computation():
    model = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
    s = summary(model, (64,))
    assert [(r.name, r.type) for r in s.rows] == [("0", "Linear"), ("1", "ReLU"), ("2", "Linear")]
    assert [r.output_shape for r in s.rows] == [(-1, 32), (-1, 32), (-1, 10)]
    assert [r.params for r in s.rows] == [64 * 32 + 32, 0, 32 * 10 + 10]
    assert s.total_params == s.trainable_params == 2080 + 330
    assert s.frozen_params == 0
    assert s.param_bytes == 4 * 2410  # float32
    assert s.input_bytes == 4 * 64
    assert s.activation_bytes == 4 * (32 + 32 + 10)
    text = str(s)
    for needle in ("0 (Linear)", "(-1, 32)", "2,080", "Total params: 2,410", "Trainable params: 2,410",
                   "Frozen (non-trainable) params: 0", human_bytes(4 * 2410)):
        assert needle in text, needle


def test_frozen_parameters_are_counted_apart_and_batch_size_scales_memory():
    model = nn.Sequential(nn.Linear(8, 4), nn.Tanh(), nn.Linear(4, 2))
    model[0].requires_grad_(False)
    s = summary(model, (8,), batch_size=16)
    assert (s.rows[0].trainable, s.rows[0].frozen) == (0, 36)
    assert (s.rows[2].trainable, s.rows[2].frozen) == (10, 0)
    assert (s.total_params, s.trainable_params, s.frozen_params) == (46, 10, 36)
    assert s.activation_bytes == 16 * 4 * (4 + 4 + 2)
    assert s.input_bytes == 16 * 4 * 8
    assert "Frozen (non-trainable) params: 36" in str(s)


def test_cnn_shapes_and_counts():
    model = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(4, 6, 3), nn.ReLU(), nn.Flatten(), nn.Linear(6 * 2 * 2, 10),
    )
    s = summary(model, (1, 8, 8))
    assert [r.output_shape for r in s.rows] == [
        (-1, 4, 8, 8), (-1, 4, 8, 8), (-1, 4, 4, 4), (-1, 6, 2, 2), (-1, 6, 2, 2), (-1, 24), (-1, 10)]
    expected = [4 * 1 * 9 + 4, 0, 0, 6 * 4 * 9 + 6, 0, 0, 24 * 10 + 10]
    assert [r.params for r in s.rows] == expected
    assert s.total_params == sum(expected) == model.num_parameters()


def test_nested_modules_shared_layers_and_own_parameters():
    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(5, 5)
            self.scale = nn.Parameter(dw.ones(5))

        def forward(self, x):
            return self.fc(x).relu() * self.scale

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.block = Block()
            self.shared = nn.Linear(5, 5)
            self.unused = nn.Linear(5, 3)

        def forward(self, x):
            return self.shared(self.shared(self.block(x)))

    s = summary(Net(), (5,))
    names = [(r.name, r.params, r.repeat) for r in s.rows]
    # the block owns `scale` directly, so it has a row (after its child, the order modules finish in)
    assert names == [("block.fc", 30, False), ("block", 5, False), ("shared", 30, False), ("shared", 0, True),
                     ("unused", 18, False)]
    assert s.rows[-1].output_shape is None and "not called" in str(s)
    assert s.total_params == 30 + 5 + 30 + 18 == sum(r.params for r in s.rows)


def test_batch_dimension_is_found_in_every_output():
    # an LSTM's (h, c) are (layers, batch, hidden): the batch is dimension 1 there
    s = summary(nn.LSTM(5, 7, batch_first=True), (3, 5))
    assert s.rows[0].output_shape == [(-1, 3, 7), [(1, -1, 7), (1, -1, 7)]]
    # time-major input: the batch goes in dimension 1 of the input too
    s = summary(nn.LSTM(5, 7), (3, 5), batch_dim=1)
    assert s.input_shapes == [(3, -1, 5)]
    assert s.rows[0].output_shape[0] == (3, -1, 7)


def test_integer_inputs_and_input_data():
    model = nn.Sequential(nn.Embedding(20, 4), nn.Flatten(), nn.Linear(12, 2))
    s = summary(model, (3,), dtype=dw.int64)
    assert [r.output_shape for r in s.rows] == [(-1, 3, 4), (-1, 12), (-1, 2)]
    s2 = summary(model, input_data=dw.tensor(np.array([[1, 2, 3], [4, 5, 6]])))
    assert [r.output_shape for r in s2.rows] == [(-1, 3, 4), (-1, 12), (-1, 2)]
    assert s2.total_params == 80 + 26


def test_leaves_modes_hooks_and_random_state_as_they_were():
    model = nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.5), nn.Linear(4, 1))
    model.train()
    model[2].eval()
    state = dw.get_rng_state()
    summary(model, (4,))
    assert model.training and model[0].training and model[1].training and not model[2].training
    assert all(not m._forward_hooks for m in model.modules())
    assert dw.get_rng_state() == state


def test_errors_name_the_problem():
    model = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(5, 1))
    with pytest.raises(RuntimeError, match=r"summary: running Sequential.*last layer that ran was '1' \(ReLU\)"):
        summary(model, (4,))
    assert all(not m._forward_hooks for m in model.modules())
    with pytest.raises(ValueError, match="positive int"):
        summary(model, (4, 0))
    with pytest.raises(TypeError, match="nn.Module"):
        summary(lambda x: x, (4,))


def test_human_bytes():
    assert human_bytes(512) == "512 B"
    assert human_bytes(1536) == "1.50 KiB"
    assert human_bytes(3 * 1024 ** 3) == "3.00 GiB"
