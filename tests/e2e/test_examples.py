"""The README's examples (kept as files in examples/) run and do what the README says."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def run_example(name, tmp_path):
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1")
    res = subprocess.run([sys.executable, os.path.join(ROOT, "examples", name)], capture_output=True, text=True,
                         cwd=tmp_path, env=env, timeout=300)
    assert res.returncode == 0, res.stderr
    return res.stdout


def test_readme_examples_are_the_example_files():
    readme = open(os.path.join(ROOT, "README.md")).read()
    for name in ("pytorch_style.py", "keras_style.py"):
        code = open(os.path.join(ROOT, "examples", name)).read().strip()
        assert code in readme, f"README.md must show examples/{name} verbatim"


def test_pytorch_style_example_trains_to_97_percent(tmp_path):
    out = run_example("pytorch_style.py", tmp_path)
    assert float(re.search(r"test accuracy ([0-9.]+)", out).group(1)) >= 0.97
    assert (tmp_path / "digits-mlp.safetensors").exists()


def test_keras_style_example_prints_test_metrics(tmp_path):
    out = run_example("keras_style.py", tmp_path)
    metrics = re.search(r"\{'loss': ([0-9.e-]+), 'accuracy': ([0-9.]+)\}", out)
    assert metrics and float(metrics.group(2)) >= 0.93
    assert out.count("Epoch ") >= 6  # one line per epoch (verbose=2), early stopping may end it


@pytest.mark.parametrize("name", ["quickstart.py"])
def test_quickstart_learns(name, tmp_path):
    out = run_example(name, tmp_path)
    last = float(re.findall(r"accuracy ([0-9.]+)", out)[-1])
    assert last > 0.75
