"""Batch-1 inference latency: what one request costs when a model serves single inputs.

* LeNet-5 on one 1x28x28 image (eval mode, no grad);
* the LSTM language model of bench_rnn (vocab 96, embed 64, hidden 256) reading one 64-token sequence;
* the same model generating: one token in, its logits and the carried (h, c) state out -- the per-token
  cost of sampling text, where Python overhead per op, not arithmetic, decides.

Both frameworks run the same architecture with the same weights (``models.pair``), without autograd
(``no_grad`` / ``torch.no_grad``).
"""

from __future__ import annotations

import numpy as np
from harness import Result, setup_torch, time_pair

from models import lstm_lm, pair


def lenet(nn):
    """LeNet-5 as in bench_cnn (defined here so this group stands alone)."""
    return nn.Sequential(
        nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, 10),
    )


def _no_grad(fw):
    import deepwise as dw

    return dw.no_grad() if fw is dw else fw.no_grad()


def _lenet_fns(torch):
    import deepwise as dw

    x_np = np.random.default_rng(0).standard_normal((1, 1, 28, 28)).astype(np.float32)
    dw_model, th_model = pair(lenet, torch)

    def make(fw, model):
        model.eval()
        x = fw.tensor(x_np)

        def fwd():
            with _no_grad(fw):
                model(x)

        return fwd

    return make(dw, dw_model), None if th_model is None else make(torch, th_model)


def _lstm_fns(torch, tokens):
    """``tokens`` ids of shape (1, T): the whole sequence in one call (T > 1) or one generation step
    carrying the recurrent state from call to call (T == 1)."""
    import deepwise as dw

    dw_model, th_model = pair(lstm_lm, torch)

    def make(fw, model):
        model.eval()
        ids = fw.tensor(tokens)
        state = [None]

        def fwd():
            with _no_grad(fw):
                out, state[0] = model.rnn(model.embed(ids), state[0] if tokens.shape[1] == 1 else None)
                model.head(out)

        return fwd

    return make(dw, dw_model), None if th_model is None else make(torch, th_model)


def run():
    torch = setup_torch()
    rng = np.random.default_rng(0)
    out = []
    dw_f, th_f = _lenet_fns(torch)
    dw_s, th_s, mem = time_pair(dw_f, th_f, repeats=300, warmup=20)
    out.append(Result("latency", "LeNet-5 inference, batch 1 (1x28x28)", dw_s, th_s, target=1.2, extra=mem))
    for T, name in ((64, "LSTM LM inference, batch 1, one 64-token sequence (96/64/256)"),
                    (1, "LSTM LM generation step, batch 1, one token with carried state (96/64/256)")):
        dw_f, th_f = _lstm_fns(torch, rng.integers(0, 96, (1, T)))
        dw_s, th_s, mem = time_pair(dw_f, th_f, repeats=300 if T == 1 else 60, warmup=10)
        out.append(Result("latency", name, dw_s, th_s, target=1.2, extra=mem))
    return out
