"""DataLoader(batch_size=None) on a map-style dataset: automatic batching off, each sample the
sampler picks delivered alone with its arrays made Tensors, next to torch.utils.data."""

from __future__ import annotations

import numpy as np
import pytest

import deepwise as dw
from deepwise.utils import data as dwdata

torch = pytest.importorskip("torch")
tdata = torch.utils.data

X = np.arange(12, dtype=np.float32).reshape(6, 2)
Y = np.arange(6)


def _plain(sample):
    return [part.tolist() if hasattr(part, "tolist") else part for part in sample]


def test_unbatched_samples_match_torch_in_order_and_shape():
    ours = list(dwdata.DataLoader(dwdata.TensorDataset(X, Y), batch_size=None))
    theirs = list(tdata.DataLoader(tdata.TensorDataset(torch.from_numpy(X), torch.from_numpy(Y)), batch_size=None))
    assert [_plain(s) for s in ours] == [_plain(s) for s in theirs]
    x, y = ours[0]
    assert isinstance(x, dw.Tensor) and x.shape == (2,) and isinstance(y, dw.Tensor) and y.dtype == dw.int64
    assert len(dwdata.DataLoader(dwdata.TensorDataset(X, Y), batch_size=None)) == 6


class Prebatched(dwdata.Dataset):
    """A dataset whose items are already whole batches (the use batch_size=None is for)."""

    def __len__(self):
        return 3

    def __getitem__(self, i):
        return np.full((4, 2), float(i)), i  # a NumPy batch and a Python int


@pytest.mark.parametrize("workers", [0, 2])
def test_prebatched_items_pass_through_unstacked(workers):
    loader = dwdata.DataLoader(Prebatched(), batch_size=None, num_workers=workers)
    got = list(loader)
    assert [i for _, i in got] == [0, 1, 2]  # Python ints stay ints, as in PyTorch
    assert all(isinstance(x, dw.Tensor) and x.shape == (4, 2) and x.dtype == dw.float32 for x, _ in got)
    assert [i for _, i in tdata.DataLoader(Prebatched(), batch_size=None)] == [0, 1, 2]


def test_unbatched_shuffle_visits_every_sample_once_and_drop_last_is_refused():
    dw.manual_seed(0)
    seen = [int(y) for _, y in dwdata.DataLoader(dwdata.TensorDataset(X, Y), batch_size=None, shuffle=True)]
    assert sorted(seen) == list(range(6))
    with pytest.raises(ValueError, match="mutually exclusive with drop_last"):
        tdata.DataLoader(tdata.TensorDataset(torch.from_numpy(X)), batch_size=None, drop_last=True)
    with pytest.raises(ValueError, match="mutually exclusive with drop_last"):
        dwdata.DataLoader(dwdata.TensorDataset(X), batch_size=None, drop_last=True)


def test_a_collate_fn_converts_each_unbatched_sample():
    loader = dwdata.DataLoader(Prebatched(), batch_size=None, collate_fn=lambda s: s[1] * 10)
    assert list(loader) == [0, 10, 20]
