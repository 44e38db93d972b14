"""Trainer.fit / evaluate / predict: inputs, validation, weighting, accumulation, errors, modes, output."""

from __future__ import annotations

import numpy as np
import pytest
from train_helpers import assert_same_weights, classification_data, make_mlp, regression_data, weights_of

import deepwise as dw
import deepwise.nn.functional as F
from deepwise import nn
from deepwise.data import DataLoader, TensorDataset
from deepwise.train import History, Trainer
from deepwise.train.data import generator_from_state
from deepwise.train.metrics import ConfusionMatrix


def test_fit_learns_and_history_has_fixed_columns(trainer_factory, cls_data):
    x, y = cls_data
    t = trainer_factory(metrics=["accuracy"])
    h = t.fit(x, y, epochs=6, batch_size=16, validation_split=0.2, verbose=0)
    assert isinstance(h, History) and t.history is h
    assert list(h.history) == ["loss", "accuracy", "val_loss", "val_accuracy", "lr"]
    assert h.epoch == list(range(6))
    assert all(len(v) == 6 and all(type(e) is float for e in v) for v in h.history.values())
    assert h.history["loss"][-1] < 0.5 * h.history["loss"][0]
    assert h.history["val_accuracy"][-1] >= 0.9
    assert h.params["steps"] == 5 and h.params["samples"] == 80


def test_callbacks_read_the_loop_state_through_public_names(trainer_factory, cls_data):
    x, y = cls_data
    t = trainer_factory(metrics=["accuracy"])
    seen = []

    class Watch(dw.train.Callback):
        def on_train_batch_end(self, batch, logs=None):
            s = self.trainer.state
            seen.append(("batch", s.phase, s.epoch, s.batch_index, s.global_step, s.logs["loss"] == logs["loss"]))

        def on_test_begin(self, logs=None):
            s = self.trainer.state
            seen.append(("validation", s.phase, s.batch_index))
            inside = self.trainer.evaluate(x[:20], y[:20])  # evaluate inside fit puts the state back
            seen.append(("evaluate", s.phase, s.metrics is not self.trainer.metrics, inside["loss"] > 0))

        def on_epoch_end(self, epoch, logs=None):
            s = self.trainer.state
            seen.append(("end", s.phase, s.logs is logs, s.next_epoch))

    t.fit(x, y, epochs=2, batch_size=16, validation_split=0.2, grad_clip_norm=2, grad_accumulation_steps=2,
          verbose=0, callbacks=[Watch()])
    s = t.state
    assert (s.epochs, s.steps_per_epoch, s.n_samples, s.batch_size) == (2, 5, 80, 16)
    assert (s.grad_clip_norm, s.grad_accumulation_steps, s.checkpoint_on_interrupt) == (2.0, 2, None)
    assert s.log_names == ["loss", "accuracy", "val_loss", "val_accuracy", "lr"]
    assert seen[0] == ("batch", "train", 0, 0, 1, True)
    assert seen[4] == ("batch", "train", 0, 4, 5, True)
    assert seen[5] == ("validation", "validation", 4)
    assert seen[6] == ("evaluate", "validation", True, True)
    assert seen[7] == ("end", "train", True, 0)  # next_epoch moves on after on_epoch_end
    assert s.phase is None and s.global_step == 10 and s.next_epoch == 2 and s.sample_shape == (8,)
    assert t.sample_shape == (8,) and not t.stop_training
    t.stop_training = True  # Keras' spelling of state.stop_training
    assert s.stop_training


def test_validation_split_uses_the_seeded_permutation(trainer_factory, cls_data):
    x, y = cls_data
    t = trainer_factory(metrics=["accuracy"])
    state = dw.random.get_rng_state()
    h = t.fit(x, y, epochs=1, batch_size=16, validation_split=0.3, verbose=0)
    perm = generator_from_state(state).permutation(100)
    val_idx = np.sort(perm[:30])  # n - floor(n * 0.7) = 30 validation samples
    ev = t.evaluate(x[val_idx], y[val_idx], batch_size=7)
    assert ev["loss"] == pytest.approx(h.history["val_loss"][0], rel=1e-6)
    assert ev["accuracy"] == h.history["val_accuracy"][0]
    assert h.params["samples"] == 70


