"""run_findings: the verdicts a report prints come from the very epoch series it plots."""

from __future__ import annotations

import numpy as np

import deepwise as dw
from deepwise import nn
from deepwise.diagnostics.findings import layer_series, run_findings
from deepwise.diagnostics.gradients import GradientMonitor
from deepwise.diagnostics.overfitting import OverfittingAdvisor
from deepwise.train import Trainer


def test_a_layer_forty_percent_dead_all_run_is_reported_with_the_plotted_share(digits):
    x, y, xt, yt = digits
    dw.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 50), nn.ReLU(), nn.Linear(50, 10))
    model[0].bias.array[:20] = -100.0  # 20 of 50 units can never fire: 40% dead from the first step
    monitor = GradientMonitor(every=3, verbose=0)
    trainer = Trainer(model, dw.optim.Adam(model.parameters(), lr=1e-3), loss="cross_entropy")
    history = trainer.fit(x[:640], y[:640], epochs=3, batch_size=64, validation_data=(xt, yt),
                          callbacks=[monitor], verbose=0)
    plotted = layer_series(history, "dead_relu")["1"]  # what the report draws
    assert all(0.4 <= v < 0.5 for v in plotted)  # the 20, and now and then a live unit idle on a batch
    findings = run_findings(history, monitor=monitor, model=model, trainer=trainer)
    dead = [f for f in findings if f.kind == "dead_relu"]
    assert len(dead) == 1 and dead[0].layers == ["1"]
    assert f"1 (ReLU): {plotted[-1]:.0%} at the last epoch" in dead[0].message
    assert len(dead[0].remedies) == 2
    assert "no dead" not in " ".join(str(f) for f in findings)
    # the monitor's own verdict (what a run's metrics.json keeps) is the same computation
    assert monitor.epoch_series["dead_relu/1"] == plotted
    assert monitor.diagnosis_text() == [str(f) for f in findings if f.kind != "overfitting"]


def _history(**cols):
    n = len(next(iter(cols.values())))
    return {"epoch": list(range(n)), **cols}


def test_a_recovered_layer_is_not_flagged_and_a_dead_one_is():
    h = _history(**{"dead_relu/1": [0.6, 0.3, 0.05], "dead_relu/3": [0.45, 0.47, 0.47]})
    findings = run_findings(h, layer_types={"1": "ReLU", "3": "ReLU"})
    assert [f.kind for f in findings] == ["dead_relu"]
    assert findings[0].layers == ["3"]
    assert "3 (ReLU): 47% at the last epoch (45% to 47% over the run)" in findings[0].message
    assert "Recovered: 1 (ReLU) was at 60% in epoch 1, 5% at the end" in findings[0].message


def test_a_healthy_run_states_its_measured_numbers():
    rng = np.random.default_rng(0)
    val = list(1.0 + 0.05 * rng.standard_normal(30))  # noisy and flat: not overfitting
    h = _history(loss=list(np.linspace(1.0, 0.1, 30)), val_loss=val, **{"dead_relu/1": [0.1] * 30})
    (only,) = run_findings(h, layer_types={"1": "ReLU"})
    assert only.kind == "healthy"
    assert "1 (ReLU), has 10% of its units dead at the last epoch (flagged from 25%)" in only.message
    best = int(np.argmin(val))
    assert f"val_loss was best at epoch {best + 1} of 30" in only.message


def test_overfitting_in_the_history_is_a_finding():
    val = [1.0, 0.8, 0.7, 0.66, 0.64, 0.63, 0.62, 0.7, 0.8, 0.9, 1.0]
    h = _history(loss=list(np.linspace(1.0, 0.05, len(val))), val_loss=val)
    (only,) = run_findings(h)
    assert only.kind == "overfitting" and only.step == 6 and len(only.remedies) == 2


def test_a_healthy_monitor_and_advisor_say_what_they_measured(digits):
    x, y, xt, yt = digits
    dw.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
    monitor, advisor = GradientMonitor(every=5, verbose=0), OverfittingAdvisor(verbose=0)
    trainer = Trainer(model, dw.optim.Adam(model.parameters(), lr=1e-3), loss="cross_entropy")
    history = trainer.fit(x[:320], y[:320], epochs=2, batch_size=64, validation_data=(xt, yt),
                          callbacks=[monitor, advisor], verbose=0)
    (text,) = monitor.diagnosis_text()
    share = history.history["dead_relu/1"][-1]
    assert text.startswith("GradientMonitor found no problem") and f"1 (ReLU), has {share:.0%}" in text
    (text,) = advisor.diagnosis_text()
    assert text.startswith("OverfittingAdvisor found no overfitting: val_loss was best at epoch 2 of 2")
