"""End to end on the bundled digits, fixed seeds: an autoencoder beats PCA at equal code size, a
denoising autoencoder raises PSNR, a VAE's codes keep the classes apart, and a GAN's samples are
recognisable digits of at least 8 different classes (no mode collapse)."""

from __future__ import annotations

import pytest

import deepwise as dw
from deepwise.data import load_digits
from deepwise.data.transforms import GaussianNoise
from deepwise.diagnostics import generative as G
from deepwise.models.generative import VAE, DenseAutoencoder, Discriminator, Generator
from deepwise.optim import Adam
from deepwise.train.autoencoder import AutoencoderTrainer
from deepwise.train.gan import GANTrainer


@pytest.fixture(scope="module")
def digits():
    x, y = load_digits(split="train", as_images=True)
    xt, yt = load_digits(split="test", as_images=True)
    return x, y, xt, yt


def test_autoencoder_beats_pca_at_equal_latent_size(digits):
    x, _, xt, _ = digits
    dw.manual_seed(0)
    ae = DenseAutoencoder((1, 8, 8), latent_dim=8, hidden=(128, 64))
    AutoencoderTrainer(ae, Adam(ae.parameters(), 2e-3)).fit(x, epochs=40, batch_size=32, verbose=0)
    ae_mse, pca_mse = G.reconstruction_mse(ae, xt), G.pca_reconstruction_mse(x, xt, 8)
    assert ae_mse < 0.75 * pca_mse, f"autoencoder {ae_mse:.4f} vs PCA {pca_mse:.4f}"


def test_denoising_autoencoder_raises_psnr(digits):
    x, _, xt, _ = digits
    noise = GaussianNoise(0.25, clip=(0.0, 1.0))
    dw.manual_seed(0)
    ae = DenseAutoencoder((1, 8, 8), latent_dim=32, hidden=(256, 128))
    AutoencoderTrainer(ae, Adam(ae.parameters(), 2e-3), input_transform=noise).fit(x, epochs=25, batch_size=32,
                                                                                      verbose=0)
    with G.preserved_rng(1):
        noisy = noise(xt)
    before, after = G.psnr(xt, noisy), G.psnr(xt, G.reconstructions(ae, noisy))
    assert after > before + 1.5, f"PSNR noisy {before:.2f} dB, denoised {after:.2f} dB"


def test_vae_elbo_improves_and_codes_separate_classes(digits):
    x, y, xt, yt = digits
    dw.manual_seed(0)
    vae = VAE((1, 8, 8), latent_dim=8, hidden=(256, 128))
    start = G.vae_elbo(vae, xt)["elbo"]
    AutoencoderTrainer(vae, Adam(vae.parameters(), 1e-3)).fit(x, epochs=30, batch_size=32, verbose=0)
    end = G.vae_elbo(vae, xt)
    assert end["elbo"] > start + 15 and end["kl"] > 0.5, (start, end)
    acc = G.knn_accuracy(G.embeddings(vae, x), y, G.embeddings(vae, xt), yt, k=5)
    assert acc > 0.85, f"kNN on VAE codes {acc:.3f}"


def test_gan_samples_are_digits_of_at_least_8_classes(digits):
    x, y, xt, _ = digits
    dw.manual_seed(0)
    gen, disc = Generator(16, 1, 8, base_channels=32), Discriminator(1, 8, base_channels=32)
    trainer = GANTrainer(gen, disc, Adam(gen.parameters(), 1e-3, betas=(0.5, 0.999)),
                         Adam(disc.parameters(), 1e-3, betas=(0.5, 0.999)), latent_dim=16, label_smoothing=0.1,
                         gradient_penalty=1.0)
    trainer.fit(x, epochs=15, batch_size=32, verbose=0)
    classifier = G.train_digit_classifier(x, y, epochs=30, seed=0)
    with G.preserved_rng(0):
        samples = trainer.sample(1000)
    q = G.sample_quality(samples, classifier, xt)
    assert q["distinct_classes"] >= 8, q
    assert q["confident_share"] > 0.3, q
    assert q["class_entropy_bits"] > 2.8, q  # log2(10) = 3.32 when classes are balanced
    assert abs(q["pixel_mean"] - q["real_pixel_mean"]) < 0.05, q
