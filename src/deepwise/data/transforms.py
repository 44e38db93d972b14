"""Batch transforms for data augmentation and preprocessing.

Every transform takes a whole batch — a NumPy array, a CuPy array or a deepwise Tensor — and returns
the same kind (a Tensor comes back as a new Tensor that does not require grad: these are data
preparation, not part of the graph). Image transforms expect (N, C, H, W). Random numbers are drawn
on the CPU from ``deepwise.data.rng()`` (that is ``deepwise.random.generator()``, or the per-epoch
stream of a DataLoader fetch) and moved to the batch's device, so a seed gives the same result on
NumPy and CuPy. Nothing loops in Python over images or pixels: per-image choices become index
arrays and one fancy-indexing gather.

    aug = Compose([RandomCrop(32, padding=4), RandomHorizontalFlip(), Normalize(mean, std)])
    x = aug(x)                    # or TensorDataset(x, y, transform=aug)
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from deepwise import backend
from deepwise.data.randomness import rng
from deepwise.tensor import Tensor


def _pair(value, name: str, owner: str) -> tuple[int, int]:
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return int(value), int(value)
    if (isinstance(value, Sequence) and len(value) == 2
            and all(isinstance(v, (int, np.integer)) for v in value)):
        return int(value[0]), int(value[1])
    raise ValueError(f"{owner}: {name} must be an int or a pair of ints, got {value!r}")


def _on_device(host_array: np.ndarray, like):
    """Move numbers drawn on the CPU next to ``like`` (no-op for NumPy)."""
    if isinstance(like, np.ndarray):
        return host_array
    return backend.to_device(host_array, backend.device_of(like))


def _as_float(x):
    return x if backend.is_floating(x.dtype) else x.astype(np.float32)


class Transform:
    """Base class: implement ``apply(array) -> array``; ``__call__`` handles Tensors."""

    def __call__(self, x):
        if isinstance(x, Tensor):
            return Tensor._make(self.apply(x.array))
        if backend.is_array(x):
            return self.apply(x)
        raise TypeError(f"{type(self).__name__}: expected a NumPy/CuPy array or a deepwise Tensor, "
                        f"got {type(x).__name__}")

    def apply(self, x):
        raise NotImplementedError(f"{type(self).__name__} must implement apply(array)")

    def _need_images(self, x):
        if x.ndim != 4:
            raise ValueError(f"{type(self).__name__}: expected a batch of images (N, C, H, W), got shape "
                             f"{tuple(x.shape)}; for a single image pass x[None]")

    def __repr__(self):
        fields = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({fields})"


class Compose(Transform):
    """Apply ``transforms`` in order."""

    def __init__(self, transforms):
        self.transforms = list(transforms)
        for t in self.transforms:
            if not callable(t):
                raise TypeError(f"Compose: {t!r} is not callable")

    def __call__(self, x):
        for t in self.transforms:
            x = t(x)
        return x

    def apply(self, x):
        return self(x)

    def __repr__(self):
        inner = ",\n".join(f"    {t!r}" for t in self.transforms)
        return f"Compose([\n{inner}\n])"


class Normalize(Transform):
    """``(x - mean[c]) / std[c]`` per channel; the channel axis is 1 ((N, C, H, W), (N, C) or
    (N, C, L)). Scalars apply to every channel. Integer input (e.g. uint8 pixels) gives float32;
    float input keeps its dtype."""

    def __init__(self, mean, std):
        self.mean = np.atleast_1d(np.asarray(mean, dtype=np.float64))
        self.std = np.atleast_1d(np.asarray(std, dtype=np.float64))
        if self.mean.ndim != 1 or self.std.ndim != 1:
            raise ValueError("Normalize: mean and std must be scalars or 1-D sequences (one per channel)")
        if np.any(self.std == 0):
            raise ValueError(f"Normalize: std must be non-zero, got {self.std.tolist()}")

    def apply(self, x):
        if x.ndim < 2:
            raise ValueError(f"Normalize: expected a batch with channels on axis 1, got shape "
                             f"{tuple(x.shape)}")
        c = x.shape[1]
        for name, v in (("mean", self.mean), ("std", self.std)):
            if v.size not in (1, c):
                raise ValueError(f"Normalize: {name} has {v.size} values but the batch of shape "
                                 f"{tuple(x.shape)} has {c} channels")
        x = _as_float(x)
        shape = (1, -1) + (1,) * (x.ndim - 2)
        mean = _on_device(self.mean.astype(x.dtype).reshape(shape), x)
        inv_std = _on_device((1.0 / self.std).astype(x.dtype).reshape(shape), x)
        return (x - mean) * inv_std


def _gather_windows(x, top, left, h: int, w: int, fill):
    """out[n] = window of size (h, w) of x[n] whose top-left corner is (top[n], left[n]) — offsets
    relative to x, possibly negative or past the edge, where the window is filled with ``fill``.

    A strided view lists every window position of the (padded) batch without copying, shape
    (N, C, positions_y, positions_x, h, w); one fancy index picks each image's window."""
    xp = backend.get_array_module(x)
    n, c, height, width = x.shape
    pt = max(0, -int(top.min()))
    pb = max(0, int(top.max()) + h - height)
    pl = max(0, -int(left.min()))
    pr = max(0, int(left.max()) + w - width)
    if pt or pb or pl or pr:
        padded = xp.full((n, c, height + pt + pb, width + pl + pr), fill, dtype=x.dtype)
        padded[:, :, pt:pt + height, pl:pl + width] = x
        x = padded
    else:
        x = xp.ascontiguousarray(x)
    sn, sc, sh, sw = x.strides
    windows = xp.lib.stride_tricks.as_strided(
        x, shape=(n, c, x.shape[2] - h + 1, x.shape[3] - w + 1, h, w), strides=(sn, sc, sh, sw, sh, sw))
    nn = _on_device(np.arange(n), x)
    rows = _on_device(top + pt, x)
    cols = _on_device(left + pl, x)
    return windows[nn, :, rows, cols]  # advanced indices around a slice: result is (N, C, h, w)


