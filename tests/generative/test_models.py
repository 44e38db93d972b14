"""The generative models: shapes for 8x8 and 28x28, encoders alone, the VAE's pieces, argument errors."""

from __future__ import annotations

import numpy as np
import pytest

import deepwise as dw
from deepwise.models.generative import (
    GAN,
    VAE,
    ConvAutoencoder,
    DenseAutoencoder,
    Discriminator,
    Generator,
    dcgan_init_,
    vae_loss_terms,
)
from deepwise.nn.layers.conv import Conv2d, ConvTranspose2d
from deepwise.nn.layers.norm import BatchNorm2d


@pytest.mark.parametrize("size", [8, 28, (16, 32)])
def test_gan_shapes(size):
    g, d = Generator(latent_dim=10, image_size=size, base_channels=8), Discriminator(image_size=size, base_channels=8)
    z = dw.randn(3, 10)
    x = g(z)
    hw = (size, size) if isinstance(size, int) else size
    assert x.shape == (3, 1, *hw)
    assert 0.0 <= float(x.detach().numpy().min()) and float(x.detach().numpy().max()) <= 1.0  # sigmoid output
    assert d(x).shape == (3, 1)
    gan = GAN(g, d)
    assert gan.latent_dim == 10 and gan.sample(4).shape == (4, 1, *hw)
    assert set(k.split(".")[0] for k in gan.state_dict()) == {"generator", "discriminator"}


def test_generator_architecture_is_dcgan_style():
    g = Generator(latent_dim=16, base_channels=32, output="tanh")
    kinds = [type(m).__name__ for m in g.net]
    assert kinds == ["Unflatten", "ConvTranspose2d", "BatchNorm2d", "ReLU", "ConvTranspose2d", "BatchNorm2d", "ReLU",
                     "ConvTranspose2d", "Tanh"]
    out = g(dw.randn(2, 16)).detach().numpy()
    assert out.min() >= -1 and out.max() <= 1 and out.min() < 0  # tanh range used
    d = Discriminator(base_channels=16)
    assert [type(m).__name__ for m in d.net] == ["Conv2d", "LeakyReLU", "Conv2d", "LeakyReLU", "Flatten", "Linear"]
    assert d.net[1].negative_slope == 0.2


def test_dcgan_init():
    dw.manual_seed(0)
    g = Generator(latent_dim=16, base_channels=64)
    for m in g.modules():
        if isinstance(m, (Conv2d, ConvTranspose2d)):
            assert abs(float(m.weight.detach().numpy().std()) - 0.02) < 0.004
        if isinstance(m, BatchNorm2d):
            assert abs(float(m.weight.detach().numpy().mean()) - 1.0) < 0.01
    d = dcgan_init_(Discriminator(base_channels=8), std=0.1)
    assert abs(float(d.net[2].weight.detach().numpy().std()) - 0.1) < 0.02
    assert not d.net[0].bias.detach().numpy().any()


@pytest.mark.parametrize("make", [lambda: DenseAutoencoder(latent_dim=5), lambda: ConvAutoencoder(latent_dim=5),
                                  lambda: ConvAutoencoder(1, 28, latent_dim=5, base_channels=4),
                                  lambda: VAE(latent_dim=5), lambda: VAE(latent_dim=5, conv=True)])
def test_autoencoder_shapes_and_encoders(make):
    m = make()
    x = dw.rand(4, *m.input_shape)
    z = m.encode(x)
    assert z.shape == (4, 5)
    out = m(x)
    recon = out[0] if isinstance(out, tuple) else out
    assert recon.shape == x.shape
    assert m.reconstruct(x).shape == x.shape
    # the encoder alone gives what the full model uses
    if not m.variational:
        np.testing.assert_allclose(m.decode(z).detach().numpy(), out.detach().numpy(), rtol=1e-6)


