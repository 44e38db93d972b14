"""Generative and unsupervised models: a DCGAN-style ``Generator`` / ``Discriminator`` pair (held
together by ``GAN``), ``DenseAutoencoder``, ``ConvAutoencoder`` and a variational autoencoder ``VAE``.

Every model is sized by its arguments, so the defaults fit the bundled 1x8x8 digits and
``image_size=28`` fits MNIST-like images. Images are expected in [0, 1] (``output="sigmoid"``, the
default) or in [-1, 1] (``output="tanh"``). The autoencoders expose ``encode(x)`` (an embedding you
can use alone) and ``decode(z)``; ``GAN`` and ``VAE`` have ``generate(z)`` and ``sample(n)``, which
draw their latent noise from ``deepwise.random.generator()``, so a seed fixes them.

    gen, disc = Generator(latent_dim=32), Discriminator()
    trainer = GANTrainer(gen, disc, Adam(gen.parameters(), 2e-4, betas=(0.5, 0.999)),
                         Adam(disc.parameters(), 2e-4, betas=(0.5, 0.999)), latent_dim=32)
    vae = VAE(latent_dim=8);  mu = vae.encode(x);  images = vae.sample(16)
"""

from __future__ import annotations

import math

import numpy as np

from deepwise.autograd import no_grad
from deepwise.creation import randn
from deepwise.nn import init
from deepwise.nn.containers import Sequential
from deepwise.nn.layers.activation import LeakyReLU, ReLU, Sigmoid, Tanh
from deepwise.nn.layers.conv import Conv2d, ConvTranspose2d
from deepwise.nn.layers.dropout import Dropout
from deepwise.nn.layers.linear import Linear
from deepwise.nn.layers.norm import BatchNorm2d
from deepwise.nn.layers.shape import Flatten, Unflatten
from deepwise.nn.module import Module
from deepwise.ops.loss import binary_cross_entropy_with_logits
from deepwise.ops.unary import exp, sigmoid
from deepwise.tensor import Tensor

__all__ = [
    "GAN", "VAE", "ConvAutoencoder", "DenseAutoencoder", "Discriminator", "Generator", "dcgan_init_",
    "vae_loss_terms",
]

_OUTPUTS = {"sigmoid": Sigmoid, "tanh": Tanh, "none": None}


# ------------------------------------------------------------------------------------ checks
def _pair(size, owner):
    if isinstance(size, int) and not isinstance(size, bool) and size > 0:
        return size, size
    if (isinstance(size, (tuple, list)) and len(size) == 2
            and all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in size)):
        return int(size[0]), int(size[1])
    raise ValueError(f"{owner}: image_size must be a positive int or an (H, W) pair, got {size!r}")


def _positive(owner, **values):
    for key, v in values.items():
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{owner}: {key} must be a positive int, got {v!r}")


def _output_layer(owner, output):
    if output not in _OUTPUTS:
        raise ValueError(f"{owner}: output must be one of {sorted(_OUTPUTS)}, got {output!r}")
    cls = _OUTPUTS[output]
    return [] if cls is None else [cls()]


def _base_size(owner, image_size, n_steps):
    """(H, W) of the smallest feature map: image_size divided by 2**n_steps (exactly)."""
    h, w = _pair(image_size, owner)
    f = 2 ** n_steps
    if h % f or w % f:
        raise ValueError(f"{owner}: image_size {(h, w)} must be divisible by 2**{n_steps} = {f} "
                         f"({n_steps} stride-2 stages); change image_size or the number of stages")
    return h // f, w // f


def _shape_tuple(owner, input_shape):
    if isinstance(input_shape, int) and not isinstance(input_shape, bool) and input_shape > 0:
        return (input_shape,)
    if (isinstance(input_shape, (tuple, list)) and input_shape
            and all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in input_shape)):
        return tuple(int(v) for v in input_shape)
    raise ValueError(f"{owner}: input_shape must be a positive int or a tuple of positive ints (one sample's "
                     f"shape, e.g. (1, 8, 8)), got {input_shape!r}")


