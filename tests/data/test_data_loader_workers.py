"""DataLoader with PyTorch's arguments: worker processes (seeded, in order, errors with their
traceback, clean shutdown, persistent), worker_init_fn, generator, prefetch_factor, pin_memory, and
a RandomSampler whose epoch is drawn lazily."""

from __future__ import annotations

import os
import random

import numpy as np
import pytest

import deepwise as dw
from deepwise.data import DataLoader, Dataset, RandomSampler, TensorDataset
from deepwise.utils.data import get_worker_info


class Probe(Dataset):
    """Each sample: its index, the worker id and pid that fetched it, and a draw from each generator."""

    def __init__(self, n=40, fail_at=None):
        self.n, self.fail_at = n, fail_at

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        if i == self.fail_at:
            raise ValueError(f"sample {i} is broken")
        info = get_worker_info()
        return (np.float32(i), -1 if info is None else info.id, os.getpid(),
                float(dw.rand(1).item()), float(np.random.rand()), random.random())


def test_workers_are_processes_delivering_batches_in_order():
    loader = DataLoader(Probe(), batch_size=3, num_workers=2)
    batches = list(loader)
    assert [b[0].numpy().tolist() for b in batches] == [list(map(float, range(k, min(k + 3, 40))))
                                                       for k in range(0, 40, 3)]
    workers = {int(w) for b in batches for w in b[1]}
    pids = {int(p) for b in batches for p in b[2]}
    assert workers == {0, 1} and len(pids) == 2 and os.getpid() not in pids
    # round robin: batch k comes from worker k % 2
    assert [int(b[1][0]) for b in batches] == [k % 2 for k in range(len(batches))]
    assert get_worker_info() is None


def test_workers_give_the_same_batches_as_the_main_process_for_plain_data():
    x = np.arange(60, dtype=np.float32).reshape(30, 2)
    y = np.arange(30)
    dw.manual_seed(5)
    serial = [(a.numpy(), b.numpy()) for a, b in DataLoader(TensorDataset(x, y), batch_size=4, shuffle=True)]
    dw.manual_seed(5)
    parallel = [(a.numpy(), b.numpy()) for a, b in DataLoader(TensorDataset(x, y), batch_size=4, shuffle=True,
                                                             num_workers=3, prefetch_factor=1)]
    assert len(serial) == len(parallel) == 8
    for (a1, b1), (a2, b2) in zip(serial, parallel):
        np.testing.assert_array_equal(a1, a2)
        np.testing.assert_array_equal(b1, b2)


def test_each_worker_is_seeded_differently_and_reproducibly():
    def draws():
        dw.manual_seed(11)
        return [b for b in DataLoader(Probe(8), batch_size=4, num_workers=2)]

    first, second = draws(), draws()
    for col in (3, 4, 5):  # deepwise's generator, NumPy's global one, Python's random
        w0 = first[0][col].numpy() if hasattr(first[0][col], "numpy") else first[0][col]
        w1 = first[1][col].numpy() if hasattr(first[1][col], "numpy") else first[1][col]
        assert not np.allclose(np.asarray(w0, float), np.asarray(w1, float))
        for a, b in zip(first, second):
            np.testing.assert_array_equal(np.asarray(a[col], float), np.asarray(b[col], float))


def test_generator_decides_shuffling_and_worker_seeds():
    def run(seed):
        g = dw.Generator().manual_seed(seed)
        return [b[0].numpy().tolist() for b in DataLoader(Probe(12), batch_size=4, shuffle=True, generator=g,
                                                         num_workers=2)]

    assert run(1) == run(1) and run(1) != run(2)


def _init(worker_id):
    info = get_worker_info()
    info.dataset.tag = 100 + worker_id


class Tagged(Probe):
    tag = 0

    def __getitem__(self, i):
        return np.float32(self.tag)


def test_worker_init_fn_runs_in_each_worker_before_fetching():
    tags = [b.numpy().tolist() for b in DataLoader(Tagged(8), batch_size=2, num_workers=2, worker_init_fn=_init)]
    assert tags == [[100.0, 100.0], [101.0, 101.0], [100.0, 100.0], [101.0, 101.0]]


def test_a_worker_error_is_raised_with_its_traceback_and_workers_stop():
    loader = DataLoader(Probe(fail_at=13), batch_size=4, num_workers=2)
    it = iter(loader)
    with pytest.raises(ValueError) as info:
        list(it)
    text = str(info.value)
    assert "DataLoader worker process 1" in text and "batch 3" in text
    assert "sample 13 is broken" in text and "__getitem__" in text  # the worker's traceback
    for w in it._pool._workers:
        assert not w.is_alive()


def test_leaving_early_shuts_workers_down():
    it = iter(DataLoader(Probe(), batch_size=2, num_workers=2))
    next(it)
    workers = it._pool._workers
    it.close()
    assert all(not w.is_alive() for w in workers)


def test_persistent_workers_survive_epochs():
    loader = DataLoader(Probe(8), batch_size=4, num_workers=2, persistent_workers=True)
    pids = [sorted({int(p) for b in loader for p in b[2]}) for _ in range(3)]
    assert pids[0] == pids[1] == pids[2] and len(pids[0]) == 2
    workers = loader._pool._workers
    loader._pool.shutdown()
    assert all(not w.is_alive() for w in workers)


def test_pytorch_arguments_are_accepted_and_checked():
    loader = DataLoader(Probe(6), batch_size=3, num_workers=0, pin_memory=True, timeout=0, drop_last=True)
    assert [b[0].numpy().tolist() for b in loader] == [[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]]
    with pytest.raises(ValueError, match="prefetch_factor"):
        DataLoader(Probe(), num_workers=0, prefetch_factor=2)
    with pytest.raises(ValueError, match="persistent_workers"):
        DataLoader(Probe(), persistent_workers=True)
    with pytest.raises(ValueError, match="num_workers"):
        DataLoader(Probe(), num_workers=-1)


def test_random_sampler_with_a_huge_num_samples_draws_lazily():
    sampler = RandomSampler(range(10), replacement=True, num_samples=10**10)
    assert len(sampler) == 10**10
    loader = DataLoader(list(range(10)), batch_size=5, sampler=sampler)
    assert len(loader) == 2 * 10**9
    it = iter(loader)
    got = np.concatenate([next(it).numpy() for _ in range(200)])
    assert got.shape == (1000,) and got.min() >= 0 and got.max() <= 9 and len(set(got.tolist())) == 10
    first = list(zip(range(5), iter(sampler)))
    assert len(first) == 5
