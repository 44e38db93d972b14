"""Recipes on the bundled handwritten digits (UCI 8x8, 1,797 images, shipped with deepwise)."""

from __future__ import annotations

import os

import numpy as np

from deepwise import nn
from deepwise.data import load_digits
from deepwise.recipes.base import Recipe, Splits, classification_extras


def _digits_splits(config, as_images):
    x, y = load_digits(split="train", as_images=as_images)
    xt, yt = load_digits(split="test", as_images=as_images)
    # a fixed validation slice of the training split (deterministic for a given seed)
    rng = np.random.default_rng(config["seed"])
    order = rng.permutation(len(x))
    n_val = len(x) // 10
    val, tr = order[:n_val], order[n_val:]
    return Splits(train=(x[tr], y[tr]), val=(x[val], y[val]), test=(xt, yt))


def _read_array(path, size):
    """A .npy file holding one size x size image: shape (size, size), (size * size,) or with leading 1s."""
    shape_words = f"({size}, {size}) or ({size * size},)"
    try:
        arr = np.load(path, allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise ValueError(f"{path}: not a readable .npy array ({exc})") from None
    if arr.dtype.kind not in "biuf":
        raise ValueError(f"{path}: expected a numeric array of shape {shape_words}, got dtype {arr.dtype}")
    core = arr.reshape([d for d in arr.shape if d != 1]) if arr.size > 1 else arr.reshape(-1)
    if core.shape == (size * size,):
        core = core.reshape(size, size)
    if core.shape != (size, size):
        raise ValueError(f"{path}: a digits model reads one {size}x{size} image: an array of shape {shape_words} "
                         f"(1s around them allowed, e.g. (1, 1, {size}, {size})), got shape {arr.shape}")
    core = core.astype(np.float32)
    if not np.isfinite(core).all():
        raise ValueError(f"{path}: the array holds NaN or infinite values")
    if core.min() < 0 or core.max() > 16:
        raise ValueError(f"{path}: pixel values must be in [0, 1] (or 0..16, as in the UCI digits), got "
                         f"{core.min():g} .. {core.max():g}")
    return core / 16.0 if core.max() > 1.0 else core


def _read_picture(path, size):
    try:
        from PIL import Image  # noqa: PLC0415

        try:
            arr = np.asarray(Image.open(path).convert("L"), dtype=np.float32)
        except OSError as exc:
            raise ValueError(f"{path}: not an image file this can read ({exc}); give an image or a .npy array") \
                from None
    except ImportError:
        try:
            import matplotlib.image as mpimg  # noqa: PLC0415
        except ImportError:
            raise RuntimeError("reading images needs Pillow or matplotlib; pass a .npy array instead") from None
        try:
            arr = np.asarray(mpimg.imread(path), dtype=np.float32)
        except (OSError, ValueError, SyntaxError) as exc:
            raise ValueError(f"{path}: not an image file this can read ({exc}); give an image or a .npy array") \
                from None
        if arr.ndim == 3:
            arr = arr[..., :3].mean(axis=2)
    if arr.ndim != 2 or min(arr.shape) < size:
        raise ValueError(f"{path}: expected a grayscale or colour image of at least {size}x{size} pixels, got "
                         f"shape {arr.shape}")
    if arr.max() > 1.0:
        arr = arr / arr.max()
    if arr.shape != (size, size):
        # block-average to size x size (the digits were made this way from 32x32 bitmaps)
        h, w = arr.shape
        ys = np.linspace(0, h, size + 1).astype(int)
        xs = np.linspace(0, w, size + 1).astype(int)
        arr = np.array([[arr[ys[i]:ys[i + 1], xs[j]:xs[j + 1]].mean() for j in range(size)] for i in range(size)],
                       dtype=np.float32)
    if arr.mean() > 0.5:  # dark ink on a light background: invert to the dataset's convention
        arr = 1.0 - arr
    return arr


def load_image(path, size=8):
    """An image file (any size from size x size up, block-averaged down; dark ink on light is inverted)
    or a .npy array of one size x size image (values in [0, 1], or 0..16 as in the UCI digits) ->
    float32 (1, 1, size, size) in [0, 1], ink bright on dark. Anything else is a ValueError that names
    the file, the shape it has and the shapes expected."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"no such input: {path}")
    arr = _read_array(path, size) if path.lower().endswith(".npy") else _read_picture(path, size)
    return arr.reshape(1, 1, size, size).astype(np.float32)


class _DigitsBase(Recipe):
    data_desc = "bundled UCI handwritten digits, 8x8 (1,437 train / 360 test)"
    class_names = [str(i) for i in range(10)]
    as_images = True
    predict_input = ("an image file (PNG, JPEG, ...; resized to 8x8) or a .npy array of shape (8, 8) or (64,), "
                     "values in [0, 1] or 0..16")

    def data(self, config):
        return _digits_splits(config, self.as_images)

    def final_metrics(self, trainer, splits, config):
        out = super().final_metrics(trainer, splits, config)
        out.update(classification_extras(trainer, splits, self.class_names))
        return out

    def predict(self, trainer, path, config):
        x = load_image(path)
        if not self.as_images:
            x = x.reshape(1, 64)
        logits = trainer.predict(x)[0]
        p = np.exp(logits - logits.max())
        p /= p.sum()
        top = np.argsort(-p)[:3]
        return "predicted digit: {} ({})".format(
            int(top[0]), ", ".join(f"{int(k)}: {p[k]:.1%}" for k in top))


class DigitsCNN(_DigitsBase):
    name = "digits-cnn"
    task = "image classification"
    model_desc = "CNN: 2x conv3x3 + max-pool + dropout + 2 dense"
    expected = "test accuracy >= 98%"
    typical_time = "~40 s"
    defaults = {"epochs": 25, "batch_size": 32, "lr": 2e-3, "seed": 0}

    def model(self, config):
        return nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(),
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Dropout(0.25),
            nn.Flatten(),
            nn.Linear(64 * 4 * 4, 128), nn.ReLU(),
            nn.Dropout(0.3),
            nn.Linear(128, 10),
        )


class DigitsMLP(_DigitsBase):
    name = "digits-mlp"
    task = "image classification"
    model_desc = "MLP: batch norm on the pixels, 256 ReLU units, dropout"
    expected = "test accuracy ~97%"
    typical_time = "~10 s"
    as_images = False
    defaults = {"epochs": 40, "batch_size": 32, "lr": 2e-3, "seed": 0}

    def model(self, config):
        return nn.Sequential(
            nn.BatchNorm1d(64),  # standardises the pixels with statistics it keeps for evaluation
            nn.Linear(64, 256), nn.ReLU(), nn.Dropout(0.3),
            nn.Linear(256, 10),
        )
