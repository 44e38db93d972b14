"""End to end: a small CNN (conv -> batch norm -> ReLU -> max pool blocks) trained with
``Trainer.fit`` on the bundled 8x8 digits as (N, 1, 8, 8) images reaches >= 98% test accuracy
(about 98.9% over seeds 0-3; a few seconds of CPU)."""

from __future__ import annotations

import numpy as np

import deepwise as dw
import deepwise.nn as nn
from deepwise.data import load_digits
from deepwise.nn.layers.conv import Conv2d
from deepwise.nn.layers.norm import BatchNorm2d
from deepwise.nn.layers.pool import MaxPool2d
from deepwise.optim import Adam
from deepwise.optim.lr_scheduler import CosineAnnealingLR
from deepwise.train import Trainer


def _model():
    return nn.Sequential(
        Conv2d(1, 16, 3, padding=1, bias=False), BatchNorm2d(16), nn.ReLU(),
        Conv2d(16, 32, 3, padding=1, bias=False), BatchNorm2d(32), nn.ReLU(), MaxPool2d(2),   # 4x4
        Conv2d(32, 64, 3, padding=1, bias=False), BatchNorm2d(64), nn.ReLU(), MaxPool2d(2),   # 2x2
        nn.Flatten(), nn.Dropout(0.25), nn.Linear(64 * 2 * 2, 10),
    )


def test_digits_cnn_reaches_98_percent():
    dw.manual_seed(0)
    x_train, y_train = load_digits(split="train", as_images=True)
    x_test, y_test = load_digits(split="test", as_images=True)
    assert x_train.shape[1:] == (1, 8, 8)
    model = _model()
    epochs = 10
    optimizer = Adam(model.parameters(), lr=3e-3)
    trainer = Trainer(model, optimizer, loss="cross_entropy", metrics=["accuracy"],
                      scheduler=CosineAnnealingLR(optimizer, T_max=epochs))
    history = trainer.fit(x_train, y_train, epochs=epochs, batch_size=32, verbose=0)
    losses = history.history["loss"]
    assert np.isfinite(losses).all() and losses[-1] < 0.1 * losses[0]
    result = trainer.evaluate(x_test, y_test)
    assert result["accuracy"] >= 0.98, f"test accuracy {result['accuracy']:.4f}"
    pred = trainer.predict(x_test).argmax(axis=1)
    assert float((pred == y_test).mean()) == result["accuracy"]
    assert all(p.dtype == dw.float32 for p in model.parameters())
