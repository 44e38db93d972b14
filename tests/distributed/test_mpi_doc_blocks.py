"""The Python blocks of docs/distributed.md also run as written under ``mpiexec -n 2`` (plain Python runs
them as a world of one in tests/docs/test_doc_blocks.py)."""

from __future__ import annotations

import pathlib
import re

import pytest

pytestmark = pytest.mark.mpi

PAGE = pathlib.Path(__file__).resolve().parents[2] / "docs" / "distributed.md"
BLOCKS = re.findall(r"```python\n(.*?)```", PAGE.read_text(), re.S)


def test_the_page_has_the_loop_and_the_trainer_blocks():
    assert len(BLOCKS) == 2 and "DistributedDataParallel" in BLOCKS[0] and "trainer.fit" in BLOCKS[1]


def test_the_training_loop_block_runs_on_two_processes(mpirun):
    job = mpirun(2, BLOCKS[0], timeout=120)
    assert job.returncode == 0, job
    lines = job.lines("2 process(es): training accuracy")
    assert len(lines) == 1 and float(lines[0]) > 0.8, job  # rank 0 alone prints


def test_the_trainer_block_runs_on_two_processes_and_rank_0_writes(mpirun, tmp_path):
    job = mpirun(2, BLOCKS[1], timeout=120)
    assert job.returncode == 0, job
    assert job.stdout.count("'accuracy'") == 1 and job.stdout.count("Epoch 1/3") == 1, job
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == [".deepwise.lock", "last.ckpt"]
