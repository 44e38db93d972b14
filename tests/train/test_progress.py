"""The progress display as people see it: a live bar that fits the terminal (checked through a real
pseudo-terminal of 80 and 120 columns), every epoch log at the epoch's end, heartbeat lines in log
files, and a clean line for whatever follows a Ctrl-C."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys

import pytest

from deepwise.train import ProgressBar
from deepwise.train.callback_base import Callback
from deepwise.train.progress import EpochBar, EpochLines, compact_number, heartbeat_line, short_name, wrap_items

pty = pytest.importorskip("pty")  # POSIX only
import fcntl  # noqa: E402
import select  # noqa: E402
import struct  # noqa: E402
import termios  # noqa: E402

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def run_in_pty(argv, columns, env, timeout=120.0):
    """Run ``argv`` with its output on a pseudo-terminal ``columns`` wide; return (exit code, output)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))
    proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, env=env, close_fds=True)
    os.close(slave)
    chunks = []
    try:
        while True:
            ready, _, _ = select.select([master], [], [], timeout)
            if not ready:
                proc.kill()
                raise AssertionError(f"no output for {timeout} s from {argv}")
            try:
                data = os.read(master, 65536)
            except OSError:  # the child closed the terminal
                break
            if not data:
                break
            chunks.append(data)
    finally:
        proc.wait(timeout=timeout)
        os.close(master)
    return proc.returncode, b"".join(chunks).decode("utf-8", "replace")


def screen_lines(text):
    """Every piece of text the terminal shows on one line: split at carriage returns and newlines."""
    return [piece for piece in re.split(r"[\r\n]", _ANSI.sub("", text)) if piece]


TRAIN_SCRIPT = """
import numpy as np
import deepwise as dw
from deepwise import nn, optim
from deepwise.train import Trainer
dw.manual_seed(0)
rng = np.random.default_rng(0)
x = rng.normal(size=(512, 8)).astype(np.float32)
y = (x[:, 0] > 0).astype(np.int64)
model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 2))
trainer = Trainer(model, optim.Adam(model.parameters(), lr=1e-3), loss="cross_entropy",
                  metrics=["accuracy"])
trainer.fit(x, y, epochs=2, batch_size=8, validation_data=(x[:64], y[:64]), verbose=1)
print("done")
"""


@pytest.mark.parametrize("columns, tqdm_installed", [(80, True), (120, True), (80, False)])
def test_live_bar_fits_a_real_terminal_and_shows_val_metrics_and_lr(columns, tqdm_installed):
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    env["OPENBLAS_NUM_THREADS"] = "1"
    hide = "" if tqdm_installed else "import sys; sys.modules['tqdm'] = None  # as without the progress extra\n"
    code, out = run_in_pty([sys.executable, "-c", hide + TRAIN_SCRIPT], columns, env)
    assert code == 0, out
    lines = screen_lines(out)
    too_wide = [ln for ln in lines if len(ln) >= columns]
    assert not too_wide, f"lines of {columns}+ characters on a {columns}-column terminal: {too_wide}"
    bars = [ln for ln in lines if ln.startswith("Epoch 2/2") and "64/64 [" in ln]
    assert bars, lines
    assert re.search(r"\[=+\]", bars[-1]).end() - re.search(r"\[=+\]", bars[-1]).start() >= 10  # a real bar
    # the epoch's final logs, validation metrics and learning rate included, are on screen
    end = out[out.rindex("Epoch 2/2"):]
    for name in ("loss", "acc", "val_loss", "val_acc", "lr"):
        assert re.search(rf"\b{name} \d", end), (name, end)
    assert screen_lines(out)[-1] == "done"


def test_bar_shrinks_then_drops_extras_to_fit():
    for columns in (50, 60, 80, 120, 200):
        bar = EpochBar(0, 10, total=1000, stream=io.StringIO(), columns=columns)
        bar.step, bar.samples = 500, 16000
        logs = {"loss": 0.25, "accuracy": 0.9, "d_loss": 1.25, "g_loss": 0.5, "gp": 3e-5}
        line, rest = bar.compose(columns, bar.start + 2.0, logs)
        assert len(line) <= max(20, columns - 1)
        assert line.startswith("Epoch 1/10   500/1000 [")
        shown = [item for item in ["loss 0.2500", "acc 0.9000", "d_loss 1.2500", "g_loss 0.5000", "gp 3.00e-05"]
                 if item in line]
        assert len(shown) + len(rest) == 5
    wide, _ = bar.compose(200, bar.start + 2.0, logs)
    assert "[" + "=" * 14 + ">" + "." * 13 + "]" in wide and "8,000 samples/s" in wide


