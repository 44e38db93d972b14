"""Determinism, checkpoints and exact resume (in process, after SIGINT, and after SIGKILL of a child)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest
from train_helpers import assert_same_weights, classification_data, weights_of

import deepwise as dw
from deepwise.train import (
    CSVLogger,
    EarlyStopping,
    LambdaCallback,
    ModelCheckpoint,
    ReduceLROnPlateau,
    Trainer,
    load_training_checkpoint,
)

SRC = os.path.join(os.path.dirname(__file__), os.pardir, os.pardir, "src")


class _Abort(Exception):
    pass


def _abort_at(step):
    """A callback that kills fit (an exception) just before global step ``step`` runs."""

    def hook(batch, logs):
        if hook.trainer.state.global_step == step:
            raise _Abort(f"abort at step {step}")

    cb = LambdaCallback(on_train_batch_begin=hook)
    return cb, hook


def test_two_seeded_runs_are_bit_identical(trainer_factory, cls_data):
    x, y = cls_data
    runs = []
    for _ in range(2):
        t = trainer_factory(seed=3, dropout=0.3, metrics=["accuracy"])
        h = t.fit(x, y, epochs=3, batch_size=16, validation_split=0.2, verbose=0)
        runs.append((weights_of(t.model), h.history))
    assert_same_weights(runs[0][0], runs[1][0])
    assert runs[0][1] == runs[1][1]
    # a different seed gives different weights (the comparison above can fail)
    t = trainer_factory(seed=4, dropout=0.3, metrics=["accuracy"])
    t.fit(x, y, epochs=3, batch_size=16, validation_split=0.2, verbose=0)
    assert not np.array_equal(weights_of(t.model)["0.weight"], runs[0][0]["0.weight"])


def _fit(trainer, x, y, **kw):
    kw.setdefault("epochs", 4)
    kw.setdefault("batch_size", 16)
    kw.setdefault("verbose", 0)
    return trainer.fit(x, y, validation_split=0.2, **kw)


@pytest.mark.parametrize("abort_step, every", [(9, 3), (15, "epoch")])
def test_resume_in_process_is_bit_identical(trainer_factory, cls_data, tmp_path, abort_step, every):
    """80 training samples / batch 16 = 5 batches per epoch. Checkpoints every 3 batches land in the
    middle of epochs (step 9 = epoch 2 after its 4th batch); 'epoch' checkpoints at epoch ends."""
    x, y = cls_data
    ref = trainer_factory(seed=1, dropout=0.25, metrics=["accuracy", "f1"])
    ref_hist = _fit(ref, x, y, checkpoint_dir=tmp_path / "ref", checkpoint_every=every,
                    callbacks=[EarlyStopping(patience=10, restore_best_weights=True)])

    first = trainer_factory(seed=1, dropout=0.25, metrics=["accuracy", "f1"])
    abort, hook = _abort_at(abort_step)
    hook.trainer = first
    with pytest.raises(_Abort):
        _fit(first, x, y, checkpoint_dir=tmp_path / "run", checkpoint_every=every,
             callbacks=[EarlyStopping(patience=10, restore_best_weights=True), abort])
    ck = load_training_checkpoint(tmp_path / "run")
    if every == 3:
        assert ck.position["batch"] > 0 and ck.position["global_step"] == 9  # mid-epoch
    else:
        assert ck.position["batch"] == 0 and ck.position["epoch"] == 3

    # a new trainer with other initial weights and another generator state continues exactly
    second = trainer_factory(seed=99, dropout=0.25, metrics=["accuracy", "f1"])
    dw.manual_seed(12345)
    hist = _fit(second, x, y, resume_from=tmp_path / "run", checkpoint_dir=tmp_path / "run",
                checkpoint_every=every, callbacks=[EarlyStopping(patience=10, restore_best_weights=True)])
    assert_same_weights(weights_of(ref.model), weights_of(second.model))
    assert hist.history == ref_hist.history
    assert hist.epoch == [0, 1, 2, 3]
    # the optimizer state continued too
    s_ref, s_new = ref.optimizer.state_dict(), second.optimizer.state_dict()
    for k in s_ref["state"]:
        np.testing.assert_array_equal(s_ref["state"][k]["exp_avg"].numpy(), s_new["state"][k]["exp_avg"].numpy())


def test_mid_epoch_resume_restores_buffers_and_sgd_momentum(cls_data, tmp_path):
    """BatchNorm running statistics (buffers) and SGD momentum survive a mid-epoch resume exactly."""
    x, y = cls_data

    def build(seed):
        dw.manual_seed(seed)
        model = dw.nn.Sequential(dw.nn.Linear(8, 16), dw.nn.BatchNorm1d(16), dw.nn.ReLU(), dw.nn.Linear(16, 3))
        return Trainer(model, dw.optim.SGD(model.parameters(), lr=0.05, momentum=0.9), metrics=["accuracy"])

    ref = build(0)
    _fit(ref, x, y, epochs=3, batch_size=12)
    run = build(0)
    abort, hook = _abort_at(10)
    hook.trainer = run
    with pytest.raises(_Abort):
        _fit(run, x, y, epochs=3, batch_size=12, checkpoint_dir=tmp_path, checkpoint_every=4, callbacks=[abort])
    ck = load_training_checkpoint(tmp_path)
    assert ck.position["global_step"] == 8 and ck.position["batch"] == 1  # 7 batches per epoch
    assert int(ck.model["1.num_batches_tracked"]) == 8
    resumed = build(3)
    _fit(resumed, x, y, epochs=3, batch_size=12, resume_from=tmp_path)
    assert_same_weights(weights_of(ref.model), weights_of(resumed.model))


def test_resume_checks_settings_mid_epoch(trainer_factory, cls_data, tmp_path):
    x, y = cls_data
    t = trainer_factory()
    abort, hook = _abort_at(4)
    hook.trainer = t
    with pytest.raises(_Abort):
        _fit(t, x, y, checkpoint_dir=tmp_path, checkpoint_every=2, callbacks=[abort])
    t2 = trainer_factory()
    with pytest.raises(ValueError, match="batch_size=16.*batch_size=8"):
        _fit(t2, x, y, batch_size=8, resume_from=tmp_path)
    with pytest.raises(ValueError, match="initial_epoch comes from the checkpoint"):
        _fit(t2, x, y, initial_epoch=1, resume_from=tmp_path)
    with pytest.raises(FileNotFoundError, match="no such checkpoint"):
        _fit(t2, x, y, resume_from=tmp_path / "missing.ckpt")
    plain = trainer_factory(scheduler=None)
    sched = dw.optim.lr_scheduler.StepLR(plain.optimizer, 2)
    with_sched = type(plain)(plain.model, plain.optimizer, scheduler=sched)
    with pytest.raises(ValueError, match="no scheduler state"):
        _fit(with_sched, x, y, resume_from=tmp_path)


def test_resume_restores_scheduler_reduce_lr_and_csv(trainer_factory, cls_data, tmp_path):
    """Scheduler state, ReduceLROnPlateau counters and the CSV log (cut back to the checkpoint's rows)."""
    x, y = cls_data

    def build(seed):
        t = trainer_factory(seed=seed, optimizer="sgd", lr=0.1)
        sched = dw.optim.lr_scheduler.StepLR(t.optimizer, step_size=2, gamma=0.5)
        return type(t)(t.model, t.optimizer, scheduler=sched)

    def cbs(csv_path):
        return [ReduceLROnPlateau(monitor="loss", patience=1, factor=0.5, min_delta=10.0), CSVLogger(csv_path)]

    ref = build(0)
    _fit(ref, x, y, epochs=5, callbacks=cbs(tmp_path / "ref.csv"))
    run = build(0)
    abort, hook = _abort_at(17)  # epoch 4 (0-based 3) after 2 batches; the last checkpoint is epoch 3's end
    hook.trainer = run
    with pytest.raises(_Abort):
        _fit(run, x, y, epochs=5, checkpoint_dir=tmp_path / "ck", callbacks=[*cbs(tmp_path / "run.csv"), abort])
    # simulate a row written after the checkpoint (the kill came between the two)
    with open(tmp_path / "run.csv", "a") as f:
        f.write("3,999\n")
    resumed = build(7)
    _fit(resumed, x, y, epochs=5, resume_from=tmp_path / "ck", callbacks=cbs(tmp_path / "run.csv"))
    assert_same_weights(weights_of(ref.model), weights_of(resumed.model))
    assert resumed.scheduler.state_dict()["last_epoch"] == ref.scheduler.state_dict()["last_epoch"] == 5
    assert (tmp_path / "run.csv").read_text() == (tmp_path / "ref.csv").read_text()


def test_model_checkpoint_full_checkpoint_resumes(trainer_factory, cls_data, tmp_path):
    x, y = cls_data
    ref = trainer_factory(seed=2)
    _fit(ref, x, y, epochs=3)
    t = trainer_factory(seed=2)
    mc = ModelCheckpoint(tmp_path / "e{epoch}.ckpt", save_weights_only=False)
    _fit(t, x, y, epochs=2, callbacks=[mc])
    assert mc.saved == [str(tmp_path / "e1.ckpt"), str(tmp_path / "e2.ckpt")]
    t2 = trainer_factory(seed=5)
    _fit(t2, x, y, epochs=3, resume_from=tmp_path / "e2.ckpt", callbacks=[ModelCheckpoint(tmp_path / "x.ckpt",
                                                                                          save_weights_only=False)])
    assert_same_weights(weights_of(ref.model), weights_of(t2.model))


def test_fit_leaves_sigint_alone_and_writes_nothing_by_default(trainer_factory, cls_data, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    x, y = cls_data
    t = trainer_factory()
    previous = signal.getsignal(signal.SIGINT)
    seen = []
    _fit(t, x, y, epochs=2, callbacks=[LambdaCallback(
        on_train_batch_end=lambda b, logs: seen.append(signal.getsignal(signal.SIGINT)))])
    assert len(seen) == 10 and all(h is previous for h in seen)  # no handler of fit's, ever
    assert signal.getsignal(signal.SIGINT) is previous
    assert os.listdir(tmp_path) == []


def test_ctrl_c_without_opt_in_raises_keyboard_interrupt_and_writes_nothing(trainer_factory, cls_data, tmp_path,
                                                                            monkeypatch):
    monkeypatch.chdir(tmp_path)
    x, y = cls_data
    t = trainer_factory()
    ended = []

    def press_ctrl_c(batch, logs):
        if t.state.global_step == 7:
            os.kill(os.getpid(), signal.SIGINT)

    cbs = [LambdaCallback(on_train_batch_end=press_ctrl_c, on_train_end=lambda logs: ended.append(1))]
    with pytest.raises(KeyboardInterrupt):
        _fit(t, x, y, epochs=3, checkpoint_dir=tmp_path / "ck", callbacks=cbs)
    assert t.state.global_step == 7 and not t.state.interrupted
    assert ended == []  # like any exception out of fit: no on_train_end
    assert os.listdir(tmp_path) == ["ck"]  # only what was asked for: the end-of-epoch checkpoint
    assert load_training_checkpoint(tmp_path / "ck").position["epoch"] == 1


def test_ctrl_c_checkpoints_and_resumes(trainer_factory, cls_data, tmp_path, capsys):
    x, y = cls_data
    ref = trainer_factory(seed=4, dropout=0.2)
    _fit(ref, x, y, epochs=3)

    t = trainer_factory(seed=4, dropout=0.2)
    handlers = []

    def press_ctrl_c(batch, logs):
        handlers.append(signal.getsignal(signal.SIGINT))
        if t.state.global_step == 7:
            os.kill(os.getpid(), signal.SIGINT)

    previous = signal.getsignal(signal.SIGINT)
    hist = _fit(t, x, y, epochs=3, checkpoint_dir=tmp_path, checkpoint_on_interrupt=True,
                callbacks=[LambdaCallback(on_train_batch_end=press_ctrl_c)])
    assert handlers[0] is not previous  # fit's own, while it runs
    assert signal.getsignal(signal.SIGINT) is previous  # handler restored
    assert hist.interrupted and t.state.interrupted and len(hist.epoch) == 1
    out = capsys.readouterr().out
    assert "Training interrupted at epoch 2, after batch 1" in out and "resume_from=" in out
    ck = load_training_checkpoint(tmp_path)
    assert ck.position["epoch"] == 1 and ck.position["batch"] == 2
    t2 = trainer_factory(seed=8, dropout=0.2)
    _fit(t2, x, y, epochs=3, resume_from=tmp_path)
    assert_same_weights(weights_of(ref.model), weights_of(t2.model))


def test_ctrl_c_writes_the_checkpoint_where_asked(trainer_factory, cls_data, tmp_path, monkeypatch, capsys):
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    x, y = cls_data
    ref = trainer_factory(seed=4)
    _fit(ref, x, y, epochs=2)
    t = trainer_factory(seed=4)
    ended = []

    def press_ctrl_c_in_validation(logs):
        if t.state.epoch == 0:
            os.kill(os.getpid(), signal.SIGINT)  # during validation: the epoch still ends

    path = tmp_path / "stopped.ckpt"
    cbs = [LambdaCallback(on_test_begin=press_ctrl_c_in_validation, on_train_end=lambda logs: ended.append(1))]
    hist = _fit(t, x, y, epochs=2, checkpoint_on_interrupt=path, callbacks=cbs)
    assert hist.interrupted and hist.epoch == [0] and ended == [1]
    assert "at the end of epoch 1" in capsys.readouterr().out
    assert path.exists() and os.listdir(work) == []
    t2 = trainer_factory(seed=1)
    _fit(t2, x, y, epochs=2, resume_from=path)
    assert_same_weights(weights_of(ref.model), weights_of(t2.model))

    # a directory: its last.ckpt
    t3 = trainer_factory(seed=4)
    hist = _fit(t3, x, y, epochs=2, checkpoint_on_interrupt=tmp_path,
                callbacks=[LambdaCallback(on_train_batch_end=lambda b, logs: os.kill(os.getpid(), signal.SIGINT))])
    assert hist.interrupted and hist.epoch == []
    ck = load_training_checkpoint(tmp_path)  # tmp_path / "last.ckpt"
    assert ck.position["epoch"] == 0 and ck.position["batch"] == 1


def test_checkpoint_on_interrupt_arguments(trainer_factory, cls_data, tmp_path):
    x, y = cls_data
    t = trainer_factory()
    with pytest.raises(ValueError, match="checkpoint_on_interrupt=True writes into checkpoint_dir"):
        _fit(t, x, y, checkpoint_on_interrupt=True)
    with pytest.raises(TypeError, match="checkpoint_on_interrupt must be True, False or a path"):
        _fit(t, x, y, checkpoint_on_interrupt=3)
    errors = []

    def in_a_thread():
        try:
            _fit(t, x, y, epochs=1, checkpoint_on_interrupt=tmp_path)
        except RuntimeError as exc:
            errors.append(str(exc))

    thread = threading.Thread(target=in_a_thread)
    thread.start()
    thread.join()
    assert errors and "main thread" in errors[0]
    assert os.listdir(tmp_path) == []
    _fit(t, x, y, epochs=1, checkpoint_on_interrupt=False)  # False: as without it


def test_second_ctrl_c_aborts_at_once(trainer_factory, cls_data, tmp_path):
    x, y = cls_data
    t = trainer_factory()

    def press_twice(batch, logs):
        os.kill(os.getpid(), signal.SIGINT)
        os.kill(os.getpid(), signal.SIGINT)

    previous = signal.getsignal(signal.SIGINT)
    with pytest.raises(KeyboardInterrupt):
        _fit(t, x, y, checkpoint_dir=tmp_path, checkpoint_on_interrupt=True,
             callbacks=[LambdaCallback(on_train_batch_begin=press_twice)])
    assert signal.getsignal(signal.SIGINT) is previous
    assert not (tmp_path / "last.ckpt").exists()


_CHILD = textwrap.dedent("""
    import sys, time
    sys.path.insert(0, {src!r}); sys.path.insert(0, {tests!r})
    import deepwise as dw, deepwise.optim, deepwise.io
    from deepwise.train import Trainer, LambdaCallback
    from train_helpers import classification_data, make_mlp
    mode, ckdir, out = sys.argv[1], sys.argv[2], sys.argv[3]
    dw.manual_seed(11 if mode != "resume" else 999)
    model = make_mlp(dropout=0.3)
    trainer = Trainer(model, dw.optim.Adam(model.parameters(), lr=0.02), metrics=["accuracy"])
    x, y = classification_data(n=112)
    # "slow": from the first checkpoint on (step 3) each batch takes 0.5 s, so the parent kills it before the next
    slow = LambdaCallback(
        on_train_batch_end=lambda b, logs: time.sleep(0.5) if trainer.state.global_step >= 3 else None)
    cbs = [slow] if mode == "slow" else []
    trainer.fit(x, y, epochs=3, batch_size=16, verbose=0, checkpoint_dir=ckdir, checkpoint_every=3,
                resume_from=ckdir if mode == "resume" else None, callbacks=cbs)
    dw.io.save(model.state_dict(), out)
""")


def test_resume_after_sigkill_in_subprocess_is_bit_identical(tmp_path):
    script = tmp_path / "child.py"
    script.write_text(_CHILD.format(src=os.path.abspath(SRC), tests=os.path.dirname(os.path.abspath(__file__))))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}

    def run(mode, ckdir, out):
        return subprocess.run([sys.executable, str(script), mode, str(ckdir), str(out)], env=env,
                              capture_output=True, text=True, timeout=120)

    ref = run("straight", tmp_path / "ref_ck", tmp_path / "ref.safetensors")
    assert ref.returncode == 0, ref.stderr

    ckdir = tmp_path / "ck"
    child = subprocess.Popen([sys.executable, str(script), "slow", str(ckdir), str(tmp_path / "never.safetensors")],
                             env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    try:
        while not (ckdir / "last.ckpt").exists():
            assert child.poll() is None, child.stderr.read().decode()
            assert time.monotonic() < deadline, "no checkpoint appeared"
            time.sleep(0.002)
        child.send_signal(signal.SIGKILL)
    finally:
        child.wait(timeout=30)
        child.stdout.close()
        child.stderr.close()
    assert child.returncode == -signal.SIGKILL
    assert not (tmp_path / "never.safetensors").exists()
    ck = load_training_checkpoint(ckdir)
    assert ck.position["epoch"] == 0 and ck.position["batch"] == 3  # killed in the middle of the first epoch

    resumed = run("resume", ckdir, tmp_path / "resumed.safetensors")
    assert resumed.returncode == 0, resumed.stderr
    a = dw.io.load(tmp_path / "ref.safetensors")
    b = dw.io.load(tmp_path / "resumed.safetensors")
    assert_same_weights({k: v.numpy() for k, v in a.items()}, {k: v.numpy() for k, v in b.items()})


def test_checkpoint_file_is_complete_and_foreign_files_are_refused(trainer_factory, cls_data, tmp_path):
    x, y = cls_data
    t = trainer_factory(metrics=["accuracy"])
    _fit(t, x, y, epochs=1, checkpoint_dir=tmp_path, callbacks=[EarlyStopping(restore_best_weights=True)])
    ck = load_training_checkpoint(tmp_path / "last.ckpt")
    assert set(ck.model) == set(t.model.state_dict())
    assert ck.objects["optimizer"]["param_groups"][0]["lr"] == 0.05
    assert isinstance(ck.callbacks["EarlyStopping"]["best_weights"]["0.weight"], np.ndarray)
    assert ck.history["history"]["loss"] and ck.rng_state["bit_generator"] == "PCG64"
    dw.io.save(t.model.state_dict(), tmp_path / "weights.safetensors")
    with pytest.raises(ValueError, match="not a deepwise checkpoint"):
        load_training_checkpoint(tmp_path / "weights.safetensors")


def test_resume_with_helper_data_regenerates_split(trainer_factory, tmp_path):
    """The validation split is drawn from the generator state saved in the checkpoint, so resuming
    after other random draws still trains on the same samples."""
    x, y = classification_data(n=64)
    ref = trainer_factory(seed=6)
    ref.fit(x, y, epochs=2, batch_size=8, validation_split=0.25, verbose=0)
    t = trainer_factory(seed=6)
    t.fit(x, y, epochs=1, batch_size=8, validation_split=0.25, verbose=0, checkpoint_dir=tmp_path)
    t2 = trainer_factory(seed=0)
    dw.random.generator().normal(size=1000)
    t2.fit(x, y, epochs=2, batch_size=8, validation_split=0.25, verbose=0, resume_from=tmp_path)
    assert_same_weights(weights_of(ref.model), weights_of(t2.model))
