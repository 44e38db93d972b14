"""Recipes on sequences: forecasting CO2 with an LSTM, a character-level LSTM language model on the
standard library's docstrings, and a GRU that learns the parity of variable-length bit strings.

Everything is offline: the CO2 record ships with deepwise, the docstrings come from the running
Python, the bit strings are drawn from a seeded generator.
"""

from __future__ import annotations

import math
import os

import numpy as np

from deepwise.data.datasets.series import load_co2
from deepwise.nn.layers.embedding import Embedding
from deepwise.nn.layers.linear import Linear
from deepwise.nn.layers.recurrent import GRU, LSTM
from deepwise.nn.module import Module
from deepwise.recipes.base import Recipe, Splits, state_at_length
from deepwise.text import (
    ASCII_ALPHABET,
    LanguageModel,
    Vocab,
    load_stdlib_docstrings,
    next_token_windows,
    sample,
    to_ascii,
)
from deepwise.text.windows import sliding_windows


# --------------------------------------------------------------------------------------- forecasting
class LastStepLSTM(Module):
    """The forecaster: an LSTM over a window (batch, window, features), then a dense layer on the last
    step's output -> (batch, outputs)."""

    def __init__(self, features: int = 1, hidden: int = 32, outputs: int = 1):
        super().__init__()
        self.lstm = LSTM(features, hidden, batch_first=True)
        self.head = Linear(hidden, outputs)

    def forward(self, x):
        out, _ = self.lstm(x)
        return self.head(out[:, -1])


class CO2LSTM(Recipe):
    """Next month's CO2 at Mauna Loa from the last 24 months. The model sees standardised month-to-month
    changes and predicts the next change; the forecast is last value + predicted change. Train, validation
    and test are consecutive periods (70 / 15 / 15 %), so the test years are never seen in training."""

    name = "co2-lstm"
    task = "time-series forecasting"
    data_desc = "bundled Mauna Loa CO2, 526 monthly means 1958-2001 (public domain)"
    model_desc = "LSTM(1, 32) over 24 months of changes + dense"
    expected = "test RMSE ~0.35 ppm vs ~1.3 ppm for the naive last-value forecast"
    typical_time = "~5 s"
    defaults = {"epochs": 40, "batch_size": 32, "lr": 3e-3, "seed": 0, "window": 24, "hidden": 32}
    loss = "mse"
    metrics = ("mae",)
    monitor = "val_loss"
    predict_input = ("a number of months to forecast after December 2001 (1..240), or a file of at least 25 monthly "
                     "CO2 values (.npy, or text: one number per line or comma separated)")

    def _prepare(self, config):

        dates, ppm = load_co2()
        v = ppm.astype(np.float64)
        n = len(v)
        window = int(config.get("window", 24))
        n_test = n_val = int(0.15 * n)
        train_end, val_end = n - n_val - n_test, n - n_test
        diffs = np.diff(v)  # diffs[i] = v[i + 1] - v[i]
        mu, sd = float(diffs[: train_end - 1].mean()), float(diffs[: train_end - 1].std())
        x, y = sliding_windows((diffs - mu) / sd, window)  # x[i] = diffs[i : i+window] -> y[i] = diffs[i+window]
        target = np.arange(len(x)) + window + 1  # index in v of the value each window forecasts
        parts = {"train": target < train_end, "val": (target >= train_end) & (target < val_end),
                 "test": target >= val_end}
        return {"dates": dates, "v": v, "x": x, "y": y, "target": target, "parts": parts, "mu": mu, "sd": sd,
                "window": window}

    def data(self, config):
        d = self._prepare(config)
        x, y, p = d["x"], d["y"], d["parts"]
        return Splits(train=(x[p["train"]], y[p["train"]]), val=(x[p["val"]], y[p["val"]]),
                      test=(x[p["test"]], y[p["test"]]))

    def model(self, config):
        return LastStepLSTM(1, int(config.get("hidden", 32)), 1)

    def final_metrics(self, trainer, splits, config):
        out = super().final_metrics(trainer, splits, config)
        d = self._prepare(config)
        test = d["parts"]["test"]
        idx = d["target"][test]
        change = trainer.predict(d["x"][test], batch_size=256).reshape(-1) * d["sd"] + d["mu"]
        last, true = d["v"][idx - 1], d["v"][idx]
        forecast = last + change
        rmse = float(np.sqrt(np.mean((forecast - true) ** 2)))
        naive_rmse = float(np.sqrt(np.mean((last - true) ** 2)))
        out.update({
            "test_rmse_ppm": rmse,
            "test_mae_ppm": float(np.mean(np.abs(forecast - true))),
            "naive_rmse_ppm": naive_rmse,
            "naive_mae_ppm": float(np.mean(np.abs(last - true))),
            "rmse_vs_naive": rmse / naive_rmse,
            "test_period": f"{d['dates'][idx[0]]} .. {d['dates'][idx[-1]]}",
            "forecast": [{"month": str(d["dates"][i]), "true": float(t), "forecast": float(f), "naive": float(n)}
                         for i, t, f, n in zip(idx, true, forecast, last)],
        })
        return out

    def predict(self, trainer, path, config):
        """``N`` (an integer): forecast the N months after the record ends (December 2001), each
        forecast fed back as input. A file (.npy, or text with one number per line / comma separated)
        of at least window+1 monthly values: forecast the month after them."""
        d = self._prepare(config)
        window = d["window"]
        if path.strip().isdigit():
            months = int(path)
            if not 1 <= months <= 240:
                raise ValueError(f"co2-lstm predict: months ahead must be in 1..240, got {months}")
            history, start = list(d["v"]), d["dates"][-1] + 1
        else:
            if not os.path.exists(path):
                raise FileNotFoundError(f"no such input: {path} (give a file of monthly values or a number of months)")
            if path.endswith(".npy"):
                values = np.load(path, allow_pickle=False)
            else:
                with open(path, encoding="utf-8", errors="replace") as fh:
                    words = fh.read().replace(",", " ").split()
                try:
                    values = np.array([float(t) for t in words])
                except ValueError as exc:
                    raise ValueError(f"{path}: expected monthly CO2 values in ppm, one number per line or comma "
                                     f"separated ({exc})") from None
            values = np.asarray(values, dtype=np.float64).reshape(-1)
            if not np.isfinite(values).all():
                raise ValueError(f"{path}: the values hold NaN or infinite numbers")
            if values.size < window + 1:
                raise ValueError(f"co2-lstm predict: need at least {window + 1} monthly values, got {values.size}")
            history, months, start = list(values), 1, None
        lines = []
        for k in range(months):
            recent = np.diff(np.asarray(history[-(window + 1):]))
            z = ((recent - d["mu"]) / d["sd"]).astype(np.float32).reshape(1, window, 1)
            nxt = history[-1] + float(trainer.predict(z)[0, 0]) * d["sd"] + d["mu"]
            history.append(nxt)
            label = str(start + k) if start is not None else "next month"
            lines.append(f"{label}: {nxt:.2f} ppm")
        return "\n".join(lines)