def _hidden_tuple(owner, hidden):
    hidden = (hidden,) if isinstance(hidden, int) and not isinstance(hidden, bool) else tuple(hidden)
    for h in hidden:
        if isinstance(h, bool) or not isinstance(h, int) or h < 1:
            raise ValueError(f"{owner}: hidden sizes must be positive ints, got {hidden!r}")
    return hidden


def _check_input(owner, x, shape):
    got = tuple(x.shape[1:])
    if got != tuple(shape) and not (x.ndim == 2 and x.shape[1] == math.prod(shape)):
        raise ValueError(f"{owner}: expected input of shape (N, {', '.join(map(str, shape))}) (or flattened "
                         f"(N, {math.prod(shape)})), got {tuple(x.shape)}")


def dcgan_init_(module, std: float = 0.02):
    """The DCGAN initialisation, in place: conv / transposed-conv / linear weights ~ N(0, std), biases 0,
    batch-norm scales ~ N(1, std) and shifts 0. Returns the module."""
    for m in module.modules():
        if isinstance(m, (Conv2d, ConvTranspose2d, Linear)):
            init.normal_(m.weight, 0.0, std)
            if m.bias is not None:
                init.zeros_(m.bias)
        elif isinstance(m, BatchNorm2d) and m.weight is not None:
            init.normal_(m.weight, 1.0, std)
            init.zeros_(m.bias)
    return module


def _latent(module, n, latent_dim):
    _positive(type(module).__name__ + ".sample", n=n)
    device = next(iter(module.parameters())).device
    return randn(n, latent_dim, device=device)


# ----------------------------------------------------------------------------------------- GAN
class Generator(Module):
    """DCGAN generator: z (N, latent_dim) -> images (N, out_channels, H, W).

    z is seen as a 1x1 map; a transposed convolution with an (H/2^k, W/2^k) kernel spreads it to the
    base size, then ``n_upsample`` stride-2 transposed convolutions (4x4, padding 1) double it, with
    batch norm and ReLU between them and ``output`` ("sigmoid" for [0, 1] data, "tanh" for [-1, 1])
    at the end. ``base_channels`` is the width of the last hidden stage; earlier stages double it.
    8x8 digits: 1 -> 2x2 -> 4x4 -> 8x8 (n_upsample=2); 28x28: 1 -> 7x7 -> 14x14 -> 28x28.
    """

    def __init__(self, latent_dim: int = 32, out_channels: int = 1, image_size=8, base_channels: int = 64,
                 n_upsample: int = 2, output: str = "sigmoid", init_std: float | None = 0.02):
        super().__init__()
        _positive("Generator", latent_dim=latent_dim, out_channels=out_channels, base_channels=base_channels,
                  n_upsample=n_upsample)
        s0 = _base_size("Generator", image_size, n_upsample)
        widths = [base_channels * 2 ** (n_upsample - 1 - i) for i in range(n_upsample)]
        layers = [Unflatten(1, (latent_dim, 1, 1)),
                  ConvTranspose2d(latent_dim, widths[0], s0, bias=False), BatchNorm2d(widths[0]), ReLU()]
        for c_in, c_out in zip(widths[:-1], widths[1:]):
            layers += [ConvTranspose2d(c_in, c_out, 4, 2, 1, bias=False), BatchNorm2d(c_out), ReLU()]
        layers += [ConvTranspose2d(widths[-1], out_channels, 4, 2, 1), *_output_layer("Generator", output)]
        self.net = Sequential(*layers)
        self.latent_dim = latent_dim
        self.image_shape = (out_channels, *_pair(image_size, "Generator"))
        if init_std is not None:
            dcgan_init_(self, init_std)

    def forward(self, z):
        if z.ndim != 2 or z.shape[1] != self.latent_dim:
            raise ValueError(f"Generator: expected latent vectors of shape (N, {self.latent_dim}), got "
                             f"{tuple(z.shape)}")
        return self.net(z)

    def extra_repr(self) -> str:
        return f"latent_dim={self.latent_dim}, image_shape={self.image_shape}"


