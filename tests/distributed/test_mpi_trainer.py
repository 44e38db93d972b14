"""Trainer.fit under real ``mpiexec -n 2`` and ``-n 3`` equals the same fit in one process: the same
global batches split over the ranks, the same weights, History, validation metrics and evaluate();
a checkpoint taken in the middle of an epoch on 2 ranks resumes exactly on 1 and on 3."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from deepwise.train import load_training_checkpoint

pytestmark = pytest.mark.mpi

# argv: mode (full | part | resume) samples batchnorm(0/1) checkpoint_dir
FIT = r"""
import json, os, sys
import numpy as np
import deepwise as dw
import deepwise.distributed as dist
from deepwise import nn

mode, samples, use_bn, folder = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1", sys.argv[4]
rng = np.random.default_rng(0)
x = rng.standard_normal((samples, 6)).astype(np.float32)
y = (x[:, 0] + 0.5 * x[:, 1] > 0).astype(np.int64) + (x[:, 2] > 1).astype(np.int64)
xv = rng.standard_normal((13, 6)).astype(np.float32)
yv = (xv[:, 0] > 0).astype(np.int64)

rank = int(os.environ.get("PMI_RANK", "0"))
dw.manual_seed(100 + rank)          # ranks draw different weights and generators: fit makes them agree
layers = [nn.Linear(6, 16)] + ([nn.BatchNorm1d(16)] if use_bn else []) + [nn.ReLU(), nn.Linear(16, 3)]
model = nn.Sequential(*layers)
if use_bn:
    model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
dw.manual_seed(7)                   # the one-process run's seed (rank 0's state reaches every rank)
if rank:
    dw.manual_seed(1000 + rank)
opt = dw.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
trainer = dw.Trainer(model, opt, loss="cross_entropy", metrics=["accuracy"])

class Stop(Exception):
    pass

class StopAfter(dw.callbacks.Callback):
    def on_train_batch_end(self, batch, logs=None):
        if self.trainer.state.epoch == 1 and batch == 4:
            raise Stop()

kwargs = dict(epochs=3, batch_size=8, verbose=0)
if samples == 44:   # a split drawn from the generator, the same on every rank as in one process
    kwargs["validation_split"] = 0.25
else:
    kwargs["validation_data"] = (xv, yv)
if mode == "part":
    try:
        trainer.fit(x, y, checkpoint_dir=folder, checkpoint_every=2, callbacks=[StopAfter()], **kwargs)
    except Stop:
        pass
    sys.stdout.write("PART done\n")
    sys.exit(0)
history = trainer.fit(x, y, resume_from=folder if mode == "resume" else None, **kwargs)
scores = trainer.evaluate(xv, yv)
weights = [p.array.astype(np.float64).ravel().tolist() for p in model.parameters()]
weights += [b.array.astype(np.float64).ravel().tolist() for b in model.buffers() if b.dtype.kind == "f"]
everyone = [None] * dist.get_world_size() if dist.is_initialized() else [None]
if dist.is_initialized():
    dist.all_gather_object(everyone, [float(np.sum(w)) for w in weights])
    assert all(e == everyone[0] for e in everyone), "ranks ended with different weights"
if not dist.is_initialized() or dist.get_rank() == 0:
    out = {"weights": weights, "history": history.history, "evaluate": scores}
    sys.stdout.write("RESULT " + json.dumps(out) + "\n")
"""


def _one_process(tmp_path, *args):
    script = tmp_path / "fit_one.py"
    script.write_text(textwrap.dedent(FIT))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, str(script), *map(str, args)], capture_output=True, text=True,
                          timeout=120, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def _result(stdout):
    lines = [line[len("RESULT "):] for line in stdout.splitlines() if line.startswith("RESULT ")]
    assert len(lines) == 1, stdout
    return json.loads(lines[0])


def _assert_same(got, want):
    for a, b in zip(got["weights"], want["weights"]):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    assert got["history"].keys() == want["history"].keys()
    for key, values in want["history"].items():
        np.testing.assert_allclose(got["history"][key], values, rtol=1e-5, atol=1e-6, err_msg=key)
    for key, value in want["evaluate"].items():
        assert got["evaluate"][key] == pytest.approx(value, rel=1e-5, abs=1e-6), key


@pytest.mark.parametrize("n, samples, bn", [(2, 51, 1), (3, 44, 0)])
def test_fit_on_n_ranks_equals_fit_in_one_process(mpirun, tmp_path, n, samples, bn):
    # 51 samples in batches of 8 end with 3: shares of 2 and 1 on 2 ranks (weighted by size);
    # on 3 ranks, the 33 training samples of 44 (validation_split=0.25) end with a batch of 1: two
    # ranks hold a stand-in sample of weight zero; the 11 validation samples are 2 batches, so one
    # rank evaluates none.
    want = _result(_one_process(tmp_path, "full", samples, bn, tmp_path / "none"))
    job = mpirun(n, FIT, timeout=120, args=("full", str(samples), str(bn), str(tmp_path / "none")))
    assert job.returncode == 0, job
    got = _result(job.stdout)
    _assert_same(got, want)
    assert len(want["history"]["loss"]) == 3 and 0.0 <= want["history"]["val_accuracy"][-1] <= 1.0


def test_a_checkpoint_of_two_ranks_resumes_exactly_on_one_and_on_three(mpirun, tmp_path):
    want = _result(_one_process(tmp_path, "full", 51, 1, tmp_path / "none"))
    folder = tmp_path / "run"
    job = mpirun(2, FIT, timeout=120, args=("part", "51", "1", str(folder)))
    assert job.returncode == 0, job
    assert job.lines("PART") == ["done", "done"], job
    assert sorted(p for p in os.listdir(folder) if not p.startswith(".")) == ["last.ckpt"]
    saved = (folder / "last.ckpt").read_bytes()
    got = _result(_one_process(tmp_path, "resume", 51, 1, folder))
    _assert_same(got, want)
    (folder / "last.ckpt").write_bytes(saved)
    job = mpirun(3, FIT, timeout=120, args=("resume", "51", "1", str(folder)))
    assert job.returncode == 0, job
    _assert_same(_result(job.stdout), want)


FAIL = r"""
import os, signal, sys
import numpy as np
import deepwise as dw
import deepwise.distributed as dist
from deepwise import nn