# ------------------------------------------------------------------------------------ language model
class CharsLSTM(Recipe):
    """A character-level LSTM language model on the docstrings of Python's standard library (a fixed
    96-character alphabet: printable ASCII and newline). The text is split by position: the first 90 %
    trains, the next 5 % validates, the last 5 % tests. Reports loss in nats per character, perplexity,
    accuracy of the next character and a sample of generated text."""

    name = "chars-lstm"
    task = "character-level language model"
    data_desc = "Python standard-library docstrings (~590k chars, PSF licence), offline"
    model_desc = "embedding 64 + LSTM 256 + dense over 96 characters"
    expected = "val loss ~1.55 nats/char (perplexity ~4.7), readable generated text"
    typical_time = "~2.5 min"
    defaults = {"epochs": 6, "batch_size": 32, "lr": 3e-3, "seed": 0, "seq_len": 64, "max_chars": None,
                "embed": 64, "hidden": 256, "dropout": 0.1}
    loss = "cross_entropy"
    metrics = ("accuracy",)
    monitor = "val_loss"
    prompt = "Return the "
    predict_input = "a text prompt to continue, e.g. 'Return the '"

    @staticmethod
    def vocab():
        return Vocab(list(ASCII_ALPHABET), level="char", unk_token=None)

    def data(self, config):
        text = load_stdlib_docstrings(config.get("max_chars"))
        ids = self.vocab().encode(text)
        n = len(ids)
        a, b = int(0.9 * n), int(0.95 * n)
        seq = int(config.get("seq_len", 64))
        return Splits(train=next_token_windows(ids[:a], seq), val=next_token_windows(ids[a:b], seq),
                      test=next_token_windows(ids[b:], seq))

    def model(self, config):
        return LanguageModel(96, int(config.get("embed", 64)), int(config.get("hidden", 256)), 1, "lstm",
                             float(config.get("dropout", 0.0)))

    def _generate(self, trainer, prompt, config, length=300):
        gen = np.random.default_rng(int(config.get("seed", 0)))
        return sample(trainer.model, self.vocab(), to_ascii(prompt), length, temperature=0.7, generator=gen)

    def final_metrics(self, trainer, splits, config):
        out = super().final_metrics(trainer, splits, config)
        val = trainer.evaluate(*splits.val, batch_size=256)
        out["val_loss"] = float(val["loss"])
        out["val_perplexity"] = math.exp(out["val_loss"])
        out["test_perplexity"] = math.exp(out["test_loss"])
        out["generated_text"] = self._generate(trainer, self.prompt, config)
        return out

    def predict(self, trainer, path, config):
        """The input is a prompt (text, not a file): returns it continued by 300 generated characters.
        Accents are stripped (é -> e); characters outside the model's alphabet are named in the error."""
        if not path:
            raise ValueError("chars-lstm predict: give a prompt, e.g. deepwise predict RUN_DIR 'Return the '")
        unknown = sorted({ch for ch in path if ch not in "\r\t" and not to_ascii(ch)})
        if unknown:
            named = ", ".join(f"{ch!r} (U+{ord(ch):04X})" for ch in unknown[:10])
            more = f" and {len(unknown) - 10} more" if len(unknown) > 10 else ""
            raise ValueError(f"chars-lstm predict: the prompt has characters the model does not know: {named}{more}; "
                             "it reads printable ASCII and newlines (accents are stripped: é -> e)")
        return self._generate(trainer, path, config)