class Discriminator(Module):
    """DCGAN discriminator: images (N, C, H, W) -> one logit per image, shape (N, 1).

    ``n_downsample`` stride-2 convolutions (4x4, padding 1; widths base, 2*base, ...) with
    LeakyReLU(0.2), then a linear layer. No batch norm, so each sample's score depends on that
    sample alone — which a gradient penalty (R1, WGAN-GP) assumes. ``dropout`` > 0 adds dropout
    after each stage (it slows the discriminator down on small data sets).
    """

    def __init__(self, in_channels: int = 1, image_size=8, base_channels: int = 64, n_downsample: int = 2,
                 dropout: float = 0.0, init_std: float | None = 0.02):
        super().__init__()
        _positive("Discriminator", in_channels=in_channels, base_channels=base_channels, n_downsample=n_downsample)
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"Discriminator: dropout must be in [0, 1), got {dropout!r}")
        sh, sw = _base_size("Discriminator", image_size, n_downsample)
        layers, c_in = [], in_channels
        for i in range(n_downsample):
            c_out = base_channels * 2 ** i
            layers += [Conv2d(c_in, c_out, 4, 2, 1), LeakyReLU(0.2)]
            if dropout:
                layers.append(Dropout(dropout))
            c_in = c_out
        layers += [Flatten(), Linear(c_in * sh * sw, 1)]
        self.net = Sequential(*layers)
        self.image_shape = (in_channels, *_pair(image_size, "Discriminator"))
        if init_std is not None:
            dcgan_init_(self, init_std)

    def forward(self, x):
        if tuple(x.shape[1:]) != self.image_shape:
            raise ValueError(f"Discriminator: expected images of shape (N, {', '.join(map(str, self.image_shape))}), "
                             f"got {tuple(x.shape)}")
        return self.net(x)

    def extra_repr(self) -> str:
        return f"image_shape={self.image_shape}"


class GAN(Module):
    """A generator and a discriminator in one module, so one state dict (``generator.*``,
    ``discriminator.*``) holds both. ``gan(z)`` / ``generate(z)`` runs the generator; ``sample(n)``
    draws n latent vectors from the seeded generator and returns images (without a graph)."""

    def __init__(self, generator, discriminator, latent_dim: int | None = None):
        super().__init__()
        for name, m in (("generator", generator), ("discriminator", discriminator)):
            if not isinstance(m, Module):
                raise TypeError(f"GAN: {name} must be a deepwise nn.Module, got {type(m).__name__}")
        latent_dim = latent_dim if latent_dim is not None else getattr(generator, "latent_dim", None)
        if latent_dim is None:
            raise ValueError("GAN: pass latent_dim= (the generator has no latent_dim attribute)")
        _positive("GAN", latent_dim=latent_dim)
        self.generator = generator
        self.discriminator = discriminator
        self.latent_dim = int(latent_dim)

    def forward(self, z):
        return self.generator(z)

    def generate(self, z):
        return self.generator(z)

    def sample(self, n: int):
        """n generated images (no graph), from noise drawn from ``deepwise.random.generator()``."""
        with no_grad():
            return self.generator(_latent(self, n, self.latent_dim))

    def extra_repr(self) -> str:
        return f"latent_dim={self.latent_dim}"


# -------------------------------------------------------------------------------- autoencoders
class _Autoencoder(Module):
    variational = False

    def encode(self, x):
        """The latent code (N, latent_dim) of x: an embedding, usable alone."""
        _check_input(type(self).__name__, x, self.input_shape)
        return self.encoder(x)

    def decode(self, z):
        if z.ndim != 2 or z.shape[1] != self.latent_dim:
            raise ValueError(f"{type(self).__name__}: expected latent codes of shape (N, {self.latent_dim}), got "
                             f"{tuple(z.shape)}")
        return self.decoder(z)

    def forward(self, x):
        return self.decode(self.encode(x)).reshape(x.shape)

    def reconstruct(self, x):
        return self.forward(x)


