"""build_report: what a run folder's report says and shows, from a small hand-made run folder."""

from __future__ import annotations

import csv
import json

import pytest

from deepwise.diagnostics.findings import run_findings
from deepwise.diagnostics.report import _curves, _label, _meaning, best_epoch, build_report, read_history

pytest.importorskip("matplotlib")


def _run(tmp_path, columns, metrics, config=None):
    names = list(columns)
    with open(tmp_path / "history.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(names)
        for row in zip(*columns.values()):
            w.writerow(row)
    (tmp_path / "metrics.json").write_text(json.dumps(metrics))
    (tmp_path / "config.json").write_text(json.dumps(config or {"recipe": "test-run", "epochs": len(row)}))
    return tmp_path


def test_a_classification_report_marks_the_best_epoch_names_layers_and_explains_metrics(tmp_path):
    cols = {"epoch": [0, 1, 2, 3], "loss": [1.0, 0.6, 0.4, 0.3], "val_loss": [0.9, 0.5, 0.45, 0.47],
            "lr": [1e-3] * 4, "dead_relu/1": [0.42, 0.41, 0.40, 0.40], "grad_norm/0.weight": [1.0, 0.8, 0.5, 0.4]}
    layers = {"0": "Linear", "1": "ReLU", "2": "Linear"}
    findings = [str(f) for f in run_findings(cols, layer_types=layers)]
    metrics = {"test_accuracy": 0.95, "test_rmse_ppm": 0.33, "diagnosis": findings,
               "model": {"summary": "Sequential(\n  (0): Linear(64, 50)\n  (1): ReLU()\n)", "layers": layers}}
    page = open(build_report(str(_run(tmp_path, cols, metrics)))).read()
    assert best_epoch(read_history(tmp_path / "history.csv")) == 3
    assert "the best epoch (lowest val_loss) is 3" in page
    assert "The learning rate was 0.001 throughout (not plotted)" in page  # flat: said, not drawn
    assert "alt='learning rate'" not in page
    assert "share of samples whose predicted class is the true one [fraction, 1 = all]" in page
    assert "[ppm CO2]" in page
    assert "<h2>The model</h2>" in page and "(0): Linear(64, 50)" in page
    # the finding beside the dead_relu plot is the plotted series' own last value
    assert "1 (ReLU): 40% at the last epoch (40% to 42% over the run)" in page
    assert _label("0.weight", layers) == "0.weight (Linear)" and _label("1", layers) == "1 (ReLU)"


def test_a_changing_learning_rate_is_drawn_and_a_forecast_is_plotted(tmp_path):
    cols = {"epoch": [0, 1, 2], "loss": [1.0, 0.5, 0.4], "val_loss": [0.9, 0.6, 0.5], "lr": [1e-2, 1e-3, 1e-4]}
    forecast = [{"month": f"2001-{m:02d}", "true": 370.0 + m, "forecast": 370.2 + m, "naive": 369.5 + m}
                for m in range(1, 13)]
    page = open(build_report(str(_run(tmp_path, cols, {"test_rmse_ppm": 0.3, "forecast": forecast})))).read()
    assert "alt='learning rate'" in page
    assert "<h2>Forecast vs actual</h2>" in page and "alt='forecast vs actual'" in page


def test_a_gan_report_has_a_diagnostics_section_and_no_one_line_train_vs_validation_panel(tmp_path):
    import matplotlib.pyplot as plt

    cols = {"epoch": [0, 1], "loss": [2.1, 2.1], "val_loss": [2.0, 2.2], "d_loss": [1.3, 1.2], "g_loss": [0.8, 0.9],
            "d_real": [0.55, 0.52],
            "d_fake": [0.45, 0.44], "lr": [2e-4, 2e-4]}
    page = open(build_report(str(_run(tmp_path, cols, {"sample_confident_share": 0.65})))).read()
    assert "<h2>What the diagnostics noticed</h2>" in page
    assert "best epoch" not in page  # a GAN keeps its last weights: no epoch is "best"
    assert "No GradientMonitor or OverfittingAdvisor watched this run" in page
    assert "real images 0.52 and generated ones 0.44" in page and "balanced" in page
    assert "generated images: share of images a digit classifier recognises" in page
    figures = _curves(read_history(tmp_path / "history.csv"), plt)
    assert [name for name, _ in figures] == ["loss", "d_loss", "g_loss", "d_real", "d_fake"]  # flat lr: not drawn


def test_metric_meanings_cover_the_recipes_metric_names():
    for name in ("test_loss", "test_accuracy", "test_elbo_nats", "test_psnr_denoised_db", "naive_rmse_ppm",
                 "test_pca8_mse", "test_perplexity", "val_bits_per_char", "longer_strings_accuracy",
                 "real_class_entropy_bits", "knn5_accuracy_embedding", "rmse_vs_naive"):
        assert _meaning(name), name
