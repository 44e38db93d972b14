"""Honest quality measures for generative and unsupervised models, plus image grids as PNG files.

A generative model's training loss says little about its results, so these measure the results:

- GAN / VAE samples: ``train_digit_classifier`` fits a small classifier on real digits and
  ``classifier_scores`` scores generated images with it — the share classified with confidence
  above 0.9, how many distinct classes the confident ones fall into and the entropy of the predicted
  classes (mode collapse shows as few classes and low entropy) — and ``pixel_stats`` compares the
  samples' pixel mean / std with the data's. ``sample_quality`` reports all of it for the samples
  and, as the yardstick, for real test images.
- Autoencoders: ``reconstruction_mse`` against ``pca_reconstruction_mse`` (the best *linear*
  code of the same size, by SVD); ``knn_accuracy`` of an encoder's embeddings against raw pixels.
- Denoisers: ``psnr`` of the denoised images and of the noisy inputs, against the clean ones.
- VAEs: ``vae_elbo`` on held-out data, in nats per image.

Every function that runs a model does it in eval mode, without a graph, and leaves the model's
mode and the seeded generator (``deepwise.random``) as it found them: measuring a model does not
change the course of training.
"""

from __future__ import annotations

import contextlib

import numpy as np

from deepwise import nn, optim
from deepwise import random as dw_random
from deepwise.io.images import as_images, image_grid, save_image_grid, write_png
from deepwise.models.generative import vae_loss_terms
from deepwise.nn.inference import embeddings, run_in_batches, to_host
from deepwise.train.trainer import Trainer

__all__ = [
    "classifier_scores", "embeddings", "image_grid", "knn_accuracy", "pca_reconstruction_mse", "pixel_stats",
    "predict_proba", "preserved_rng", "psnr", "reconstruction_mse", "reconstructions", "sample_quality",
    "save_image_grid", "train_digit_classifier", "vae_elbo", "write_png",
]


# ------------------------------------------------------------------------------------- helpers
@contextlib.contextmanager
def preserved_rng(seed: int | None = None):
    """Run a block with the seeded generator saved (and, with ``seed``, reseeded), then restore it."""
    state = dw_random.get_rng_state()
    try:
        if seed is not None:
            dw_random.manual_seed(seed)
        yield
    finally:
        dw_random.set_rng_state(state)


def reconstructions(model, x, batch_size: int = 256, transform=None) -> np.ndarray:
    """The model's reconstructions (``reconstruct`` if it has one, else ``model(x)``) of x — or of
    ``transform(x)`` (noisy inputs for a denoiser) — as a NumPy array shaped like x."""
    x = to_host(x)
    if transform is not None:
        x = to_host(transform(x))

    def run(m, b):
        return m.reconstruct(b) if hasattr(m, "reconstruct") else m(b)

    return run_in_batches(model, run, x, batch_size).reshape(x.shape)


def reconstruction_mse(model, x, batch_size: int = 256) -> float:
    """Mean squared error per pixel between x and the model's reconstruction of x."""
    x = to_host(x)
    return float(np.mean((reconstructions(model, x, batch_size).astype(np.float64) - x) ** 2))


def pca_reconstruction_mse(x_train, x_test, n_components: int) -> float:
    """Per-pixel MSE on ``x_test`` of the best rank-``n_components`` linear code fitted on
    ``x_train`` (PCA by SVD of the centred training data): the baseline an autoencoder with a latent
    code of that size should beat."""
    a = to_host(x_train).reshape(len(x_train), -1).astype(np.float64)
    b = to_host(x_test).reshape(len(x_test), -1).astype(np.float64)
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"pca_reconstruction_mse: train and test samples differ in size ({a.shape[1]} vs "
                         f"{b.shape[1]} values)")
    if isinstance(n_components, bool) or not isinstance(n_components, int) or not 1 <= n_components <= min(a.shape):
        raise ValueError(f"pca_reconstruction_mse: n_components must be an int in [1, {min(a.shape)}], got "
                         f"{n_components!r}")
    mean = a.mean(axis=0)
    _, _, vt = np.linalg.svd(a - mean, full_matrices=False)
    basis = vt[:n_components]
    centred = b - mean
    recon = centred @ basis.T @ basis + mean
    return float(np.mean((recon - b) ** 2))


