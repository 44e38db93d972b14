"""``mpiexec -n 2 deepwise train``: one run folder, written by rank 0, one set of messages; a usage
error found by rank 0 ends every rank with its exit code."""

from __future__ import annotations

import csv
import json
import os

import pytest

pytestmark = pytest.mark.mpi

CLI = """
import sys
from deepwise import cli
sys.exit(cli.main(sys.argv[1:]))
"""


def test_deepwise_train_under_mpiexec_writes_one_run_folder(mpirun, tmp_path):
    out = tmp_path / "run"
    job = mpirun(2, CLI, timeout=240, args=("train", "digits-mlp", "--epochs", "2", "--out", str(out), "--quiet"),
                 env={"DEEPWISE_RUNS": str(tmp_path / "runs")})
    assert job.returncode == 0, job
    assert job.stdout.count("training digits-mlp for 2 epochs") == 1, job
    assert job.stdout.count("test (best weights):") == 1, job
    assert not (tmp_path / "runs").exists()
    files = set(os.listdir(out))
    assert {"config.json", "history.csv", "metrics.json", "last.ckpt", "best.safetensors",
            "last.safetensors"} <= files, files
    assert not [f for f in files if f.endswith(".tmp")], files
    with open(out / "history.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["epoch"]) for r in rows] == [0, 1], rows
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["test_accuracy"] > 0.8, metrics


def test_a_usage_error_under_mpiexec_ends_every_rank_with_code_2(mpirun, tmp_path):
    job = mpirun(2, CLI, timeout=60, args=("train", "digits-mlp", "--resume", str(tmp_path / "nothing")))
    assert job.returncode == 2, job
    assert job.stderr.count("error:") == 1, job
