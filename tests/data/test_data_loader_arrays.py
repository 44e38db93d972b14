"""The DataLoader's shortcut for plain in-memory array datasets: the same batches as the general path."""

import threading

import numpy as np
import pytest

import deepwise as dw
from deepwise.data import (
    ArrayDataset,
    BatchSampler,
    DataLoader,
    Sampler,
    Subset,
    TensorDataset,
    random_split,
)
from deepwise.data.loader import _TakeIterator


class GeneralTensorDataset(TensorDataset):
    """Same data, but a redefined ``__getitems__`` keeps the loader on its general path."""

    def __getitems__(self, indices):
        return super().__getitems__(indices)


class GeneralArrayDataset(ArrayDataset):
    def __getitems__(self, indices):
        return super().__getitems__(indices)


def _arrays(n=23):
    rs = np.random.default_rng(5)
    return rs.normal(size=(n, 3, 2)), rs.integers(0, 7, size=n), rs.random(n).astype(np.float32)


def _epochs(loader, seed, epochs=3):
    """Every batch of ``epochs`` epochs as lists of NumPy arrays (plus each batch's type and dtypes),
    and the shared generator's next draw afterwards."""
    dw.manual_seed(seed)
    out = []
    for _ in range(epochs):
        for batch in loader:
            parts = batch if isinstance(batch, tuple) else (batch,)
            assert all(isinstance(p, dw.Tensor) for p in parts)
            out.append((type(batch), [p.dtype for p in parts], [p.numpy().copy() for p in parts]))
    return out, dw.random.generator().random()


def _assert_same(fast, general):
    (a, next_a), (b, next_b) = fast, general
    assert len(a) == len(b) and len(a) > 0
    for (ta, da, xa), (tb, db, xb) in zip(a, b):
        assert ta is tb and da == db
        for u, v in zip(xa, xb):
            assert u.shape == v.shape
            np.testing.assert_array_equal(u, v)
    assert next_a == next_b  # the shared generator moved on exactly the same way


