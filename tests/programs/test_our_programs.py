"""Programs written for the deepwise project (``ours/``, labelled as such in each file; the public
corpus is ``test_programs.py``): PyTorch programs that combine the PyTorch features the public ones
use one at a time, run unchanged under ``deepwise run --see-inside``, and on PyTorch as the oracle."""

from __future__ import annotations

import json
import pathlib
import re
import subprocess
import sys

import pytest

HERE = pathlib.Path(__file__).parent
VAE = HERE / "ours" / "vae_stream.py"
ARGS = ["--epochs", "3", "--workers", "2", "--samples", "768"]
EPOCH = re.compile(r"epoch (\d+): train ([\d.]+) val ([\d.]+) \((\d+) batches\)")


def _epochs(stdout):
    return [(int(e), float(t), float(v), int(b)) for e, t, v, b in EPOCH.findall(stdout)]


def _run_deepwise(tmp_path):
    report = tmp_path / "seen"
    proc = subprocess.run([sys.executable, "-m", "deepwise", "run", "--see-inside", "--report-dir", str(report),
                           str(VAE), *ARGS], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
    return proc, json.loads((report / "metrics.json").read_text())


def test_the_vae_on_a_worker_sharded_stream_learns_under_deepwise_run(tmp_path):
    proc, metrics = _run_deepwise(tmp_path)
    epochs = _epochs(proc.stdout)
    assert [e for e, *_ in epochs] == [1, 2, 3]
    assert all(b == 768 // 32 for *_, b in epochs)  # the two workers' shards together: every sample once
    assert epochs[-1][1] < 0.8 * epochs[0][1] and epochs[-1][2] < epochs[0][2]  # the negative ELBO falls
    assert metrics["watched"] == [{"model_and_optimizer": "VAE + Adam", "steps": 72, "epochs": 3}]
    losses = metrics["training_losses"]["VAE + Adam"]
    assert len(losses) == 72 and sum(losses[-10:]) < sum(losses[:10])


@pytest.mark.slow
def test_the_vae_learns_about_as_much_as_on_pytorch(tmp_path):
    pytest.importorskip("torch")
    proc, _ = _run_deepwise(tmp_path)
    ours = _epochs(proc.stdout)
    ref = subprocess.run([sys.executable, str(VAE), *ARGS], cwd=tmp_path, capture_output=True, text=True,
                         timeout=600)
    assert ref.returncode == 0, ref.stderr[-3000:]
    theirs = _epochs(ref.stdout)
    assert len(theirs) == len(ours) == 3 and theirs[-1][1] < theirs[0][1]
    # the same recipe, different random draws: the final negative ELBO within 25% of PyTorch's
    assert abs(ours[-1][1] - theirs[-1][1]) < 0.25 * theirs[-1][1], (ours, theirs)
