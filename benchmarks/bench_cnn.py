"""CNN workloads: LeNet-5 and a VGG-style block training steps, LeNet inference throughput."""

from __future__ import annotations

import numpy as np
from harness import Result, conv_extra, setup_torch, time_pair

from models import conv_layer_flops, lenet5, pair, train_conv_flops, train_step_fns, vgg_block


def _train(torch, builder, shape, name):
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape).astype(np.float32)
    y = rng.integers(0, 10, shape[0])
    dw_model, th_model = pair(builder, torch)
    dw_step, th_step = train_step_fns(dw_model, th_model, x, y, torch, opt="sgd", lr=0.01)
    dw_s, th_s, mem = time_pair(dw_step, th_step, repeats=20, warmup=3)
    import deepwise as dw

    flop = train_conv_flops(conv_layer_flops(builder(dw.nn), shape, dw))
    return Result("cnn", name, dw_s, th_s, target=1.2, extra={**mem, **conv_extra(flop)})


def _inference(torch):
    import deepwise as dw

    rng = np.random.default_rng(0)
    x_np = rng.standard_normal((256, 1, 28, 28)).astype(np.float32)
    dw_model, th_model = pair(lenet5, torch)
    dw_model.eval()
    x = dw.tensor(x_np)

    def dw_fwd():
        with dw.no_grad():
            dw_model(x)

    th_fwd = None
    if th_model is not None:
        th_model.eval()
        tx = torch.tensor(x_np)

        def th_fwd():
            with torch.no_grad():
                th_model(tx)

    dw_s, th_s, _ = time_pair(dw_fwd, th_fwd, repeats=20, warmup=3)
    return Result("cnn", "LeNet-5 inference, batch 256 (1x28x28)", dw_s, th_s, target=1.2,
                  extra={"items": 256, "unit": "images"})


def run():
    torch = setup_torch()
    return [
        _train(torch, lenet5, (64, 1, 28, 28), "LeNet-5 step, batch 64 (1x28x28), SGD momentum"),
        _train(torch, vgg_block, (32, 3, 32, 32), "VGG block step (3x3 convs 32->64, BN, max-pool), batch 32"),
        _inference(torch),
    ]
