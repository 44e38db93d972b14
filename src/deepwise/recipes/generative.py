"""Recipes for generative and unsupervised learning on the bundled 8x8 digits: a DCGAN
(``gan-digits``), a dense autoencoder (``autoencoder-digits``), a convolutional denoising
autoencoder (``denoising-digits``) and a variational autoencoder (``vae-digits``).

Labels are never used for training; they are used afterwards, to measure: a classifier trained on
real digits scores the GAN's and the VAE's samples, and a k-nearest-neighbour vote on the
encoders' embeddings is compared with one on raw pixels. Each recipe's ``final_metrics`` holds
those numbers (``deepwise.diagnostics.generative``) plus ``image_grids`` for the report: a list of
``{"title", "images" (H x W lists), "captions" (str per image, may be empty), "ncols"}``.

Besides the ``Recipe`` interface these recipes define two hooks the ``deepwise`` command uses:
``trainer(model, config)`` (a ``GANTrainer`` / ``AutoencoderTrainer`` instead of a plain
``Trainer``) and ``callbacks(config, run_dir)`` (the GAN's and VAE's per-epoch sample grids).
"""

from __future__ import annotations

import os
import textwrap

import numpy as np

from deepwise import optim
from deepwise.data import load_digits
from deepwise.data.transforms import Compose, GaussianNoise, RandomMask
from deepwise.diagnostics import generative as G
from deepwise.io.images import save_image_grid
from deepwise.models.generative import GAN, VAE, ConvAutoencoder, DenseAutoencoder, Discriminator, Generator
from deepwise.recipes.base import Recipe, Splits
from deepwise.recipes.digits import load_image
from deepwise.train.autoencoder import AutoencoderTrainer
from deepwise.train.gan import GANTrainer, SampleGrid

_GRID = 16  # images per grid in the report


def _digits(config) -> Splits:
    """Train / validation / test digits as (N, 1, 8, 8) float32 in [0, 1] with their labels; the
    validation tenth of the training split is picked by a permutation seeded with config["seed"]."""
    x, y = load_digits(split="train", as_images=True)
    xt, yt = load_digits(split="test", as_images=True)
    order = np.random.default_rng(config["seed"]).permutation(len(x))
    n_val = len(x) // 10
    val, tr = order[:n_val], order[n_val:]
    return Splits(train=(x[tr], y[tr]), val=(x[val], y[val]), test=(xt, yt))


def _grid(title, images, captions=(), ncols=8) -> dict:
    arr = np.asarray(images, dtype=np.float64)
    arr = arr.reshape(arr.shape[0], *arr.shape[-2:])  # one channel: (N, H, W)
    return {"title": title, "images": np.round(arr, 4).tolist(), "captions": list(captions), "ncols": int(ncols)}


def _ascii(img) -> str:
    """An 8x8 (or any) grey image in [0, 1] as text, darkest ' ' to brightest '@'."""
    ramp = " .:-=+*#%@"
    a = np.clip(np.asarray(img, dtype=np.float64).reshape(img.shape[-2:]), 0, 1)
    return "\n".join("".join(ramp[int(v * (len(ramp) - 1) + 0.5)] * 2 for v in row) for row in a)


def _load(path):
    if not os.path.exists(path):
        raise FileNotFoundError(f"no such input: {path}")
    return load_image(path)


class _AutoencoderRecipe(Recipe):
    data_desc = "bundled UCI handwritten digits, 8x8 (1,437 train / 360 test); labels only to evaluate"
    predict_input = ("an image file (PNG, JPEG, ...; resized to 8x8) or a .npy array of shape (8, 8) or (64,), "
                     "values in [0, 1] or 0..16")
    loss = "mse"
    metrics = ()
    monitor = "val_loss"
    class_names = [str(i) for i in range(10)]

    def data(self, config):
        return _digits(config)

    def input_transform(self, config):
        return None

    def trainer(self, model, config):
        opt = self.optimizer(model, config)
        return AutoencoderTrainer(model, opt, loss=self.loss, input_transform=self.input_transform(config),
                                  scheduler=self.scheduler(opt, config), device=config.get("device", "cpu"))

    def callbacks(self, config, run_dir) -> list:
        return []

    def _embedding_metrics(self, trainer, splits) -> dict:
        (x, y), (xt, yt) = splits.train, splits.test
        emb, emb_t = G.embeddings(trainer.model, x), G.embeddings(trainer.model, xt)
        return {"knn5_accuracy_embedding": G.knn_accuracy(emb, y, emb_t, yt, k=5),
                "knn5_accuracy_pixels": G.knn_accuracy(x, y, xt, yt, k=5)}

    def final_metrics(self, trainer, splits, config):
        (x, _), (xt, _) = splits.train, splits.test
        latent = trainer.model.latent_dim
        out = {"test_reconstruction_mse": G.reconstruction_mse(trainer.model, xt),
               f"test_pca{latent}_mse": G.pca_reconstruction_mse(x, xt, latent)}
        out.update(self._embedding_metrics(trainer, splits))
        recon = G.reconstructions(trainer.model, xt[:_GRID])
        out["image_grids"] = [_grid("test digits", xt[:_GRID]), _grid("their reconstructions", recon)]
        return out

    def predict(self, trainer, path, config):
        x = _load(path)
        code = G.embeddings(trainer.model, x)[0]
        recon = G.reconstructions(trainer.model, x)
        mse = float(np.mean((recon - x) ** 2))
        code_text = textwrap.fill(f"latent code: [{', '.join(f'{v:.3f}' for v in code)}]", 79,
                                  subsequent_indent="              ")  # 32 numbers still read at 80 columns
        return (f"{code_text}\nreconstruction MSE: {mse:.4f}\n"
                f"input:\n{_ascii(x[0])}\nreconstruction:\n{_ascii(recon[0])}")


