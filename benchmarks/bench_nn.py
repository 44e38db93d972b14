"""nn workload: the MLP of bench_core with nn.Linear, Adam and cross_entropy."""

from __future__ import annotations

import numpy as np
from harness import Result, setup_torch, time_pair

from models import mlp, pair, train_step_fns


def run():
    torch = setup_torch()
    rng = np.random.default_rng(0)
    x = rng.standard_normal((128, 784)).astype(np.float32)
    y = rng.integers(0, 10, 128)
    dw_model, th_model = pair(mlp, torch)
    dw_step, th_step = train_step_fns(dw_model, th_model, x, y, torch, opt="adam", lr=1e-3)
    dw_s, th_s, mem = time_pair(dw_step, th_step, repeats=40, warmup=5)
    return [Result("nn", "MLP 784-512-256-10 step: nn.Linear + Adam + cross_entropy, batch 128", dw_s, th_s,
                   target=1.2, extra=mem)]