class DenseAutoencoder(_Autoencoder):
    """MLP autoencoder: flatten -> hidden... -> latent_dim -> ...hidden -> input size -> ``output``
    (sigmoid for data in [0, 1]), reshaped back to ``input_shape`` (one sample's shape)."""

    def __init__(self, input_shape=(1, 8, 8), latent_dim: int = 8, hidden=(128, 64), output: str = "sigmoid"):
        super().__init__()
        shape = _shape_tuple("DenseAutoencoder", input_shape)
        hidden = _hidden_tuple("DenseAutoencoder", hidden)
        _positive("DenseAutoencoder", latent_dim=latent_dim)
        n = math.prod(shape)
        sizes = [n, *hidden]
        enc = [Flatten()]
        for a, b in zip(sizes[:-1], sizes[1:]):
            enc += [Linear(a, b), ReLU()]
        enc.append(Linear(sizes[-1], latent_dim))
        dec = []
        back = [latent_dim, *reversed(hidden)]
        for a, b in zip(back[:-1], back[1:]):
            dec += [Linear(a, b), ReLU()]
        dec += [Linear(back[-1], n), *_output_layer("DenseAutoencoder", output), Unflatten(1, shape)]
        self.encoder = Sequential(*enc)
        self.decoder = Sequential(*dec)
        self.input_shape = shape
        self.latent_dim = latent_dim

    def extra_repr(self) -> str:
        return f"input_shape={self.input_shape}, latent_dim={self.latent_dim}"


class ConvAutoencoder(_Autoencoder):
    """Convolutional autoencoder. Encoder: conv3x3(base) + ReLU, then ``n_downsample`` stride-2 4x4
    convolutions doubling the width, flatten, linear to ``latent_dim``. Decoder: the mirror image
    with stride-2 transposed convolutions and a final conv3x3 + ``output``.
    8x8 digits: 8x8 -> 4x4 -> 2x2 -> latent; 28x28 -> 14x14 -> 7x7 -> latent."""

    def __init__(self, in_channels: int = 1, image_size=8, latent_dim: int = 8, base_channels: int = 16,
                 n_downsample: int = 2, output: str = "sigmoid"):
        super().__init__()
        _positive("ConvAutoencoder", in_channels=in_channels, latent_dim=latent_dim, base_channels=base_channels,
                  n_downsample=n_downsample)
        sh, sw = _base_size("ConvAutoencoder", image_size, n_downsample)
        widths = [base_channels * 2 ** i for i in range(n_downsample + 1)]
        enc = [Conv2d(in_channels, widths[0], 3, padding=1), ReLU()]
        for c_in, c_out in zip(widths[:-1], widths[1:]):
            enc += [Conv2d(c_in, c_out, 4, 2, 1), ReLU()]
        flat = widths[-1] * sh * sw
        enc += [Flatten(), Linear(flat, latent_dim)]
        dec = [Linear(latent_dim, flat), ReLU(), Unflatten(1, (widths[-1], sh, sw))]
        for c_in, c_out in zip(widths[:0:-1], widths[-2::-1]):
            dec += [ConvTranspose2d(c_in, c_out, 4, 2, 1), ReLU()]
        dec += [Conv2d(widths[0], in_channels, 3, padding=1), *_output_layer("ConvAutoencoder", output)]
        self.encoder = Sequential(*enc)
        self.decoder = Sequential(*dec)
        self.input_shape = (in_channels, *_pair(image_size, "ConvAutoencoder"))
        self.latent_dim = latent_dim

    def extra_repr(self) -> str:
        return f"input_shape={self.input_shape}, latent_dim={self.latent_dim}"


def vae_loss_terms(logits, target, mu, logvar):
    """(reconstruction, kl) of a VAE batch, each a scalar Tensor averaged over the batch (summed over
    a sample's elements): the Bernoulli negative log-likelihood ``BCE(sigmoid(logits), target)``
    and ``KL(N(mu, exp(logvar)) || N(0, I)) = -1/2 sum(1 + logvar - mu^2 - exp(logvar))``. The
    negative ELBO is ``reconstruction + kl``."""
    n = logits.shape[0]
    recon = binary_cross_entropy_with_logits(logits, target, reduction="sum") / n
    kl = ((mu * mu + exp(logvar) - logvar - 1.0).sum() * 0.5) / n
    return recon, kl


