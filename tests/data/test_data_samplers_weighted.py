"""WeightedRandomSampler and SubsetRandomSampler next to torch.utils.data's, samplers drawing from a
dw.Generator, and random_split with one."""

from __future__ import annotations

import numpy as np
import pytest

import deepwise as dw
from deepwise.utils import data as dwdata

torch = pytest.importorskip("torch")
tdata = torch.utils.data


def test_weighted_sampler_draws_in_proportion_to_the_weights_like_torch():
    w = [1.0, 0.0, 3.0, 4.0]  # need not sum to 1
    dw.manual_seed(0)
    ours = np.array(list(dwdata.WeightedRandomSampler(w, 40000)))
    theirs = np.array(list(tdata.WeightedRandomSampler(w, 40000)))
    expected = np.array(w) / sum(w)
    for got in (ours, theirs):
        assert got.size == 40000 and set(got.tolist()) <= {0, 2, 3}  # weight 0: never drawn
        np.testing.assert_allclose(np.bincount(got, minlength=4) / got.size, expected, atol=0.012)
    assert len(dwdata.WeightedRandomSampler(w, 7)) == len(tdata.WeightedRandomSampler(w, 7)) == 7


def test_weighted_sampler_without_replacement_draws_each_index_at_most_once():
    w = dw.tensor([5.0, 1.0, 1.0, 0.0, 2.0])  # a Tensor, as programs pass it
    dw.manual_seed(3)
    for _ in range(20):
        got = list(dwdata.WeightedRandomSampler(w, 4, replacement=False))
        assert sorted(got) == [0, 1, 2, 4]
    firsts = [next(iter(dwdata.WeightedRandomSampler(w, 1, replacement=False))) for _ in range(3000)]
    assert abs(np.mean(np.array(firsts) == 0) - 5 / 9) < 0.04  # heavier indices come first more often
    # all five: the zero-weight index comes last, as torch.multinomial gives it
    assert list(dwdata.WeightedRandomSampler(w, 5, replacement=False))[-1] == 3
    assert list(tdata.WeightedRandomSampler(torch.tensor(w.tolist()), 5, replacement=False))[-1] == 3
    # the second draw, given the first, is weighted among those left: P(1 after 0) = 1 / (1 + 1 + 2)
    pairs = np.array([list(dwdata.WeightedRandomSampler(w, 2, replacement=False)) for _ in range(4000)])
    after0 = pairs[pairs[:, 0] == 0, 1]
    assert abs(np.mean(after0 == 1) - 0.25) < 0.04 and abs(np.mean(after0 == 4) - 0.5) < 0.04


def test_weighted_sampler_rejects_what_torch_rejects():
    for ours, theirs in ((lambda: dwdata.WeightedRandomSampler([[1.0, 2.0]], 2),
                          lambda: tdata.WeightedRandomSampler([[1.0, 2.0]], 2)),
                         (lambda: dwdata.WeightedRandomSampler([1.0, 2.0], 0),
                          lambda: tdata.WeightedRandomSampler([1.0, 2.0], 0)),
                         (lambda: dwdata.WeightedRandomSampler([1.0, 2.0], 2, replacement=1),
                          lambda: tdata.WeightedRandomSampler([1.0, 2.0], 2, replacement=1))):
        with pytest.raises(ValueError):
            theirs()
        with pytest.raises(ValueError):
            ours()
    with pytest.raises(RuntimeError, match="cannot draw 4 distinct indices"):
        dwdata.WeightedRandomSampler([1.0, 0.0, 2.0], 4, replacement=False)
    with pytest.raises(RuntimeError):
        list(tdata.WeightedRandomSampler([1.0, 0.0, 2.0], 4, replacement=False))
    with pytest.raises(RuntimeError, match="non-negative"):
        dwdata.WeightedRandomSampler([1.0, -1.0], 2)


def test_a_huge_weighted_epoch_is_drawn_lazily():
    sampler = dwdata.WeightedRandomSampler([0.5, 0.5], 10**10)
    it = iter(sampler)
    head = [next(it) for _ in range(100)]
    assert len(sampler) == 10**10 and set(head) <= {0, 1}
    loader = dwdata.DataLoader(dwdata.TensorDataset(np.arange(2.0)), batch_size=8, sampler=sampler)
    (x,) = next(iter(loader))
    assert x.shape == (8,)


def test_a_weighted_sampler_balances_classes_in_a_loader():
    y = np.array([0] * 90 + [1] * 10)
    weights = 1.0 / np.bincount(y)[y]
    dw.manual_seed(1)
    loader = dwdata.DataLoader(dwdata.TensorDataset(np.arange(100), y), batch_size=50,
                               sampler=dwdata.WeightedRandomSampler(weights, 4000))
    labels = np.concatenate([yb.numpy() for _, yb in loader])
    assert labels.size == 4000 and abs(labels.mean() - 0.5) < 0.04


def test_subset_random_sampler_permutes_its_indices_like_torch():
    idx = [7, 3, 9, 11]
    dw.manual_seed(0)
    ours = list(dwdata.SubsetRandomSampler(idx))
    assert sorted(ours) == sorted(list(tdata.SubsetRandomSampler(idx))) == sorted(idx)
    orders = {tuple(dwdata.SubsetRandomSampler(idx)) for _ in range(30)}
    assert len(orders) > 1 and len(dwdata.SubsetRandomSampler(idx)) == 4


def test_samplers_and_random_split_take_a_dw_generator():
    def draws():
        g = dw.Generator().manual_seed(42)
        return (list(dwdata.RandomSampler(range(10), generator=g)),
                list(dwdata.WeightedRandomSampler([1.0, 2.0, 3.0], 6, generator=g)),
                list(dwdata.SubsetRandomSampler([4, 5, 6], generator=g)))

    assert draws() == draws()
    ds = dwdata.TensorDataset(np.arange(10))
    a, b = (dwdata.random_split(ds, [0.7, 0.3], generator=dw.Generator().manual_seed(1)) for _ in range(2))
    assert a[0].indices.tolist() == b[0].indices.tolist() and len(a[0]) == 7 and len(a[1]) == 3
    assert sorted(a[0].indices.tolist() + a[1].indices.tolist()) == list(range(10))
