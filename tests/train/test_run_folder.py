"""Run folders: one writer at a time (RunLock), stale temp files cleaned, and a folder killed before its
first checkpoint can be resumed (from epoch 0) or reused through the CLI."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from train_helpers import classification_data, make_mlp

import deepwise as dw
from deepwise.io.atomic import atomic_open, remove_stale_temps
from deepwise.io.checkpoint import CheckpointError
from deepwise.io.safetensors import load_file_with_metadata, save_file
from deepwise.train.run_folder import LOCK_NAME, RunLock, RunLockedError, load_config, run_state

ENV = dict(os.environ, OPENBLAS_NUM_THREADS="1")
CLI = [sys.executable, "-m", "deepwise.cli"]

_HOLD = """
import sys, time
from deepwise.train.run_folder import RunLock
lock = RunLock(sys.argv[1]).acquire()
print("locked", flush=True)
time.sleep(120)
"""

# runs the CLI, but SIGKILLs itself once training starts: config.json written, no checkpoint yet,
# and a half-written checkpoint temp file left behind, as a kill in the middle of a write leaves it
_KILLED_AT_FIRST_CHECKPOINT = """
import os, signal, sys
from deepwise import cli
from deepwise.io import atomic_open
from deepwise.train import Trainer

def fit(self, *args, checkpoint_dir=None, **kwargs):
    writing = atomic_open(os.path.join(checkpoint_dir, "last.ckpt"))
    writing.__enter__().write(b"half a checkpoint" * 1000)
    os.kill(os.getpid(), signal.SIGKILL)

