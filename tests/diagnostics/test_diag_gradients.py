"""GradientMonitor: each diagnosis is shown on a network built to fail that way, and a healthy run
raises none."""

from __future__ import annotations

import math

import numpy as np
import pytest

import deepwise as dw
from deepwise import nn
from deepwise.diagnostics.gradients import Diagnosis, GradientMonitor
from deepwise.train import Trainer


def _fit(model, optimizer, digits, epochs=1, every=1, n=None, batch_size=64, **kw):
    x, y, _, _ = digits
    if n is not None:
        x, y = x[:n], y[:n]
    monitor = GradientMonitor(every=every, verbose=0, **kw)
    trainer = Trainer(model, optimizer, loss="cross_entropy")
    history = trainer.fit(x, y, epochs=epochs, batch_size=batch_size, callbacks=[monitor], verbose=0)
    return monitor, history, trainer


def _relu_mlp():
    return nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))


def test_deep_sigmoid_mlp_is_flagged_vanishing(digits):
    layers, width = [], 64
    for _ in range(20):
        layers += [nn.Linear(width, 32), nn.Sigmoid()]
        width = 32
    model = nn.Sequential(*layers, nn.Linear(32, 10))
    monitor, _, _ = _fit(model, dw.optim.SGD(model.parameters(), lr=0.1), digits, every=2, n=512)
    assert "vanishing" in monitor.kinds
    d = next(d for d in monitor.diagnoses if d.kind == "vanishing")
    assert d.layers == ["0.weight", "40.weight"]
    assert "orders of magnitude" in d.message and "Sigmoid" in d.message
    # the advice is short: the cause (sigmoids) and the cure this model lacks (normalisation)
    assert len(d.remedies) == 2
    assert "nn.ReLU()" in d.remedies[0] and "instead of nn.Sigmoid()" in d.remedies[0]
    assert "BatchNorm1d" in d.remedies[1]
    # the evidence is in the records: first-layer gradients are many orders below the last layer's
    rec = monitor.records[-1]
    first = rec["grad_norm"]["0.weight"] / math.sqrt(64 * 32)
    last = rec["grad_norm"]["40.weight"] / math.sqrt(32 * 10)
    assert first / last < 1e-6


def test_healthy_relu_mlp_raises_no_flag(digits, capsys):
    model = _relu_mlp()
    monitor = GradientMonitor(every=2)  # verbose: would print a diagnosis
    x, y, _, _ = digits
    trainer = Trainer(model, dw.optim.Adam(model.parameters(), lr=1e-3), loss="cross_entropy")
    history = trainer.fit(x, y, epochs=3, batch_size=64, callbacks=[monitor], verbose=0)
    assert monitor.diagnoses == []
    assert "GradientMonitor" not in capsys.readouterr().out
    assert history.history["loss"][-1] < history.history["loss"][0]
    assert len(monitor.records) == math.ceil(3 * math.ceil(len(x) / 64) / 2)


def test_lr_10_is_flagged_exploding(digits, capsys):
    model = _relu_mlp()
    monitor = GradientMonitor(every=1)
    x, y, _, _ = digits
    Trainer(model, dw.optim.SGD(model.parameters(), lr=10.0), loss="cross_entropy").fit(
        x, y, epochs=1, batch_size=64, callbacks=[monitor], verbose=0)
    assert monitor.kinds[0] == "exploding"
    d = monitor.diagnoses[0]
    assert d.step <= 3
    assert "learning rate now 10" in d.message
    assert any("grad_clip_norm" in r for r in d.remedies)
    assert any("lower the learning rate" in r for r in d.remedies)
    out = capsys.readouterr().out
    assert out.count("[exploding]") == 1  # printed once, when first seen


def test_a_run_that_already_clips_is_not_told_to_clip(digits):
    """The monitor reads the fit's clip setting (trainer.state.grad_clip_norm): with lr=10 the steps
    explode even after clipping to norm 1, and the advice says so instead of 'clip the gradient norm'."""
    model = _relu_mlp()
    monitor = GradientMonitor(every=1, verbose=0)
    x, y, _, _ = digits
    trainer = Trainer(model, dw.optim.SGD(model.parameters(), lr=10.0), loss="cross_entropy")
    trainer.fit(x, y, epochs=1, batch_size=64, callbacks=[monitor], verbose=0, grad_clip_norm=1.0)
    assert trainer.state.grad_clip_norm == 1.0
    d = monitor.diagnoses[0]
    assert d.kind == "exploding"
    assert not any("clip the gradient norm" in r or "grad_clip_norm=1.0" in r for r in d.remedies)
    assert "already clips the gradient norm to 1" in d.message
    assert any("lower the learning rate" in r for r in d.remedies)


