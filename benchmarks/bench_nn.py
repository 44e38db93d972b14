"""nn workloads: the MLP of bench_core with nn.Linear, Adam and cross_entropy; a deep MLP with and
without activation checkpointing (its peak memory is the point)."""

from __future__ import annotations

import numpy as np
from harness import Result, setup_torch, time_pair

from models import mlp, pair, train_step_fns

DEEP = dict(width=128, depth=16, batch=2048, segments=4)


def deep_mlp(nn):
    """16 Linear(128, 128) + ReLU layers on a batch of 2048 and a 10-way head: activations dominate its memory."""
    layers = []
    for _ in range(DEEP["depth"]):
        layers += [nn.Linear(DEEP["width"], DEEP["width"]), nn.ReLU()]
    return nn.Sequential(*layers, nn.Linear(DEEP["width"], 10))


def _checkpointed(model, segments, checkpoint_sequential):
    """``model`` run as ``segments`` checkpointed chunks (both frameworks' checkpoint_sequential)."""

    class Run:
        def __init__(self, inner):
            self.inner = inner

        def __call__(self, x):
            return checkpoint_sequential(self.inner, segments, x, use_reentrant=False)

        def parameters(self):
            return self.inner.parameters()

    return Run(model)


def deep_mlp_results(torch):
    from deepwise.utils.checkpoint import checkpoint_sequential as dw_cs

    rng = np.random.default_rng(0)
    x = rng.standard_normal((DEEP["batch"], DEEP["width"])).astype(np.float32)
    y = rng.integers(0, 10, DEEP["batch"])
    results = []
    for segments in (0, DEEP["segments"]):
        dw_model, th_model = pair(deep_mlp, torch)
        if segments:
            dw_model = _checkpointed(dw_model, segments, dw_cs)
            if th_model is not None:
                import torch.utils.checkpoint as tcp

                th_model = _checkpointed(th_model, segments, tcp.checkpoint_sequential)
        dw_step, th_step = train_step_fns(dw_model, th_model, x, y, torch, opt="sgd", lr=1e-3)
        dw_s, th_s, mem = time_pair(dw_step, th_step, repeats=12, warmup=2)
        how = f"checkpoint_sequential, {segments} segments" if segments else "no checkpoint"
        results.append(Result("nn", f"deep MLP 16x128 step, batch 2048, SGD: {how}", dw_s, th_s, extra=mem,
                              note="peak memory is the point" if segments else ""))
    return results


def run():
    torch = setup_torch()
    rng = np.random.default_rng(0)
    x = rng.standard_normal((128, 784)).astype(np.float32)
    y = rng.integers(0, 10, 128)
    dw_model, th_model = pair(mlp, torch)
    dw_step, th_step = train_step_fns(dw_model, th_model, x, y, torch, opt="adam", lr=1e-3)
    dw_s, th_s, mem = time_pair(dw_step, th_step, repeats=40, warmup=5)
    return [Result("nn", "MLP 784-512-256-10 step: nn.Linear + Adam + cross_entropy, batch 128", dw_s, th_s,
                   target=1.2, extra=mem)] + deep_mlp_results(torch)
