import threading
import time
import traceback

import numpy as np
import pytest

import deepwise as dw
from deepwise.data import (
    BatchSampler,
    DataLoader,
    Dataset,
    RandomSampler,
    Sampler,
    SequentialSampler,
    TensorDataset,
    default_collate,
    rng,
)


def _prefetch_threads():
    return [t for t in threading.enumerate() if t.name == "deepwise-DataLoader-prefetch" and t.is_alive()]


class ItemDataset(Dataset):
    """Per-item dataset (no __getitems__) returning a tuple of (array, int label)."""

    def __init__(self, n):
        self.n = n

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        return np.full(3, i, dtype=np.float64), i


@pytest.mark.parametrize("prefetch", [0, 2])
def test_uneven_last_batch_and_len(prefetch):
    ds = TensorDataset(np.arange(10, dtype=np.float32), np.arange(10))
    loader = DataLoader(ds, batch_size=4, prefetch=prefetch)
    assert len(loader) == 3
    batches = list(loader)
    assert [b[0].shape for b in batches] == [(4,), (4,), (2,)]
    np.testing.assert_array_equal(np.concatenate([b[1].numpy() for b in batches]), np.arange(10))


@pytest.mark.parametrize("prefetch", [0, 3])
def test_drop_last(prefetch):
    ds = TensorDataset(np.arange(10))
    loader = DataLoader(ds, batch_size=4, drop_last=True, prefetch=prefetch)
    assert len(loader) == 2
    batches = list(loader)
    assert len(batches) == 2 and all(b[0].shape == (4,) for b in batches)
    assert len(DataLoader(ds, batch_size=5, drop_last=True)) == 2
    assert len(DataLoader(ds, batch_size=11, drop_last=True)) == 0
    assert list(DataLoader(ds, batch_size=11, drop_last=True)) == []


def test_shuffle_new_order_each_epoch_and_reproducible():
    ds = TensorDataset(np.arange(100))
    loader = DataLoader(ds, batch_size=100, shuffle=True)

    def epoch():
        (b,) = next(iter(loader))
        return b.numpy()

    dw.manual_seed(123)
    e1, e2 = epoch(), epoch()
    assert not np.array_equal(e1, e2)
    assert np.array_equal(np.sort(e1), np.arange(100))
    assert not np.array_equal(e1, np.arange(100))
    dw.manual_seed(123)
    np.testing.assert_array_equal(epoch(), e1)
    np.testing.assert_array_equal(epoch(), e2)


def test_permutation_drawn_at_iterator_creation():
    ds = TensorDataset(np.arange(50))
    loader = DataLoader(ds, batch_size=10, shuffle=True, prefetch=2)
    dw.manual_seed(5)
    it = iter(loader)
    dw.random.generator().random(1000)  # main-thread draws after iter() must not change the order
    first = np.concatenate([b[0].numpy() for b in it])
    dw.manual_seed(5)
    second = np.concatenate([b[0].numpy() for b in DataLoader(ds, batch_size=10, shuffle=True, prefetch=0)])
    np.testing.assert_array_equal(first, second)


def test_collate_tuples_dicts_dtypes():
    samples = [
        {"x": np.ones(2, dtype=np.float64) * i, "label": i, "w": 0.5 * i, "flag": i % 2 == 0, "name": f"s{i}"}
        for i in range(3)
    ]
    batch = default_collate(samples)
    assert batch["x"].dtype == np.float32 and batch["x"].shape == (3, 2)
    assert batch["label"].dtype == np.int64
    np.testing.assert_array_equal(batch["label"].numpy(), [0, 1, 2])
    assert batch["w"].dtype == np.float32
    assert batch["flag"].dtype == np.bool_
    assert batch["name"] == ["s0", "s1", "s2"]

    tup = default_collate([(np.zeros((2, 2), np.uint8), [1, 2.5]) for _ in range(4)])
    assert isinstance(tup, tuple) and len(tup) == 2
    assert tup[0].dtype == np.uint8 and tup[0].shape == (4, 2, 2)
    assert isinstance(tup[1], tuple) and tup[1][0].dtype == np.int64 and tup[1][1].dtype == np.float32
    np.testing.assert_array_equal(tup[1][1].numpy(), [2.5] * 4)