def test_close_puts_every_log_on_screen_wrapping_below_the_bar():
    out = io.StringIO()
    bar = EpochBar(2, 10, total=50, stream=out, columns=80)
    bar.update(50, 1600, {"loss": 0.5, "accuracy": 0.8}, force=True)
    logs = {"loss": 0.5, "accuracy": 0.8, "val_loss": 0.625, "val_accuracy": 0.75, "lr": 0.002,
            "val_top_5_accuracy": 0.99, "d_loss": 1.5, "g_loss": 0.75}
    bar.close(logs)
    lines = screen_lines(out.getvalue())
    assert all(len(ln) < 80 for ln in lines)
    assert lines[-1].startswith("  ") and out.getvalue().endswith("\n")
    text = " ".join(lines[-3:])
    for item in ("loss 0.5000", "acc 0.8000", "val_loss 0.6250", "val_acc 0.7500", "lr 0.0020", "g_loss 0.7500"):
        assert item in text
    assert text.rstrip().endswith("lr 0.0020")  # the learning rate last


def test_end_line_after_ctrl_c_leaves_the_next_message_on_its_own_line():
    out = io.StringIO()
    bar = EpochBar(0, 3, total=10, stream=out, columns=80)
    bar.update(4, 128, {"loss": 0.75}, force=True)
    bar.end_line()
    print("Training interrupted at epoch 1", file=out)
    assert out.getvalue().endswith("\nTraining interrupted at epoch 1\n")
    bar.end_line()  # a second call adds nothing
    assert out.getvalue().count("\n") == 2


def test_progress_callback_ends_the_bar_before_the_interrupt_message(trainer_factory, cls_data, monkeypatch, capsys,
                                                                    tmp_path):
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True, raising=False)
    monkeypatch.setenv("COLUMNS", "80")
    x, y = cls_data

    class PressCtrlC(Callback):  # "presses" Ctrl-C after batch 2
        def on_train_batch_end(self, batch, logs=None):
            if batch == 2:
                self.trainer.state.interrupted = True

    history = trainer_factory().fit(x, y, epochs=2, batch_size=16, verbose=0, checkpoint_dir=tmp_path,
                                    checkpoint_on_interrupt=True, callbacks=[PressCtrlC(), ProgressBar()])
    assert history.interrupted
    out = capsys.readouterr().out
    assert "\nTraining interrupted at epoch 1, after batch 2." in out  # not glued to the bar's line
    assert out.count("Resume with:") == 1


def test_heartbeat_lines_when_the_output_is_not_a_terminal(trainer_factory, cls_data, capsys):
    x, y = cls_data
    trainer_factory().fit(x, y, epochs=1, batch_size=16, verbose=0, callbacks=[ProgressBar(heartbeat=1e-9)])
    lines = capsys.readouterr().out.splitlines()
    beats = [ln for ln in lines if "elapsed" in ln]
    assert len(beats) == 7 and beats[2].startswith("Epoch 1/1 - 3/7 steps (43%) - ")
    assert "ETA" in beats[2] and "samples/s" in beats[2] and "loss: " in beats[2]
    assert lines[-1].startswith("Epoch 1/1 - ") and "7 steps" in lines[-1]


def test_default_heartbeat_is_quiet_in_short_epochs_and_can_be_turned_off(trainer_factory, cls_data, capsys):
    x, y = cls_data
    trainer_factory().fit(x, y, epochs=2, batch_size=16, verbose=1)  # capsys: not a terminal
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and all(ln.startswith("Epoch ") and "elapsed" not in ln for ln in lines)
    out = io.StringIO()
    quiet = EpochLines(0, 1, total=4, stream=out, heartbeat=None)
    for step in range(1, 5):
        quiet.update(step, step * 8, {"loss": 1.0}, force=True)
    quiet.close({"loss": 1.0})
    assert out.getvalue().count("\n") == 1
    with pytest.raises(ValueError, match="heartbeat must be a positive number"):
        ProgressBar(heartbeat=0)


def test_formatting_helpers_for_the_terminal():
    assert short_name("val_accuracy") == "val_acc" and short_name("loss") == "loss"
    assert [compact_number(v) for v in (0.23456, 24.154, 1234.5, 3e-4, 0, 7)] == [
        "0.2346", "24.15", "1,234", "3.00e-04", "0", "7"]
    assert wrap_items(["a 1", "b 2", "c 3"], 12) == ["  a 1, b 2,", "  c 3"]
    assert heartbeat_line(0, 2, 5, 10, 5.0, 160, {"loss": 0.5}) == (
        "Epoch 1/2 - 5/10 steps (50%) - 5.0s elapsed, ETA 5.0s - 32 samples/s - loss: 0.5000")
