"""A real run: the verdict in metrics.json and report.html agrees with the series history.csv plots.

digits-cnn's head has a ReLU (module 8) with about 40% of its units dead all run: the verdict must
name it with the share the dead_relu plot draws, never say "no dead units". A whole CLI run with its
report, so slow; the short version, on a Trainer, is in test_diag_findings.py.
"""

from __future__ import annotations

import csv
import json

import pytest

from deepwise.cli import main


@pytest.mark.slow
def test_digits_cnn_verdict_names_the_dead_layer_the_plot_shows(tmp_path):
    pytest.importorskip("matplotlib")
    run_dir = tmp_path / "run"
    assert main(["train", "digits-cnn", "--epochs", "2", "--out", str(run_dir), "--quiet"]) == 0
    rows = list(csv.DictReader(open(run_dir / "history.csv")))
    plotted = [float(r["dead_relu/8"]) for r in rows]
    metrics = json.loads((run_dir / "metrics.json").read_text())
    verdict = " ".join(metrics["diagnosis"])
    assert plotted[-1] >= 0.25  # the layer the issue saw: dead for a large share all run
    assert f"8 (ReLU): {plotted[-1]:.0%} at the last epoch" in verdict
    assert "no dead" not in verdict
    page = (run_dir / "report.html").read_text()
    assert f"8 (ReLU): {plotted[-1]:.0%} at the last epoch" in page
