import numpy as np
import pytest

import deepwise as dw
from deepwise.data import load_digits
from deepwise.data.datasets import stratified_split


def test_digits_all():
    x, y = load_digits()
    assert x.shape == (1797, 64) and x.dtype == np.float32
    assert y.shape == (1797,) and y.dtype == np.int64
    assert x.min() == 0.0 and x.max() == 1.0
    assert set(np.unique(x * 16).tolist()) <= set(range(17))  # pixel counts 0..16 scaled by 1/16
    counts = np.bincount(y)
    assert len(counts) == 10 and counts.min() >= 170
    # the first image of the UCI set is a zero with this top row
    assert y[0] == 0
    np.testing.assert_array_equal(x[0, :8] * 16, [0, 0, 5, 13, 9, 1, 0, 0])


def test_digits_images_shape():
    x, _ = load_digits(as_images=True)
    assert x.shape == (1797, 1, 8, 8)
    flat, _ = load_digits()
    np.testing.assert_array_equal(x.reshape(1797, 64), flat)


def test_digits_stratified_split_sizes_and_disjoint():
    xtr, ytr = load_digits("train")
    xte, yte = load_digits("test")
    assert len(yte) == 360 and len(ytr) == 1437
    _, y = load_digits()
    ratio = np.bincount(yte, minlength=10) / np.bincount(y)
    assert np.all(np.abs(ratio - 0.2) < 0.01)  # every class split in the same proportion
    train_idx, test_idx = stratified_split(y, 0.2, 0)
    assert len(np.intersect1d(train_idx, test_idx)) == 0
    assert len(train_idx) + len(test_idx) == 1797


def test_digits_split_deterministic_and_independent_of_global_seed():
    dw.manual_seed(1)
    a = load_digits("test", seed=3)
    dw.manual_seed(2)
    dw.random.generator().random(10)
    b = load_digits("test", seed=3)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    c = load_digits("test", seed=4)
    assert not np.array_equal(a[0], c[0])


def test_digits_test_size_count_and_errors():
    _, y = load_digits("test", test_size=100)
    assert len(y) == 100
    with pytest.raises(ValueError, match="split"):
        load_digits("val")
    with pytest.raises(ValueError, match="test_size"):
        load_digits("test", test_size=1.5)


def test_digits_returns_fresh_arrays():
    x, y = load_digits()
    x[:] = 5
    y[:] = 7
    x2, y2 = load_digits()
    assert x2.max() == 1.0 and y2[0] == 0


def test_digits_file_ships_with_its_licence():
    from deepwise.data.datasets.digits import DIGITS_FILE

    licence = (DIGITS_FILE.parent / "DIGITS_LICENSE.txt").read_text()
    assert "CC BY 4.0" in licence and "Alpaydin" in licence and "Kaynak" in licence
    assert "BSD 3-Clause" in licence
