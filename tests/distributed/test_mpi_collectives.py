"""Collectives on real MPI jobs of 2 and 3 processes (launched by the test itself, on loopback)."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.mpi

COLLECTIVES = r"""
import numpy as np
import deepwise as dw
import deepwise.distributed as dist

dist.init_process_group(backend="mpi")
r, n = dist.get_rank(), dist.get_world_size()
t = dw.tensor([float(r + 1), -float(r)])
dist.all_reduce(t)
assert t.array.tolist() == [n * (n + 1) / 2, -n * (n - 1) / 2], t
for op, want in [(dist.ReduceOp.MAX, n), (dist.ReduceOp.MIN, 1), (dist.ReduceOp.AVG, (n + 1) / 2),
                 (dist.ReduceOp.PRODUCT, float(np.prod(np.arange(1, n + 1))))]:
    v = dw.tensor([float(r + 1)])
    dist.all_reduce(v, op=op)
    assert abs(v.item() - want) < 1e-6, (op, v.item(), want)
i = dw.tensor([r, 10 * r], dtype=dw.int64)
dist.all_reduce(i)
assert i.dtype == dw.int64 and i.array.tolist() == [sum(range(n)), 10 * sum(range(n))]
view = dw.arange(6).float().reshape(2, 3)[:, 1]        # not contiguous: written back in place
dist.all_reduce(view)
b = dw.full((2, 2), float(r))
dist.broadcast(b, src=n - 1)
assert (b.array == n - 1).all()
out = [dw.zeros(2) for _ in range(n)]
dist.all_gather(out, dw.tensor([float(r), 2.0 * r]))
assert [o.array.tolist() for o in out] == [[float(k), 2.0 * k] for k in range(n)]
flat = dw.zeros(2 * n)
dist.all_gather_into_tensor(flat, dw.tensor([float(r), 1.0]))
assert flat.array.tolist()[::2] == [float(k) for k in range(n)]
objs = [None] * n
dist.all_gather_object(objs, {"rank": r, "name": "é" * r})
assert objs == [{"rank": k, "name": "é" * k} for k in range(n)]
lst = [r, "x"] if r == 1 else [None, None]
dist.broadcast_object_list(lst, src=1)
assert lst == [1, "x"]
work = dist.all_reduce(dw.ones(3), async_op=True)
work.wait()
dist.barrier()
import sys; sys.stdout.write(f"OK {r}\n"); sys.stdout.flush()
"""


@pytest.mark.parametrize("n", [2, 3])
def test_collectives_agree_on_every_rank(mpirun, n):
    job = mpirun(n, COLLECTIVES)
    assert job.returncode == 0, job
    assert sorted(job.lines("OK")) == [str(k) for k in range(n)]


def test_a_rank_that_raises_ends_the_whole_job_fast(mpirun):
    job = mpirun(2, """
        import time
        import deepwise as dw, deepwise.distributed as dist
        dist.init_process_group(backend="mpi")
        if dist.get_rank() == 1:
            raise ValueError("boom on rank 1")
        dist.all_reduce(dw.ones(1))            # rank 0 would wait here for ever without the abort
        time.sleep(60)
    """, timeout=40)
    assert job.returncode != 0, job
    assert job.seconds < 30, job
    assert "boom on rank 1" in job.stderr and "rank 1 of 2 failed with ValueError" in job.stderr


def test_a_killed_rank_ends_the_whole_job(mpirun):
    job = mpirun(2, """
        import os, signal, time
        import deepwise as dw, deepwise.distributed as dist
        dist.init_process_group(backend="mpi")
        if dist.get_rank() == 1:
            os.kill(os.getpid(), signal.SIGKILL)
        dist.all_reduce(dw.ones(1))
        time.sleep(60)
    """, timeout=40)
    assert job.returncode != 0, job
    assert job.seconds < 30, job


def test_a_stalled_rank_is_named_after_the_timeout(mpirun):
    job = mpirun(2, """
        import time
        import deepwise as dw, deepwise.distributed as dist
        dist.init_process_group(backend="mpi", timeout=2)
        if dist.get_rank() == 1:
            time.sleep(30)                          # never joins the collective in time
        dist.all_reduce(dw.ones(1))
    """, timeout=40)
    assert job.returncode != 0, job
    assert job.seconds < 25, job
    assert "rank 0 of 2 waited" in job.stderr and "all_reduce" in job.stderr, job
