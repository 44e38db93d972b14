"""OverfittingAdvisor: finds the epoch where validation loss turned while training loss kept falling,
and gives advice that depends on the model and the run."""

from __future__ import annotations

import numpy as np
import pytest

import deepwise as dw
from deepwise import nn
from deepwise.diagnostics.overfitting import OverfittingAdvisor, diagnose_overfitting
from deepwise.train import CallbackList, EarlyStopping, History, ModelCheckpoint, Trainer


def test_big_mlp_on_200_digits_overfits_at_the_best_validation_epoch(digits, capsys):
    x, y, xt, yt = digits
    mean, std = x.mean(0), x.std(0) + 0.1
    x, xt = (x - mean) / std, (xt - mean) / std
    dw.manual_seed(0)
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
    # the rise is measured against the curve's own noise, and said so
    assert "times its epoch-to-epoch noise" in d.message
    # the advice is short: the two cures that fit best. This run keeps no best weights and has no dropout
    assert len(d.remedies) == 2
    assert "EarlyStopping(" in d.remedies[0] and "restore_best_weights=True" in d.remedies[0]
    assert "nn.Dropout(p=" in d.remedies[1]
    assert "OverfittingAdvisor (epoch" in capsys.readouterr().out
    # the same analysis after the fact, from the History alone
    again = diagnose_overfitting(history, patience=3)
    assert again is not None and again.step == best


def _curves(val, train):
    h = History()
    for e, (v, t) in enumerate(zip(val, train)):
        h.record(e, {"loss": t, "val_loss": v})
    return h


# a smooth fall to a best epoch (6), then a steady rise: overfitting, whatever the noise estimate says
VAL = [1.0, 0.8, 0.7, 0.66, 0.64, 0.63, 0.62, 0.7, 0.8, 0.9, 1.0]
TRAIN = list(np.linspace(1.0, 0.05, len(VAL)))


def test_onset_moves_when_validation_improves_again():
    val = VAL + [0.5, 0.52, 0.6, 0.7, 0.8, 0.9, 1.0]
    train = list(np.linspace(1.0, 0.02, len(val)))
    advisor = OverfittingAdvisor(patience=3, verbose=0)
    events = []
    for e, (v, t) in enumerate(zip(val, train)):
        advisor.on_epoch_end(e, {"loss": t, "val_loss": v})
        events.append(advisor.onset_epoch)
    assert events[:10] == [None] * 10 and events[10] == 6  # declared once the rise beats the noise
    assert events[11:14] == [None] * 3  # withdrawn: a new best at epoch 12
    assert events[-1] == 11
    assert [d.step for d in advisor.diagnoses] == [6, 11]
    assert diagnose_overfitting(_curves(val, train), patience=3).step == 11


def test_no_overfitting_when_both_curves_fall_or_train_stalls():
    falling = _curves([1.0, 0.8, 0.6, 0.5, 0.45, 0.4], [1.1, 0.9, 0.7, 0.6, 0.5, 0.45])
    assert diagnose_overfitting(falling) is None
    # validation stalls but training does not improve either: underfitting/plateau, not overfitting
    stalled = _curves([1.0, 0.8, 0.9, 0.95, 0.9, 0.92], [1.0, 0.8, 0.85, 0.9, 0.9, 0.9])
    assert diagnose_overfitting(stalled) is None


def test_accuracy_monitor_uses_max_mode():
    h = History()
    acc = [0.5, 0.7, 0.8, 0.84, 0.86, 0.87, 0.88, 0.8, 0.72, 0.64, 0.56]
    tr = list(np.linspace(0.5, 1.0, len(acc)))
    for e, (v, t) in enumerate(zip(acc, tr)):
        h.record(e, {"accuracy": t, "val_accuracy": v})
    d = diagnose_overfitting(h, monitor="val_accuracy", patience=3)
    assert d is not None and d.step == 6
    assert "val_accuracy was best at epoch 7" in d.message and "fallen" in d.message


