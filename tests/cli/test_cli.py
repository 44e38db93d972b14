"""The deepwise command, run as a user runs it: in a subprocess, checking exit codes and files."""

from __future__ import annotations

import base64
import json
import re
import shlex
import signal
import subprocess
import time

import numpy as np
import pytest

from cli.helpers import CLI, cli_env, run, run_in_pty, screen_lines


def test_recipes_lists_every_recipe_within_80_columns():
    from deepwise import recipes

    res = run("recipes", COLUMNS="80")
    assert res.returncode == 0
    assert "digits-cnn (default) - image classification" in res.stdout
    for name in recipes.names():
        assert f"\n{name}" in res.stdout
        assert recipes.get(name).expected.split()[0] in res.stdout
    assert "    expected  " in res.stdout and "times on 2 CPU cores" in res.stdout
    wide = [ln for ln in res.stdout.splitlines() if len(ln) >= 80]
    assert not wide, wide


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


def test_ctrl_c_says_once_how_to_resume_shell_quoted_on_its_own_line(tmp_path):
    out = tmp_path / "my runs" / "it's a run"  # a space and a quote: pasted unquoted, the command breaks
    ckpt = out / "last.ckpt"

    def press_ctrl_c(proc):
        time.sleep(0.3)  # into the next epoch, with the bar on screen
        proc.send_signal(signal.SIGINT)

    code, text = run_in_pty(["train", "digits-cnn", "--epochs", "50", "--out", str(out)], 80,
                            until=ckpt.exists, then=press_ctrl_c)
    assert code == 130, text
    assert ckpt.exists()
    resume_lines = [ln for ln in text.split("\n") if "resume" in ln.lower()]
    assert len(resume_lines) == 1, resume_lines  # one way to resume, not a second Python-only one
    line = resume_lines[0]
    assert line.startswith("Resume with: deepwise train digits-cnn --resume ")  # on a line of its own
    argv = shlex.split(line[len("Resume with: "):])
    assert argv == ["deepwise", "train", "digits-cnn", "--resume", str(out)]
    # not glued to the progress bar's line ("at epoch E, after batch B", or "at the end of epoch E" when
    # the signal lands between epochs, as it can on a fast machine)
    assert re.search(r"\nTraining interrupted at (epoch \d+, after batch \d+|the end of epoch \d+)\.", text), text
    bars = [ln for ln in screen_lines(text) if ln.startswith("Epoch ")]
    assert bars and all(len(ln) < 80 for ln in bars), bars

    # the printed command, as pasted into a shell, resumes the run (one more epoch, to keep this short)
    done = int(re.search(r"Training interrupted at (?:the end of )?epoch (\d+)", text).group(1))
    res = subprocess.run([*CLI, *argv[1:], "--epochs", str(done + 1), "--quiet"], capture_output=True, text=True,
                         env=cli_env(), timeout=240)
    assert res.returncode == 0, res.stderr
    assert "resuming digits-cnn after " in res.stdout
    assert (out / "metrics.json").exists()