def psnr(reference, estimate, data_range: float = 1.0) -> float:
    """Peak signal-to-noise ratio in dB, 10 log10(data_range^2 / MSE), with the MSE over all pixels of
    all images (higher is better; +inf for identical inputs)."""
    ref, est = to_host(reference).astype(np.float64), to_host(estimate).astype(np.float64)
    if ref.shape != est.shape:
        raise ValueError(f"psnr: reference and estimate differ in shape: {ref.shape} vs {est.shape}")
    mse = float(np.mean((ref - est) ** 2))
    return float("inf") if mse == 0.0 else float(10.0 * np.log10(data_range ** 2 / mse))


def knn_accuracy(train_features, train_labels, test_features, test_labels, k: int = 5) -> float:
    """Accuracy of a k-nearest-neighbour vote (Euclidean distance) that labels each test feature
    vector by its k nearest training vectors. A tie goes to the class whose tied neighbours are
    nearer in total."""
    a = to_host(train_features).reshape(len(train_features), -1).astype(np.float64)
    b = to_host(test_features).reshape(len(test_features), -1).astype(np.float64)
    ya, yb = to_host(train_labels).astype(np.int64).reshape(-1), to_host(test_labels).astype(np.int64).reshape(-1)
    if a.shape[1] != b.shape[1] or len(ya) != len(a) or len(yb) != len(b):
        raise ValueError(f"knn_accuracy: features {a.shape} / {b.shape} and labels {ya.shape} / {yb.shape} do not "
                         "match")
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= len(a):
        raise ValueError(f"knn_accuracy: k must be an int in [1, {len(a)}], got {k!r}")
    d2 = (b * b).sum(1)[:, None] - 2.0 * b @ a.T + (a * a).sum(1)[None, :]
    nearest = np.argpartition(d2, k - 1, axis=1)[:, :k]
    dist = np.sqrt(np.maximum(np.take_along_axis(d2, nearest, axis=1), 0.0))
    labels = ya[nearest]
    n_classes = int(max(ya.max(), yb.max())) + 1
    votes = np.zeros((len(b), n_classes))
    closeness = np.zeros((len(b), n_classes))
    rows = np.repeat(np.arange(len(b)), k)
    np.add.at(votes, (rows, labels.reshape(-1)), 1.0)
    np.add.at(closeness, (rows, labels.reshape(-1)), dist.reshape(-1))
    score = votes - closeness / (closeness.sum(1, keepdims=True) + 1.0)  # ties: smaller total distance wins
    pred = np.argmax(np.where(votes > 0, score, -np.inf), axis=1)
    return float(np.mean(pred == yb))


def vae_elbo(model, x, batch_size: int = 256, n_samples: int = 1, seed: int = 0) -> dict:
    """The evidence lower bound of a ``VAE`` on x, in nats per image, averaged over ``n_samples``
    draws of z per image (drawn from a generator seeded with ``seed``; the global one is restored):
    ``{"elbo": ..., "reconstruction": E[-log p(x|z)], "kl": KL(q(z|x) || p(z))}``, elbo =
    -(reconstruction + kl). The decoder is Bernoulli, so for grey levels in [0, 1] this is the ELBO
    of the Bernoulli likelihood the model was trained with, not a normalised density."""
    if not getattr(model, "variational", False):
        raise TypeError(f"vae_elbo: {type(model).__name__} is not a VAE (no variational encoder)")
    x = to_host(x)

    def run(m, b):
        out = []
        for _ in range(n_samples):
            logits, mu, logvar = m(b)
            recon, kl = vae_loss_terms(logits, b, mu, logvar)
            out.append([recon.item() * b.shape[0], kl.item() * b.shape[0]])
        return np.mean(np.array(out), axis=0)[None]

    with preserved_rng(seed):
        per_batch = run_in_batches(model, run, x, batch_size)
    totals = per_batch.sum(axis=0) / x.shape[0]
    return {"elbo": float(-(totals[0] + totals[1])), "reconstruction": float(totals[0]), "kl": float(totals[1])}


