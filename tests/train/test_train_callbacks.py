"""Each callback's behaviour inside a real fit. Monitored values are injected by a callback placed
before the one under test, so the expected epochs can be worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
from train_helpers import assert_same_weights, classification_data, regression_data, weights_of

import deepwise as dw
from deepwise.train import (
    Callback,
    CSVLogger,
    EarlyStopping,
    LambdaCallback,
    LearningRateScheduler,
    ModelCheckpoint,
    ReduceLROnPlateau,
    TerminateOnNaN,
)


class Inject(Callback):
    """Overwrite ``logs[key]`` with ``values[epoch]`` at the end of each epoch."""

    def __init__(self, values, key="val_loss"):
        self.values, self.key = values, key

    def on_epoch_end(self, epoch, logs=None):
        logs[self.key] = self.values[epoch]


class Snapshots(Callback):
    """The model's weights at the end of every epoch."""

    def __init__(self):
        self.weights = []

    def on_epoch_end(self, epoch, logs=None):
        self.weights.append(weights_of(self.model))


@pytest.fixture
def data():
    return classification_data(n=60)


def fit(trainer, data, callbacks, epochs, **kw):
    x, y = data
    kw.setdefault("validation_split", 0.25)
    return trainer.fit(x, y, epochs=epochs, batch_size=16, verbose=0, callbacks=callbacks, **kw)


# ------------------------------------------------------------------------------------- EarlyStopping
def test_early_stopping_patience(trainer_factory, data):
    es = EarlyStopping(patience=2)
    h = fit(trainer_factory(), data, [Inject([1.0, 0.9, 0.95, 0.96, 0.97, 0.5, 0.4]), es], epochs=7)
    # best 0.9 at epoch 1; epochs 2 and 3 do not improve: wait reaches 2 at epoch 3
    assert h.epoch == [0, 1, 2, 3]
    assert es.stopped_epoch == 3 and es.best == 0.9 and es.best_epoch == 1


def test_early_stopping_min_delta(trainer_factory, data):
    values = [1.0, 0.95, 0.92, 0.90, 0.89]
    h = fit(trainer_factory(), data, [Inject(values), EarlyStopping(patience=2, min_delta=0.1)], epochs=5)
    assert h.epoch == [0, 1, 2]  # no value beats 1.0 by more than 0.1
    h = fit(trainer_factory(), data, [Inject(values), EarlyStopping(patience=2)], epochs=5)
    assert h.epoch == [0, 1, 2, 3, 4]  # every epoch improves


def test_early_stopping_baseline(trainer_factory, data):
    values = [0.8, 0.85, 0.9, 0.95, 1.0]
    h = fit(trainer_factory(), data, [Inject(values), EarlyStopping(patience=2, baseline=0.5)], epochs=5)
    assert h.epoch == [0, 1]  # epoch 0 does not beat the baseline, so its wait is not reset
    h = fit(trainer_factory(), data, [Inject(values), EarlyStopping(patience=2, baseline=0.9)], epochs=5)
    assert h.epoch == [0, 1, 2]  # 0.8 beats 0.9: as without a baseline
    h = fit(trainer_factory(), data, [Inject(values), EarlyStopping(patience=2)], epochs=5)
    assert h.epoch == [0, 1, 2]


def test_early_stopping_mode_max_for_accuracy(trainer_factory, data):
    es = EarlyStopping(monitor="val_accuracy", patience=1)
    assert es.mode == "max"
    h = fit(trainer_factory(metrics=["accuracy"]), data, [Inject([0.5, 0.7, 0.6], "val_accuracy"), es], epochs=3)
    assert h.epoch == [0, 1, 2] and es.stopped_epoch == 2 and es.best == 0.7


@pytest.mark.parametrize("values, epochs, best", [
    ([1.0, 0.5, 0.7, 0.8], 4, 1),            # the last epoch is reached without stopping
    ([1.0, 0.5, 0.7, 0.8, 0.9, 0.1], 6, 1),  # stopped early at epoch 3 (patience 2)
])
def test_early_stopping_restores_best_weights_however_training_ends(trainer_factory, data, values, epochs, best):
    snaps = Snapshots()
    es = EarlyStopping(patience=2, restore_best_weights=True)
    h = fit(trainer_factory(), data, [Inject(values), snaps, es], epochs=epochs)
    assert es.best_epoch == best
    assert_same_weights(weights_of(h and es.model), snaps.weights[best])
    assert not np.array_equal(snaps.weights[-1]["0.weight"], snaps.weights[best]["0.weight"])


