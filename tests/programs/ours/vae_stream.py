"""A variational autoencoder on a stream of binary patterns.

Written for the deepwise project (it is not a public program): a PyTorch program that uses, in one
training loop, what many real ones use one or two of at a time -- a streamed ``IterableDataset``
sharded over DataLoader workers with ``get_worker_info``, its own ``torch.autograd.Function`` (a
softplus with a hand-written derivative, for the posterior's scale), and ``torch.distributions``
(``Normal.rsample``, ``kl_divergence``, ``Independent(Bernoulli)`` as the likelihood). It runs on
PyTorch as written, and unchanged under ``deepwise run``.

    python vae_stream.py --epochs 4 --workers 2
"""

import argparse

import torch
import torch.nn as nn
from torch.distributions import Bernoulli, Independent, Normal, kl_divergence
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

parser = argparse.ArgumentParser()
parser.add_argument("--epochs", type=int, default=4)
parser.add_argument("--workers", type=int, default=2)
parser.add_argument("--samples", type=int, default=1024)
parser.add_argument("--batch-size", type=int, default=32)
args = parser.parse_args()


class Patterns(IterableDataset):
    """Noisy copies of four 16-pixel prototypes; each worker makes its own share of the stream."""

    prototypes = torch.tensor([[1.0] * 8 + [0.0] * 8, [0.0] * 8 + [1.0] * 8,
                               [1.0, 0.0] * 8, [0.0, 1.0] * 8])

    def __init__(self, n, seed, flip=0.05):
        self.n, self.seed, self.flip = n, seed, flip

    def __len__(self):
        return self.n

    def __iter__(self):
        info = get_worker_info()
        wid, workers = (0, 1) if info is None else (info.id, info.num_workers)
        g = torch.Generator().manual_seed(self.seed + wid)
        for _ in range(wid, self.n, workers):
            x = self.prototypes[int(torch.randint(0, 4, (1,), generator=g))]
            flips = torch.rand(16, generator=g) < self.flip
            yield torch.where(flips, 1.0 - x, x)


class PositiveScale(torch.autograd.Function):
    """softplus(x) + 1e-3, with its derivative written out: sigmoid(x)."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return torch.log1p(torch.exp(-x.abs())) + x.clamp(min=0) + 1e-3

    @staticmethod
    def backward(ctx, grad_output):
        (x,) = ctx.saved_tensors
        return grad_output * torch.sigmoid(x) if ctx.needs_input_grad[0] else None


class VAE(nn.Module):
    def __init__(self, pixels=16, hidden=32, latent=2):
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(pixels, hidden), nn.ReLU())
        self.loc = nn.Linear(hidden, latent)
        self.pre_scale = nn.Linear(hidden, latent)
        self.decoder = nn.Sequential(nn.Linear(latent, hidden), nn.ReLU(), nn.Linear(hidden, pixels))

    def forward(self, x):
        h = self.encoder(x)
        posterior = Normal(self.loc(h), PositiveScale.apply(self.pre_scale(h)))
        z = posterior.rsample()
        likelihood = Independent(Bernoulli(logits=self.decoder(z)), 1)
        prior = Normal(torch.zeros_like(z), torch.ones_like(z))
        kl = kl_divergence(posterior, prior).sum(dim=1)
        return (kl - likelihood.log_prob(x)).mean()  # the negative ELBO, per sample


torch.manual_seed(0)
model = VAE()
optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
train = DataLoader(Patterns(args.samples, seed=1), batch_size=args.batch_size, num_workers=args.workers)
val = DataLoader(Patterns(256, seed=1000), batch_size=64)
for epoch in range(args.epochs):
    model.train()
    total, batches = 0.0, 0
    for x in train:
        optimizer.zero_grad()
        loss = model(x)
        loss.backward()
        optimizer.step()
        total, batches = total + loss.item(), batches + 1
    model.eval()
    with torch.no_grad():
        val_loss = sum(model(x).item() for x in val) / len(val)
    print(f"epoch {epoch + 1}: train {total / batches:.3f} val {val_loss:.3f} ({batches} batches)")
