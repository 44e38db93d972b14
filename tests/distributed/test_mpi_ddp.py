"""DistributedDataParallel and SyncBatchNorm on real 2- and 3-process jobs: N steps on the ranks, each
with its share of every batch, equal N steps of one process on the whole batch."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.mpi

SAME_AS_ONE_PROCESS = r"""
import sys
import numpy as np
import deepwise as dw
import deepwise.distributed as dist
import deepwise.nn.functional as F
from deepwise import nn

dist.init_process_group(backend="mpi")
r, n = dist.get_rank(), dist.get_world_size()

def build(seed):
    dw.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(),
                         nn.Linear(4 * 5 * 5, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 3))

ref = build(0)                                        # one process, the whole batch
model = nn.SyncBatchNorm.convert_sync_batchnorm(build(0 if r == 0 else 100 + r))  # ranks differ
ddp = nn.parallel.DistributedDataParallel(model)                  # ... until rank 0's weights arrive
for (k, a), b in zip(ref.state_dict().items(), model.state_dict().values()):
    assert np.array_equal(a.array, b.array), k
opt_ref = dw.optim.SGD(ref.parameters(), lr=0.1, momentum=0.9)
opt = dw.optim.SGD(ddp.parameters(), lr=0.1, momentum=0.9)
rng = np.random.default_rng(0)
B = 6 * n
for step in range(5):
    x = dw.tensor(rng.standard_normal((B, 2, 5, 5)).astype(np.float32))
    y = dw.tensor(rng.integers(0, 3, B))
    opt_ref.zero_grad()
    F.cross_entropy(ref(x), y).backward()
    opt_ref.step()
    share = slice(r * 6, (r + 1) * 6)
    opt.zero_grad()
    F.cross_entropy(ddp(x[share]), y[share]).backward()
    opt.step()
worst = 0.0
for (k, a), b in zip(ref.state_dict().items(), model.state_dict().values()):
    worst = max(worst, float(np.max(np.abs(a.array.astype(np.float64) - b.array))))
everyone = [None] * n
dist.all_gather_object(everyone, [float(p.array.sum()) for p in model.parameters()])
assert all(e == everyone[0] for e in everyone), "ranks ended with different weights"
sys.stdout.write(f"WORST {worst}\n")
"""


@pytest.mark.parametrize("n", [2, 3])
def test_ranks_with_shares_of_each_batch_equal_one_process_on_the_whole_batch(mpirun, n):
    job = mpirun(n, SAME_AS_ONE_PROCESS, timeout=90)
    assert job.returncode == 0, job
    worst = [float(v) for v in job.lines("WORST")]
    assert len(worst) == n and max(worst) < 1e-5, job


NO_SYNC_AND_UNUSED = r"""
import sys
import numpy as np
import deepwise as dw
import deepwise.distributed as dist
from deepwise import nn

dist.init_process_group(backend="mpi")
r = dist.get_rank()

class Branchy(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Linear(3, 2)
        self.b = nn.Linear(3, 2)      # only rank 1 uses it
        self.never = nn.Linear(3, 2)  # no rank uses it
    def forward(self, x, use_b):
        return self.a(x) + (self.b(x) if use_b else 0)

dw.manual_seed(r)
model = Branchy()
ddp = nn.parallel.DistributedDataParallel(model)
x = dw.ones(4, 3) * (r + 1)
ddp(x, use_b=(r == 1)).sum().backward()
assert model.never.weight.grad is None
# b: rank 0 contributed zero, rank 1 its gradient 4 * 2 = 8 per entry -> mean 4
assert np.allclose(model.b.weight.grad.array, 4.0), model.b.weight.grad
# a: ranks give 4 * 1 and 4 * 2 -> mean 6
assert np.allclose(model.a.weight.grad.array, 6.0), model.a.weight.grad

model.zero_grad()
with ddp.no_sync():
    ddp(x, use_b=False).sum().backward()
local = model.a.weight.grad.array.copy()
assert np.allclose(local, 4.0 * (r + 1))              # not averaged inside no_sync
ddp(x, use_b=False).sum().backward()                  # outside: the sum of both is averaged
assert np.allclose(model.a.weight.grad.array, (8.0 + 16.0) / 2), model.a.weight.grad
sys.stdout.write("OK\n")
"""


def test_unused_parameters_count_as_zero_and_no_sync_accumulates(mpirun):
    job = mpirun(2, NO_SYNC_AND_UNUSED)
    assert job.returncode == 0, job
    assert job.lines("OK") == ["", ""], job


def test_ranks_with_different_models_are_told_where(mpirun):
    job = mpirun(2, """
        import deepwise as dw, deepwise.distributed as dist
        dist.init_process_group(backend="mpi")
        width = 4 if dist.get_rank() == 0 else 5
        dw.nn.parallel.DistributedDataParallel(dw.nn.Sequential(dw.nn.Linear(3, width)))
    """)
    assert job.returncode != 0, job
    assert "rank 1's model differs from rank 0's" in job.stderr and "0.weight (4, 3)" in job.stderr, job