Trainer.fit = fit
cli.main(sys.argv[1:])
"""


def _holder(folder):
    proc = subprocess.Popen([sys.executable, "-c", _HOLD, str(folder)], stdout=subprocess.PIPE, text=True, env=ENV)
    assert proc.stdout.readline().strip() == "locked"
    return proc


def test_lock_names_the_folder_and_the_pid_and_is_taken_over_after_a_kill(tmp_path):
    folder = tmp_path / "run"
    proc = _holder(folder)
    try:
        with pytest.raises(RunLockedError) as info:
            RunLock(folder).acquire()
        assert str(info.value).startswith(f"{folder} is in use: process {proc.pid} is training into it")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    with RunLock(folder) as lock:  # the OS dropped the dead process's lock: taken over
        assert lock.previous_pid == proc.pid
        assert (folder / LOCK_NAME).read_text().strip() == str(os.getpid())
        with pytest.raises(RunLockedError, match=f"process {os.getpid()}"):
            RunLock(folder).acquire()  # one holder, even within a process
    with RunLock(folder):  # released on exit
        pass


def test_lock_refuses_a_missing_folder_when_asked(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a deepwise run folder"):
        RunLock(tmp_path / "nope", create=False).acquire()


def test_stale_temp_files_are_removed_when_the_lock_is_taken(tmp_path):
    folder = tmp_path / "run"
    folder.mkdir()
    stale = folder / ".last.ckpt.0123456789ab.tmp"
    stale.write_bytes(b"x" * 1000)
    keep = [folder / ".last.ckpt.tmp", folder / "notes.0123456789ab.tmp", folder / "last.ckpt"]
    for path in keep:
        path.write_text("keep")
    with RunLock(folder) as lock:
        assert lock.removed_temps == [str(stale)]
    assert not stale.exists() and all(p.exists() for p in keep)
    assert remove_stale_temps(tmp_path / "missing") == []


def test_a_temp_file_of_a_killed_write_matches_what_is_cleaned(tmp_path):
    writing = atomic_open(tmp_path / "report.html")
    writing.__enter__().write(b"half")
    [leftover] = [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]
    assert remove_stale_temps(tmp_path) == [str(tmp_path / leftover)]
    assert os.listdir(tmp_path) == []


def test_run_state_and_config(tmp_path):
    assert run_state(tmp_path) == "new"
    (tmp_path / "config.json").write_text(json.dumps({"recipe": "digits-mlp", "epochs": 1}))
    assert run_state(tmp_path) == "started" and load_config(tmp_path)["recipe"] == "digits-mlp"
    (tmp_path / "last.ckpt").write_bytes(b"")
    assert run_state(tmp_path) == "checkpointed"
    (tmp_path / "metrics.json").write_text("{}")
    assert run_state(tmp_path) == "finished"
    (tmp_path / "config.json").write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(CheckpointError, match="config.json: the run's config nests 100000 levels deep"):
        load_config(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"epochs": 1}))
    with pytest.raises(CheckpointError, match="config.json: the run's config has no 'recipe' name"):
        load_config(tmp_path)


def _kill_before_first_checkpoint(folder, *extra):
    proc = subprocess.run([sys.executable, "-c", _KILLED_AT_FIRST_CHECKPOINT, "train", "digits-mlp", "--epochs", "1",
                           "--quiet", "--out", str(folder), *extra], capture_output=True, text=True, env=ENV,
                          timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    names = set(os.listdir(folder))
    assert "config.json" in names and "last.ckpt" not in names
    assert any(n.startswith(".last.ckpt.") and n.endswith(".tmp") for n in names), names


def test_cli_resumes_a_run_killed_before_its_first_checkpoint(tmp_path):
    folder = tmp_path / "run"
    _kill_before_first_checkpoint(folder)
    res = subprocess.run([*CLI, "train", "digits-mlp", "--resume", str(folder), "--quiet"], capture_output=True,
                         text=True, env=ENV, timeout=240)
    assert res.returncode == 0, res.stderr
    assert "has no checkpoint yet (the run stopped before its first one): training it from epoch 0" in res.stdout
    names = set(os.listdir(folder))
    assert {"last.ckpt", "metrics.json", "history.csv"} <= names
    assert not [n for n in names if n.endswith(".tmp")], names  # the killed write's temp file is gone
    rows = (folder / "history.csv").read_text().strip().splitlines()
    assert len(rows) == 2  # header + the one epoch, trained from epoch 0
    # a damaged checkpoint: one line naming the file and the missing field, not "KeyError: 'settings'"
    arrays, metadata = load_file_with_metadata(folder / "last.ckpt")
    meta = json.loads(metadata["deepwise"])
    del meta["settings"]
    save_file(arrays, folder / "last.ckpt", {**metadata, "deepwise": json.dumps(meta)})
    res = subprocess.run([*CLI, "train", "digits-mlp", "--resume", str(folder), "--epochs", "2", "--quiet"],
                         capture_output=True, text=True, env=ENV, timeout=120)
    assert res.returncode == 1
    assert res.stderr.strip() == (f"deepwise: error: {folder / 'last.ckpt'}: the checkpoint has no 'settings' field "
                                  "(it was not written by Trainer.fit, or has been edited or damaged)")


def test_cli_refuses_a_second_writer_naming_the_pid(tmp_path):
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"recipe": "digits-mlp", "epochs": 1}))
    proc = _holder(folder)
    try:
        for args in (["--resume", str(folder)], ["--out", str(folder)]):
            res = subprocess.run([*CLI, "train", "digits-mlp", *args, "--quiet"], capture_output=True, text=True,
                                 env=ENV, timeout=120)
            assert res.returncode == 1, res.stderr
            assert f"deepwise: error: {folder} is in use: process {proc.pid} is training into it" in res.stderr
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert json.loads((folder / "config.json").read_text()) == {"recipe": "digits-mlp", "epochs": 1}


@pytest.mark.slow
def test_cli_out_reuses_a_folder_killed_before_its_first_checkpoint(tmp_path):
    folder = tmp_path / "run"
    _kill_before_first_checkpoint(folder, "--seed", "3")
    start = time.time()
    res = subprocess.run([*CLI, "train", "digits-mlp", "--epochs", "1", "--out", str(folder), "--quiet"],
                         capture_output=True, text=True, env=ENV, timeout=240)
    assert res.returncode == 0, res.stderr
    assert "holds a run that stopped before its first checkpoint: starting it afresh" in res.stdout
    assert json.loads((folder / "config.json").read_text()).get("seed") != 3  # the new run's settings
    assert (folder / "metrics.json").exists() and time.time() - start < 240
    res = subprocess.run([*CLI, "train", "digits-mlp", "--out", str(folder), "--quiet"], capture_output=True,
                         text=True, env=ENV, timeout=120)
    assert res.returncode == 2 and "already holds a run" in res.stderr


def _fit_into(folder, callbacks=()):
    x, y = classification_data(n=40)
    dw.manual_seed(0)
    model = make_mlp()
    trainer = dw.Trainer(model, dw.optim.SGD(model.parameters(), lr=0.1))
    return trainer.fit(x, y, epochs=1, batch_size=16, verbose=0, checkpoint_dir=folder, callbacks=list(callbacks))


def test_fit_into_a_folder_another_process_trains_into_is_refused_and_writes_nothing(tmp_path):
    folder = tmp_path / "run"
    proc = _holder(folder)
    try:
        with pytest.raises(RunLockedError, match=f"process {proc.pid} is training into it"):
            _fit_into(folder)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert sorted(os.listdir(folder)) == [LOCK_NAME]


def test_fit_holds_the_lock_while_it_trains_and_shares_a_hold_of_its_own_process(tmp_path):
    folder = tmp_path / "run"
    seen = []

    class TryLock(dw.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            try:
                RunLock(folder).acquire()
            except RunLockedError as exc:
                seen.append(str(exc))

    _fit_into(folder, [TryLock()])
    assert len(seen) == 1 and f"process {os.getpid()}" in seen[0]
    with RunLock(folder):  # released when fit returned
        pass
    with RunLock(folder):  # `deepwise train` holds it around fit: fit shares that hold
        _fit_into(folder)
        with pytest.raises(RunLockedError):
            RunLock(folder).acquire()  # still held by the outer lock after fit's nested hold ended
    with RunLock(folder):
        pass