def test_early_stopping_restores_after_terminate_on_nan(trainer_factory, data):
    snaps = Snapshots()
    t = trainer_factory()
    es = EarlyStopping(monitor="loss", patience=5, restore_best_weights=True)

    def poison(batch, logs):
        if t.state.epoch == 2:
            t.loss.fn = lambda pred, target: pred.sum() * float("nan")
            t.loss.builtin = False

    x, y = data
    t.fit(x, y, epochs=5, batch_size=16, verbose=0,
          callbacks=[LambdaCallback(on_train_batch_begin=poison), snaps, TerminateOnNaN(verbose=0), es])
    assert es.best_epoch == 1
    assert_same_weights(weights_of(t.model), snaps.weights[1])


def test_monitor_must_be_logged(trainer_factory, data):
    x, y = data
    with pytest.raises(ValueError, match="monitors 'val_loss'.*validation_data"):
        trainer_factory().fit(x, y, epochs=1, verbose=0, callbacks=[EarlyStopping()])
    with pytest.raises(ValueError, match="mode must be"):
        EarlyStopping(mode="lowest")


# ------------------------------------------------------------------------------------- ModelCheckpoint
def test_model_checkpoint_save_best_only(trainer_factory, data, tmp_path):
    snaps = Snapshots()
    mc = ModelCheckpoint(tmp_path / "m-{epoch}-{val_loss:.2f}.safetensors", save_best_only=True)
    fit(trainer_factory(), data, [Inject([1.0, 0.8, 0.9, 0.7]), snaps, mc], epochs=4)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["m-1-1.00.safetensors", "m-2-0.80.safetensors", "m-4-0.70.safetensors"]
    for epoch, name in ((0, names[0]), (1, names[1]), (3, names[2])):
        loaded = {k: v.numpy() for k, v in dw.io.load(tmp_path / name).items()}
        assert_same_weights(loaded, snaps.weights[epoch])
    assert mc.best == 0.7


