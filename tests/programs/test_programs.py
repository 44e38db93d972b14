"""The corpus: real public PyTorch programs (tests/programs/manifest.json, README.md) run unchanged
under ``deepwise run --see-inside``, with deepwise standing in for torch. Each must run to the end,
and the training losses it computed must fall (classifiers, regressions, autoencoders, language
models, the GPT) or stay finite (GANs, whose two losses fight rather than fall). A program that
updates its tensors by hand (``"optimizer": false``) has no optimizer to watch; its losses are still
those it called backward() on."""

from __future__ import annotations

import json
import math
import os
import pathlib
import shutil
import subprocess
import sys

import pytest

HERE = pathlib.Path(__file__).parent
MANIFEST = json.loads((HERE / "manifest.json").read_text())
PROGRAMS = MANIFEST["programs"]


def _run(program, tmp_path):
    shutil.copytree(HERE / "corpus" / "data", tmp_path / "data")  # the language model reads data/train.txt
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(HERE / "standins"), str(HERE / "corpus"), env.get("PYTHONPATH", "")])
    env["TORCHVISION_STANDIN_SAMPLES"] = str(MANIFEST["standin_samples"])
    report = tmp_path / "seen"
    proc = subprocess.run(
        [sys.executable, "-m", "deepwise.cli", "run", "--see-inside", "--report-dir", str(report),
         str(HERE / program["file"]), *program["args"]],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    return proc, report


def _torch_losses(program, tmp_path):
    """The training losses of ``program`` run on PyTorch with the same settings and stand-ins."""
    shutil.copytree(HERE / "corpus" / "data", tmp_path / "data", dirs_exist_ok=True)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(HERE / "standins"), str(HERE / "corpus"), env.get("PYTHONPATH", "")])
    env["TORCHVISION_STANDIN_SAMPLES"] = str(MANIFEST["standin_samples"])
    out = tmp_path / "torch_losses.json"
    proc = subprocess.run([sys.executable, str(HERE / "torch_losses.py"), str(out), str(HERE / program["file"]),
                           *program["args"]], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(out.read_text())


def _trend_ok(losses):
    k = max(1, len(losses) // 4)
    first, last = sum(losses[:k]) / k, sum(losses[-k:]) / k
    return last < first, first, last


@pytest.mark.parametrize("program", [pytest.param(p, id=p["name"], marks=[pytest.mark.slow] if p["slow"] else [])
                                     for p in PROGRAMS])
def test_program_runs_unchanged_and_learns(program, tmp_path):
    proc, report = _run(program, tmp_path)
    assert proc.returncode == 0, f"{program['name']} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
    assert "what happened inside" in proc.stdout
    metrics = json.loads((report / "metrics.json").read_text())
    watched = metrics["watched"]
    if program.get("optimizer", True):
        assert watched and all(w["steps"] > 0 for w in watched), watched
    else:  # it updates its tensors by hand: its losses are seen, there is no optimizer to watch
        assert watched == [] and "without an optimizer" in proc.stdout, proc.stdout[-2000:]
    if program["kind"].startswith(("GAN", "adversarial")):
        assert len(watched) == 2  # the generator's optimizer and the discriminator's, each watched
    for label, losses in metrics["training_losses"].items():
        assert len(losses) >= 2, (label, losses)
        assert all(math.isfinite(v) for v in losses), (label, losses)
        if program["trend"] == "falls":
            ok, first, last = _trend_ok(losses)
            assert ok, f"{program['name']} ({label}): the loss did not fall: {first:.4g} -> {last:.4g}"
    assert metrics["diagnosis"], "the diagnostics said nothing"


def test_the_manifest_records_where_every_program_comes_from():
    assert len(PROGRAMS) >= 15
    for p in PROGRAMS:
        assert (HERE / p["file"]).is_file(), p["file"]
        assert len(p["commit"]) == 40 and p["repository"].count("/") == 1 and p["path"].endswith(".py")
        assert p["licence"] and (HERE / p["licence_file"]).is_file()
    kinds = " ".join(p["kind"] for p in PROGRAMS)
    for family in ("CNN", "RNN", "GAN", "autoencoder", "transformer", "custom autograd.Function"):
        assert family in kinds, family


FALLING = [p for p in PROGRAMS if p["trend"] == "falls"]


@pytest.mark.slow
@pytest.mark.parametrize("program", FALLING, ids=[p["name"] for p in FALLING])
def test_loss_falls_about_as_much_as_under_pytorch(program, tmp_path):
    pytest.importorskip("torch")
    proc, report = _run(program, tmp_path / "deepwise")
    assert proc.returncode == 0, proc.stderr[-3000:]
    ours = next(iter(json.loads((report / "metrics.json").read_text())["training_losses"].values()))
    theirs = _torch_losses(program, tmp_path / "torch")
    _, our_first, our_last = _trend_ok(ours)
    _, their_first, their_last = _trend_ok(theirs)
    assert their_last < their_first  # the oracle learns with these settings
    # the same relative progress within a generous margin: different random draws, same recipe
    ours_ratio, theirs_ratio = our_last / our_first, their_last / their_first
    assert ours_ratio < 1.0 and ours_ratio <= theirs_ratio * 1.5 + 0.1, (ours_ratio, theirs_ratio)