class VAE(_Autoencoder):
    """Variational autoencoder (Kingma & Welling) with a Gaussian encoder and a Bernoulli decoder.

    The encoder (an MLP, or with ``conv=True`` the ``ConvAutoencoder`` encoder) gives ``mu`` and
    ``logvar`` of q(z|x); ``forward(x)`` samples ``z = mu + exp(logvar / 2) * eps`` (eps from the
    seeded generator: the reparameterisation trick) and returns ``(logits, mu, logvar)`` —
    ``vae_loss_terms`` turns them into the loss. ``encode(x)`` is ``mu`` (the embedding),
    ``reconstruct(x)`` decodes ``mu`` deterministically, ``sample(n)`` decodes z ~ N(0, I) and
    ``interpolate(z1, z2, steps)`` decodes the straight line between two codes.
    """

    variational = True

    def __init__(self, input_shape=(1, 8, 8), latent_dim: int = 8, hidden=(256, 128), conv: bool = False,
                 base_channels: int = 16):
        super().__init__()
        shape = _shape_tuple("VAE", input_shape)
        hidden = _hidden_tuple("VAE", hidden)
        _positive("VAE", latent_dim=latent_dim)
        n = math.prod(shape)
        if conv:
            if len(shape) != 3:
                raise ValueError(f"VAE: conv=True needs input_shape (C, H, W), got {shape}")
            body = ConvAutoencoder(shape[0], shape[1:], hidden[-1], base_channels, output="none")
            enc = [*body.encoder, ReLU()]
            dec = [Linear(latent_dim, hidden[-1]), ReLU(), *body.decoder]
        else:
            sizes = [n, *hidden]
            enc = [Flatten()]
            for a, b in zip(sizes[:-1], sizes[1:]):
                enc += [Linear(a, b), ReLU()]
            back = [latent_dim, *reversed(hidden)]
            dec = []
            for a, b in zip(back[:-1], back[1:]):
                dec += [Linear(a, b), ReLU()]
            dec += [Linear(back[-1], n), Unflatten(1, shape)]
        self.encoder = Sequential(*enc)
        self.mu = Linear(hidden[-1], latent_dim)
        self.logvar = Linear(hidden[-1], latent_dim)
        self.decoder = Sequential(*dec)
        self.input_shape = shape
        self.latent_dim = latent_dim

    def encode_distribution(self, x):
        """(mu, logvar) of q(z | x), each (N, latent_dim)."""
        _check_input("VAE", x, self.input_shape)
        h = self.encoder(x)
        return self.mu(h), self.logvar(h)

    def encode(self, x):
        return self.encode_distribution(x)[0]

    def reparameterize(self, mu, logvar):
        eps = randn(*mu.shape, dtype=mu.dtype, device=mu.device)
        return mu + exp(logvar * 0.5) * eps

    def decode_logits(self, z):
        return super().decode(z)

    def decode(self, z):
        """Images (pixel probabilities) for latent codes z."""
        return sigmoid(self.decode_logits(z))

    def generate(self, z):
        return self.decode(z)

    def forward(self, x):
        mu, logvar = self.encode_distribution(x)
        logits = self.decode_logits(self.reparameterize(mu, logvar))
        return logits.reshape(x.shape), mu, logvar

    def reconstruct(self, x):
        return self.decode(self.encode(x)).reshape(x.shape)

    def sample(self, n: int):
        """n images decoded from z ~ N(0, I) (no graph)."""
        with no_grad():
            return self.decode(_latent(self, n, self.latent_dim))

    def interpolate(self, z1, z2, steps: int = 8):
        """Images decoded from ``steps`` evenly spaced points from code z1 to code z2 (ends included);
        z1 and z2 are (latent_dim,) or (1, latent_dim) Tensors or arrays. Returns (steps, *input_shape)."""
        _positive("VAE.interpolate", steps=steps)
        a, b = (self._code(z, name) for z, name in ((z1, "z1"), (z2, "z2")))
        t = np.linspace(0.0, 1.0, steps, dtype=np.float32).reshape(steps, 1)
        with no_grad():
            w = Tensor(t).to(a.device)
            return self.decode(a * (1.0 - w) + b * w)

    def _code(self, z, name):
        z = z if isinstance(z, Tensor) else Tensor(z)
        z = z.detach().reshape(1, -1).float()
        if z.shape[1] != self.latent_dim:
            raise ValueError(f"VAE.interpolate: {name} must hold {self.latent_dim} numbers (one latent code), got "
                             f"shape {tuple(z.shape)}")
        return z

    def extra_repr(self) -> str:
        return f"input_shape={self.input_shape}, latent_dim={self.latent_dim}"
