"""``deepwise.distributed``: data-parallel training over MPI, with PyTorch's names.

    import deepwise.distributed as dist
    dist.init_process_group(backend="mpi")   # under `mpiexec -n 4 ...`; a world of one without it
    dist.get_rank(), dist.get_world_size()
    dist.all_reduce(t, op=dist.ReduceOp.SUM)  # in place, on every rank
    model = dw.nn.parallel.DistributedDataParallel(model)

See docs/distributed.md for what is averaged, why, and how to launch on several machines.
"""

from deepwise.distributed import nn
from deepwise.distributed.collectives import (
    ReduceOp,
    Work,
    all_gather,
    all_gather_into_tensor,
    all_gather_object,
    all_reduce,
    barrier,
    broadcast,
    broadcast_object_list,
)
from deepwise.distributed.group import (
    GroupMember,
    abort,
    destroy_process_group,
    get_rank,
    get_world_size,
    init_process_group,
    is_available,
    is_initialized,
    is_main_process,
    is_mpi_available,
    launched_by_mpiexec,
    world_size,
)

group = GroupMember

__all__ = [
    "GroupMember",
    "ReduceOp",
    "Work",
    "abort",
    "all_gather",
    "all_gather_into_tensor",
    "all_gather_object",
    "all_reduce",
    "barrier",
    "broadcast",
    "broadcast_object_list",
    "destroy_process_group",
    "get_rank",
    "get_world_size",
    "group",
    "init_process_group",
    "is_available",
    "is_initialized",
    "is_main_process",
    "is_mpi_available",
    "launched_by_mpiexec",
    "nn",
    "world_size",
]
