"""The quality measures: PNG files, PCA baseline, PSNR, kNN, ELBO, and the classifier-based sample
scores (which must tell real digits from noise and see mode collapse)."""

from __future__ import annotations

import numpy as np
import pytest

import deepwise as dw
from deepwise.data import load_digits
from deepwise.diagnostics import generative as G
from deepwise.models.generative import VAE, DenseAutoencoder, vae_loss_terms


@pytest.fixture(scope="module")
def digits():
    x, y = load_digits(split="train", as_images=True)
    xt, yt = load_digits(split="test", as_images=True)
    return x, y, xt, yt


@pytest.fixture(scope="module")
def classifier(digits):
    x, y, _, _ = digits
    return G.train_digit_classifier(x, y, epochs=15, seed=0)


def test_png_round_trip(tmp_path):
    image = pytest.importorskip("PIL.Image")
    rng = np.random.default_rng(0)
    gray = rng.random((5, 7))
    path = G.write_png(tmp_path / "sub" / "g.png", gray, scale=3)
    back = np.asarray(image.open(path))
    assert back.shape == (15, 21)
    np.testing.assert_array_equal(back[::3, ::3], np.round(gray * 255).astype(np.uint8))
    rgb = rng.random((4, 3, 3))
    back = np.asarray(image.open(G.write_png(tmp_path / "c.png", rgb)))
    np.testing.assert_array_equal(back, np.round(rgb * 255).astype(np.uint8))
    with pytest.raises(ValueError, match="expected an"):
        G.write_png(tmp_path / "x.png", np.zeros((2, 2, 2)))


def test_image_grid_layout():
    imgs = np.stack([np.full((1, 2, 3), v) for v in (0.1, 0.2, 0.3)])
    grid = G.image_grid(imgs, nrow=2, padding=1)
    assert grid.shape == (2 * 3 + 1, 2 * 4 + 1)
    assert grid[1, 1] == 0.1 and grid[1, 5] == 0.2 and grid[4, 1] == 0.3
    assert grid[0].max() == 0 and grid[4, 5] == 0  # padding and the empty cell
    tanh_grid = G.image_grid(imgs * 2 - 1, nrow=3, value_range=(-1, 1))
    np.testing.assert_allclose(tanh_grid[1, 1], 0.1)


def test_pca_baseline(digits):
    x, _, xt, _ = digits
    errors = [G.pca_reconstruction_mse(x, xt, k) for k in (2, 8, 32)]
    assert errors[0] > errors[1] > errors[2] > 0
    assert G.pca_reconstruction_mse(x, xt, 64) < 1e-12  # a full basis reconstructs exactly
    # against a direct least-squares projection onto the top-8 principal directions
    a = x.reshape(len(x), -1).astype(np.float64)
    mean = a.mean(0)
    _, vecs = np.linalg.eigh(np.cov(a - mean, rowvar=False))
    top = vecs[:, ::-1][:, :8]
    b = xt.reshape(len(xt), -1) - mean
    np.testing.assert_allclose(errors[1], np.mean((b @ top @ top.T - b) ** 2), rtol=1e-6)


def test_psnr_and_knn():
    ref = np.zeros((2, 4))
    assert G.psnr(ref, ref + 0.1) == pytest.approx(20.0)
    assert G.psnr(ref, ref) == float("inf")
    train = np.array([[0.0], [0.1], [0.2], [5.0], [5.1], [5.2]])
    labels = np.array([0, 0, 0, 1, 1, 1])
    assert G.knn_accuracy(train, labels, np.array([[0.05], [5.05]]), np.array([0, 1]), k=3) == 1.0
    assert G.knn_accuracy(train, labels, np.array([[0.05], [5.05]]), np.array([1, 1]), k=3) == 0.5
    # a 1-1 tie is broken by distance
    assert G.knn_accuracy(np.array([[0.0], [1.0]]), np.array([0, 1]), np.array([[0.2]]), np.array([0]), k=2) == 1.0


def test_classifier_scores_tell_real_digits_from_noise_and_see_collapse(digits, classifier):
    _, _, xt, yt = digits
    real = G.classifier_scores(classifier, xt)
    assert real["confident_share"] > 0.8 and real["distinct_classes"] == 10
    assert real["class_entropy_bits"] > 3.2
    pred = G.predict_proba(classifier, xt).argmax(1)
    assert np.mean(pred == yt) > 0.9
    noise = np.random.default_rng(0).random((300, 1, 8, 8)).astype(np.float32)
    assert G.classifier_scores(classifier, noise)["confident_share"] < real["confident_share"] - 0.3
    collapsed = np.repeat(xt[:1], 200, axis=0)  # a generator that found one digit
    c = G.classifier_scores(classifier, collapsed)
    assert c["distinct_classes"] <= 1 and c["class_entropy_bits"] == 0.0
    q = G.sample_quality(collapsed, classifier, xt)
    assert q["real_distinct_classes"] == 10 and q["pixel_mean"] == pytest.approx(float(xt[0].mean()), rel=1e-6)


def test_measurements_leave_the_generator_and_mode_alone(digits):
    x, y, xt, _ = digits
    dw.manual_seed(0)
    vae = VAE(latent_dim=3, hidden=(16,))
    before = dw.get_rng_state()
    elbo = G.vae_elbo(vae, xt[:50], batch_size=20, n_samples=2, seed=3)
    G.train_digit_classifier(x[:100], y[:100], epochs=1)
    assert dw.get_rng_state() == before
    assert vae.training
    # the ELBO is -(reconstruction + kl), averaged over samples: redo it by hand for n_samples=1
    one = G.vae_elbo(vae, xt[:50], n_samples=1, seed=3)
    dw.manual_seed(3)
    vae.eval()
    with dw.no_grad():
        logits, mu, logvar = vae(dw.tensor(xt[:50]))
        recon, kl = vae_loss_terms(logits, dw.tensor(xt[:50]), mu, logvar)
    np.testing.assert_allclose(one["elbo"], -(recon.item() + kl.item()), rtol=1e-5)
    assert elbo["elbo"] == pytest.approx(-(elbo["reconstruction"] + elbo["kl"]))


def test_reconstructions_and_embeddings(digits):
    _, _, xt, _ = digits
    ae = DenseAutoencoder(latent_dim=4)
    assert G.embeddings(ae, xt[:10], batch_size=3).shape == (10, 4)
    rec = G.reconstructions(ae, xt[:10], batch_size=4)
    assert rec.shape == xt[:10].shape
    assert G.reconstruction_mse(ae, xt[:10]) == pytest.approx(float(np.mean((rec - xt[:10]) ** 2)), rel=1e-5)
    with pytest.raises(TypeError, match="encode"):
        G.embeddings(dw.nn.Linear(2, 2), xt[:2])
