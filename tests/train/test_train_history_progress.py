"""History (columns, CSV, dict round trip) and the progress display."""

from __future__ import annotations

import io
import math
import os

import numpy as np
import pytest

from deepwise.train import History
from deepwise.train.progress import EpochBar, epoch_line, format_duration, format_logs


def test_history_columns_are_rectangular():
    h = History(columns=["loss", "val_loss", "lr"])
    h.record(0, {"loss": 1.5, "val_loss": np.float32(1.25), "lr": 0.1})
    h.record(1, {"loss": 1.0, "lr": 0.1, "extra": 7})  # val_loss missing, a new column appears
    assert h.epoch == [0, 1]
    assert h.history["loss"] == [1.5, 1.0]
    assert h.history["val_loss"][0] == 1.25 and math.isnan(h.history["val_loss"][1])
    assert math.isnan(h.history["extra"][0]) and h.history["extra"][1] == 7.0
    assert all(type(v) is float for col in h.history.values() for v in col)
    h.record(2, {"loss": 0.5, "matrix": np.eye(2)})  # non-scalar values are not columns
    assert "matrix" not in h and len(h["loss"]) == 3
    assert h.best("loss") == (2, 0.5) and h.best("val_loss", "max") == (0, 1.25)


def test_history_dict_round_trip_and_csv(tmp_path):
    h = History(columns=["loss", "accuracy"], params={"epochs": 2})
    h.record(0, {"loss": 0.1234567890123, "accuracy": 0.5})
    h.record(1, {"loss": 0.05, "accuracy": 0.75})
    again = History.from_dict(h.to_dict())
    assert again.history == h.history and again.epoch == h.epoch and again.params == {"epochs": 2}
    path = tmp_path / "sub" / "h.csv"
    h.to_csv(path)
    lines = path.read_text().splitlines()
    assert lines == ["epoch,loss,accuracy", "0,0.1234567890123,0.5", "1,0.05,0.75"]
    assert not [f for f in os.listdir(path.parent) if f.endswith(".tmp")]  # atomic write leaves nothing behind
    with pytest.raises(ValueError, match="column 'loss' has 1 values for 2 epochs"):
        History.from_dict({"epoch": [0, 1], "history": {"loss": [1.0]}})


def test_format_helpers():
    assert format_logs({"loss": 0.123456, "lr": 1e-5, "flag": True, "name": "x"}) == "loss: 0.1235 - lr: 1.0000e-05"
    assert format_duration(0.25) == "250ms" and format_duration(12.34) == "12.3s" and format_duration(125) == "2:05"
    line = epoch_line(2, 10, 1.5, 38, {"loss": 0.5, "val_loss": 0.25})
    assert line == "Epoch 3/10 - 1.5s - 38 steps - loss: 0.5000 - val_loss: 0.2500"


def test_builtin_bar_shows_steps_eta_rate_and_logs():
    out = io.StringIO()
    bar = EpochBar(0, 3, total=10, stream=out, use_tqdm=False, columns=120)
    bar.update(4, 128, {"loss": 0.75, "accuracy": 0.5}, force=True)
    text = out.getvalue()
    assert text.startswith("\rEpoch 1/3   4/10 [===========>")
    assert "ETA" in text and "samples/s" in text and "loss 0.7500, acc 0.5000" in text
    bar.update(5, 160, {"loss": 0.7}, force=False)  # within 0.1 s of the last draw: not redrawn
    assert out.getvalue() == text
    bar.update(10, 320, {"loss": 0.5}, force=True)
    bar.close({"loss": 0.5, "val_loss": 0.6})
    final = out.getvalue().split("\r")[-1]
    assert "10/10 [============================]" in final and "val_loss 0.6000" in final
    assert final.endswith("\n") and "ETA" not in final


def test_tqdm_bar_when_installed():
    pytest.importorskip("tqdm")
    out = io.StringIO()
    bar = EpochBar(1, 2, total=4, stream=out, use_tqdm=True)
    for step in range(1, 5):
        bar.update(step, step * 32, {"loss": 1.0 / step}, force=step == 4)
    bar.close({"loss": 0.25, "val_loss": 0.5})
    text = out.getvalue()
    assert "Epoch 2/2" in text and "4/4" in text and "val_loss 0.5000" in text


def test_progress_bar_callback_draws_live_bar_on_a_terminal(trainer_factory, cls_data, monkeypatch, capsys):
    import sys

    monkeypatch.setattr(sys.stdout, "isatty", lambda: True, raising=False)
    x, y = cls_data
    from deepwise.train import ProgressBar

    monkeypatch.setenv("COLUMNS", "120")
    trainer_factory().fit(x, y, epochs=2, batch_size=16, verbose=0, callbacks=[ProgressBar(use_tqdm=False)])
    out = capsys.readouterr().out
    assert out.count("\n") == 2 and "\rEpoch 1/2" in out and "\rEpoch 2/2" in out
    assert "7/7 [" in out  # 100 samples / 16