class AutoencoderDigits(_AutoencoderRecipe):
    name = "autoencoder-digits"
    task = "representation learning (autoencoder)"
    model_desc = "dense autoencoder 64-128-64-8-64-128-64"
    expected = "test reconstruction MSE ~0.012, half of PCA's with 8 components (~0.025)"
    typical_time = "~5 s"
    defaults = {"epochs": 60, "batch_size": 32, "lr": 2e-3, "seed": 0, "latent_dim": 8}

    def model(self, config):
        return DenseAutoencoder((1, 8, 8), latent_dim=config["latent_dim"], hidden=(128, 64))


class DenoisingDigits(_AutoencoderRecipe):
    name = "denoising-digits"
    task = "denoising (denoising autoencoder)"
    model_desc = "conv autoencoder (2 stride-2 convs, latent 32) on inputs with Gaussian noise"
    expected = "test PSNR ~18 dB on denoised vs ~14 dB on noisy inputs (noise std 0.25)"
    typical_time = "~35 s"
    defaults = {"epochs": 40, "batch_size": 32, "lr": 2e-3, "seed": 0, "latent_dim": 32, "noise_std": 0.25,
                "mask_p": 0.0}

    def input_transform(self, config):
        parts = [GaussianNoise(config["noise_std"], clip=(0.0, 1.0))]
        if config.get("mask_p"):
            parts.append(RandomMask(config["mask_p"]))
        return parts[0] if len(parts) == 1 else Compose(parts)

    def model(self, config):
        return ConvAutoencoder(1, 8, latent_dim=config["latent_dim"], base_channels=16)

    def final_metrics(self, trainer, splits, config):
        xt = splits.test[0]
        with G.preserved_rng(config["seed"] + 1):  # the same noisy test set for every run with this seed
            noisy = np.asarray(self.input_transform(config)(xt))
        denoised = G.reconstructions(trainer.model, noisy)
        out = {"test_psnr_noisy_db": G.psnr(xt, noisy), "test_psnr_denoised_db": G.psnr(xt, denoised),
               "test_reconstruction_mse_clean_input": G.reconstruction_mse(trainer.model, xt)}
        out.update(self._embedding_metrics(trainer, splits))
        out["image_grids"] = [_grid("clean test digits", xt[:_GRID]), _grid("noisy inputs", noisy[:_GRID]),
                              _grid("denoised", denoised[:_GRID])]
        return out


class VaeDigits(_AutoencoderRecipe):
    name = "vae-digits"
    task = "generative model (variational autoencoder)"
    model_desc = "VAE, dense encoder/decoder 64-256-128, latent 8, Bernoulli decoder"
    expected = "test ELBO ~-24 nats; kNN on the 8-d codes ~92% (raw pixels ~97%); ~75% of samples recognised"
    typical_time = "~10 s"
    defaults = {"epochs": 80, "batch_size": 32, "lr": 1e-3, "seed": 0, "latent_dim": 8}

    def model(self, config):
        return VAE((1, 8, 8), latent_dim=config["latent_dim"], hidden=(256, 128))

    def callbacks(self, config, run_dir):
        return [SampleGrid(os.path.join(run_dir, "samples"), n=64, seed=config["seed"], every=10)]

    def final_metrics(self, trainer, splits, config):
        model = trainer.model
        (x, y), (xt, _) = splits.train, splits.test
        elbo = G.vae_elbo(model, xt, n_samples=5, seed=config["seed"])
        out = {"test_elbo_nats": elbo["elbo"], "test_reconstruction_nll_nats": elbo["reconstruction"],
               "test_kl_nats": elbo["kl"], "test_reconstruction_mse": G.reconstruction_mse(model, xt)}
        out.update(self._embedding_metrics(trainer, splits))
        with G.preserved_rng(config["seed"]):
            clf = G.train_digit_classifier(x, y, seed=config["seed"])
            samples = _samples(model, 1000)
            codes = G.embeddings(model, xt[:2])
            line = model.interpolate(codes[0], codes[1], 8).numpy()
        quality = G.sample_quality(samples, clf, xt)
        out.update({f"sample_{k}": v for k, v in quality.items() if not k.startswith("real_")})
        out.update({k: v for k, v in quality.items() if k.startswith("real_")})
        recon = G.reconstructions(model, xt[:_GRID])
        out["image_grids"] = [_grid("test digits", xt[:_GRID]), _grid("reconstructions (mean code)", recon),
                              _grid("samples from the prior", samples[:_GRID]),
                              _grid("interpolation between two test digits' codes", line)]
        return out


