"""OverfittingAdvisor: finds the epoch where validation loss turned while training loss kept falling,
and gives advice that depends on the model and the run."""

from __future__ import annotations

import numpy as np
import pytest

import deepwise as dw
from deepwise import nn
from deepwise.diagnostics.overfitting import OverfittingAdvisor, diagnose_overfitting
from deepwise.train import CallbackList, EarlyStopping, History, Trainer


def test_big_mlp_on_200_digits_overfits_at_the_best_validation_epoch(digits, capsys):
    x, y, xt, yt = digits
    # ~16.5k parameters for 200 samples: enough to memorise them
    model = nn.Sequential(nn.Linear(64, 96), nn.ReLU(), nn.Linear(96, 96), nn.ReLU(), nn.Linear(96, 10))
    advisor = OverfittingAdvisor(patience=3)
    trainer = Trainer(model, dw.optim.Adam(model.parameters(), lr=5e-3), loss="cross_entropy")
    history = trainer.fit(x[:200], y[:200], epochs=20, batch_size=50, validation_data=(xt, yt),
                          callbacks=[advisor], verbose=0)
    val, train = history.history["val_loss"], history.history["loss"]
    best = int(np.argmin(val))
    assert advisor.overfitting
    assert advisor.onset_epoch == best == advisor.diagnosis.step
    assert len(val) - 1 - best >= 3  # it rose for at least `patience` epochs after the best one
    assert train[-1] < train[best]  # while the training loss kept falling
    assert advisor.gap == pytest.approx(val[-1] - train[-1])
    d = advisor.diagnosis
    assert f"best at epoch {best + 1}" in d.message
    text = " ".join(d.remedies)
    # this model has no dropout, Adam has no weight decay, no EarlyStopping, 200 samples for 16.5k params
    for cure in ("EarlyStopping(", "restore_best_weights=True", "nn.Dropout(p=", "optim.AdamW(",
                 "weight_decay=", "smaller model", "200 training samples"):
        assert cure in text, cure
    assert "OverfittingAdvisor (epoch" in capsys.readouterr().out
    # the same analysis after the fact, from the History alone
    again = diagnose_overfitting(history, patience=3)
    assert again is not None and again.step == best


def _curves(val, train):
    h = History()
    for e, (v, t) in enumerate(zip(val, train)):
        h.record(e, {"loss": t, "val_loss": v})
    return h


def test_onset_moves_when_validation_improves_again():
    val = [1.0, 0.8, 0.7, 0.75, 0.8, 0.85, 0.6, 0.65, 0.7, 0.8]
    train = [1.0, 0.7, 0.5, 0.4, 0.3, 0.2, 0.15, 0.1, 0.05, 0.02]
    advisor = OverfittingAdvisor(patience=3, verbose=0)
    events = []
    for e, (v, t) in enumerate(zip(val, train)):
        advisor.on_epoch_end(e, {"loss": t, "val_loss": v})
        events.append(advisor.onset_epoch)
    assert events == [None, None, None, None, None, 2, None, None, None, 6]
    assert [d.step for d in advisor.diagnoses] == [2, 6]
    assert diagnose_overfitting(_curves(val, train), patience=3).step == 6


def test_no_overfitting_when_both_curves_fall_or_train_stalls():
    falling = _curves([1.0, 0.8, 0.6, 0.5, 0.45, 0.4], [1.1, 0.9, 0.7, 0.6, 0.5, 0.45])
    assert diagnose_overfitting(falling) is None
    # validation stalls but training does not improve either: underfitting/plateau, not overfitting
    stalled = _curves([1.0, 0.8, 0.9, 0.95, 0.9, 0.92], [1.0, 0.8, 0.85, 0.9, 0.9, 0.9])
    assert diagnose_overfitting(stalled) is None


def test_accuracy_monitor_uses_max_mode():
    h = History()
    acc = [0.5, 0.7, 0.8, 0.78, 0.77, 0.76]
    tr = [0.5, 0.75, 0.9, 0.95, 0.98, 1.0]
    for e, (v, t) in enumerate(zip(acc, tr)):
        h.record(e, {"accuracy": t, "val_accuracy": v})
    d = diagnose_overfitting(h, monitor="val_accuracy", patience=3)
    assert d is not None and d.step == 2
    assert "val_accuracy was best at epoch 3" in d.message and "fallen" in d.message


def test_advice_fits_a_model_that_already_has_the_cures():
    model = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Dropout(0.3), nn.Linear(32, 10))
    trainer = Trainer(model, dw.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.01))
    trainer.callbacks = CallbackList([EarlyStopping(patience=5, restore_best_weights=True)], trainer=trainer)
    trainer.history = History(params={"samples": 5000})
    h = _curves([1.0, 0.8, 0.7, 0.75, 0.8, 0.85], [1.0, 0.7, 0.5, 0.4, 0.3, 0.2])
    d = diagnose_overfitting(h, patience=3, model=model, trainer=trainer)
    text = " ".join(d.remedies)
    assert "EarlyStopping(" not in text  # already used, with restore_best_weights
    assert "raise the dropout rate" in text and "p=0.3" in text
    assert "raise the weight decay (weight_decay=0.01" in text
    assert "collect more training data (5,000 samples now)" in text


def test_plain_adam_with_weight_decay_gets_pointed_at_adamw():
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 10))
    trainer = Trainer(model, dw.optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-4))
    trainer.callbacks = CallbackList([EarlyStopping(patience=5)], trainer=trainer)
    h = _curves([1.0, 0.8, 0.7, 0.75, 0.8, 0.85], [1.0, 0.7, 0.5, 0.4, 0.3, 0.2])
    text = " ".join(diagnose_overfitting(h, model=model, trainer=trainer).remedies)
    assert "optim.AdamW applies the decay directly" in text
    assert "restore_best_weights=True" in text  # EarlyStopping without it
    assert "RandomShift" in text and "BatchNorm2d" in text  # a CNN: image augmentation, BatchNorm2d


def test_needs_a_validation_quantity():
    with pytest.raises(ValueError, match="validation"):
        OverfittingAdvisor(monitor="loss")
    model = nn.Linear(64, 10)
    trainer = Trainer(model, dw.optim.SGD(model.parameters(), lr=0.1))
    x, y = np.zeros((8, 64), np.float32), np.zeros(8, np.int64)
    with pytest.raises(ValueError, match="validation_split"):
        trainer.fit(x, y, epochs=1, callbacks=[OverfittingAdvisor()], verbose=0)
