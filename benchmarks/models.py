"""Benchmark models written once against the shared torch.nn / deepwise.nn API, so both frameworks
run the same architecture with the same weights."""

from __future__ import annotations

import numpy as np


def mlp(nn):
    return nn.Sequential(nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 256), nn.ReLU(), nn.Linear(256, 10))


def lenet5(nn):
    return nn.Sequential(
        nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, 10),
    )


def vgg_block(nn):
    return nn.Sequential(
        nn.Conv2d(3, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
        nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(),
        nn.MaxPool2d(2), nn.Flatten(), nn.Linear(64 * 16 * 16, 10),
    )


def conv_bn_net(nn):
    """The 3-channel 32x32 conv net: three 3x3 convs (32, 64, 128 channels) each with BatchNorm and
    ReLU, max-pools between them, an adaptive average pool and a Linear classifier."""
    def block(cin, cout):
        return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU()]

    return nn.Sequential(
        *block(3, 32), nn.MaxPool2d(2), *block(32, 64), nn.MaxPool2d(2), *block(64, 128),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(128, 10),
    )


def resnet_net(nn):
    """A small ResNet: a 3x3 stem, two basic blocks at 32 channels, a strided block to 64 channels
    (1x1 projection shortcut), adaptive average pool, Linear."""

    class Basic(nn.Module):
        def __init__(self, cin, cout, stride):
            super().__init__()
            self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
            self.bn1 = nn.BatchNorm2d(cout)
            self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
            self.bn2 = nn.BatchNorm2d(cout)
            self.relu = nn.ReLU()
            self.short = None
            if stride != 1 or cin != cout:
                self.short = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout))

        def forward(self, x):
            out = self.relu(self.bn1(self.conv1(x)))
            out = self.bn2(self.conv2(out))
            return self.relu(out + (x if self.short is None else self.short(x)))

    return nn.Sequential(
        nn.Conv2d(3, 32, 3, padding=1, bias=False), nn.BatchNorm2d(32), nn.ReLU(),
        Basic(32, 32, 1), Basic(32, 32, 1), Basic(32, 64, 2),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 10),
    )


LATENT = 64


def dcgan_generator(nn):
    """DCGAN generator: a (LATENT, 1, 1) code -> 3x32x32 image through four 4x4 transposed convs."""
    return nn.Sequential(
        nn.ConvTranspose2d(LATENT, 128, 4, 1, 0, bias=False), nn.BatchNorm2d(128), nn.ReLU(),
        nn.ConvTranspose2d(128, 64, 4, 2, 1, bias=False), nn.BatchNorm2d(64), nn.ReLU(),
        nn.ConvTranspose2d(64, 32, 4, 2, 1, bias=False), nn.BatchNorm2d(32), nn.ReLU(),
        nn.ConvTranspose2d(32, 3, 4, 2, 1, bias=False), nn.Tanh(),
    )


def dcgan_discriminator(nn):
    """DCGAN discriminator: 3x32x32 image -> one logit through four 4x4 convs."""
    return nn.Sequential(
        nn.Conv2d(3, 32, 4, 2, 1, bias=False), nn.LeakyReLU(0.2),
        nn.Conv2d(32, 64, 4, 2, 1, bias=False), nn.BatchNorm2d(64), nn.LeakyReLU(0.2),
        nn.Conv2d(64, 128, 4, 2, 1, bias=False), nn.BatchNorm2d(128), nn.LeakyReLU(0.2),
        nn.Conv2d(128, 1, 4, 1, 0, bias=False), nn.Flatten(),
    )


def conv_autoencoder(nn):
    """A conv autoencoder whose decoder is transposed convs: 3x32x32 -> 64x8x8 -> 3x32x32."""
    return nn.Sequential(
        nn.Conv2d(3, 32, 4, 2, 1), nn.ReLU(), nn.Conv2d(32, 64, 4, 2, 1), nn.ReLU(),
        nn.ConvTranspose2d(64, 32, 4, 2, 1), nn.ReLU(), nn.ConvTranspose2d(32, 3, 4, 2, 1), nn.Sigmoid(),
    )