def test_dense_autoencoder_accepts_flat_input():
    m = DenseAutoencoder((1, 8, 8), latent_dim=4)
    x = dw.rand(3, 64)
    assert m(x).shape == (3, 64)
    with pytest.raises(ValueError, match="expected input of shape"):
        m(dw.rand(3, 1, 7, 7))


def test_vae_reparameterisation_uses_the_seeded_generator():
    vae = VAE(latent_dim=3)
    x = dw.rand(2, 1, 8, 8)
    dw.manual_seed(5)
    a = vae(x)[0].detach().numpy()
    dw.manual_seed(5)
    b = vae(x)[0].detach().numpy()
    c = vae(x)[0].detach().numpy()
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    mu, logvar = vae.encode_distribution(x)
    dw.manual_seed(1)
    z = vae.reparameterize(mu, logvar).detach().numpy()
    dw.manual_seed(1)
    eps = dw.randn(2, 3).detach().numpy()
    np.testing.assert_allclose(z, mu.detach().numpy() + np.exp(0.5 * logvar.detach().numpy()) * eps, rtol=1e-5)


def test_vae_loss_terms_match_formulas():
    rng = np.random.default_rng(0)
    logits, target = rng.standard_normal((4, 1, 8, 8)), rng.random((4, 1, 8, 8))
    mu, logvar = rng.standard_normal((4, 3)), rng.standard_normal((4, 3)) * 0.5
    recon, kl = vae_loss_terms(*(dw.tensor(a.astype(np.float32)) for a in (logits, target, mu, logvar)))
    p = 1 / (1 + np.exp(-logits))
    bce = -(target * np.log(p) + (1 - target) * np.log(1 - p)).sum() / 4
    kl_ref = -0.5 * (1 + logvar - mu ** 2 - np.exp(logvar)).sum() / 4
    np.testing.assert_allclose(recon.item(), bce, rtol=1e-5)
    np.testing.assert_allclose(kl.item(), kl_ref, rtol=1e-5)


def test_vae_sample_and_interpolate():
    vae = VAE(latent_dim=4)
    dw.manual_seed(3)
    s1 = vae.sample(6).detach().numpy()
    dw.manual_seed(3)
    s2 = vae.sample(6).detach().numpy()
    np.testing.assert_array_equal(s1, s2)
    assert s1.shape == (6, 1, 8, 8) and 0 <= s1.min() and s1.max() <= 1
    z1, z2 = np.zeros(4, np.float32), np.ones(4, np.float32)
    line = vae.interpolate(z1, z2, steps=5).detach().numpy()
    assert line.shape == (5, 1, 8, 8)
    np.testing.assert_allclose(line[0], vae.decode(dw.tensor(z1[None])).detach().numpy()[0], rtol=1e-6)
    np.testing.assert_allclose(line[-1], vae.decode(dw.tensor(z2[None])).detach().numpy()[0], rtol=1e-6)
    np.testing.assert_allclose(line[2], vae.decode(dw.tensor(0.5 * (z1 + z2)[None])).detach().numpy()[0], rtol=1e-5)
    with pytest.raises(ValueError, match="latent code"):
        vae.interpolate(np.zeros(3), z2)


def test_argument_errors():
    with pytest.raises(ValueError, match="divisible"):
        Generator(image_size=10)
    with pytest.raises(ValueError, match="divisible"):
        Discriminator(image_size=6, n_downsample=2)
    with pytest.raises(ValueError, match="output"):
        Generator(output="relu")
    with pytest.raises(ValueError, match="latent vectors"):
        Generator(latent_dim=4)(dw.randn(2, 5))
    with pytest.raises(ValueError, match="expected images"):
        Discriminator()(dw.rand(2, 1, 16, 16))
    with pytest.raises(ValueError, match="latent_dim"):
        DenseAutoencoder(latent_dim=0)
    with pytest.raises(ValueError, match="conv=True"):
        VAE(input_shape=64, conv=True)
    with pytest.raises(TypeError, match="generator"):
        GAN("g", Discriminator())
