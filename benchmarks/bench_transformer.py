"""Transformer workload: a TransformerEncoderLayer training step (d_model 256, 8 heads, feed-forward 1024,
seq 128, batch 16) with dropout 0.1, an MSE loss and Adam."""

from __future__ import annotations

import numpy as np
from harness import Result, setup_torch, time_pair

from models import pair, transformer_encoder_layer


def _step(fw, model, x_np, y_np):
    x, y = fw.tensor(x_np), fw.tensor(y_np)
    opt = fw.optim.Adam(model.parameters(), lr=1e-3)
    mse = fw.nn.functional.mse_loss

    def step():
        opt.zero_grad()
        mse(model(x), y).backward()
        opt.step()

    return step


def run():
    import deepwise as dw

    torch = setup_torch()
    rng = np.random.default_rng(0)
    x = rng.standard_normal((16, 128, 256)).astype(np.float32)
    y = rng.standard_normal((16, 128, 256)).astype(np.float32)
    dw_model, th_model = pair(transformer_encoder_layer, torch)
    dw_step = _step(dw, dw_model, x, y)
    th_step = None if th_model is None else _step(torch, th_model, x, y)
    dw_s, th_s, mem = time_pair(dw_step, th_step, repeats=12, warmup=2)
    return [Result("transformer", "TransformerEncoderLayer step (256/8 heads/ff 1024, seq 128, batch 16), Adam",
                   dw_s, th_s, target=1.2, extra=mem)]
