"""Fixtures for the diagnostics tests: the bundled digits, loaded once."""

from __future__ import annotations

import pytest

import deepwise as dw


@pytest.fixture(scope="session")
def digits():
    """(x_train, y_train, x_test, y_test): 1437 / 360 flattened 8x8 digits in [0, 1]."""
    x, y = dw.data.load_digits(split="train")
    xt, yt = dw.data.load_digits(split="test")
    return x, y, xt, yt
