import numpy as np
import pytest

import deepwise as dw
from deepwise.data import ArrayDataset, Dataset, Subset, TensorDataset, random_split


def test_tensor_dataset_items_and_len():
    x = np.arange(20, dtype=np.float32).reshape(10, 2)
    y = np.arange(10)
    ds = TensorDataset(x, y)
    assert len(ds) == 10
    xi, yi = ds[3]
    np.testing.assert_array_equal(xi, [6.0, 7.0])
    assert yi == 3


def test_tensor_dataset_accepts_tensors_and_lists():
    ds = TensorDataset(dw.tensor([[1.0, 2.0], [3.0, 4.0]]), [5, 6])
    xi, yi = ds[1]
    np.testing.assert_array_equal(xi, [3.0, 4.0])
    assert yi == 6
    assert isinstance(ds.tensors[0], dw.Tensor)


def test_tensor_dataset_size_mismatch_names_sizes():
    with pytest.raises(ValueError, match=r"argument 0: 5, argument 1: 4"):
        TensorDataset(np.zeros((5, 2)), np.zeros(4))


def test_tensor_dataset_rejects_nothing_and_scalars():
    with pytest.raises(ValueError, match="at least one"):
        TensorDataset()
    with pytest.raises(ValueError, match="scalar"):
        TensorDataset(np.float32(3.0))


def test_getitems_returns_stacked_batch():
    x = np.random.default_rng(0).normal(size=(50, 3, 4))
    y = np.arange(50)
    ds = TensorDataset(x, y)
    idx = np.array([4, 0, 49, 4])
    bx, by = ds.__getitems__(idx)
    np.testing.assert_array_equal(bx, x[idx])
    np.testing.assert_array_equal(by, y[idx])
    with pytest.raises(IndexError, match="50 is out of range"):
        ds.__getitems__(np.array([1, 50]))


def test_tensor_dataset_transform_applies_to_inputs_only():
    x = np.ones((6, 1, 2, 2), dtype=np.float32)
    y = np.arange(6)
    ds = TensorDataset(x, y, transform=lambda b: b * 2)
    bx, by = ds.__getitems__(np.array([0, 1]))
    np.testing.assert_array_equal(bx, 2 * x[:2])
    np.testing.assert_array_equal(by, [0, 1])
    xi, yi = ds[5]  # one sample goes through the transform as a batch of one
    assert xi.shape == (1, 2, 2) and np.all(xi == 2)
    assert yi == 5


def test_array_dataset_single_array_gives_bare_samples():
    x = np.arange(12).reshape(6, 2)
    ds = ArrayDataset(x)
    np.testing.assert_array_equal(ds[2], [4, 5])
    np.testing.assert_array_equal(ds.__getitems__(np.array([1, 2])), x[1:3])
    pair = ArrayDataset(x, np.arange(6))
    assert isinstance(pair[0], tuple) and len(pair[0]) == 2


def test_subset_maps_indices_and_batches():
    x = np.arange(10) * 10
    ds = TensorDataset(x)
    sub = Subset(ds, [7, 2, 5])
    assert len(sub) == 3
    assert sub[0][0] == 70
    (batch,) = sub.__getitems__(np.array([2, 0]))
    np.testing.assert_array_equal(batch, [50, 70])
    with pytest.raises(IndexError, match=r"\[0, 10\)"):
        Subset(ds, [3, 10])


def test_subset_of_plain_dataset_has_no_getitems():
    class Squares(Dataset):
        def __len__(self):
            return 5

        def __getitem__(self, i):
            return i * i

    sub = Subset(Squares(), [4, 1])
    assert not hasattr(sub, "__getitems__")
    assert sub[0] == 16 and sub[1] == 1


def test_base_dataset_says_what_to_implement():
    with pytest.raises(NotImplementedError, match="__getitem__"):
        Dataset()[0]


def test_random_split_sizes_disjoint_cover():
    ds = TensorDataset(np.arange(103))
    parts = random_split(ds, [50, 40, 13])
    assert [len(p) for p in parts] == [50, 40, 13]
    all_idx = np.concatenate([p.indices for p in parts])
    assert np.array_equal(np.sort(all_idx), np.arange(103))


def test_random_split_fractions():
    ds = TensorDataset(np.arange(10))
    parts = random_split(ds, [0.33, 0.33, 0.34])
    assert [len(p) for p in parts] == [4, 3, 3]  # floors 3, 3, 3; the remainder goes to the first part
    assert len(set(np.concatenate([p.indices for p in parts]).tolist())) == 10


def test_random_split_reproducible_under_manual_seed():
    ds = TensorDataset(np.arange(100))
    dw.manual_seed(7)
    a = random_split(ds, [0.8, 0.2])
    dw.manual_seed(7)
    b = random_split(ds, [0.8, 0.2])
    np.testing.assert_array_equal(a[0].indices, b[0].indices)
    c = random_split(ds, [0.8, 0.2])  # generator advanced: another split
    assert not np.array_equal(a[0].indices, c[0].indices)
    g1, g2 = np.random.default_rng(3), np.random.default_rng(3)
    np.testing.assert_array_equal(random_split(ds, [10, 90], generator=g1)[0].indices,
                                  random_split(ds, [10, 90], generator=g2)[0].indices)


def test_random_split_errors():
    ds = TensorDataset(np.arange(10))
    with pytest.raises(ValueError, match="sum to 9"):
        random_split(ds, [5, 4])
    with pytest.raises(ValueError, match="sum to 1"):
        random_split(ds, [0.5, 0.6])
    with pytest.raises(ValueError, match="non-negative"):
        random_split(ds, [11, -1])


def test_loader_over_split_uses_batched_fetch():
    from deepwise.data import DataLoader

    calls = []

    class Counting(TensorDataset):
        def __getitems__(self, indices):
            calls.append(len(indices))
            return super().__getitems__(indices)

    ds = Counting(np.arange(30) * 2, np.arange(30))
    dw.manual_seed(0)
    train, val = random_split(ds, [20, 10])
    xs, ys = zip(*DataLoader(val, batch_size=4))
    assert calls == [4, 4, 2]
    np.testing.assert_array_equal(np.concatenate([x.numpy() for x in xs]), val.indices * 2)
    np.testing.assert_array_equal(np.concatenate([y.numpy() for y in ys]), val.indices)