def test_collate_errors_are_clear():
    with pytest.raises(ValueError, match=r"sample 0 has shape \(2,\) but sample 1 has \(3,\)"):
        default_collate([np.zeros(2), np.zeros(3)])
    with pytest.raises(ValueError, match="different lengths"):
        default_collate([(1, 2), (1,)])
    with pytest.raises(TypeError, match="collate_fn"):
        default_collate([object(), object()])
    with pytest.raises(KeyError, match="'b'"):
        default_collate([{"a": 1, "b": 2}, {"a": 1}])


@pytest.mark.parametrize("prefetch", [0, 2])
def test_per_item_dataset_collates(prefetch):
    loader = DataLoader(ItemDataset(5), batch_size=2, prefetch=prefetch)
    batches = list(loader)
    assert len(batches) == 3
    x, y = batches[0]
    assert x.dtype == np.float32 and x.shape == (2, 3)
    assert y.dtype == np.int64
    np.testing.assert_array_equal(y.numpy(), [0, 1])
    np.testing.assert_array_equal(batches[2][0].numpy(), [[4, 4, 4]])


def test_fast_path_matches_per_item_path():
    x = np.random.default_rng(1).normal(size=(23, 4))
    y = np.arange(23)
    fast = TensorDataset(x, y)
    calls = []

    class Wrapped(Dataset):
        def __len__(self):
            return 23

        def __getitem__(self, i):
            calls.append(i)
            return fast[i]

    dw.manual_seed(0)
    a = list(DataLoader(fast, batch_size=5, shuffle=True))
    dw.manual_seed(0)
    b = list(DataLoader(Wrapped(), batch_size=5, shuffle=True))
    assert len(calls) == 23
    for (xa, ya), (xb, yb) in zip(a, b):
        assert xa.dtype == xb.dtype == np.float32
        np.testing.assert_array_equal(xa.numpy(), xb.numpy())
        np.testing.assert_array_equal(ya.numpy(), yb.numpy())


def test_fast_path_is_one_call_per_batch():
    calls = []

    class Counting(TensorDataset):
        def __getitem__(self, index):
            raise AssertionError("the fast path must not fetch items one by one")

        def __getitems__(self, indices):
            calls.append(len(indices))
            return super().__getitems__(indices)

    loader = DataLoader(Counting(np.arange(100)), batch_size=32)
    assert sum(b[0].shape[0] for b in loader) == 100
    assert calls == [32, 32, 32, 4]


def test_custom_collate_fn_gets_list_of_samples():
    ds = TensorDataset(np.arange(6))
    seen = []

    def collate(samples):
        seen.append(len(samples))
        return sum(int(s[0]) for s in samples)

    assert list(DataLoader(ds, batch_size=4, collate_fn=collate)) == [0 + 1 + 2 + 3, 4 + 5]
    assert seen == [4, 2]


class Boom(Dataset):
    def __len__(self):
        return 10

    def __getitem__(self, i):
        if i == 6:
            raise_from_dataset(i)
        return np.float32(i)


def raise_from_dataset(i):
    raise KeyError(f"sample {i} is broken")


def test_worker_exception_reraised_with_original_traceback():
    loader = DataLoader(Boom(), batch_size=3, prefetch=2)
    got = []
    with pytest.raises(KeyError, match="sample 6 is broken") as info:
        for b in loader:
            got.append(b)
    assert len(got) == 2  # batches 0 and 1 arrived before the failing batch 2
    frames = [f.name for f in traceback.extract_tb(info.value.__traceback__)]
    assert "raise_from_dataset" in frames and "__getitem__" in frames
    time.sleep(0.05)
    assert _prefetch_threads() == []


def test_exception_without_prefetch_is_the_same_error():
    with pytest.raises(KeyError, match="sample 6 is broken"):
        list(DataLoader(Boom(), batch_size=3, prefetch=0))


def test_early_break_leaves_no_thread():
    ds = ItemDataset(1000)  # per-sample work: fetched by the prefetch thread (plain arrays never start one)
    loader = DataLoader(ds, batch_size=1, prefetch=4)
    for _ in range(3):
        for i, _b in enumerate(loader):
            if i == 2:
                break
        assert _prefetch_threads() == []
    it = iter(loader)
    next(it)
    assert len(_prefetch_threads()) == 1
    it.close()
    assert _prefetch_threads() == []
    with pytest.raises(StopIteration):
        next(it)


