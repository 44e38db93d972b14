import numpy as np
import pytest

import deepwise as dw
from deepwise.data.transforms import (
    Compose,
    GaussianNoise,
    Normalize,
    RandomCrop,
    RandomHorizontalFlip,
    RandomMask,
    RandomShift,
)


def _images(n=8, c=3, h=6, w=5, seed=0):
    return np.random.default_rng(seed).random((n, c, h, w)).astype(np.float32)


def test_normalize_values_per_channel():
    x = _images()
    mean, std = [0.1, 0.2, 0.3], [0.5, 1.0, 2.0]
    out = Normalize(mean, std)(x)
    expected = (x - np.array(mean, np.float32)[None, :, None, None]) / np.array(std, np.float32)[None, :, None, None]
    np.testing.assert_allclose(out, expected, rtol=1e-6, atol=1e-7)
    assert out.dtype == np.float32
    u8 = (x * 255).astype(np.uint8)
    out8 = Normalize(127.5, 127.5)(u8)
    assert out8.dtype == np.float32
    np.testing.assert_allclose(out8, (u8.astype(np.float32) - 127.5) / 127.5, rtol=1e-6)
    feats = np.arange(6, dtype=np.float32).reshape(3, 2)  # (N, C) works too
    np.testing.assert_allclose(Normalize([1, 2], [1, 2])(feats), (feats - [1, 2]) / [1, 2])


def test_normalize_errors():
    with pytest.raises(ValueError, match="2 values but the batch of shape .* has 3 channels"):
        Normalize([0, 0], [1, 1])(_images())
    with pytest.raises(ValueError, match="non-zero"):
        Normalize(0, [1, 0])


def test_tensor_in_tensor_out():
    t = dw.tensor(_images())
    out = Compose([RandomHorizontalFlip(), Normalize(0.5, 0.5)])(t)
    assert isinstance(out, dw.Tensor) and out.shape == t.shape and out.dtype == np.float32
    with pytest.raises(TypeError, match="expected a NumPy/CuPy array"):
        Normalize(0, 1)([1, 2, 3])


def test_flip_really_flips():
    x = _images()
    np.testing.assert_array_equal(RandomHorizontalFlip(p=1.0)(x), x[..., ::-1])
    np.testing.assert_array_equal(RandomHorizontalFlip(p=0.0)(x), x)
    dw.manual_seed(3)
    x = _images(n=200)
    out = RandomHorizontalFlip(p=0.5)(x)
    flipped = np.array([np.array_equal(o, i[..., ::-1]) for o, i in zip(out, x)])
    kept = np.array([np.array_equal(o, i) for o, i in zip(out, x)])
    assert np.all(flipped ^ kept)
    assert 60 < flipped.sum() < 140
    assert np.shares_memory(out, x) is False


def test_crop_with_padding_keeps_size_and_content():
    x = _images(n=50, h=8, w=8)
    dw.manual_seed(0)
    out = RandomCrop(8, padding=2)(x)
    assert out.shape == x.shape and out.dtype == x.dtype
    # every output is a shifted copy of its input: find the shift and check all pixels
    shifts = set()
    for o, i in zip(out, x):
        padded = np.pad(i, ((0, 0), (2, 2), (2, 2)))
        found = [(dy, dx) for dy in range(5) for dx in range(5)
                 if np.array_equal(padded[:, dy:dy + 8, dx:dx + 8], o)]
        assert found, "output is not a window of the padded image"
        shifts.add(found[0])
    assert len(shifts) > 5  # offsets differ between images


def test_crop_smaller_than_image_without_padding():
    x = np.arange(2 * 1 * 5 * 5, dtype=np.float32).reshape(2, 1, 5, 5)
    out = RandomCrop((3, 2))(x)
    assert out.shape == (2, 1, 3, 2)
    for o, i in zip(out, x):
        top = int(np.argwhere(i[0] == o[0, 0, 0])[0][0])
        left = int(np.argwhere(i[0] == o[0, 0, 0])[0][1])
        np.testing.assert_array_equal(o, i[:, top:top + 3, left:left + 2])
    with pytest.raises(ValueError, match="larger than the padded image"):
        RandomCrop(7)(x)
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        RandomCrop(3)(x[0])


def test_shift_moves_pixels():
    x = np.zeros((300, 1, 7, 7), dtype=np.float32)
    x[:, 0, 3, 3] = 1.0
    dw.manual_seed(1)
    out = RandomShift(2)(x)
    assert out.shape == x.shape
    pos = np.argwhere(out[:, 0] == 1.0)
    assert len(pos) == 300  # the single bright pixel survives (shift <= 2 keeps it inside)
    dy, dx = pos[:, 1] - 3, pos[:, 2] - 3
    assert dy.min() == -2 and dy.max() == 2 and dx.min() == -2 and dx.max() == 2
    assert np.all(out.sum(axis=(1, 2, 3)) == 1.0)


def test_random_transforms_deterministic_under_seed():
    x = _images(n=16)
    aug = Compose([RandomCrop(6, padding=1), RandomHorizontalFlip(), RandomShift(1), GaussianNoise(0.1),
                   RandomMask(0.2)])
    dw.manual_seed(42)
    a = aug(x)
    dw.manual_seed(42)
    b = aug(x)
    np.testing.assert_array_equal(a, b)
    assert a.shape == (16, 3, 6, 6)
    c = aug(x)
    assert not np.array_equal(a, c)


def test_gaussian_noise_statistics_and_clip():
    x = np.zeros((100, 1, 20, 20), dtype=np.float32)
    dw.manual_seed(0)
    out = GaussianNoise(0.5)(x)
    assert out.dtype == np.float32
    assert abs(out.std() - 0.5) < 0.02 and abs(out.mean()) < 0.02
    clipped = GaussianNoise(0.5, clip=(0.0, 1.0))(x + 0.5)
    assert clipped.min() >= 0.0 and clipped.max() <= 1.0


def test_random_mask_drops_whole_pixels():
    x = np.ones((64, 3, 10, 10), dtype=np.float32)
    dw.manual_seed(0)
    out = RandomMask(0.3)(x)
    dropped = out == 0
    assert np.all(dropped == dropped[:, :1])  # a pixel is dropped in every channel or none
    assert abs(dropped.mean() - 0.3) < 0.02
    flat = RandomMask(0.5, value=-1.0)(np.ones((1000, 4), dtype=np.float32))
    assert set(np.unique(flat).tolist()) == {-1.0, 1.0}
    np.testing.assert_array_equal(RandomMask(0.0)(x), x)