def test_validation_data_forms_agree(trainer_factory, cls_data):
    x, y = cls_data
    xv, yv = classification_data(n=30, seed=1)
    results = []
    for vd in [(xv, yv), TensorDataset(xv, yv), DataLoader(TensorDataset(xv, yv), batch_size=8)]:
        t = trainer_factory()
        h = t.fit(x, y, epochs=2, batch_size=16, validation_data=vd, verbose=0)
        results.append(h.history["val_loss"])
    assert results[0] == pytest.approx(results[1]) and results[0] == pytest.approx(results[2])
    with pytest.raises(TypeError, match="validation_data must be"):
        trainer_factory().fit(x, y, validation_data=(xv,), verbose=0)
    with pytest.raises(ValueError, match="not both"):
        trainer_factory().fit(x, y, validation_data=(xv, yv), validation_split=0.1, verbose=0)


def test_dataset_and_loader_inputs_match_arrays(trainer_factory, cls_data):
    x, y = cls_data
    weights = []
    for data in [(x, y), (TensorDataset(x, y),), (DataLoader(TensorDataset(x, y), batch_size=16, shuffle=True),)]:
        t = trainer_factory(dropout=0.2)
        t.fit(*data, epochs=2, **({} if isinstance(data[0], DataLoader) else {"batch_size": 16}), verbose=0)
        weights.append(weights_of(t.model))
    assert_same_weights(weights[0], weights[1])
    assert_same_weights(weights[0], weights[2])
    t = trainer_factory()
    h = t.fit(dw.tensor(x), dw.tensor(y), epochs=1, batch_size=16, verbose=0)
    assert len(h.epoch) == 1


def test_arguments_that_cannot_apply_raise(trainer_factory, cls_data):
    x, y = cls_data
    loader = DataLoader(TensorDataset(x, y), batch_size=16)
    t = trainer_factory()
    with pytest.raises(ValueError, match="DataLoader.*batch_size="):
        t.fit(loader, batch_size=8, verbose=0)
    with pytest.raises(ValueError, match="DataLoader.*y="):
        t.fit(loader, y, verbose=0)
    with pytest.raises(ValueError, match="validation_split needs arrays or a Dataset"):
        t.fit(loader, validation_split=0.2, verbose=0)
    with pytest.raises(ValueError, match="Dataset.*sample_weight="):
        t.fit(TensorDataset(x, y), sample_weight=np.ones(100), verbose=0)
    with pytest.raises(ValueError, match="ConfusionMatrix|arrays, not numbers"):
        Trainer(t.model, t.optimizer, metrics=[ConfusionMatrix()]).fit(x, y, verbose=0)
    with pytest.raises(ValueError, match="no optimizer"):
        Trainer(t.model).fit(x, y, verbose=0)
    with pytest.raises(ValueError, match="checkpoint_every=5 needs checkpoint_dir"):
        t.fit(x, y, checkpoint_every=5, verbose=0)
    with pytest.raises(ValueError, match="verbose must be"):
        t.fit(x, y, verbose=3)
    with pytest.raises(ValueError, match="unknown loss 'hinge'"):
        Trainer(t.model, t.optimizer, loss="hinge")
    with pytest.raises(ValueError, match="unknown metric 'acuracy'"):
        Trainer(t.model, t.optimizer, metrics=["acuracy"])
    with pytest.raises(ValueError, match="two metrics are named 'accuracy'"):
        Trainer(t.model, t.optimizer, metrics=["accuracy", "accuracy"])


def test_class_weight_rules(trainer_factory, cls_data):
    x, y = cls_data
    xr, yr = regression_data()
    reg = trainer_factory(n_in=5, n_out=1, loss="mse")
    with pytest.raises(ValueError, match="class_weight applies only to classification losses.*'mse'"):
        reg.fit(xr, yr, class_weight={0: 1.0}, verbose=0)
    with pytest.raises(ValueError, match="class_weight has 2 weights but the model has 3 classes"):
        trainer_factory().fit(x, y, class_weight=[1.0, 2.0], verbose=0)
    # class weights are per-sample weights w = class_weight[label]
    a = trainer_factory(dropout=0.1)
    a.fit(x, y, epochs=2, batch_size=16, class_weight={0: 3.0, 2: 0.5}, verbose=0)
    b = trainer_factory(dropout=0.1)
    b.fit(x, y, epochs=2, batch_size=16, sample_weight=np.array([3.0, 1.0, 0.5])[y], verbose=0)
    assert_same_weights(weights_of(a.model), weights_of(b.model))
    c = trainer_factory(dropout=0.1)
    c.fit(x, y, epochs=2, batch_size=16, class_weight=np.array([3.0, 1.0, 0.5]), verbose=0)
    assert_same_weights(weights_of(a.model), weights_of(c.model))


