"""Trainer.fit overhead: one epoch of the digits MLP through fit vs the same work in a hand loop."""

from __future__ import annotations

import statistics
import time

import numpy as np
from harness import Result


def _model(dw):
    dw.manual_seed(0)
    return dw.nn.Sequential(dw.nn.Linear(64, 128), dw.nn.ReLU(), dw.nn.Linear(128, 10))


def run():
    import deepwise as dw

    x, y = dw.data.load_digits(split="train")
    bs = 64

    def hand_epoch():
        model = _model(dw)
        opt = dw.optim.Adam(model.parameters(), lr=1e-3)
        order = np.random.default_rng(0).permutation(len(x))
        for i in range(0, len(x), bs):
            idx = order[i:i + bs]
            xb, yb = dw.tensor(x[idx]), dw.tensor(y[idx])
            opt.zero_grad()
            dw.nn.functional.cross_entropy(model(xb), yb).backward()
            opt.step()

    def fit_epoch():
        model = _model(dw)
        trainer = dw.Trainer(model, optimizer=dw.optim.Adam(model.parameters(), lr=1e-3), loss="cross_entropy")
        trainer.fit(x, y, epochs=1, batch_size=bs, verbose=0)

    hand, fit = [], []
    for _ in range(3):
        hand_epoch(), fit_epoch()
    for _ in range(25):
        t0 = time.perf_counter()
        hand_epoch()
        hand.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        fit_epoch()
        fit.append(time.perf_counter() - t0)
    h, f = statistics.median(hand), statistics.median(fit)
    overhead = (f - h) / h
    return [Result("fit", "digits MLP epoch: Trainer.fit vs hand-written loop (both deepwise)", f, None,
                   note=f"hand loop {h * 1e3:.1f} ms; fit overhead {overhead:+.1%} (target <= 5%)")]