def test_clipping_advice_follows_what_was_seen():
    model = _relu_mlp()
    trainer = Trainer(model, dw.optim.SGD(model.parameters(), lr=0.1))
    trainer.state.grad_clip_norm = 0.5  # as fit(grad_clip_norm=0.5) sets it
    spike = GradientMonitor(every=1, verbose=0, window=5)
    spike.set_trainer(trainer)
    _feed_totals(spike, [1.0] * 5 + [40.0])  # norms before clipping: clipping bounds the step, not the cause
    d = spike.diagnoses[0]
    assert "measured before clipping" in d.message and "clip harder (grad_clip_norm is 0.5 now)" in d.remedies
    assert not any("clip the gradient norm" in r for r in d.remedies)
    nan = GradientMonitor(every=1, verbose=0)
    nan.set_trainer(trainer)
    nan._check_exploding({"total_grad_norm": math.inf, "grad_norm": {"0.weight": math.nan}, "update_ratio": {},
                          "step": 0, "epoch": 0})
    d = nan.diagnoses[0]
    assert "cannot repair a NaN or infinite gradient" in d.message
    assert not any("clip" in r for r in d.remedies)


def test_badly_scaled_init_is_flagged_exploding(digits):
    layers = []
    for _ in range(8):
        layers += [nn.Linear(64, 64), nn.ReLU()]
    model = nn.Sequential(*layers, nn.Linear(64, 10))
    for p in model.parameters():
        p.array *= 10
    with np.errstate(all="ignore"):
        monitor, _, _ = _fit(model, dw.optim.SGD(model.parameters(), lr=0.01), digits, n=640)
    assert "exploding" in monitor.kinds
    assert monitor.diagnoses[0].kind == "exploding"


def test_dead_relu_layer_with_huge_negative_bias(digits):
    model = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
    model[2].bias.array[...] = -100.0
    monitor, history, _ = _fit(model, dw.optim.Adam(model.parameters(), lr=1e-3), digits, every=2, n=640)
    assert monitor.kinds == ["dead_relu"]
    d = monitor.diagnoses[0]
    assert d.layers == ["3"]
    assert "fed by 2 (Linear)" in d.message and "100%" in d.message
    assert len(d.remedies) == 2 and "LeakyReLU" in d.remedies[0] and "it is 0.001 now" in d.remedies[1]
    assert all(r["dead_relu"]["3"] == 1.0 for r in monitor.records)
    assert all(r["dead_relu"]["1"] < 0.5 for r in monitor.records)
    assert history.history["dead_relu/3"] == [1.0]


def test_saturated_sigmoid_but_not_the_output_activation(digits):
    model = nn.Sequential(nn.Linear(64, 64), nn.Sigmoid(), nn.Linear(64, 10), nn.Sigmoid())
    model[0].weight.array *= 50
    x, y, _, _ = digits
    monitor = GradientMonitor(every=1, verbose=0)
    onehot = np.eye(10, dtype=np.float32)[y[:256]]
    Trainer(model, dw.optim.Adam(model.parameters(), lr=1e-3), loss="mse").fit(
        x[:256], onehot, epochs=1, batch_size=64, callbacks=[monitor], verbose=0)
    assert "saturated" in monitor.kinds
    d = next(d for d in monitor.diagnoses if d.kind == "saturated")
    assert d.layers == ["1"]
    assert all("3" not in r["saturated"] for r in monitor.records)  # the model's output is not judged
    assert any("xavier_uniform_" in r for r in d.remedies) and len(d.remedies) == 2


def test_records_match_hand_computed_norms_and_update_ratios(digits):
    x, y, _, _ = digits
    model = _relu_mlp()
    lr = 0.05
    # one batch by hand, from the same starting weights
    w0 = {n: p.array.copy() for n, p in model.named_parameters()}
    loss = nn.functional.cross_entropy(model(dw.tensor(x[:32])), dw.tensor(y[:32]))
    loss.backward()
    grads = {n: p.grad.numpy().astype(np.float64) for n, p in model.named_parameters()}
    model.zero_grad()
    monitor = GradientMonitor(every=1, verbose=0)
    Trainer(model, dw.optim.SGD(model.parameters(), lr=lr), loss="cross_entropy").fit(
        x[:32], y[:32], epochs=1, batch_size=32, shuffle=False, callbacks=[monitor], verbose=0)
    rec = monitor.records[0]
    for name, g in grads.items():
        w = w0[name].astype(np.float64)
        assert rec["grad_norm"][name] == pytest.approx(np.linalg.norm(g), rel=1e-4)
        assert rec["weight_norm"][name] == pytest.approx(np.linalg.norm(w), rel=1e-5)
        # plain SGD: the update is lr * g
        assert rec["update_ratio"][name] == pytest.approx(lr * np.linalg.norm(g) / np.linalg.norm(w), rel=1e-3)
    assert rec["total_grad_norm"] == pytest.approx(math.sqrt(sum(np.linalg.norm(g) ** 2 for g in grads.values())),
                                                   rel=1e-4)