def conv_layer_flops(model, x_shape, fw):
    """FLOPs (2 per multiply-add) of one forward pass of each conv and transposed-conv layer of
    ``model`` on an input of ``x_shape``, in call order (found with forward hooks; deepwise or torch)."""
    found = []

    def hook(mod, inputs, output):
        name = type(mod).__name__
        x = inputs[0]
        if name == "Conv2d":
            o, cg, kh, kw = mod.weight.shape
            found.append(2 * x.shape[0] * o * output.shape[2] * output.shape[3] * cg * kh * kw)
        elif name == "ConvTranspose2d":
            c, og, kh, kw = mod.weight.shape
            found.append(2 * x.shape[0] * c * x.shape[2] * x.shape[3] * og * kh * kw)

    handles = [m.register_forward_hook(hook) for m in model.modules()]
    with fw.no_grad():
        model(fw.zeros(x_shape))
    for h in handles:
        h.remove()
    return found


def train_conv_flops(layer_flops, first_needs_dx=False):
    """A training step's conv FLOPs: forward, input gradient and weight gradient of each layer (each
    costs the forward's FLOPs); no input gradient for the first layer unless ``first_needs_dx``."""
    total = 3 * sum(layer_flops)
    return total if first_needs_dx or not layer_flops else total - layer_flops[0]


class _LM:
    """Embedding -> one recurrent layer -> Linear over the vocabulary, for either framework."""

    @staticmethod
    def build(nn, cell, vocab=96, embed=64, hidden=256):
        class LM(nn.Module):
            def __init__(self):
                super().__init__()
                self.embed = nn.Embedding(vocab, embed)
                self.rnn = getattr(nn, cell)(embed, hidden, batch_first=True)
                self.head = nn.Linear(hidden, vocab)

            def forward(self, x):
                out, _ = self.rnn(self.embed(x))
                return self.head(out)

        return LM()


def lstm_lm(nn):
    return _LM.build(nn, "LSTM")


def gru_lm(nn):
    return _LM.build(nn, "GRU")


def pair(builder, torch):
    """A deepwise model and a torch model with identical weights (torch None -> no torch model)."""
    import deepwise as dw

    dw.manual_seed(0)
    dw_model = builder(dw.nn)
    if torch is None:
        return dw_model, None
    th_model = builder(torch.nn)
    state = {k: torch.tensor(np.asarray(v.numpy())) for k, v in dw_model.state_dict().items()}
    th_model.load_state_dict(state)
    return dw_model, th_model


def train_step_fns(dw_model, th_model, x_np, y_np, torch, opt="sgd", lr=0.01, loss="ce"):
    """One optimizer step (zero_grad, forward, loss, backward, step) for each framework; ``loss`` is
    "ce" (cross entropy on class labels y) or "mse" (y is the target)."""
    import deepwise as dw

    def make(fw, model, F, optim):
        x = fw.tensor(x_np)
        y = fw.tensor(y_np)
        o = optim.SGD(model.parameters(), lr=lr, momentum=0.9) if opt == "sgd" else \
            optim.Adam(model.parameters(), lr=lr)

        def step():
            o.zero_grad()
            out = model(x)
            if loss == "mse":  # y is the target itself (autoencoders)
                F.mse_loss(out, y).backward()
            else:
                if out.ndim == 3:
                    out = out.reshape(-1, out.shape[-1])
                F.cross_entropy(out, y.reshape(-1)).backward()
            o.step()

        return step

    dw_step = make(dw, dw_model, dw.nn.functional, dw.optim)
    th_step = None
    if th_model is not None:
        th_step = make(torch, th_model, torch.nn.functional, torch.optim)
    return dw_step, th_step



def transformer_encoder_layer(nn):
    """One encoder layer (d_model 256, 8 heads, feed-forward 1024), batch first, PyTorch's defaults."""
    return nn.TransformerEncoderLayer(256, 8, dim_feedforward=1024, batch_first=True)
