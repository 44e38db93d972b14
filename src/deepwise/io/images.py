"""Image files: a grid of images (a batch of samples at a glance) written as an 8-bit PNG.

No extra dependency: the PNG is zlib and the chunk format, written atomically.
"""

from __future__ import annotations

import os
import struct
import zlib

import numpy as np

from deepwise.io.atomic import atomic_write_bytes
from deepwise.nn.inference import to_host


def as_images(images, what) -> np.ndarray:
    """Images as float64 (N, C, H, W) on the host; (N, H, W) gains a channel; ``what`` names the caller."""
    arr = to_host(images).astype(np.float64, copy=False)
    if arr.ndim == 3:
        arr = arr[:, None]
    if arr.ndim != 4:
        raise ValueError(f"{what}: expected images (N, C, H, W) or (N, H, W), got shape {arr.shape}")
    return arr


def image_grid(images, nrow: int = 8, padding: int = 1, value_range=(0.0, 1.0), pad_value: float = 0.0):
    """Images (N, C, H, W) (C = 1 or 3) or (N, H, W) tiled ``nrow`` per row into one float image in
    [0, 1]: (rows, cols) for one channel, (rows, cols, 3) for three. ``value_range`` maps to [0, 1]
    (use (-1, 1) for tanh outputs); values outside are clipped."""
    arr = as_images(images, "image_grid")
    n, c, h, w = arr.shape
    if n == 0:
        raise ValueError("image_grid: no images")
    if c not in (1, 3):
        raise ValueError(f"image_grid: images must have 1 or 3 channels, got {c}")
    if nrow < 1 or padding < 0:
        raise ValueError(f"image_grid: nrow must be >= 1 and padding >= 0, got nrow={nrow}, padding={padding}")
    lo, hi = float(value_range[0]), float(value_range[1])
    if not hi > lo:
        raise ValueError(f"image_grid: value_range must be (low, high) with low < high, got {value_range!r}")
    arr = np.clip((arr - lo) / (hi - lo), 0.0, 1.0)
    cols = min(nrow, n)
    rows = (n + cols - 1) // cols
    grid = np.full((c, rows * (h + padding) + padding, cols * (w + padding) + padding), pad_value)
    for k in range(n):  # one slice assignment per image (a grid holds tens of images)
        r, q = divmod(k, cols)
        top, left = padding + r * (h + padding), padding + q * (w + padding)
        grid[:, top:top + h, left:left + w] = arr[k]
    return grid[0] if c == 1 else np.transpose(grid, (1, 2, 0))


def write_png(path, image, scale: int = 1) -> str:
    """Write a float image in [0, 1] — (H, W) grayscale or (H, W, 3) RGB — as an 8-bit PNG (no
    extra dependency: zlib and the PNG chunk format), each pixel enlarged to ``scale`` x ``scale``.
    The file is replaced atomically. Returns the path."""
    img = np.asarray(image, dtype=np.float64)
    if img.ndim not in (2, 3) or (img.ndim == 3 and img.shape[2] != 3) or img.size == 0:
        raise ValueError(f"write_png: expected an (H, W) or (H, W, 3) image, got shape {img.shape}")
    if isinstance(scale, bool) or not isinstance(scale, int) or scale < 1:
        raise ValueError(f"write_png: scale must be a positive int, got {scale!r}")
    if scale > 1:
        img = np.repeat(np.repeat(img, scale, axis=0), scale, axis=1)
    pixels = np.round(np.clip(np.nan_to_num(img), 0.0, 1.0) * 255).astype(np.uint8)
    h, w = pixels.shape[:2]
    color_type = 0 if pixels.ndim == 2 else 2
    rows = pixels.reshape(h, -1)
    raw = np.concatenate([np.zeros((h, 1), np.uint8), rows], axis=1).tobytes()  # filter byte 0 per row

    def chunk(tag, data):
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, color_type, 0, 0, 0))
           + chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b""))
    parent = os.path.dirname(os.fspath(path))
    if parent:
        os.makedirs(parent, exist_ok=True)
    atomic_write_bytes(path, png)
    return os.fspath(path)


def save_image_grid(images, path, nrow: int = 8, scale: int = 4, padding: int = 1, value_range=(0.0, 1.0)) -> str:
    """``image_grid`` written as a PNG (``write_png``). Returns the path."""
    return write_png(path, image_grid(images, nrow, padding, value_range), scale=scale)
