"""The transforms the corpus programs use, on uint8 arrays (H, W) or (H, W, C) and on tensors."""

import numpy as np
import torch


class Compose:
    def __init__(self, transforms):
        self.transforms = list(transforms)

    def __call__(self, x):
        for t in self.transforms:
            x = t(x)
        return x


class ToTensor:
    """(H, W[, C]) uint8 -> (C, H, W) float32 in [0, 1]."""

    def __call__(self, img):
        arr = np.asarray(img)
        if arr.ndim == 2:
            arr = arr[:, :, None]
        return torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1)).astype(np.float32) / 255.0)


class Normalize:
    def __init__(self, mean, std):
        self.mean, self.std = list(mean), list(std)

    def __call__(self, t):
        mean = torch.tensor(self.mean).reshape(-1, 1, 1)
        std = torch.tensor(self.std).reshape(-1, 1, 1)
        return (t - mean) / std


def _hw(arr):
    return arr.shape[:2]


class Resize:
    """Nearest-neighbour resize of the array image to ``size`` (an int: the shorter side)."""

    def __init__(self, size):
        self.size = size

    def __call__(self, img):
        arr = np.asarray(img)
        h, w = _hw(arr)
        th, tw = (self.size, self.size) if isinstance(self.size, int) else tuple(self.size)
        rows, cols = (np.arange(th) * h) // th, (np.arange(tw) * w) // tw
        return arr[rows][:, cols]


class Pad:
    def __init__(self, padding):
        self.padding = padding

    def __call__(self, img):
        arr = np.asarray(img)
        p = self.padding
        widths = [(p, p), (p, p)] + [(0, 0)] * (arr.ndim - 2)
        return np.pad(arr, widths)


class RandomHorizontalFlip:
    def __init__(self, p=0.5):
        self.p = p

    def __call__(self, img):
        arr = np.asarray(img)
        return arr[:, ::-1].copy() if np.random.rand() < self.p else arr


class RandomCrop:
    def __init__(self, size):
        self.size = size

    def __call__(self, img):
        arr = np.asarray(img)
        h, w = _hw(arr)
        top = np.random.randint(0, h - self.size + 1)
        left = np.random.randint(0, w - self.size + 1)
        return arr[top:top + self.size, left:left + self.size]