# ---------------------------------------------------------------------------------- classification
PAD, ZERO, ONE = 0, 1, 2


def parity_data(n, min_len, max_len, rng):
    """``n`` random bit strings of lengths min_len..max_len as token ids (PAD=0, '0'=1, '1'=2) padded
    to max_len, and their labels: 1 when the count of 1s is odd."""
    lengths = rng.integers(min_len, max_len + 1, n)
    bits = rng.integers(0, 2, (n, max_len))
    real = np.arange(max_len)[None, :] < lengths[:, None]
    x = np.where(real, bits + ZERO, PAD).astype(np.int64)
    y = ((bits * real).sum(axis=1) % 2).astype(np.int64)
    return x, y


class ParityGRU(Module):
    """Embedding -> GRU -> dense on the state after each string's last real bit (the padding, id 0,
    comes after it and never reaches it; ``state_at_length``) -> 2 classes."""

    def __init__(self, hidden: int = 32):
        super().__init__()
        self.embed = Embedding(3, 8)
        self.gru = GRU(8, hidden, batch_first=True)
        self.head = Linear(hidden, 2)

    def forward(self, ids):
        out, _ = self.gru(self.embed(ids))
        return self.head(state_at_length(out, (ids != PAD).sum(dim=1)))


class SequenceGRU(Recipe):
    """Is the number of 1s in a bit string odd? A task with a known answer that needs memory across the
    whole sequence (flip a bit anywhere and the label flips). Strings have 1..30 bits, padded; the GRU
    runs each for its own length. Also reports accuracy on longer strings (31..60 bits) than any seen in
    training, to show whether the learned rule generalises."""

    name = "sequence-gru"
    task = "sequence classification"
    data_desc = "parity of random bit strings, 1-30 bits (8k train / 1k val / 2k test)"
    model_desc = "embedding 8 + GRU 32 (masked padding) + dense"
    expected = "test accuracy >= 99%"
    typical_time = "~10 s"
    defaults = {"epochs": 6, "batch_size": 64, "lr": 3e-3, "seed": 0, "hidden": 32, "max_len": 30}
    class_names = ["even", "odd"]
    predict_input = "a bit string such as 1011001, or a file holding one"

    def data(self, config):
        rng = np.random.default_rng(int(config["seed"]) + 1000)
        max_len = int(config.get("max_len", 30))
        return Splits(train=parity_data(8000, 1, max_len, rng), val=parity_data(1000, 1, max_len, rng),
                      test=parity_data(2000, 1, max_len, rng))

    def model(self, config):
        return ParityGRU(int(config.get("hidden", 32)))

    def final_metrics(self, trainer, splits, config):
        out = super().final_metrics(trainer, splits, config)
        rng = np.random.default_rng(int(config["seed"]) + 2000)
        max_len = int(config.get("max_len", 30))
        x, y = parity_data(1000, max_len + 1, 2 * max_len, rng)
        out["longer_strings_accuracy"] = float(trainer.evaluate(x, y, batch_size=256)["accuracy"])
        x, y = splits.test
        pred = trainer.predict(x, batch_size=256).argmax(axis=1)
        cm = np.zeros((2, 2), dtype=np.int64)
        np.add.at(cm, (y, pred), 1)
        out["confusion_matrix"] = cm.tolist()
        out["class_names"] = self.class_names
        return out

    def predict(self, trainer, path, config):
        """The input is a bit string such as 1011001 (or a file holding one): says whether its count of
        1s is even or odd."""
        text = path
        if os.path.exists(path):
            with open(path) as fh:
                text = fh.read()
        bits = "".join(text.split())
        if not bits or set(bits) - {"0", "1"}:
            raise ValueError(f"sequence-gru predict: expected a string of 0s and 1s, got {text[:40]!r}")
        x = (np.frombuffer(bits.encode(), dtype=np.uint8) - ord("0") + ZERO).astype(np.int64)[None, :]
        logits = trainer.predict(x)[0]
        p = np.exp(logits - logits.max())
        p /= p.sum()
        k = int(p.argmax())
        truth = self.class_names[bits.count("1") % 2]
        return f"{self.class_names[k]} ({p[k]:.1%}); true answer: {truth} ({bits.count('1')} ones in {len(bits)} bits)"


__all__ = ["CO2LSTM", "CharsLSTM", "LastStepLSTM", "ParityGRU", "SequenceGRU", "parity_data"]
