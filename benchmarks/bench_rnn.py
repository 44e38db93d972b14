"""Recurrent workloads: language-model training steps (vocab 96, embed 64, hidden 256, seq 64, batch 32)."""

from __future__ import annotations

import numpy as np
from harness import Result, setup_torch, time_pair

from models import gru_lm, lstm_lm, pair, train_step_fns


def run():
    torch = setup_torch()
    rng = np.random.default_rng(0)
    x = rng.integers(0, 96, (32, 64))
    y = rng.integers(0, 96, (32, 64))
    out = []
    for name, builder in (("LSTM", lstm_lm), ("GRU", gru_lm)):
        dw_model, th_model = pair(builder, torch)
        dw_step, th_step = train_step_fns(dw_model, th_model, x, y, torch, opt="adam", lr=1e-3)
        dw_s, th_s, mem = time_pair(dw_step, th_step, repeats=10, warmup=2)
        out.append(Result("rnn", f"{name} language-model step (96/64/256, seq 64, batch 32), Adam", dw_s, th_s,
                          target=1.2, extra=mem))
    return out
