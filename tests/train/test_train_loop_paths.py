"""The per-batch path of Trainer.fit: hooks called only when a callback listens, overridable steps
still used, the epoch's logs equal to a hand-written loop's."""

from __future__ import annotations

import numpy as np
import pytest
from train_helpers import classification_data, make_mlp

import deepwise as dw
import deepwise.nn.functional as F
from deepwise.train import Callback, CallbackList, LambdaCallback, Trainer
from deepwise.train.callbacks import EarlyStopping, ProgressBar
from deepwise.train.loop import Tracker


class EpochOnly(Callback):
    def __init__(self):
        self.epochs = []

    def on_epoch_end(self, epoch, logs=None):
        self.epochs.append(epoch)


class BatchEnd(Callback):
    def __init__(self):
        self.logs = []

    def on_train_batch_end(self, batch, logs=None):
        self.logs.append((batch, dict(logs)))


def test_callbacklist_implements_sees_overrides_and_instance_hooks():
    hooks = ("on_train_batch_begin", "on_train_batch_end", "on_test_batch_end", "on_epoch_end")
    assert [CallbackList([]).implements(h) for h in hooks] == [False] * 4
    assert [CallbackList([Callback(), EpochOnly()]).implements(h) for h in hooks] == [False, False, False, True]
    assert CallbackList([EpochOnly(), BatchEnd()]).implements("on_train_batch_end")
    lam = CallbackList([LambdaCallback(on_train_batch_begin=lambda b, logs: None)])
    assert lam.implements("on_train_batch_begin") and not lam.implements("on_train_batch_end")
    assert CallbackList([ProgressBar(2)]).implements("on_train_batch_end")
    assert CallbackList([EarlyStopping(monitor="loss")]).implements("on_epoch_end")
    assert not CallbackList([EarlyStopping(monitor="loss")]).implements("on_train_batch_end")


def _count_dispatch(monkeypatch):
    calls = {"train_begin": 0, "train_end": 0, "test_begin": 0, "test_end": 0}
    for hook, key in (("on_train_batch_begin", "train_begin"), ("on_train_batch_end", "train_end"),
                      ("on_test_batch_begin", "test_begin"), ("on_test_batch_end", "test_end")):
        original = getattr(CallbackList, hook)

        def counted(self, *args, _original=original, _key=key):
            calls[_key] += 1
            return _original(self, *args)

        monkeypatch.setattr(CallbackList, hook, counted)
    return calls


def test_batch_hooks_are_dispatched_only_when_a_callback_listens(monkeypatch):
    x, y = classification_data(n=60)
    calls = _count_dispatch(monkeypatch)
    dw.manual_seed(0)
    model = make_mlp()
    t = Trainer(model, dw.optim.Adam(model.parameters(), 0.01))
    epoch_only = EpochOnly()
    t.fit(x, y, epochs=2, batch_size=16, validation_split=0.25, callbacks=[epoch_only], verbose=0)
    assert epoch_only.epochs == [0, 1]
    assert calls == {"train_begin": 0, "train_end": 0, "test_begin": 0, "test_end": 0}

    seen = BatchEnd()
    began = []
    t.fit(x, y, epochs=2, batch_size=16, validation_split=0.25, verbose=0,
          callbacks=[seen, LambdaCallback(on_train_batch_begin=lambda b, logs: began.append(dict(logs)))])
    assert calls["train_begin"] == calls["train_end"] == 2 * 3  # 45 training samples / 16 -> 3 batches
    assert calls["test_begin"] == calls["test_end"] == 0  # nobody listens to validation batches
    assert [b for b, _ in seen.logs] == [0, 1, 2, 0, 1, 2]
    assert began[:3] == [{"batch": 0, "size": 16}, {"batch": 1, "size": 16}, {"batch": 2, "size": 13}]
    # the running loss handed to on_train_batch_end ends at the epoch's logged loss
    assert seen.logs[2][1]["loss"] == pytest.approx(t.history.history["loss"][0], rel=1e-12)

    test_batches = []
    on_test = LambdaCallback(on_test_batch_end=lambda b, logs: test_batches.append(b))
    t.evaluate(x, y, batch_size=32, callbacks=[on_test])
    assert test_batches == [0, 1] and calls["test_end"] == 2