def test_model_checkpoint_every_epoch_and_bad_path(trainer_factory, data, tmp_path):
    mc = ModelCheckpoint(tmp_path / "w{epoch:02d}.safetensors")
    fit(trainer_factory(), data, [mc], epochs=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w01.safetensors", "w02.safetensors"]
    with pytest.raises(ValueError, match="cannot fill in filepath.*val_accuracy"):
        fit(trainer_factory(), data, [ModelCheckpoint(tmp_path / "{val_accuracy}.st")], epochs=1)


def test_model_checkpoint_keeps_best_across_resume(trainer_factory, data, tmp_path):
    values = [1.0, 0.8, 0.9, 0.85, 0.7]
    ck = tmp_path / "ck"
    out = tmp_path / "models"
    path = out / "m{epoch}.safetensors"
    t = trainer_factory()
    fit(t, data, [Inject(values), ModelCheckpoint(path, save_best_only=True)], epochs=2, checkpoint_dir=ck)
    assert sorted(p.name for p in out.iterdir()) == ["m1.safetensors", "m2.safetensors"]
    t2 = trainer_factory(seed=5)
    mc = ModelCheckpoint(path, save_best_only=True)
    fit(t2, data, [Inject(values), mc], epochs=5, resume_from=ck)
    # without the restored best (0.8) epochs 3 (0.9) and 4 (0.85) would have been saved as first values
    assert sorted(p.name for p in out.iterdir()) == ["m1.safetensors", "m2.safetensors", "m5.safetensors"]
    assert mc.best == 0.7


# ------------------------------------------------------------------------------------- learning rates
def test_reduce_lr_on_plateau_keras_semantics(trainer_factory, data):
    t = trainer_factory(optimizer="sgd", lr=0.1)
    rl = ReduceLROnPlateau(monitor="loss", factor=0.5, patience=2, cooldown=1, min_lr=0.02)
    h = fit(t, data, [Inject([1.0] * 9, "loss"), rl], epochs=9, validation_split=0.0)
    # reductions at epochs 2, 4 and 6 (wait reaches 2; one cooldown epoch after each), floored at min_lr
    assert h.history["lr"] == pytest.approx([0.1, 0.1, 0.1, 0.05, 0.05, 0.025, 0.025, 0.02, 0.02])
    assert t.optimizer.param_groups[0]["lr"] == pytest.approx(0.02)
    with pytest.raises(ValueError, match="factor must be in"):
        ReduceLROnPlateau(factor=2.0)


def test_reduce_lr_on_plateau_resets_on_improvement(trainer_factory, data):
    t = trainer_factory(optimizer="sgd", lr=0.1)
    rl = ReduceLROnPlateau(monitor="val_loss", factor=0.1, patience=1, min_delta=0.01)
    # 0.995 is not an improvement by more than min_delta; 0.5 is
    h = fit(t, data, [Inject([1.0, 0.995, 0.5, 0.5]), rl], epochs=4)
    assert h.history["lr"] == pytest.approx([0.1, 0.1, 0.01, 0.01])
    assert t.optimizer.param_groups[0]["lr"] == pytest.approx(0.001)


def test_learning_rate_scheduler_function_and_object(trainer_factory, data):
    t = trainer_factory(optimizer="sgd", lr=0.1)
    seen = []
    h = fit(t, data, [LearningRateScheduler(lambda epoch, lr: (seen.append(lr), 0.2 * 0.5 ** epoch)[1])], epochs=3)
    assert h.history["lr"] == pytest.approx([0.2, 0.1, 0.05])
    assert seen == pytest.approx([0.1, 0.2, 0.1])
    t = trainer_factory(optimizer="sgd", lr=0.1)
    sched = dw.optim.lr_scheduler.StepLR(t.optimizer, step_size=1, gamma=0.1)
    h = fit(t, data, [LearningRateScheduler(sched)], epochs=3)
    assert h.history["lr"] == pytest.approx([0.1, 0.01, 0.001])
    with pytest.raises(ValueError, match="must be finite"):
        fit(trainer_factory(), data, [LearningRateScheduler(lambda e, lr: float("nan"))], epochs=1)


def test_trainer_scheduler_per_epoch_per_step_and_plateau(trainer_factory, data):
    t = trainer_factory(optimizer="sgd", lr=0.1)
    t.scheduler = dw.optim.lr_scheduler.StepLR(t.optimizer, step_size=1, gamma=0.5)
    h = fit(t, data, [], epochs=3)
    assert h.history["lr"] == pytest.approx([0.1, 0.05, 0.025])
    t = trainer_factory(optimizer="sgd", lr=0.1)
    t.scheduler = dw.optim.lr_scheduler.ExponentialLR(t.optimizer, gamma=0.9)
    t.scheduler_interval = "step"
    h = fit(t, data, [], epochs=2)  # 45 training samples / 16 = 3 steps per epoch
    assert h.history["lr"] == pytest.approx([0.1 * 0.9 ** 3, 0.1 * 0.9 ** 6])
    t = trainer_factory(optimizer="sgd", lr=0.1)
    t.scheduler = dw.optim.lr_scheduler.ReduceLROnPlateau(t.optimizer, patience=0, factor=0.5, threshold=100.0,
                                                                threshold_mode="abs")
    h = fit(t, data, [], epochs=3)
    assert h.history["lr"] == pytest.approx([0.1, 0.1, 0.05])  # after epoch 0 val_loss never improves by 100


# ------------------------------------------------------------------------------------- CSVLogger
def test_csv_logger_writes_and_appends(trainer_factory, data, tmp_path):
    path = tmp_path / "log.csv"
    h = fit(trainer_factory(metrics=["accuracy"]), data, [CSVLogger(path)], epochs=2)
    lines = path.read_text().splitlines()
    assert lines[0] == "epoch,loss,accuracy,val_loss,val_accuracy,lr"
    assert len(lines) == 3
    row = lines[2].split(",")
    assert row[0] == "1" and float(row[1]) == h.history["loss"][1] and float(row[3]) == h.history["val_loss"][1]
    fit(trainer_factory(metrics=["accuracy"]), data, [CSVLogger(path, append=True)], epochs=1)
    lines = path.read_text().splitlines()
    assert len(lines) == 4 and lines[3].startswith("0,")  # header not repeated
    fit(trainer_factory(metrics=["accuracy"]), data, [CSVLogger(path, separator=";")], epochs=1)
    assert path.read_text().splitlines()[0] == "epoch;loss;accuracy;val_loss;val_accuracy;lr"


# ------------------------------------------------------------------------------------- TerminateOnNaN
def test_terminate_on_nan_stops_before_the_bad_update_and_names_the_parameter(trainer_factory, data, capsys):
    t = trainer_factory()
    poisoned = {"on": False}
    last = t.model[2].weight
    last.register_hook(lambda g: g * float("nan") if poisoned["on"] else None)
    before = {}

    def arm(batch, logs):
        if t.state.global_step == 4:  # epoch 2, batch 1
            poisoned["on"] = True
            before.update(weights_of(t.model))

    tn = TerminateOnNaN()
    h = fit(t, data, [LambdaCallback(on_train_batch_begin=arm), tn], epochs=5)
    assert tn.parameter == "2.weight"
    assert "'2.weight'" in tn.message and "epoch 2, batch 1" in tn.message and "NaN" in tn.message
    assert "TerminateOnNaN" in capsys.readouterr().out
    assert_same_weights(weights_of(t.model), before)  # the bad step was never applied
    assert all(np.isfinite(v).all() for v in weights_of(t.model).values())
    assert h.epoch == [0, 1] and t.stop_training  # the interrupted epoch still ends (validation, logs)


@pytest.mark.filterwarnings("ignore:overflow encountered")
def test_terminate_on_nan_checks_the_loss(trainer_factory):
    x, y = regression_data(n=48)
    t = trainer_factory(n_in=5, n_out=1, loss="mse")
    y = y.copy()
    y[20] = 1e30  # squares to inf in float32
    tn = TerminateOnNaN(verbose=0)
    before = weights_of(t.model)
    t.fit(x, y, epochs=2, batch_size=16, shuffle=False, verbose=0, callbacks=[tn])
    assert tn.parameter is None and "the loss is inf" in tn.message and "epoch 1, batch 1" in tn.message
    first_step_done = weights_of(t.model)
    assert not np.array_equal(first_step_done["0.weight"], before["0.weight"])  # batch 0 was applied
    assert all(np.isfinite(v).all() for v in first_step_done.values())


# ------------------------------------------------------------------------------------- LambdaCallback
def test_lambda_callback_hook_order(trainer_factory, data):
    events = []

    def rec(name):
        return lambda *args: events.append((name, *[a for a in args if isinstance(a, int)]))

    hooks = ("on_train_begin", "on_train_end", "on_epoch_begin", "on_epoch_end", "on_train_batch_begin",
             "on_train_batch_end", "on_test_begin", "on_test_end")
    cb = LambdaCallback(**{h: rec(h) for h in hooks}, on_before_optimizer_step=lambda opt: events.append(("step",)))
    fit(trainer_factory(), data, [cb], epochs=2, grad_accumulation_steps=2)
    epoch0 = [("on_epoch_begin", 0),
              ("on_train_batch_begin", 0), ("on_train_batch_end", 0),
              ("on_train_batch_begin", 1), ("step",), ("on_train_batch_end", 1),
              ("on_train_batch_begin", 2), ("step",), ("on_train_batch_end", 2),
              ("on_test_begin",), ("on_test_end",), ("on_epoch_end", 0)]
    assert events[0] == ("on_train_begin",) and events[-1] == ("on_train_end",)
    assert events[1:13] == epoch0
    assert len(events) == 2 + 2 * len(epoch0)
    with pytest.raises(TypeError, match="unknown hook"):
        LambdaCallback(on_batch_end=print)


def test_stop_training_from_a_callback_finishes_the_epoch(trainer_factory, data):
    t = trainer_factory()

    def stop(batch, logs):
        if batch == 1:
            t.stop_training = True

    h = fit(t, data, [LambdaCallback(on_train_batch_end=stop)], epochs=3)
    assert h.epoch == [0] and not math.isnan(h.history["val_loss"][0])
    assert t.state.epoch_steps == 2