# --------------------------------------------------------------------------- sample quality
def train_digit_classifier(x, y, epochs: int = 30, seed: int = 0, hidden: int = 256):
    """A small MLP (pixels -> hidden -> hidden/2 -> classes, dropout 0.2) trained on real images x
    with labels y, to score generated images (``classifier_scores``). Training draws from its own
    seeded stream; the global generator is restored afterwards. Returns the model (eval mode)."""
    x, y = to_host(x).astype(np.float32), to_host(y).astype(np.int64)
    n_in, n_classes = int(np.prod(x.shape[1:])), int(y.max()) + 1
    with preserved_rng(seed):
        model = nn.Sequential(nn.Flatten(), nn.Linear(n_in, hidden), nn.ReLU(), nn.Dropout(0.2),
                              nn.Linear(hidden, hidden // 2), nn.ReLU(), nn.Linear(hidden // 2, n_classes))
        trainer = Trainer(model, optim.Adam(model.parameters(), lr=2e-3), loss="cross_entropy")
        trainer.fit(x, y, epochs=epochs, batch_size=64, verbose=0)
    model.eval()
    return model


def predict_proba(classifier, images, batch_size: int = 256) -> np.ndarray:
    """Softmax class probabilities of ``classifier`` for images, (N, classes)."""
    logits = run_in_batches(classifier, lambda m, b: m(b), as_images(images, "predict_proba").astype(np.float32),
                      batch_size).astype(np.float64)
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    return p / p.sum(axis=1, keepdims=True)


def classifier_scores(classifier, images, threshold: float = 0.9, batch_size: int = 256) -> dict:
    """How a classifier trained on real data sees ``images``:

    ``confident_share``: share classified with top probability > ``threshold``;
    ``distinct_classes``: number of classes among those confident predictions;
    ``class_entropy_bits``: entropy of the predicted-class histogram (all images; log2(10) = 3.32
    for 10 equally used classes, 0 when every image gets the same class: mode collapse);
    ``mean_confidence`` and ``class_counts`` (the histogram of predicted classes)."""
    p = predict_proba(classifier, images, batch_size)
    top, pred = p.max(axis=1), p.argmax(axis=1)
    confident = top > threshold
    counts = np.bincount(pred, minlength=p.shape[1])
    freq = counts / counts.sum()
    nz = freq[freq > 0]
    return {
        "confident_share": float(confident.mean()),
        "distinct_classes": int(np.unique(pred[confident]).size),
        "class_entropy_bits": float(-(nz * np.log2(nz)).sum()),
        "mean_confidence": float(top.mean()),
        "class_counts": counts.astype(int).tolist(),
    }


def pixel_stats(images) -> dict:
    """Mean and standard deviation of all pixel values."""
    arr = as_images(images, "pixel_stats")
    return {"pixel_mean": float(arr.mean()), "pixel_std": float(arr.std())}


def sample_quality(samples, classifier, real_images, threshold: float = 0.9) -> dict:
    """``classifier_scores`` and ``pixel_stats`` of generated ``samples``, with the same numbers for
    ``real_images`` (held-out data) under ``real_*`` keys as the yardstick."""
    out = {**classifier_scores(classifier, samples, threshold), **pixel_stats(samples)}
    real = {**classifier_scores(classifier, real_images, threshold), **pixel_stats(real_images)}
    out.update({f"real_{k}": v for k, v in real.items()})
    return out