def test_history_columns_are_epoch_means_of_the_records(digits):
    model = _relu_mlp()
    monitor, history, _ = _fit(model, dw.optim.Adam(model.parameters(), lr=1e-3), digits, epochs=2, every=3,
                               n=640)
    h = history.history
    for key in ("grad_norm/0.weight", "weight_norm/2.bias", "update_ratio/0.weight", "grad_norm/total",
                "dead_relu/1"):
        assert len(h[key]) == 2 and all(isinstance(v, float) for v in h[key]), key
    for epoch in (0, 1):
        recs = [r for r in monitor.records if r["epoch"] == epoch]
        assert recs
        assert h["grad_norm/0.weight"][epoch] == pytest.approx(np.mean([r["grad_norm"]["0.weight"] for r in recs]))
    # measured every 3rd batch: 10 batches per epoch -> batches 0, 3, 6, 9, 12, 15, 18
    assert [r["step"] for r in monitor.records] == [0, 3, 6, 9, 12, 15, 18]
    # hooks are gone after training
    assert all(not m._forward_hooks for m in model.modules())


def test_diagnosis_text_and_round_trip():
    d = Diagnosis("exploding", "Big steps.", ["clip", "lower lr"], step=4, layers=["0.weight"], epoch=0)
    assert str(d) == "Big steps. What helps: clip; lower lr."
    assert Diagnosis.from_dict(d.to_dict()) == d


def test_bad_arguments():
    with pytest.raises(ValueError, match="every"):
        GradientMonitor(every=0)
    with pytest.raises(ValueError, match="dead_threshold"):
        GradientMonitor(dead_threshold=2)


def test_state_survives_a_checkpoint_round_trip(digits):
    model = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))
    model[0].bias.array[...] = -100.0
    monitor, _, _ = _fit(model, dw.optim.SGD(model.parameters(), lr=0.01), digits, n=256)
    state = monitor.state_dict()
    fresh = GradientMonitor(every=1, verbose=0)
    fresh.load_state_dict(state)
    assert fresh.diagnoses == monitor.diagnoses and fresh.kinds == ["dead_relu"]
    assert fresh.state_dict() == state


def test_embedding_tables_do_not_count_as_vanishing(digits):
    class Bag(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = nn.Embedding(200_000, 8)
            self.head = nn.Linear(8, 10)

        def forward(self, idx):
            return self.head(self.emb(idx).mean(dim=1))

    model = Bag()
    monitor = GradientMonitor(every=1, verbose=0, vanishing_ratio=0.01)
    x = np.arange(64 * 2, dtype=np.int64).reshape(64, 2) % 2  # 2 of 200,000 rows get a gradient
    y = np.arange(64) % 10
    Trainer(model, dw.optim.SGD(model.parameters(), lr=0.1)).fit(
        x, y, epochs=1, batch_size=16, callbacks=[monitor], verbose=0)
    rec = monitor.records[-1]
    rms_emb = rec["grad_norm"]["emb.weight"] / math.sqrt(200_000 * 8)
    rms_head = rec["grad_norm"]["head.weight"] / math.sqrt(80)
    assert rms_emb / rms_head < 0.01  # would look like vanishing ...
    assert monitor.diagnoses == []    # ... but a lookup table's gradient is sparse by design


def _feed_totals(monitor, totals):
    for step, total in enumerate(totals):
        monitor._check_exploding({"total_grad_norm": total, "grad_norm": {"0.weight": total},
                                  "update_ratio": {}, "step": step, "epoch": 0})


def test_late_spike_below_early_training_norms_is_not_an_explosion():
    monitor = GradientMonitor(every=1, verbose=0, window=5)
    # early norms around 2, converged around 0.05, then one batch at 1.3 (26x the median, below 2)
    _feed_totals(monitor, [2.5, 2.0, 1.8, 1.5, 1.2] + [0.05] * 10 + [1.3])
    assert monitor.diagnoses == []
    _feed_totals(monitor, [40.0])  # above the early norms too: a real explosion
    assert monitor.kinds == ["exploding"]
    assert "jumped to 40" in monitor.diagnoses[0].message
