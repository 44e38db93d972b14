"""IterableDataset (streams batched as they come, sharded over workers with get_worker_info),
ChainDataset and ConcatDataset, each next to torch.utils.data."""

from __future__ import annotations

import numpy as np
import pytest

import deepwise as dw
from deepwise.utils import data as dwdata

torch = pytest.importorskip("torch")
tdata = torch.utils.data


def _range_stream(base):
    """The same sharded stream class, built on deepwise's or torch's IterableDataset."""

    class Range(base.IterableDataset):
        def __init__(self, start, end, shard=True):
            self.start, self.end, self.shard = start, end, shard

        def __iter__(self):
            info = base.get_worker_info()
            if info is None or not self.shard:
                return iter(range(self.start, self.end))
            per = -(-(self.end - self.start) // info.num_workers)  # contiguous shares, the last one shorter
            lo = self.start + info.id * per
            return iter(range(lo, min(lo + per, self.end)))

    return Range


def _plain(batch):
    return batch.tolist() if hasattr(batch, "tolist") else batch


def _epochs(base, loader_kwargs, dataset_args, epochs=1):
    loader = base.DataLoader(_range_stream(base)(*dataset_args), **loader_kwargs)
    return [[_plain(b) for b in loader] for _ in range(epochs)]


@pytest.mark.parametrize("kwargs", [
    dict(batch_size=4), dict(batch_size=4, drop_last=True), dict(batch_size=None),
    dict(batch_size=4, num_workers=2), dict(batch_size=4, num_workers=2, drop_last=True),
    dict(batch_size=None, num_workers=2), dict(batch_size=3, num_workers=2, persistent_workers=True),
], ids=lambda k: ",".join(f"{a}={b}" for a, b in k.items()))
def test_a_stream_is_batched_and_sharded_over_workers_as_in_torch(kwargs):
    epochs = 2 if kwargs.get("persistent_workers") else 1
    ours = _epochs(dwdata, kwargs, (3, 20), epochs)
    theirs = _epochs(tdata, kwargs, (3, 20), epochs)
    assert ours == theirs
    flat = [v for b in ours[0] for v in (b if isinstance(b, list) else [b])]
    if not kwargs.get("drop_last"):
        assert sorted(flat) == list(range(3, 20))  # the shards are disjoint and cover the stream


@pytest.mark.filterwarnings("ignore:This DataLoader will create 3 worker processes")  # torch, on 2 cores
def test_unequal_shards_take_turns_until_each_ends_as_in_torch():
    # 3 workers over 17 samples: shares 6, 6, 5 -> batches of 4 alternate, then the remainders
    kwargs = dict(batch_size=4, num_workers=3)
    assert _epochs(dwdata, kwargs, (3, 20)) == _epochs(tdata, kwargs, (3, 20))


def test_an_unsharded_stream_is_read_once_per_worker():
    ours = _epochs(dwdata, dict(batch_size=5, num_workers=2), (0, 10, False))[0]
    assert ours == [[0, 1, 2, 3, 4], [0, 1, 2, 3, 4], [5, 6, 7, 8, 9], [5, 6, 7, 8, 9]]
    assert ours == _epochs(tdata, dict(batch_size=5, num_workers=2), (0, 10, False))[0]


class Records(dwdata.IterableDataset):
    """Tuples of (float64 array, int) samples, with a length; breaks at ``fail_at`` if given."""

    def __init__(self, n, fail_at=None):
        self.n, self.fail_at = n, fail_at

    def __len__(self):
        return self.n

    def __iter__(self):
        for i in range(self.n):
            if i == self.fail_at:
                raise KeyError(f"record {i} is missing")
            yield np.full(3, float(i)), i


def test_stream_batches_are_collated_tensors_and_len_comes_from_the_dataset():
    loader = dwdata.DataLoader(Records(10), batch_size=4)
    assert len(loader) == 3 and len(dwdata.DataLoader(Records(10), batch_size=4, drop_last=True)) == 2
    x, y = next(iter(loader))
    assert isinstance(x, dw.Tensor) and x.dtype == dw.float32 and x.shape == (4, 3)
    assert y.dtype == dw.int64 and y.tolist() == [0, 1, 2, 3]
    single = next(iter(dwdata.DataLoader(Records(10), batch_size=None)))
    assert isinstance(single[0], dw.Tensor) and single[0].shape == (3,) and single[1] == 0  # ints stay ints
    with pytest.raises(TypeError, match="no __len__"):
        len(dwdata.DataLoader(_range_stream(dwdata)(0, 5)))
    assert bool(_range_stream(dwdata)(0, 5)) is bool(_range_stream(tdata)(0, 5)) is True  # no length, still true


def test_stream_options_a_stream_cannot_take_are_refused_as_in_torch():
    ds = Records(4)
    for kwargs in (dict(shuffle=True), dict(sampler=[0, 1]), dict(batch_sampler=[[0, 1]])):
        with pytest.raises(ValueError, match="IterableDataset: expected unspecified"):
            dwdata.DataLoader(ds, **kwargs)
        with pytest.raises(ValueError, match="IterableDataset: expected unspecified"):
            tdata.DataLoader(_range_stream(tdata)(0, 4), **kwargs)
    with pytest.raises(TypeError, match="no samples by index"):
        ds[0]


def test_an_error_in_a_worker_stream_comes_back_with_its_traceback():
    loader = dwdata.DataLoader(Records(12, fail_at=9), batch_size=2, num_workers=2)
    with pytest.raises(KeyError, match="(?s)worker process.*record 9 is missing"):
        list(loader)


def test_random_transforms_in_a_stream_are_seeded_per_epoch():
    class Noisy(dwdata.IterableDataset):
        def __iter__(self):
            for _ in range(4):
                yield dw.data.rng().normal(size=2)

    def draw():
        dw.manual_seed(5)
        return [b.numpy() for b in dwdata.DataLoader(Noisy(), batch_size=2)]

    a, b = draw(), draw()
    assert all(np.array_equal(u, v) for u, v in zip(a, b))


def test_chain_dataset_and_the_plus_of_streams_as_in_torch():
    ours = dwdata.ChainDataset([_range_stream(dwdata)(0, 3), _range_stream(dwdata)(10, 12)])
    theirs = tdata.ChainDataset([_range_stream(tdata)(0, 3), _range_stream(tdata)(10, 12)])
    assert list(ours) == list(theirs) == [0, 1, 2, 10, 11]
    assert list(_range_stream(dwdata)(0, 2) + _range_stream(dwdata)(5, 6)) == [0, 1, 5]
    assert len(dwdata.ChainDataset([Records(3), Records(4)])) == 7
    assert [b.tolist() for b in dwdata.DataLoader(ours, batch_size=2)] == [[0, 1], [2, 10], [11]]
    with pytest.raises(TypeError, match="expected an IterableDataset"):
        dwdata.ChainDataset([dwdata.TensorDataset(np.zeros(3))])


def test_concat_dataset_indexes_across_its_parts_as_in_torch():
    parts = [np.arange(3), np.arange(10, 12), np.arange(20, 24)]
    ours = dwdata.ConcatDataset([dwdata.TensorDataset(p) for p in parts])
    theirs = tdata.ConcatDataset([tdata.TensorDataset(torch.from_numpy(p)) for p in parts])
    assert len(ours) == len(theirs) == 9 and ours.cumulative_sizes == theirs.cumulative_sizes == [3, 5, 9]
    for i in [*range(9), -1, -9, -4]:
        assert int(ours[i][0]) == int(theirs[i][0]), i
    for bad in (9, -10):
        with pytest.raises((IndexError, ValueError)):
            theirs[bad]
        with pytest.raises((IndexError, ValueError)):
            ours[bad]
    plus = dwdata.TensorDataset(parts[0]) + dwdata.TensorDataset(parts[1])
    assert isinstance(plus, dwdata.ConcatDataset) and [int(plus[i][0]) for i in range(5)] == [0, 1, 2, 10, 11]
    dw.manual_seed(0)
    seen = sorted(v for (b,) in dwdata.DataLoader(ours, batch_size=4, shuffle=True) for v in b.tolist())
    assert seen == sorted(np.concatenate(parts).tolist())
    with pytest.raises(TypeError, match="does not support IterableDataset"):
        dwdata.ConcatDataset([Records(2)])
    with pytest.raises(ValueError, match="empty"):
        dwdata.ConcatDataset([])


class Span(dwdata.IterableDataset):
    def __init__(self, start, end):
        self.start, self.end = start, end

    def __iter__(self):
        return iter(range(self.start, self.end))


def _narrow_to_my_share(worker_id):
    """PyTorch's documented alternative: worker_init_fn narrows the worker's copy of the dataset."""
    info = dwdata.get_worker_info()
    ds = info.dataset
    per = -(-(ds.end - ds.start) // info.num_workers)
    lo = ds.start + worker_id * per
    ds.start, ds.end = lo, min(lo + per, ds.end)


def test_worker_init_fn_can_narrow_each_workers_copy_of_the_stream():
    loader = dwdata.DataLoader(Span(3, 7), num_workers=2, worker_init_fn=_narrow_to_my_share)
    assert [b.tolist() for b in loader] == [[3], [5], [4], [6]]  # torch gives the same order
    assert (loader.dataset.start, loader.dataset.end) == (3, 7)  # the main process's dataset is untouched