def test_full_iteration_leaves_no_thread():
    list(DataLoader(ItemDataset(10), batch_size=3, prefetch=1))
    assert _prefetch_threads() == []


def test_prefetch_output_equals_serial_output_with_random_transform():
    def noisy(batch):
        return batch + rng().normal(size=batch.shape)

    x = np.zeros((40, 3))
    ds = TensorDataset(x, np.arange(40), transform=noisy)
    out = {}
    for prefetch in (0, 1, 3):
        dw.manual_seed(11)
        epochs = []
        for _ in range(2):
            got = []
            for xb, _yb in DataLoader(ds, 6, shuffle=True, prefetch=prefetch):
                got.append(xb.numpy())
                dw.random.generator().random(7)  # main-thread draws while batches are prepared (dropout)
            epochs.append(np.concatenate(got))
        out[prefetch] = epochs
    for p in (1, 3):
        for e in range(2):
            np.testing.assert_array_equal(out[0][e], out[p][e])
    assert not np.array_equal(out[0][0], out[0][1])
    assert np.abs(out[0][0]).max() > 0


class RankSampler(Sampler):
    """A stand-in for a distributed sampler: this rank's share of an epoch-seeded permutation."""

    def __init__(self, n, rank, world):
        self.n, self.rank, self.world, self.epoch = n, rank, world, None
        self.epochs_seen = []

    def set_epoch(self, epoch):
        self.epoch = epoch
        self.epochs_seen.append(epoch)

    def __iter__(self):
        perm = np.random.default_rng(self.epoch).permutation(self.n)
        return iter(perm[self.rank::self.world].tolist())

    def __len__(self):
        return len(range(self.rank, self.n, self.world))


def test_sampler_set_epoch_hook():
    ds = TensorDataset(np.arange(20))
    samplers = [RankSampler(20, r, 2) for r in range(2)]
    loaders = [DataLoader(ds, batch_size=4, sampler=s) for s in samplers]
    assert len(loaders[0]) == 3
    seen = []
    for _epoch in range(2):
        parts = [np.concatenate([b[0].numpy() for b in ld]) for ld in loaders]
        assert np.array_equal(np.sort(np.concatenate(parts)), np.arange(20))  # ranks cover the data once
        seen.append(parts[0])
    assert samplers[0].epochs_seen == [0, 1]
    assert not np.array_equal(seen[0], seen[1])
    loaders[0].set_epoch(7)
    list(loaders[0])
    assert samplers[0].epochs_seen[-1] == 7


def test_batch_sampler_argument_and_conflicts():
    ds = TensorDataset(np.arange(7))
    bs = BatchSampler(SequentialSampler(ds), 3, drop_last=False)
    assert list(bs) == [[0, 1, 2], [3, 4, 5], [6]]
    loader = DataLoader(ds, batch_sampler=bs)
    assert len(loader) == 3
    np.testing.assert_array_equal(list(loader)[2][0].numpy(), [6])
    loader = DataLoader(ds, batch_sampler=[[6, 0], [3]])
    assert [b[0].numpy().tolist() for b in loader] == [[6, 0], [3]]
    with pytest.raises(ValueError, match="batch_sampler"):
        DataLoader(ds, batch_size=2, batch_sampler=bs)
    with pytest.raises(ValueError, match="not both"):
        DataLoader(ds, shuffle=True, sampler=SequentialSampler(ds))
    with pytest.raises(ValueError, match="prefetch"):
        DataLoader(ds, prefetch=-1)
    with pytest.raises(ValueError, match="batch_size"):
        DataLoader(ds, batch_size=0)


def test_random_sampler_replacement_and_num_samples():
    ds = TensorDataset(np.arange(5))
    dw.manual_seed(0)
    s = RandomSampler(ds, num_samples=12)
    idx = list(s)
    assert len(idx) == 12 == len(s)
    assert sorted(idx[:5]) == list(range(5)) and sorted(idx[5:10]) == list(range(5))
    r = RandomSampler(ds, replacement=True, num_samples=200)
    draws = np.array(list(r))
    assert draws.min() >= 0 and draws.max() <= 4 and len(np.unique(draws)) == 5
    with pytest.raises(ValueError, match="num_samples"):
        RandomSampler(ds, num_samples=0)
