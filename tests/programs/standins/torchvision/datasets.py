"""MNIST, FashionMNIST and CIFAR10 stand-ins: the bundled digits, enlarged (see the package docstring)."""

import os

import numpy as np

from deepwise.data import load_digits

_TRAIN = 1500  # the first 1,500 digits train, the other 297 test
# How many samples a split keeps (the tests trim the data size with it; unset: all of the split).
_LIMIT = int(os.environ.get("TORCHVISION_STANDIN_SAMPLES", "0")) or None


def _digits(train):
    x, y = load_digits()  # all 1,797, in the file's order
    x = np.asarray(x, dtype=np.float64).reshape(-1, 8, 8)
    y = np.asarray(y, dtype=np.int64)
    sl = slice(0, _TRAIN) if train else slice(_TRAIN, None)
    return x[sl][:_LIMIT], y[sl][:_LIMIT]


def _enlarge(images, size):
    """(N, 8, 8) values in [0, 1] -> (N, size, size) uint8 by nearest-neighbour sampling."""
    idx = (np.arange(size) * 8) // size
    return np.clip(images[:, idx][:, :, idx] * 255.0, 0, 255).astype(np.uint8)


class MNIST:
    """``MNIST(root, train=True, transform=None, target_transform=None, download=False)``: 28x28 uint8
    digits; ``root`` and ``download`` are accepted and ignored (nothing is downloaded)."""

    size, channels = 28, 1

    def __init__(self, root=None, train=True, transform=None, target_transform=None, download=False):
        images, self.targets = _digits(train)
        self.data = _enlarge(images, self.size)
        if self.channels == 3:
            self.data = np.repeat(self.data[..., None], 3, axis=-1)
        self.transform, self.target_transform = transform, target_transform
        self.train = train
        self.classes = [str(i) for i in range(10)]

    def __len__(self):
        return len(self.data)

    def __getitem__(self, i):
        img, target = self.data[i], int(self.targets[i])
        if self.transform is not None:
            img = self.transform(img)
        if self.target_transform is not None:
            target = self.target_transform(target)
        return img, target


class FashionMNIST(MNIST):
    pass


class CIFAR10(MNIST):
    """32x32 RGB stand-in (the digits, grey on three channels)."""

    size, channels = 32, 3
