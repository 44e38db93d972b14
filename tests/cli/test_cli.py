"""The deepwise command, run as a user runs it: in a subprocess, checking exit codes and files."""

from __future__ import annotations

import base64
import json
import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

CLI = [sys.executable, "-m", "deepwise.cli"]


def run(*args, cwd=None, timeout=240):
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1")
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=timeout, cwd=cwd, env=env)


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "mlp"
    res = run("train", "digits-mlp", "--epochs", "2", "--out", str(out), "--quiet")
    assert res.returncode == 0, res.stderr
    return out, res


def test_recipes_lists_every_recipe_with_its_columns():
    res = run("recipes")
    assert res.returncode == 0
    assert "digits-cnn (default)" in res.stdout and "digits-mlp" in res.stdout
    assert "expected result" in res.stdout and "time (2 cores)" in res.stdout


def test_train_writes_every_file_of_the_run_folder(trained_run):
    out, res = trained_run
    for name in ("config.json", "best.safetensors", "last.safetensors", "last.ckpt", "history.csv",
                 "metrics.json", "report.html"):
        assert (out / name).exists(), name
    config = json.loads((out / "config.json").read_text())
    assert config["recipe"] == "digits-mlp" and config["epochs"] == 2
    rows = (out / "history.csv").read_text().strip().splitlines()
    assert rows[0].startswith("epoch,loss,accuracy,val_loss,val_accuracy") and len(rows) == 3
    metrics = json.loads((out / "metrics.json").read_text())
    assert 0.5 < metrics["test_accuracy"] <= 1.0
    assert np.asarray(metrics["confusion_matrix"]).sum() == 360
    assert f"accuracy {metrics['test_accuracy']:.4f}" in res.stdout


def test_report_embeds_real_png_images(trained_run):
    out, _ = trained_run
    (out / "report.html").unlink()
    res = run("report", str(out))
    assert res.returncode == 0, res.stderr
    page = (out / "report.html").read_text()
    images = re.findall(r"data:image/png;base64,([A-Za-z0-9+/=]+)", page)
    assert len(images) >= 4  # loss, accuracy, learning rate, confusion matrix (+ samples)
    for b64 in images:
        assert base64.b64decode(b64)[:8] == b"\x89PNG\r\n\x1a\n"


def test_evaluate_and_predict_use_the_run_weights(trained_run, tmp_path):
    out, _ = trained_run
    res = run("evaluate", str(out))
    assert res.returncode == 0, res.stderr
    acc = float(re.search(r"test accuracy: ([0-9.]+)", res.stdout).group(1))
    assert acc == pytest.approx(json.loads((out / "metrics.json").read_text())["test_accuracy"], abs=1e-4)

    from deepwise.data import load_digits

    x, y = load_digits(split="test", as_images=True)
    np.save(tmp_path / "digit.npy", x[0, 0])
    res = run("predict", str(out), str(tmp_path / "digit.npy"))
    assert res.returncode == 0, res.stderr
    assert re.match(r"predicted digit: \d \(", res.stdout)


def test_resume_continues_to_more_epochs(tmp_path):
    out = tmp_path / "run"
    assert run("train", "digits-mlp", "--epochs", "1", "--out", str(out), "--quiet").returncode == 0
    res = run("train", "digits-mlp", "--resume", str(out), "--epochs", "3", "--quiet")
    assert res.returncode == 0, res.stderr
    rows = (out / "history.csv").read_text().strip().splitlines()[1:]
    assert [int(r.split(",")[0]) for r in rows] == [0, 1, 2]


def test_unknown_recipe_and_bad_flags_exit_2_with_help():
    res = run("train", "no-such-recipe")
    assert res.returncode == 2
    assert "unknown recipe 'no-such-recipe'" in res.stderr and "digits-cnn" in res.stderr
    res = run("train", "digits-mlp", "--epochs", "many")
    assert res.returncode == 2 and "invalid int value" in res.stderr
    res = run("frobnicate")
    assert res.returncode == 2


def test_failures_exit_1_with_one_line_and_debug_shows_traceback(tmp_path):
    res = run("evaluate", str(tmp_path / "missing"))
    assert res.returncode == 1
    assert res.stderr.strip().count("\n") == 0 and "not a deepwise run folder" in res.stderr
    res = run("--debug", "evaluate", str(tmp_path / "missing"))
    assert res.returncode != 0 and "Traceback" in res.stderr


def test_ctrl_c_writes_a_checkpoint_and_says_how_to_resume(tmp_path):
    out = tmp_path / "run"
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1")
    proc = subprocess.Popen([*CLI, "train", "digits-cnn", "--epochs", "50", "--out", str(out), "--quiet"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.time() + 120
    while not (out / "last.ckpt").exists() and time.time() < deadline:
        time.sleep(0.2)
    assert (out / "last.ckpt").exists(), "no checkpoint appeared"
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    assert f"deepwise train digits-cnn --resume {out}" in stderr
    assert (out / "last.ckpt").exists()