def test_advice_fits_a_model_that_already_has_the_cures():
    model = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Dropout(0.3), nn.Linear(32, 10))
    trainer = Trainer(model, dw.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.01))
    trainer.callbacks = CallbackList([EarlyStopping(patience=5, restore_best_weights=True)], trainer=trainer)
    trainer.history = History(params={"samples": 5000})
    h = _curves(VAL, TRAIN)
    d = diagnose_overfitting(h, patience=3, model=model, trainer=trainer)
    text = " ".join(d.remedies)
    assert "EarlyStopping(" not in text  # already used, with restore_best_weights
    assert len(d.remedies) == 2
    assert "raise the dropout rate" in d.remedies[0] and "p=0.3" in d.remedies[0]
    assert "raise the weight decay (weight_decay=0.01" in d.remedies[1]


def test_plain_adam_with_weight_decay_gets_pointed_at_adamw():
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Dropout(0.5), nn.Flatten(), nn.Linear(4 * 6 * 6, 10))
    trainer = Trainer(model, dw.optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-4))
    trainer.callbacks = CallbackList([EarlyStopping(patience=5)], trainer=trainer)
    h = _curves(VAL, TRAIN)
    remedies = diagnose_overfitting(h, model=model, trainer=trainer).remedies
    assert len(remedies) == 2
    assert "restore_best_weights=True" in remedies[0]  # EarlyStopping without it
    assert "optim.AdamW applies the decay directly" in remedies[1]
    # with the best weights kept (a best-only checkpoint) and AdamW, a CNN is told to augment its images
    trainer = Trainer(model, dw.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-2))
    trainer.callbacks = CallbackList([ModelCheckpoint("unused.safetensors", save_best_only=True)], trainer=trainer)
    remedies = diagnose_overfitting(h, model=model, trainer=trainer).remedies
    assert "EarlyStopping" not in " ".join(remedies)
    assert remedies[0].startswith("raise the weight decay") and "RandomShift" in remedies[1]


def test_a_noisy_flat_validation_loss_is_not_overfitting():
    # validation jitters around a plateau (+-0.05) while training keeps falling: no alarm, whatever the seed
    for seed in range(20):
        rng = np.random.default_rng(seed)
        val = list(1.0 + 0.05 * rng.standard_normal(30))
        train = list(np.linspace(1.0, 0.1, 30))
        assert diagnose_overfitting(_curves(val, train), patience=3) is None, seed
    # the same plateau with a real rise at the end (0.3, six times the noise) is overfitting
    rng = np.random.default_rng(0)
    val = list(1.0 + 0.05 * rng.standard_normal(30)) + [1.3, 1.35, 1.4]
    d = diagnose_overfitting(_curves(val, list(np.linspace(1.0, 0.05, 33))), patience=3)
    assert d is not None and "epoch-to-epoch noise (+-0.0" in d.message


def test_a_tiny_rise_within_the_noise_gives_no_alarm():
    # the case of a VAE: 24.15 -> 24.17 after the best epoch, on a curve that moves by ~0.1 per epoch
    val = [30.0, 26.0, 25.0, 24.6, 24.3, 24.45, 24.2, 24.35, 24.15, 24.3, 24.2, 24.17, 24.25, 24.17]
    train = list(np.linspace(31.0, 23.0, len(val)))
    assert diagnose_overfitting(_curves(val, train), patience=3) is None


def test_needs_a_validation_quantity():
    with pytest.raises(ValueError, match="validation"):
        OverfittingAdvisor(monitor="loss")
    model = nn.Linear(64, 10)
    trainer = Trainer(model, dw.optim.SGD(model.parameters(), lr=0.1))
    x, y = np.zeros((8, 64), np.float32), np.zeros(8, np.int64)
    with pytest.raises(ValueError, match="validation_split"):
        trainer.fit(x, y, epochs=1, callbacks=[OverfittingAdvisor()], verbose=0)