def test_weighted_loss_is_keras_mean_and_evaluate_is_exact(trainer_factory, cls_data):
    x, y = cls_data
    t = trainer_factory()
    w = np.linspace(0.0, 2.0, 100).astype(np.float32)
    with dw.no_grad():
        per_sample = F.cross_entropy(t.model(dw.tensor(x)), dw.tensor(y), reduction="none").numpy()
    expected = float((per_sample.astype(np.float64) * w).sum() / 100)
    for bs in (7, 32, 100):  # uneven last batches
        assert t.evaluate(x, y, sample_weight=w, batch_size=bs)["loss"] == pytest.approx(expected, rel=1e-6)
    plain = float(per_sample.astype(np.float64).mean())
    assert t.evaluate(x, y, batch_size=13)["loss"] == pytest.approx(plain, rel=1e-6)


def test_regression_losses_and_targets_are_reshaped(trainer_factory):
    x, y = regression_data(n=64)
    for loss in ("mse", "mae", "l1", "huber", "smooth_l1"):
        t = trainer_factory(n_in=5, n_out=1, loss=loss, metrics=["mae", "rmse", "r2"], lr=0.02)
        h = t.fit(x, y[:, 0], epochs=15, batch_size=16, verbose=0)  # (N,) targets for (N, 1) outputs
        assert h.history["loss"][-1] < h.history["loss"][0], loss
        assert h.history["r2"][-1] > 0.5, loss


def test_binary_and_nll_losses():
    g = np.random.default_rng(0)
    x = g.normal(size=(64, 4)).astype(np.float32)
    yb = (x[:, 0] + x[:, 1] > 0).astype(np.float32)
    dw.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 1))
    t = Trainer(model, dw.optim.Adam(model.parameters(), lr=0.1), loss="bce_with_logits",
                metrics=["accuracy", "precision", "recall"])
    h = t.fit(x, yb, epochs=20, batch_size=16, verbose=0, class_weight={0: 1.0, 1: 2.0})
    assert h.history["accuracy"][-1] > 0.9 and h.history["recall"][-1] > 0.9
    model = nn.Sequential(nn.Linear(4, 2), nn.LogSoftmax(dim=1))
    t = Trainer(model, dw.optim.Adam(model.parameters(), lr=0.1), loss="nll", metrics=["accuracy"])
    h = t.fit(x, yb.astype(np.int64), epochs=20, batch_size=16, verbose=0)
    assert h.history["accuracy"][-1] > 0.9


def test_bad_inputs_give_clear_errors(trainer_factory, cls_data):
    x, y = cls_data
    t = trainer_factory()
    with pytest.raises(ValueError, match="x has 100 samples, y has 99"):
        t.fit(x, y[:99], verbose=0)
    with pytest.raises(TypeError, match="integer class labels.*float32"):
        t.fit(x, y.astype(np.float32), verbose=0)
    bad = y.copy()
    bad[5] = 7
    with pytest.raises(ValueError, match="class label 7 is out of range for the model's 3 outputs"):
        t.fit(x, bad, batch_size=16, shuffle=False, verbose=0)
    with pytest.raises(RuntimeError, match=r"input batch of shape \(16, 6\).*first layer '0' \(Linear\) expects 8 "
                                         r"input features \(last dimension\), but the batch has 6"):
        t.fit(x[:, :6], y, batch_size=16, verbose=0)
    nan_x = x.copy()
    nan_x[37, 2] = np.nan
    with pytest.raises(ValueError, match=r"inputs \(x\) of epoch 1, batch 2 contain NaN \(first in sample 5"):
        t.fit(nan_x, y, batch_size=16, shuffle=False, verbose=0)
    with pytest.raises(ValueError, match="x has no samples"):
        t.fit(x[:0], y[:0], verbose=0)
    with pytest.raises(ValueError, match="y \\(the targets\\) is required"):
        t.fit(x, verbose=0)
    with pytest.raises(ValueError, match="yields no batches"):
        t.fit(DataLoader(TensorDataset(x[:5], y[:5]), batch_size=8, drop_last=True), verbose=0)
    with pytest.raises(ValueError, match="leaves 0 for training"):
        t.fit(x[:1], y[:1], validation_split=0.5, verbose=0)
    with pytest.raises(ValueError, match="sample_weight has 10"):
        t.fit(x, y, sample_weight=np.ones(10), verbose=0)