def test_epoch_loss_equals_a_hand_written_loop():
    x, y = classification_data(n=70)
    dw.manual_seed(3)
    model = make_mlp()
    opt = dw.optim.Adam(model.parameters(), 0.01)
    order = dw.random.generator().permutation(70)  # fit draws the epoch's order first, the same way
    total = 0.0
    for i in range(0, 70, 16):
        idx = order[i:i + 16]
        opt.zero_grad()
        loss = F.cross_entropy(model(dw.tensor(x[idx])), dw.tensor(y[idx]))
        loss.backward()
        opt.step()
        total += loss.item() * len(idx)
    hand_weights = {k: v.numpy().copy() for k, v in model.state_dict().items()}

    dw.manual_seed(3)
    model = make_mlp()
    h = Trainer(model, dw.optim.Adam(model.parameters(), 0.01)).fit(x, y, epochs=1, batch_size=16, verbose=0)
    assert h.history["loss"][0] == pytest.approx(total / 70, rel=1e-12)
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(v.numpy(), hand_weights[k])


def test_overridden_to_device_is_still_used_for_every_batch():
    x, y = classification_data(n=40)
    moved = []

    class Counting(Trainer):
        def to_device(self, t):
            moved.append(None if t is None else tuple(t.shape))
            return super().to_device(t)

    dw.manual_seed(0)
    model = make_mlp()
    Counting(model, dw.optim.SGD(model.parameters(), 0.1)).fit(x, y, epochs=1, batch_size=16, verbose=0)
    assert moved == [(16, 8), (16,), (16, 8), (16,), (8, 8), (8,)]


def test_each_epoch_trains_in_train_mode_whatever_a_callback_did():
    x, y = classification_data(n=32)
    dw.manual_seed(0)
    model = make_mlp(dropout=0.5)
    modes = []
    to_eval = LambdaCallback(on_epoch_begin=lambda epoch, logs: model.eval(),
                             on_train_batch_begin=lambda b, logs: modes.append(model.training))
    Trainer(model, dw.optim.SGD(model.parameters(), 0.1)).fit(x, y, epochs=2, batch_size=16, verbose=0,
                                                               callbacks=[to_eval])
    assert modes == [True] * 4


def test_tracker_averages_loggable_values_by_batch_size():
    tracker = Tracker([])
    tracker.add({"loss": dw.tensor(2.0), "n": 3, "np": np.float32(1.5), "flag": True, "vec": dw.tensor([1.0, 2.0]),
                 "name": "x"}, 4)
    tracker.add({"loss": dw.tensor([[4.0]]), "n": 1, "np": np.array([0.5])}, 2)
    logs = tracker.logs()
    assert logs == {"loss": pytest.approx((2.0 * 4 + 4.0 * 2) / 6), "n": pytest.approx((3 * 4 + 1 * 2) / 6),
                    "np": pytest.approx((1.5 * 4 + 0.5 * 2) / 6)}
    assert tracker.count == 6 and tracker.steps == 2
    with pytest.raises(TypeError, match="must return a dict"):
        tracker.add([1.0], 1)


def test_batch_size_of_handles_every_layout():
    t = dw.tensor(np.zeros((5, 2), dtype=np.float32))
    assert Trainer.batch_size_of((t, t)) == 5
    assert Trainer.batch_size_of([t]) == 5
    assert Trainer.batch_size_of(t) == 5
    assert Trainer.batch_size_of({"x": t}) == 5
    assert Trainer.batch_size_of(((t, t), t)) == 5
    with pytest.raises(TypeError, match="cannot tell the batch size"):
        Trainer.batch_size_of((dw.tensor(1.0),))
