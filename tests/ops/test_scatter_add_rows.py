import numpy as np

from deepwise.ops._util import scatter_add_rows


def _reference(n, index, rows):
    out = np.zeros((n,) + rows.shape[1:], rows.dtype)
    for k, i in enumerate(index):
        out[i] += rows[k]
    return out


def test_sums_repeated_indices_and_leaves_unused_rows_zero():
    rng = np.random.default_rng(0)
    index = rng.integers(0, 7, 200)
    index[index == 3] = 4  # row 3 is never hit
    rows = rng.standard_normal((200, 5))
    out = scatter_add_rows(9, index, rows)
    np.testing.assert_allclose(out, _reference(9, index, rows), rtol=1e-12, atol=1e-12)
    assert not out[3].any() and not out[7:].any()


def test_keeps_dtype_and_trailing_shape_and_handles_empty():
    rows = np.ones((4, 2, 3), np.float32)
    out = scatter_add_rows(3, np.array([2, 0, 2, 2]), rows)
    assert out.dtype == np.float32 and out.shape == (3, 2, 3)
    np.testing.assert_array_equal(out[:, 0, 0], [1, 0, 3])
    empty = scatter_add_rows(5, np.zeros(0, np.int64), np.zeros((0, 4), np.float32))
    assert empty.shape == (5, 4) and not empty.any()

