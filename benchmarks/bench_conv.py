"""Conv workloads users run: a 3-channel 32x32 conv net with BatchNorm and adaptive pooling (batch 32
and 128), the same net's convs alone, a small ResNet, a DCGAN step and a conv autoencoder whose decoder
is transposed convs. Each row carries its conv FLOPs, so the table shows GFLOP/s beside sgemm peak."""

from __future__ import annotations

import numpy as np
from harness import Result, conv_extra, setup_torch, time_pair

from models import (
    LATENT,
    conv_autoencoder,
    conv_bn_net,
    conv_layer_flops,
    dcgan_discriminator,
    dcgan_generator,
    pair,
    resnet_net,
    train_conv_flops,
    train_step_fns,
)


def _flops(builder, shape, first_needs_dx=False):
    import deepwise as dw

    return train_conv_flops(conv_layer_flops(builder(dw.nn), shape, dw), first_needs_dx)


def _train(torch, builder, shape, name, opt="adam", loss="ce", lr=1e-3):
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape).astype(np.float32)
    y = rng.random(shape).astype(np.float32) if loss == "mse" else rng.integers(0, 10, shape[0])
    dw_model, th_model = pair(builder, torch)
    dw_step, th_step = train_step_fns(dw_model, th_model, x, y, torch, opt=opt, lr=lr, loss=loss)
    dw_s, th_s, mem = time_pair(dw_step, th_step, repeats=20, warmup=3)
    return Result("conv", name, dw_s, th_s, target=1.2, extra={**mem, **conv_extra(_flops(builder, shape))})


def _convs_alone(torch, shape=(32, 3, 32, 32)):
    """conv_bn_net's three 3x3 convs on their own input shapes: forward, then the input gradient
    (all but the first) and the weight gradient, from a fixed output gradient."""
    import deepwise as dw

    rng = np.random.default_rng(0)
    n = shape[0]
    layers = [(3, 32, 32), (32, 64, 16), (64, 128, 8)]  # (in channels, out channels, size)
    data = [(rng.standard_normal((n, c, s, s)).astype(np.float32),
             (rng.standard_normal((o, c, 3, 3)) * 0.1).astype(np.float32),
             rng.standard_normal((n, o, s, s)).astype(np.float32)) for c, o, s in layers]

    def make(fw, F):
        ts = [(fw.tensor(x, requires_grad=k > 0), fw.tensor(w, requires_grad=True), fw.tensor(g))
              for k, (x, w, g) in enumerate(data)]

        def step():
            for x, w, g in ts:
                w.grad = None
                x.grad = None
                F.conv2d(x, w, padding=1).backward(g)

        return step

    dw_step = make(dw, dw.nn.functional)
    th_step = None if torch is None else make(torch, torch.nn.functional)
    dw_s, th_s, mem = time_pair(dw_step, th_step, repeats=20, warmup=3)
    flop = train_conv_flops([2 * n * o * s * s * c * 9 for c, o, s in layers])
    return Result("conv", f"the conv net's three 3x3 convs alone (fwd + bwd), batch {n}", dw_s, th_s,
                  target=1.2, extra={**mem, **conv_extra(flop)})


def _dcgan(torch, batch=64):
    """One DCGAN iteration: a discriminator step on real and (detached) generated images, then a
    generator step through the discriminator; BCE with logits, Adam(2e-4, betas (0.5, 0.999))."""
    import deepwise as dw

    rng = np.random.default_rng(0)
    real_np = np.tanh(rng.standard_normal((batch, 3, 32, 32))).astype(np.float32)
    z_np = rng.standard_normal((batch, LATENT, 1, 1)).astype(np.float32)
    dw_g, th_g = pair(dcgan_generator, torch)
    dw_d, th_d = pair(dcgan_discriminator, torch)

    def make(fw, G, D, F, optim):
        real, z = fw.tensor(real_np), fw.tensor(z_np)
        ones, zeros = fw.ones((batch, 1)), fw.zeros((batch, 1))
        opt_g = optim.Adam(G.parameters(), lr=2e-4, betas=(0.5, 0.999))
        opt_d = optim.Adam(D.parameters(), lr=2e-4, betas=(0.5, 0.999))

        def step():
            fake = G(z)
            opt_d.zero_grad()
            loss_d = F.binary_cross_entropy_with_logits(D(real), ones) + \
                F.binary_cross_entropy_with_logits(D(fake.detach()), zeros)
            loss_d.backward()
            opt_d.step()
            opt_g.zero_grad()
            F.binary_cross_entropy_with_logits(D(fake), ones).backward()
            opt_g.step()

        return step

    dw_step = make(dw, dw_g, dw_d, dw.nn.functional, dw.optim)
    th_step = None if torch is None else make(torch, th_g, th_d, torch.nn.functional, torch.optim)
    dw_s, th_s, mem = time_pair(dw_step, th_step, repeats=20, warmup=3)
    g_layers = conv_layer_flops(dcgan_generator(dw.nn), (batch, LATENT, 1, 1), dw)
    d_layers = conv_layer_flops(dcgan_discriminator(dw.nn), (batch, 3, 32, 32), dw)
    # G: one forward and backward; D: three (real and detached fake: no image gradient; fake: full)
    flop = train_conv_flops(g_layers) + 2 * train_conv_flops(d_layers) + train_conv_flops(d_layers, True)
    return Result("conv", f"DCGAN step (G + D, 4x4 (transposed) convs, BN), batch {batch}", dw_s, th_s,
                  target=1.2, extra={**mem, **conv_extra(flop)})


def run():
    torch = setup_torch()
    return [
        _train(torch, conv_bn_net, (32, 3, 32, 32), "conv net (3x3 convs + BN, adaptive avg pool), Adam, batch 32"),
        _train(torch, conv_bn_net, (128, 3, 32, 32), "conv net (3x3 convs + BN, adaptive avg pool), Adam, batch 128"),
        _convs_alone(torch),
        _train(torch, resnet_net, (32, 3, 32, 32), "ResNet (3 basic blocks, 32-64 ch), SGD momentum, batch 32",
               opt="sgd", lr=0.01),
        _dcgan(torch),
        _train(torch, conv_autoencoder, (64, 3, 32, 32),
               "conv autoencoder (transposed-conv decoder), MSE, Adam, batch 64", loss="mse"),
    ]
