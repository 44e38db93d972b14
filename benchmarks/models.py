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
    """One optimizer step (zero_grad, forward, loss, backward, step) for each framework."""
    import deepwise as dw

    def make(fw, model, F, optim):
        x = fw.tensor(x_np)
        y = fw.tensor(y_np)
        o = optim.SGD(model.parameters(), lr=lr, momentum=0.9) if opt == "sgd" else \
            optim.Adam(model.parameters(), lr=lr)

        def step():
            o.zero_grad()
            out = model(x)
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