def _samples(model, n):
    """n samples of a GAN / VAE in eval mode (batch norm with running statistics), as NumPy."""
    was = model.training
    model.eval()
    try:
        return model.sample(n).numpy()
    finally:
        model.train(was)


class GanDigits(Recipe):
    name = "gan-digits"
    task = "generative model (DCGAN)"
    data_desc = "bundled UCI handwritten digits, 8x8 (1,437 train / 360 test); labels only to evaluate"
    model_desc = "DCGAN: transposed-conv generator (latent 16) vs conv discriminator, R1 penalty"
    expected = "~65% of samples classified with >90% confidence, all 10 digits present"
    typical_time = "~40 s"
    defaults = {"epochs": 40, "batch_size": 32, "lr": 1e-3, "seed": 0, "latent_dim": 16, "base_channels": 32,
                "label_smoothing": 0.1, "gradient_penalty": 1.0, "penalty": "r1"}
    loss = "bce_with_logits"
    metrics = ()
    monitor = None  # no loss of a GAN says which epoch is best: the run keeps its last weights
    predict_writes = "samples.png"

    def data(self, config):
        return _digits(config)

    def model(self, config):
        gen = Generator(config["latent_dim"], 1, 8, base_channels=config["base_channels"])
        disc = Discriminator(1, 8, base_channels=config["base_channels"])
        return GAN(gen, disc)

    def trainer(self, model, config):

        g_opt = optim.Adam(model.generator.parameters(), lr=config["lr"], betas=(0.5, 0.999))
        d_opt = optim.Adam(model.discriminator.parameters(), lr=config["lr"], betas=(0.5, 0.999))
        return GANTrainer(model.generator, model.discriminator, g_opt, d_opt, latent_dim=config["latent_dim"],
                          label_smoothing=config["label_smoothing"], gradient_penalty=config["gradient_penalty"],
                          penalty=config["penalty"], device=config.get("device", "cpu"))

    def callbacks(self, config, run_dir):
        return [SampleGrid(os.path.join(run_dir, "samples"), n=64, seed=config["seed"])]

    def final_metrics(self, trainer, splits, config):
        (x, y), (xt, _) = splits.train, splits.test
        with G.preserved_rng(config["seed"]):
            clf = G.train_digit_classifier(x, y, seed=config["seed"])
            samples = _samples(trainer.model, 1000)
        quality = G.sample_quality(samples, clf, xt)
        out = {f"sample_{k}": v for k, v in quality.items() if not k.startswith("real_")}
        out.update({k: v for k, v in quality.items() if k.startswith("real_")})
        out.update({f"test_{k}": v for k, v in trainer.evaluate(xt, batch_size=256).items()})
        out = {k: (float(v) if isinstance(v, (np.floating, float)) else v) for k, v in out.items()}
        proba = G.predict_proba(clf, samples[:32])
        captions = [f"{int(p.argmax())} ({p.max():.0%})" for p in proba]
        out["image_grids"] = [_grid("generated digits: classifier's guess (confidence)", samples[:32], captions),
                              _grid("real test digits", xt[:_GRID])]
        return out

    def predict(self, trainer, path, config, output=None):
        """Generates 64 digits from random noise (no input: ``path`` must be None) into the PNG file
        ``output`` (an 8 x 8 grid); the caller decides whether an existing file may be replaced."""
        if path is not None:
            raise ValueError(f"gan-digits predict generates from random noise and reads no input, got {path!r}; "
                             "give the PNG file to write as output=")
        if output is None or not str(output).lower().endswith(".png"):
            raise ValueError(f"gan-digits predict writes 64 generated digits to a PNG file; give output= a path "
                             f"ending in .png, got {output!r}")
        save_image_grid(_samples(trainer.model, 64), output, nrow=8, scale=4)
        return f"64 generated digits (an 8 x 8 grid) written to {output}"


__all__ = ["AutoencoderDigits", "DenoisingDigits", "GanDigits", "VaeDigits"]
