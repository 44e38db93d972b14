"""Fixtures for the training-loop tests."""

from __future__ import annotations

import os
import sys

import pytest

_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:  # the test modules import train_helpers
    sys.path.insert(0, _HERE)

from train_helpers import classification_data, make_mlp  # noqa: E402

import deepwise as dw  # noqa: E402
import deepwise.optim  # noqa: E402 - dw.optim
from deepwise.train import Trainer  # noqa: E402


@pytest.fixture
def cls_data():
    return classification_data()


@pytest.fixture
def trainer_factory():
    """build(seed=0, dropout=0.0, lr=0.05, **trainer_kwargs) -> Trainer on a fresh seeded MLP with Adam."""

    def build(seed=0, dropout=0.0, lr=0.05, n_in=8, n_out=3, optimizer="adam", **kwargs):
        dw.manual_seed(seed)
        model = make_mlp(n_in=n_in, n_out=n_out, dropout=dropout)
        if optimizer == "adam":
            opt = dw.optim.Adam(model.parameters(), lr=lr)
        else:
            opt = dw.optim.SGD(model.parameters(), lr=lr)
        return Trainer(model, opt, **kwargs)

    return build
