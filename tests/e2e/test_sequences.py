"""End to end on sequences: the CO2 forecaster beats the naive last-value forecast on held-out years,
a character LSTM learns the stdlib docstrings well below the unigram entropy, and a GRU learns parity.
The full recipes (``deepwise train co2-lstm / chars-lstm / sequence-gru``) run under ``-m slow``."""

from __future__ import annotations

import math

import numpy as np
import pytest

import deepwise as dw
from deepwise.recipes.sequences import CO2LSTM, CharsLSTM, SequenceGRU
from deepwise.train import Trainer


def _run(recipe, **overrides):
    """What ``deepwise train`` does, in memory: seed, data, model, optimizer and scheduler, fit with
    validation, final metrics."""
    config = dict(recipe.defaults, **overrides)
    dw.manual_seed(config["seed"])
    splits = recipe.data(config)
    model = recipe.model(config)
    opt = recipe.optimizer(model, config)
    trainer = Trainer(model, opt, loss=recipe.loss, metrics=list(recipe.metrics),
                      scheduler=recipe.scheduler(opt, config))
    history = trainer.fit(*splits.train, epochs=config["epochs"], batch_size=config["batch_size"],
                          validation_data=splits.val, verbose=0)
    return recipe.final_metrics(trainer, splits, config), history, trainer


def test_co2_forecaster_beats_the_naive_forecast_on_held_out_years():
    metrics, history, _ = _run(CO2LSTM(), epochs=15)
    # the naive forecast (next month = this month) misses by ~1.3 ppm: the seasonal cycle
    assert 1.0 < metrics["naive_rmse_ppm"] < 1.6
    assert metrics["test_rmse_ppm"] < 0.6 * metrics["naive_rmse_ppm"], metrics
    assert metrics["test_mae_ppm"] < 0.6 * metrics["naive_mae_ppm"], metrics
    assert metrics["test_period"] == "1995-07 .. 2001-12" and len(metrics["forecast"]) == 78
    assert history.history["val_loss"][-1] < 0.5 * history.history["val_loss"][0]


def test_char_lstm_learns_below_the_unigram_entropy():
    text_len = 60_000  # a small model on a tenth of the corpus: ~3 s on two idle cores
    metrics, history, trainer = _run(CharsLSTM(), epochs=3, max_chars=text_len, hidden=64, seq_len=32, lr=1e-2,
                                     dropout=0.0)
    from deepwise.text import load_stdlib_docstrings

    text = load_stdlib_docstrings(text_len)
    counts = np.bincount(np.frombuffer(text.encode(), dtype=np.uint8))
    p = counts[counts > 0] / counts.sum()
    unigram = float(-(p * np.log(p)).sum())  # ~3.0 nats: what character frequencies alone give
    assert unigram > 2.8
    assert metrics["val_loss"] < 2.6 < unigram - 0.2, (metrics["val_loss"], unigram)
    losses = history.history["val_loss"]
    assert losses[-1] < losses[0] - 0.2  # and it is still learning
    assert math.isclose(metrics["val_perplexity"], math.exp(metrics["val_loss"]))
    sample = metrics["generated_text"]
    assert sample.startswith(CharsLSTM.prompt) and len(sample) == len(CharsLSTM.prompt) + 300
    assert CharsLSTM().predict(trainer, "The ", dict(CharsLSTM.defaults)).startswith("The ")


def test_gru_learns_parity_of_short_strings():
    metrics, _, _ = _run(SequenceGRU(), epochs=3, max_len=12)
    assert metrics["test_accuracy"] >= 0.97, metrics
    cm = np.array(metrics["confusion_matrix"])
    assert cm.sum() == 2000 and np.trace(cm) >= 0.97 * 2000


@pytest.mark.slow
def test_recipes_reach_their_stated_results():
    co2, _, _ = _run(CO2LSTM())
    assert co2["test_rmse_ppm"] < 0.45 and co2["rmse_vs_naive"] < 0.35, co2
    parity, _, _ = _run(SequenceGRU())
    assert parity["test_accuracy"] >= 0.99, parity
    chars, _, _ = _run(CharsLSTM())
    assert chars["val_loss"] <= 1.6, chars  # 1.549 measured (6 epochs, seed 0)


def test_cli_trains_evaluates_and_predicts_co2(tmp_path, capsys):
    from deepwise import cli, recipes

    for cls in (CO2LSTM, CharsLSTM, SequenceGRU):
        recipes.register(cls)  # the package registry lists them too; registering again is harmless
    run = tmp_path / "co2"
    assert cli.main(["train", "co2-lstm", "--epochs", "3", "--out", str(run), "--quiet"]) == 0
    for name in ("config.json", "metrics.json", "history.csv", "best.safetensors"):
        assert (run / name).exists(), name
    capsys.readouterr()
    assert cli.main(["predict", str(run), "3"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert [line.split(":")[0] for line in lines] == ["2002-01", "2002-02", "2002-03"]
    assert all(360 < float(line.split()[1]) < 385 for line in lines)
    assert cli.main(["predict", str(run), "0"]) == 1  # months ahead must be 1..240: a one-line error
    assert "months ahead must be in 1..240" in capsys.readouterr().err