class ModeProbe(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(8, 3)
        self.seen = []

    def forward(self, x):
        out = self.lin(x)
        self.seen.append((self.training, dw.is_grad_enabled(), out.requires_grad))
        return out


@pytest.mark.parametrize("start_in_train_mode", [True, False])
def test_predict_and_evaluate_run_in_eval_mode_without_a_graph(cls_data, start_in_train_mode):
    x, y = cls_data
    model = ModeProbe()
    model.train(start_in_train_mode)
    t = Trainer(model, dw.optim.SGD(model.parameters(), lr=0.1), metrics=["accuracy", ConfusionMatrix()])
    out = t.predict(x, batch_size=30)
    assert isinstance(out, np.ndarray) and out.shape == (100, 3) and out.dtype == np.float32
    assert model.training is start_in_train_mode
    ev = t.evaluate(x, y, batch_size=30)
    assert model.training is start_in_train_mode
    assert model.seen and all(s == (False, False, False) for s in model.seen)
    with dw.no_grad():
        direct = model.lin(dw.tensor(x)).numpy()
    np.testing.assert_allclose(out, direct, rtol=1e-6)
    cm = ev["confusion_matrix"]
    assert cm.shape == (3, 3) and cm.sum() == 100
    assert np.trace(cm) / 100 == ev["accuracy"]


def test_predict_accepts_loaders_with_targets(trainer_factory, cls_data):
    x, y = cls_data
    t = trainer_factory()
    a = t.predict(x, batch_size=32)
    b = t.predict(DataLoader(TensorDataset(x, y), batch_size=9))
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)  # other batch sizes: other BLAS blocking


def test_gradient_accumulation_matches_larger_batches():
    x, y = classification_data(n=72)
    results = []
    for bs, accum in ((16, 1), (8, 2)):  # 72 = 4 * 16 + 8: the last group is one batch of 8
        dw.manual_seed(0)
        model = make_mlp()
        t = Trainer(model, dw.optim.SGD(model.parameters(), lr=0.1))
        steps = []
        count = dw.train.LambdaCallback(on_before_optimizer_step=lambda opt, steps=steps: steps.append(1))
        t.fit(x, y, epochs=2, batch_size=bs, shuffle=False, grad_accumulation_steps=accum, verbose=0,
              callbacks=[count])
        results.append((weights_of(model), len(steps)))
    assert results[0][1] == results[1][1] == 10
    for k in results[0][0]:
        np.testing.assert_allclose(results[0][0][k], results[1][0][k], rtol=2e-5, atol=1e-6)


def test_grad_clip_norm_bounds_the_update():
    x, y = classification_data(n=16)
    dw.manual_seed(0)
    model = make_mlp()
    t = Trainer(model, dw.optim.SGD(model.parameters(), lr=1.0))
    before = weights_of(model)
    t.fit(x, y * 0 + 2, epochs=1, batch_size=16, grad_clip_norm=1e-3, verbose=0)
    after = weights_of(model)
    step = np.sqrt(sum(((after[k] - before[k]).astype(np.float64) ** 2).sum() for k in before))
    assert step == pytest.approx(1e-3, rel=1e-3)


def test_custom_loss_and_metric_functions(cls_data):
    x, y = cls_data
    dw.manual_seed(0)
    model = make_mlp()

    def my_loss(pred, target):
        return F.cross_entropy(pred, target)

    def first_logit_mean(pred, target):
        return float(pred.numpy()[:, 0].mean())

    t = Trainer(model, dw.optim.SGD(model.parameters(), lr=0.1), loss=my_loss, metrics=[first_logit_mean])
    h = t.fit(x, y, epochs=2, batch_size=16, verbose=0)
    assert "first_logit_mean" in h.history
    ev = t.evaluate(x, y, batch_size=30)  # batches of 30, 30, 30, 10: a size-weighted mean
    with dw.no_grad():
        assert ev["first_logit_mean"] == pytest.approx(float(model(dw.tensor(x)).numpy()[:, 0].mean()), rel=1e-5)
    with pytest.raises(TypeError, match="does not accept reduction='none'"):
        t.fit(x, y, sample_weight=np.ones(100), verbose=0)