class RandomCrop(Transform):
    """Crop a random ``size`` window from each image, after zero-padding every side by ``padding``
    (``fill`` sets the padding value). Each image gets its own offset; with padding = p and size =
    the image size, this shifts images by up to p pixels."""

    def __init__(self, size, padding=0, fill=0):
        self.size = _pair(size, "size", "RandomCrop")
        self.padding = _pair(padding, "padding", "RandomCrop")
        if min(self.size) <= 0 or min(self.padding) < 0:
            raise ValueError(f"RandomCrop: size must be positive and padding >= 0, got size={size!r}, "
                             f"padding={padding!r}")
        self.fill = fill

    def apply(self, x):
        self._need_images(x)
        n, _, height, width = x.shape
        h, w = self.size
        ph, pw = self.padding
        if h > height + 2 * ph or w > width + 2 * pw:
            raise ValueError(f"RandomCrop: crop {h}x{w} is larger than the padded image "
                             f"{height + 2 * ph}x{width + 2 * pw} (input {tuple(x.shape)}, "
                             f"padding {ph},{pw})")
        g = rng()
        top = g.integers(0, height + 2 * ph - h + 1, size=n) - ph
        left = g.integers(0, width + 2 * pw - w + 1, size=n) - pw
        return _gather_windows(x, top, left, h, w, self.fill)


class RandomShift(Transform):
    """Translate each image by its own random (dy, dx), integers in [-max_shift, max_shift]; pixels
    shifted in are ``fill``. Output has the input's size."""

    def __init__(self, max_shift, fill=0):
        self.max_shift = _pair(max_shift, "max_shift", "RandomShift")
        if min(self.max_shift) < 0:
            raise ValueError(f"RandomShift: max_shift must be >= 0, got {max_shift!r}")
        self.fill = fill

    def apply(self, x):
        self._need_images(x)
        n, _, height, width = x.shape
        my, mx = self.max_shift
        g = rng()
        dy = g.integers(-my, my + 1, size=n)
        dx = g.integers(-mx, mx + 1, size=n)
        # the output window starts at -shift in input coordinates
        return _gather_windows(x, -dy, -dx, height, width, self.fill)


class RandomHorizontalFlip(Transform):
    """Mirror each image left-right with probability ``p`` (the last axis is the width)."""

    def __init__(self, p: float = 0.5):
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"RandomHorizontalFlip: p must be in [0, 1], got {p}")
        self.p = float(p)

    def apply(self, x):
        if x.ndim < 2:
            raise ValueError("RandomHorizontalFlip: expected a batch (N, ..., W), got shape "
                             f"{tuple(x.shape)}")
        flip = np.flatnonzero(rng().random(x.shape[0]) < self.p)
        out = x.copy()
        if flip.size:
            sel = _on_device(flip, x)
            out[sel] = x[sel][..., ::-1]
        return out


class GaussianNoise(Transform):
    """Add ``mean + std * N(0, 1)`` noise to every element (integer input becomes float32); ``clip``
    = (low, high) bounds the result, e.g. (0, 1) for images in [0, 1]."""

    def __init__(self, std: float, mean: float = 0.0, clip=None):
        if std < 0:
            raise ValueError(f"GaussianNoise: std must be >= 0, got {std}")
        self.std = float(std)
        self.mean = float(mean)
        if clip is not None and (len(clip) != 2 or clip[0] > clip[1]):
            raise ValueError(f"GaussianNoise: clip must be (low, high) with low <= high, got {clip!r}")
        self.clip = None if clip is None else (float(clip[0]), float(clip[1]))

    def apply(self, x):
        x = _as_float(x)
        noise = rng().standard_normal(x.shape, dtype=np.float32)
        noise = _on_device(noise.astype(x.dtype, copy=False), x)
        out = x + (noise * x.dtype.type(self.std) + x.dtype.type(self.mean))
        if self.clip is not None:
            xp = backend.get_array_module(out)
            out = xp.clip(out, self.clip[0], self.clip[1])
        return out


class RandomMask(Transform):
    """Set each pixel to ``value`` with probability ``p`` (masking noise, for denoising autoencoders).

    For (N, C, H, W) a dropped pixel is dropped in all channels (``per_pixel=True``); otherwise, and
    for other shapes, each element is dropped independently."""

    def __init__(self, p: float, value: float = 0.0, per_pixel: bool = True):
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"RandomMask: p must be in [0, 1], got {p}")
        self.p = float(p)
        self.value = value
        self.per_pixel = bool(per_pixel)

    def apply(self, x):
        shape = tuple(x.shape)
        if self.per_pixel and x.ndim == 4:
            shape = (shape[0], 1, shape[2], shape[3])
        drop = _on_device(rng().random(shape) < self.p, x)
        xp = backend.get_array_module(x)
        return xp.where(drop, xp.asarray(self.value, dtype=x.dtype), x)