how, folder = sys.argv[1], sys.argv[2]
rng = np.random.default_rng(0)
x = rng.standard_normal((64, 6)).astype(np.float32)
y = (x[:, 0] > 0).astype(np.int64)
dw.manual_seed(0)
model = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 2))
trainer = dw.Trainer(model, dw.optim.SGD(model.parameters(), lr=0.1))

class Fail(dw.callbacks.Callback):
    def on_train_batch_end(self, batch, logs=None):
        if dist.get_rank() == 1 and self.trainer.state.epoch == 1 and batch == 2:
            if how == "kill":
                os.kill(os.getpid(), signal.SIGKILL)
            raise RuntimeError("rank 1 breaks in epoch 2")

trainer.fit(x, y, epochs=3, batch_size=8, verbose=0, checkpoint_dir=folder, callbacks=[Fail()])
"""


@pytest.mark.parametrize("how", ["raise", "kill"])
def test_a_rank_failing_in_fit_ends_the_job_and_keeps_the_last_checkpoint(mpirun, tmp_path, how):
    folder = tmp_path / "run"
    job = mpirun(2, FAIL, timeout=60, args=(how, str(folder)), env={"DEEPWISE_DIST_TIMEOUT": "20"})
    assert job.returncode != 0 and job.seconds < 45, job
    if how == "raise":
        assert "rank 1 breaks in epoch 2" in job.stderr and "rank 1 of 2 failed with RuntimeError" in job.stderr, job
    assert sorted(os.listdir(folder)) == [".deepwise.lock", "last.ckpt"], os.listdir(folder)
    ck = load_training_checkpoint(folder / "last.ckpt")
    assert ck.position["epoch"] == 1 and ck.position["batch"] == 0  # the end of epoch 1, whole


STOP_ON_ONE_RANK = r"""
import sys
import numpy as np
import deepwise as dw
import deepwise.distributed as dist
from deepwise import nn

where = sys.argv[1]
rng = np.random.default_rng(0)
x = rng.standard_normal((64, 6)).astype(np.float32)
y = (x[:, 0] > 0).astype(np.int64)
dw.manual_seed(0)
model = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 2))
trainer = dw.Trainer(model, dw.optim.SGD(model.parameters(), lr=0.1))

class StopOnRankOne(dw.callbacks.Callback):
    def on_train_batch_end(self, batch, logs=None):
        if where == "batch" and dist.get_rank() == 1 and batch == 2:
            self.trainer.stop_training = True

    def on_before_optimizer_step(self, optimizer):
        if where == "step" and dist.get_rank() == 1 and self.trainer.state.batch_index == 2:
            self.trainer.stop_training = True  # cancels this step, as TerminateOnNaN does

history = trainer.fit(x, y, epochs=3, batch_size=8, verbose=0, callbacks=[StopOnRankOne()])
everyone = [None] * dist.get_world_size()
dist.all_gather_object(everyone, [float(p.array.sum()) for p in model.parameters()])
assert all(e == everyone[0] for e in everyone), everyone
sys.stdout.write(f"STEPS {trainer.state.global_step} EPOCHS {len(history.history['loss'])}\n")
"""


@pytest.mark.parametrize("where", ["batch", "step"])
def test_a_stop_decided_on_one_rank_stops_every_rank_at_the_same_batch(mpirun, where):
    job = mpirun(2, STOP_ON_ONE_RANK, timeout=60, args=(where,), env={"DEEPWISE_DIST_TIMEOUT": "20"})
    assert job.returncode == 0, job
    assert job.lines("STEPS") == ["3 EPOCHS 1", "3 EPOCHS 1"], job
