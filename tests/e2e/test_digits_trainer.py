"""End to end: the bundled digits through Trainer.fit — an MLP reaches >= 97% test accuracy and
EarlyStopping hands back the weights of its best epoch."""

from __future__ import annotations

import numpy as np
import pytest

import deepwise as dw
import deepwise.nn as nn
import deepwise.optim  # dw.optim
from deepwise.data import load_digits
from deepwise.train import EarlyStopping, ReduceLROnPlateau, Trainer
from deepwise.train.data import generator_from_state


def test_digits_mlp_with_trainer_fit_reaches_97_percent_and_restores_the_best_epoch():
    x_train, y_train = load_digits(split="train")
    x_test, y_test = load_digits(split="test")
    mean, std = x_train.mean(0), x_train.std(0) + 0.05  # per-pixel standardisation from the training split
    x_train, x_test = (x_train - mean) / std, (x_test - mean) / std

    dw.manual_seed(1)
    model = nn.Sequential(nn.Linear(64, 512), nn.ReLU(), nn.Dropout(0.5), nn.Linear(512, 10))
    trainer = Trainer(model, dw.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=1e-2),
                      loss="cross_entropy", metrics=["accuracy"])
    stop = EarlyStopping(monitor="val_loss", patience=8, restore_best_weights=True)
    split_state = dw.random.get_rng_state()
    history = trainer.fit(x_train, y_train, epochs=100, batch_size=64, validation_split=0.1, verbose=0,
                          callbacks=[stop, ReduceLROnPlateau(patience=3, factor=0.3)])

    # it stopped early, after the best epoch, and the model now holds that epoch's weights
    assert stop.stopped_epoch == history.epoch[-1] < 99
    best = int(np.nanargmin(history.history["val_loss"]))
    assert stop.best_epoch == best < history.epoch[-1]
    assert history.history["val_loss"][-1] > history.history["val_loss"][best]
    n = len(x_train)
    val_idx = np.sort(generator_from_state(split_state).permutation(n)[:n - int(n * 0.9)])
    val = trainer.evaluate(x_train[val_idx], y_train[val_idx], batch_size=50)
    assert val["loss"] == pytest.approx(history.history["val_loss"][best], rel=1e-5)
    assert val["accuracy"] == history.history["val_accuracy"][best]

    test = trainer.evaluate(x_test, y_test)
    assert test["accuracy"] >= 0.97, f"test accuracy {test['accuracy']:.4f}"
    predicted = trainer.predict(x_test).argmax(axis=1)
    assert float((predicted == y_test).mean()) == test["accuracy"]
    assert all(p.dtype == dw.float32 for p in model.parameters())
