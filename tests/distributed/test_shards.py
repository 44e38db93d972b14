"""The pieces of data-parallel fit that need no MPI: how batches are split over ranks, and how the
ranks' metric states merge into the state of one pass over all the data."""

from __future__ import annotations

import numpy as np
import pytest

import deepwise as dw
from deepwise.data import BatchSampler, RandomSampler, SequentialSampler
from deepwise.data.distributed import ShardedBatchSampler, StridedBatchSampler
from deepwise.train import metrics as M
from deepwise.train.parallel import decode, encode


def _data(n):
    return list(range(n))


@pytest.mark.parametrize("world", [2, 3])
def test_shares_of_every_batch_are_contiguous_disjoint_and_make_up_the_batch(world):
    dw.manual_seed(3)
    whole = [b.tolist() for b in BatchSampler(RandomSampler(_data(22)), 8).epoch_batches()]
    parts = []
    for rank in range(world):
        dw.manual_seed(3)  # every rank's generator agrees when the epoch is drawn
        s = ShardedBatchSampler(BatchSampler(RandomSampler(_data(22)), 8), world, rank)
        parts.append([b.tolist() for b in s.epoch_batches()])
        assert len(s) == 3 and s.global_sizes == [8, 8, 6]
        assert s.shares == [len(np.array_split(np.arange(k), world)[rank]) for k in (8, 8, 6)]
    for k, batch in enumerate(whole):
        assert sum((parts[r][k] for r in range(world)), []) == batch


def test_a_batch_smaller_than_the_world_gives_stand_ins_of_share_zero():
    s = ShardedBatchSampler(BatchSampler(SequentialSampler(_data(9)), 4), 3, 2)
    batches = s.epoch_batches()
    assert [b.tolist() for b in batches] == [[3], [7], [8]]  # the last batch [8] has nothing for rank 2
    assert s.shares == [1, 1, 0] and s.global_sizes == [4, 4, 1]


def test_evaluation_takes_whole_batches_in_turn_each_sample_once():
    inner = BatchSampler(SequentialSampler(_data(13)), 4)
    seen = []
    for rank in range(3):
        s = StridedBatchSampler(inner, 3, rank)
        got = [b.tolist() for b in s.epoch_batches()]
        assert len(s) == len(got) == [2, 1, 1][rank]
        seen += sum(got, [])
    assert sorted(seen) == list(range(13))
    with pytest.raises(ValueError, match="rank must be in"):
        StridedBatchSampler(inner, 2, 2)


def _mean_diff(p, t):
    return float((p.array - t.array).mean())


MAKERS = [M.Accuracy, M.F1Score, M.ConfusionMatrix, M.MeanSquaredError, M.R2Score,
          lambda: M.MeanMetricWrapper(_mean_diff)]


@pytest.mark.parametrize("make", MAKERS)
def test_merged_states_of_parts_give_the_metric_of_the_whole(make):
    g = np.random.default_rng(0)
    metric = make()
    if isinstance(metric, (M.MeanSquaredError, M.R2Score, M.MeanMetricWrapper)):
        pred = g.normal(size=(30, 2)).astype(np.float32)
        target = (pred + g.normal(size=(30, 2))).astype(np.float32)
    else:
        pred = g.normal(size=(30, 4)).astype(np.float32)
        target = g.integers(0, 4, 30)
    metric.update(dw.tensor(pred), dw.tensor(target))
    whole = metric.result()
    states = []
    for a, b in [(0, 7), (7, 7), (7, 19), (19, 30)]:  # one rank saw nothing
        part = make()
        if a < b:
            part.update(dw.tensor(pred[a:b]), dw.tensor(target[a:b]))
        states.append(decode(encode(part.state_dict())))  # as states travel between ranks
    merged = make()
    merged.load_state_dict(merged.merge_state_dicts(states))
    np.testing.assert_allclose(merged.result(), whole, rtol=1e-6)  # float32 batch values summed apart
