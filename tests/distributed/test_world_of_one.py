"""deepwise.distributed without mpiexec: a world of one process, where every collective is the identity,
so a data-parallel script also runs alone. Plus DistributedSampler, which needs no MPI at all."""

from __future__ import annotations

import numpy as np
import pytest

import deepwise as dw
import deepwise.distributed as dist
from deepwise.data import DistributedSampler


@pytest.fixture
def world():
    dist.init_process_group(backend="mpi")
    yield
    dist.destroy_process_group()


def test_world_of_one_collectives_are_identities(world):
    assert dist.is_initialized() and dist.get_rank() == 0 and dist.get_world_size() == 1
    t = dw.tensor([1.0, 2.0, 3.0])
    for op in (dist.ReduceOp.SUM, dist.ReduceOp.AVG, dist.ReduceOp.MAX):
        dist.all_reduce(t, op=op)
        np.testing.assert_array_equal(t.array, [1.0, 2.0, 3.0])
    dist.broadcast(t, src=0)
    out = [dw.zeros(3)]
    dist.all_gather(out, t)
    np.testing.assert_array_equal(out[0].array, [1.0, 2.0, 3.0])
    objs = [None]
    dist.all_gather_object(objs, {"a": 1})
    assert objs == [{"a": 1}]
    work = dist.all_reduce(t, async_op=True)
    assert work.wait() and work.is_completed()
    dist.barrier()


def test_init_errors_say_what_to_do(world):
    with pytest.raises(RuntimeError, match="already initialized"):
        dist.init_process_group()


def test_other_backends_are_refused_with_the_launch_line():
    with pytest.raises(ValueError, match="mpiexec -n N"):
        dist.init_process_group(backend="nccl")
    assert not dist.is_initialized()
    with pytest.raises(RuntimeError, match="init_process_group"):
        dist.get_rank()


def test_objects_travel_as_json_only(world):
    with pytest.raises(TypeError, match="JSON"):
        dist.all_gather_object([None], object())


def test_ddp_in_a_world_of_one_is_the_module(world):
    dw.manual_seed(0)
    model = dw.nn.Sequential(dw.nn.Linear(4, 3), dw.nn.ReLU(), dw.nn.Linear(3, 2))
    ddp = dw.nn.parallel.DistributedDataParallel(model)
    x = dw.randn(5, 4)
    ddp(x).sum().backward()
    grads = [p.grad.array.copy() for p in model.parameters()]
    model.zero_grad()
    model(x).sum().backward()
    for g, p in zip(grads, model.parameters()):
        np.testing.assert_array_equal(g, p.grad.array)
    assert set(ddp.state_dict()) == {"module." + k for k in model.state_dict()}


def test_ddp_needs_a_process_group():
    with pytest.raises(RuntimeError, match="init_process_group"):
        dw.nn.parallel.DistributedDataParallel(dw.nn.Linear(2, 2))


def test_sync_batchnorm_alone_is_batchnorm(world):
    dw.manual_seed(0)
    bn = dw.nn.BatchNorm2d(3)
    sync = dw.nn.SyncBatchNorm.convert_sync_batchnorm(dw.nn.Sequential(bn))[0]
    assert isinstance(sync, dw.nn.SyncBatchNorm) and sync.weight is bn.weight
    x = dw.randn(4, 3, 2, 2)
    ref = dw.nn.BatchNorm2d(3)
    np.testing.assert_allclose(sync(x).array, ref(x).array, rtol=1e-6)
    np.testing.assert_allclose(sync.running_var.array, ref.running_var.array, rtol=1e-6)


@pytest.mark.parametrize("n,replicas,drop_last", [(10, 3, False), (10, 3, True), (12, 4, False), (2, 3, False)])
def test_distributed_sampler_shards_are_disjoint_equal_and_cover(n, replicas, drop_last):
    shards = [DistributedSampler(range(n), replicas, r, seed=5, drop_last=drop_last) for r in range(replicas)]
    drawn = [s.epoch_indices() for s in shards]
    assert len({len(d) for d in drawn}) == 1 and len(drawn[0]) == len(shards[0])
    together = np.concatenate(drawn)
    if drop_last:
        assert len(set(together.tolist())) == len(together) == (n // replicas) * replicas
    else:
        assert set(together.tolist()) == set(range(n))
        assert len(together) == -(-n // replicas) * replicas
    if n >= replicas and n % replicas == 0:
        assert len(set(together.tolist())) == n  # no padding needed: disjoint


def test_distributed_sampler_reshuffles_per_epoch_the_same_on_every_rank():
    a = DistributedSampler(range(100), 2, 0, seed=3)
    b = DistributedSampler(range(100), 2, 0, seed=3)
    dw.manual_seed(1)
    first = a.epoch_indices()
    dw.manual_seed(2)  # the global generator plays no part
    np.testing.assert_array_equal(first, b.epoch_indices())
    a.set_epoch(1)
    assert not np.array_equal(first, a.epoch_indices())
    assert list(DistributedSampler(range(6), 2, 1, shuffle=False)) == [1, 3, 5]


def test_distributed_sampler_checks_its_arguments():
    with pytest.raises(ValueError, match="rank must be in"):
        DistributedSampler(range(4), 2, 2)
    with pytest.raises(ValueError, match="num_replicas"):
        DistributedSampler(range(4), 0, 0)


def test_distributed_sampler_feeds_a_dataloader():
    ds = dw.data.TensorDataset(dw.arange(10).float())
    sampler = DistributedSampler(ds, 2, 1, shuffle=False)
    loader = dw.data.DataLoader(ds, batch_size=2, sampler=sampler)
    seen = np.concatenate([b[0].array for b in loader])
    np.testing.assert_array_equal(seen, [1, 3, 5, 7, 9])


def test_trainer_in_an_initialized_world_of_one_trains_as_without_it(world):
    from deepwise import nn

    g = np.random.default_rng(0)
    x = g.standard_normal((40, 4)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64)
    results = []
    for _ in range(2):
        dw.manual_seed(0)
        model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
        trainer = dw.Trainer(model, dw.optim.SGD(model.parameters(), lr=0.1), metrics=["accuracy"])
        history = trainer.fit(x, y, epochs=2, batch_size=16, validation_split=0.25, verbose=0)
        results.append((history.history, trainer.evaluate(x, y), [p.array.copy() for p in model.parameters()]))
        if dist.is_initialized():
            dist.destroy_process_group()  # the second run: no process group at all
    (h1, e1, w1), (h2, e2, w2) = results
    assert h1 == h2 and e1 == e2
    for a, b in zip(w1, w2):
        np.testing.assert_array_equal(a, b)