@pytest.mark.parametrize("batch_size,drop_last", [(5, False), (5, True), (23, False), (30, False), (4, True)])
@pytest.mark.parametrize("shuffle", [False, True])
def test_same_batches_as_general_path(batch_size, drop_last, shuffle):
    x, y, w = _arrays()
    fast = DataLoader(TensorDataset(x, y, w), batch_size, shuffle=shuffle, drop_last=drop_last)
    general = DataLoader(GeneralTensorDataset(x, y, w), batch_size, shuffle=shuffle, drop_last=drop_last,
                         prefetch=0)
    assert isinstance(iter(fast), _TakeIterator) and not isinstance(iter(general), _TakeIterator)
    got, ref = _epochs(fast, 3), _epochs(general, 3)
    _assert_same(got, ref)
    sizes = [xs[0].shape[0] for _, _, xs in got[0][:len(got[0]) // 3]]
    expected = [batch_size] * (23 // batch_size) + ([] if drop_last or 23 % batch_size == 0 else [23 % batch_size])
    assert sizes == expected  # uneven last batch kept, or dropped with drop_last
    assert got[0][0][1] == [np.float32, np.int64, np.float32]  # float64 -> float32, other dtypes kept


def test_shuffle_order_reproducible_and_new_each_epoch():
    x, y, _ = _arrays()
    loader = DataLoader(TensorDataset(x, y), 23, shuffle=True)
    (e1, e2, e3), _ = _epochs(loader, 9)
    (f1, f2, f3), _ = _epochs(loader, 9)
    for a, b in ((e1, f1), (e2, f2), (e3, f3)):
        np.testing.assert_array_equal(a[2][1], b[2][1])
    assert not np.array_equal(e1[2][1], e2[2][1]) or not np.array_equal(e2[2][1], e3[2][1])
    np.testing.assert_array_equal(np.sort(e1[2][0].reshape(23, -1), axis=0),
                                  np.sort(x.astype(np.float32).reshape(23, -1), axis=0))


def test_array_dataset_single_array_gives_bare_tensors():
    x, _, _ = _arrays()
    fast = DataLoader(ArrayDataset(x), 6, shuffle=True)
    general = DataLoader(GeneralArrayDataset(x), 6, shuffle=True)
    got = _epochs(fast, 1)
    assert got[0][0][0] is dw.Tensor
    _assert_same(got, _epochs(general, 1))
    # a one-array TensorDataset gives 1-tuples, as before
    batch = next(iter(DataLoader(TensorDataset(x), 4)))
    assert isinstance(batch, tuple) and len(batch) == 1


def test_subsets_and_random_split_take_the_shortcut():
    x, y, _ = _arrays(40)
    dw.manual_seed(2)
    train, val = random_split(TensorDataset(x, y), [30, 10])
    dw.manual_seed(2)
    g_train, g_val = random_split(GeneralTensorDataset(x, y), [30, 10])
    for fast_ds, general_ds in ((train, g_train), (val, g_val)):
        fast = DataLoader(fast_ds, 7, shuffle=True)
        assert isinstance(iter(fast), _TakeIterator)
        _assert_same(_epochs(fast, 4), _epochs(DataLoader(general_ds, 7, shuffle=True), 4))
    nested = Subset(train, [29, 0, 3, 3])  # a subset of a subset, with a repeated index
    fast = DataLoader(nested, 3)
    assert isinstance(iter(fast), _TakeIterator)
    _assert_same(_epochs(fast, 0), _epochs(DataLoader(Subset(g_train, [29, 0, 3, 3]), 3), 0))
    (batch,) = [b for b in DataLoader(nested, 4)]
    np.testing.assert_array_equal(batch[1].numpy(), y[train.indices[[29, 0, 3, 3]]])


class ListSampler(Sampler):
    def __init__(self, indices):
        self.indices = indices

    def __iter__(self):
        return iter(self.indices)

    def __len__(self):
        return len(self.indices)


def test_custom_samplers_negative_indices_and_ragged_batch_sampler():
    x, y, _ = _arrays(10)
    sampler = ListSampler([9, -1, -10, 0, 4])  # negative indices count from the end, as on the general path
    fast = DataLoader(TensorDataset(x, y), 2, sampler=sampler)
    general = DataLoader(GeneralTensorDataset(x, y), 2, sampler=sampler)
    _assert_same(_epochs(fast, 0), _epochs(general, 0))

    class Ragged(Sampler):
        def __iter__(self):
            return iter([[3, 1], [], [0, 2, 9, 8, 8]])

        def __len__(self):
            return 3

    fast = DataLoader(TensorDataset(x, y), batch_sampler=Ragged())
    general = DataLoader(GeneralTensorDataset(x, y), batch_sampler=Ragged())
    got = _epochs(fast, 0)
    _assert_same(got, _epochs(general, 0))
    assert [b[2][0].shape[0] for b in got[0][:3]] == [2, 0, 5]


def test_out_of_range_index_raises_at_its_batch_like_the_general_path():
    x, y, _ = _arrays(10)
    loader = DataLoader(TensorDataset(x, y), 2, sampler=ListSampler([0, 1, 2, 3, 10, 4]))
    seen = []
    with pytest.raises(IndexError, match=r"index 10 is out of range for a dataset of 10 samples"):
        for batch in loader:
            seen.append(batch[1].numpy())
    assert len(seen) == 2  # the two good batches arrived first
    sub = Subset(TensorDataset(x, y), [4, 5, 6])
    with pytest.raises(IndexError):
        list(DataLoader(sub, 2, sampler=ListSampler([0, 3])))


def test_no_prefetch_thread_for_plain_arrays_but_for_transforms():
    x, y, _ = _arrays(50)
    names = "deepwise-DataLoader-prefetch"

    def threads():
        return [t for t in threading.enumerate() if t.name == names and t.is_alive()]

    it = iter(DataLoader(TensorDataset(x, y), 4, prefetch=3))
    next(it)
    assert threads() == [] and isinstance(it, _TakeIterator)
    it.close()
    with pytest.raises(StopIteration):
        next(it)
    it = iter(DataLoader(TensorDataset(x, y, transform=lambda b: b * 2.0), 4, prefetch=3))
    first = next(it)
    assert len(threads()) == 1  # a transform is per-sample work: it runs in the prefetch thread
    np.testing.assert_allclose(first[0].numpy(), (x[:4] * 2.0).astype(np.float32))
    it.close()
    assert threads() == []


def test_collate_fn_keeps_the_general_path():
    x, y, _ = _arrays(6)
    loader = DataLoader(TensorDataset(x, y), 4, collate_fn=lambda samples: len(samples))
    assert list(loader) == [4, 2]


def test_iterator_len_counts_down():
    x, y, _ = _arrays(10)
    it = iter(DataLoader(TensorDataset(x, y), 4, shuffle=True))
    assert len(it) == 3
    next(it)
    assert len(it) == 2
    assert len(list(it)) == 2 and len(it) == 0


def test_batch_sampler_with_drop_last_matches():
    x, y, _ = _arrays(17)
    bs = BatchSampler(dw.data.RandomSampler(range(17)), 5, drop_last=True)
    fast = DataLoader(TensorDataset(x, y), batch_sampler=bs)
    general = DataLoader(GeneralTensorDataset(x, y), batch_sampler=bs)
    got = _epochs(fast, 4, epochs=2)
    _assert_same(got, _epochs(general, 4, epochs=2))
    assert len(got[0]) == 6


class DictDataset(TensorDataset):
    """A subclass with its own ``_pack`` keeps the general path (and its output)."""

    def _pack(self, parts):
        return {"x": parts[0], "y": parts[1]}


class GeneralDictDataset(DictDataset):
    def __getitems__(self, indices):
        return super().__getitems__(indices)


def test_subclass_with_its_own_pack():
    x, y, _ = _arrays(11)
    fast = DataLoader(DictDataset(x, y), 4, shuffle=True)
    assert not isinstance(iter(fast), _TakeIterator)
    dw.manual_seed(8)
    got = list(fast)
    dw.manual_seed(8)
    ref = list(DataLoader(GeneralDictDataset(x, y), 4, shuffle=True))
    assert [sorted(b) for b in got] == [["x", "y"]] * 3
    for a, b in zip(got, ref):
        assert a["x"].dtype == b["x"].dtype == np.float32
        np.testing.assert_array_equal(a["x"].numpy(), b["x"].numpy())
        np.testing.assert_array_equal(a["y"].numpy(), b["y"].numpy())


@pytest.mark.parametrize("drop_last", [False, True])
def test_batch_sampler_epoch_plan_matches_epoch_batches(drop_last):
    bs = BatchSampler(dw.data.RandomSampler(range(23)), 5, drop_last=drop_last)
    dw.manual_seed(4)
    idx, offsets = bs.epoch_plan()
    dw.manual_seed(4)
    batches = bs.epoch_batches()
    assert len(offsets) == len(batches) + 1 == len(bs) + 1
    for k, b in enumerate(batches):
        np.testing.assert_array_equal(idx[offsets[k]:offsets[k + 1]], b)
    assert offsets[-1] == (20 if drop_last else 23) and idx.dtype == np.int64
    empty = BatchSampler(dw.data.SequentialSampler(range(3)), 5, drop_last=True)
    assert empty.epoch_plan()[1] == [0] and empty.epoch_batches() == []


def test_random_sampler_draws_the_same_numbers_as_before():
    # one permutation per epoch (or several, concatenated, for num_samples > n), from the generator
    for k in (9, 9 * 2 + 4, 5):
        sampler = dw.data.RandomSampler(range(9), num_samples=k, generator=np.random.default_rng(21))
        got = sampler.epoch_indices()
        ref_gen = np.random.default_rng(21)
        ref = np.concatenate([ref_gen.permutation(9) for _ in range(-(-k // 9))])[:k]
        np.testing.assert_array_equal(got, ref)
        assert got.dtype == np.int64
