"""``save_image``: a grid of images written as a PNG (by deepwise's PNG writer)."""

import numpy as np

from deepwise.io.images import write_png


def save_image(tensor, fp, nrow=8, padding=2, normalize=False, value_range=None, **kwargs):
    arr = np.asarray(tensor.detach().cpu().numpy(), dtype=np.float64)
    if arr.ndim == 3:
        arr = arr[None]
    if normalize:
        lo, hi = value_range if value_range is not None else (arr.min(), arr.max())
        arr = (arr - lo) / max(hi - lo, 1e-12)
    arr = np.clip(arr, 0.0, 1.0)
    n, c, h, w = arr.shape
    cols = min(nrow, n)
    rows = -(-n // cols)
    grid = np.zeros((rows * (h + padding) + padding, cols * (w + padding) + padding), dtype=np.float64)
    for k in range(n):
        r, q = divmod(k, cols)
        grid[padding + r * (h + padding):padding + r * (h + padding) + h,
             padding + q * (w + padding):padding + q * (w + padding) + w] = arr[k].mean(axis=0)
    write_png(str(fp), grid)