class TwoOptimizerTrainer(Trainer):
    """A GAN-shaped subclass: two parts, two optimizers, its own logs, and callbacks kept."""

    def __init__(self, model, opt_a, opt_b):
        super().__init__(model, opt_a, loss="mse")
        self.opt_b = opt_b

    def state_objects(self):
        return {**super().state_objects(), "opt_b": self.opt_b}

    def train_step(self, batch):
        x, y, _ = self.unpack_batch(batch)
        loss_a = self.compute_loss(self.model[0](x), y)
        self.backward(loss_a)
        self.optimizer_step(self.optimizer)
        loss_b = self.compute_loss(self.model[1](x), y)
        self.backward(loss_b)
        self.optimizer_step(self.opt_b)
        return {"loss": loss_a + loss_b, "loss_a": loss_a, "loss_b": loss_b}


def test_overridden_train_step_with_two_optimizers(tmp_path):
    x, y = regression_data(n=64, n_in=5)

    def build(seed):
        dw.manual_seed(seed)
        model = nn.ModuleList([nn.Linear(5, 1), nn.Linear(5, 1)])
        return TwoOptimizerTrainer(model, dw.optim.SGD(model[0].parameters(), lr=0.05),
                                   dw.optim.Adam(model[1].parameters(), lr=0.05))

    t = build(0)
    stepped = []
    h = t.fit(x, y, epochs=4, batch_size=16, verbose=0, checkpoint_dir=tmp_path,
              callbacks=[dw.train.LambdaCallback(on_before_optimizer_step=lambda o: stepped.append(type(o).__name__))])
    assert list(h.history) == ["loss", "lr", "loss_a", "loss_b"]
    assert h.history["loss"][-1] == pytest.approx(h.history["loss_a"][-1] + h.history["loss_b"][-1])
    assert h.history["loss_b"][-1] < h.history["loss_b"][0]
    assert stepped[:4] == ["SGD", "Adam", "SGD", "Adam"] and len(stepped) == 32
    ck = dw.train.load_training_checkpoint(tmp_path)
    assert set(ck.objects) == {"optimizer", "opt_b"} and ck.objects["opt_b"]["state"]


def test_verbose_2_prints_one_line_per_epoch(trainer_factory, cls_data, capsys):
    x, y = cls_data
    trainer_factory(metrics=["accuracy"]).fit(x, y, epochs=3, batch_size=16, validation_split=0.2, verbose=2)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3
    for i, line in enumerate(lines):
        assert line.startswith(f"Epoch {i + 1}/3 - ") and "5 steps" in line
        assert "loss: " in line and "val_accuracy: " in line and "lr: 0.0500" in line
    # verbose=1 without a terminal (as here) also gives one line per epoch; verbose=0 nothing
    trainer_factory().fit(x, y, epochs=2, verbose=1)
    assert len(capsys.readouterr().out.splitlines()) == 2
    trainer_factory().fit(x, y, epochs=2, verbose=0)
    assert capsys.readouterr().out == ""
    trainer_factory(metrics=["accuracy"]).evaluate(x, y, verbose=1)
    assert capsys.readouterr().out.startswith("evaluate - ")


def test_device_argument_and_batches_follow_the_model(cls_data):
    x, y = cls_data
    dw.manual_seed(0)
    model = make_mlp()
    t = Trainer(model, dw.optim.SGD(model.parameters(), lr=0.1), device="cpu")
    assert t.device == dw.Device("cpu")
    assert t.fit(x, y, epochs=1, verbose=0).history["loss"]


def test_trainer_summary_uses_the_shape_fit_saw():
    import numpy as np

    import deepwise as dw

    model = dw.nn.Sequential(dw.nn.Linear(6, 4), dw.nn.ReLU(), dw.nn.Linear(4, 3))
    trainer = dw.Trainer(model, optimizer=dw.optim.SGD(model.parameters(), lr=0.1))
    with pytest.raises(ValueError, match="input_shape"):
        trainer.summary()
    x = np.random.default_rng(0).standard_normal((20, 6)).astype(np.float32)
    y = np.arange(20) % 3
    trainer.fit(x, y, epochs=1, batch_size=8, verbose=0)
    s = trainer.summary()
    assert sum(r.params for r in s.rows) == 6 * 4 + 4 + 4 * 3 + 3
    assert "(-1, 3)" in str(s)
