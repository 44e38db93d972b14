"""Helpers shared by the training-loop tests (imported as ``train_helpers``)."""

from __future__ import annotations

import numpy as np

from deepwise import nn


def make_mlp(n_in=8, hidden=16, n_out=3, dropout=0.0):
    layers = [nn.Linear(n_in, hidden), nn.ReLU()]
    if dropout:
        layers.append(nn.Dropout(dropout))
    layers.append(nn.Linear(hidden, n_out))
    return nn.Sequential(*layers)


def classification_data(n=100, n_in=8, n_classes=3, seed=0):
    """Linearly separable-ish blobs: float32 x (n, n_in), int64 labels."""
    g = np.random.default_rng(seed)
    centers = g.normal(0, 2.0, size=(n_classes, n_in))
    y = g.integers(0, n_classes, size=n)
    x = centers[y] + g.normal(0, 1.0, size=(n, n_in))
    return x.astype(np.float32), y.astype(np.int64)


def regression_data(n=90, n_in=5, n_out=1, seed=0):
    g = np.random.default_rng(seed)
    x = g.normal(size=(n, n_in)).astype(np.float32)
    w = g.normal(size=(n_in, n_out)).astype(np.float32)
    y = (x @ w + 0.1 * g.normal(size=(n, n_out))).astype(np.float32)
    return x, y


def weights_of(model) -> dict:
    return {k: v.numpy().copy() for k, v in model.state_dict().items()}


def assert_same_weights(a: dict, b: dict):
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
