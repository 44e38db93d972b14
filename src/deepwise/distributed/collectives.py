"""Collectives over the process group, PyTorch's names and meaning: ``all_reduce`` and ``broadcast``
change the tensor in place on every rank, ``all_gather`` fills a list, the ``*_object`` forms move small
JSON-able Python values (never pickle: a peer's bytes are only ever parsed as JSON).

In a world of one process each is the identity. Tensors on a GPU are staged through host memory (the
MPICH wheels are not CUDA-aware).
"""

from __future__ import annotations

import json

import numpy as np

from deepwise import backend
from deepwise.distributed import group as _group
from deepwise.tensor import Tensor

__all__ = [
    "ReduceOp",
    "Work",
    "all_gather",
    "all_gather_into_tensor",
    "all_gather_object",
    "all_reduce",
    "barrier",
    "broadcast",
    "broadcast_object_list",
    "host_array",
    "reduce_array",
]


class ReduceOp:
    """How ``all_reduce`` combines the ranks' values (PyTorch's ``dist.ReduceOp`` names)."""

    SUM = "sum"
    PRODUCT = "product"
    MIN = "min"
    MAX = "max"
    AVG = "avg"


_OPS = {"sum": "SUM", "product": "PROD", "min": "MIN", "max": "MAX", "avg": "SUM"}


class Work:
    """What an ``async_op=True`` collective returns: ``wait()`` finishes it (PyTorch's ``Work``)."""

    def __init__(self, request=None, finish=None, what=""):
        self._request = request
        self._finish = finish
        self._what = what
        self._done = request is None

    def is_completed(self) -> bool:
        if not self._done and self._request.Test():
            self._complete()
        return self._done

    def wait(self, timeout=None) -> bool:
        if not self._done:
            _group.wait(self._request, self._what)
            self._complete()
        return True

    def _complete(self):
        self._done = True
        if self._finish is not None:
            self._finish()
            self._finish = None


def _tensor(what, t):
    if not isinstance(t, Tensor):
        raise TypeError(f"{what}: expected a deepwise Tensor, got {type(t).__name__}")
    return t


def _op_name(what, op):
    name = op.lower() if isinstance(op, str) else None
    if name not in _OPS:
        raise ValueError(f"{what}: op must be one of ReduceOp.SUM, PRODUCT, MIN, MAX, AVG; got {op!r}")
    return name


def host_array(array):
    """A C-contiguous host copy of ``array`` when it is not one already (GPU arrays, views)."""
    if isinstance(array, np.ndarray):
        return np.ascontiguousarray(array)
    return np.ascontiguousarray(backend.cupy_module().asnumpy(array))


def _store(tensor, host):
    """Write host values back into the tensor's array (in place, keeping its device)."""
    if tensor.array is host:
        return
    xp = backend.get_array_module(tensor.array)
    xp.copyto(tensor.array, xp.asarray(host))


def _start(what):
    world = _group.current()
    if not world.initialized:
        raise RuntimeError(f"{what}: call deepwise.distributed.init_process_group(backend='mpi') first")
    world.calls += 1
    return world


def reduce_array(array, op: str = "sum", async_op: bool = False):
    """All-reduce a host NumPy array in place (the engine under ``all_reduce`` and DDP's buckets);
    returns a ``Work`` when ``async_op``."""
    what = f"all_reduce({op})"
    world = _start(what)
    name = _op_name("all_reduce", op)
    if world.comm is None:
        return Work() if async_op else None

    def finish():
        if name == "avg":
            array[...] = array / world.size

    request = world.comm.Iallreduce(world.MPI.IN_PLACE, array, op=getattr(world.MPI, _OPS[name]))
    work = Work(request, finish, what)
    if async_op:
        return work
    work.wait()
    return None


def all_reduce(tensor, op=ReduceOp.SUM, group=None, async_op: bool = False):
    """Combine ``tensor`` over all ranks with ``op``; every rank ends with the result, in place."""
    what = "all_reduce"
    _tensor(what, tensor)
    name = _op_name(what, op)
    if name == "avg" and not backend.is_floating(tensor.dtype):
        raise TypeError(f"{what}: ReduceOp.AVG needs a floating tensor, got {tensor.dtype}")
    host = host_array(tensor.array)
    work = reduce_array(host, name, async_op=True)
    previous = work._finish

    def finish():
        if previous is not None:
            previous()
        _store(tensor, host)

    work._finish = finish
    if work._done:
        work._complete()
    if async_op:
        return work
    work.wait()
    return None


def broadcast(tensor, src: int = 0, group=None, async_op: bool = False):
    """Copy rank ``src``'s ``tensor`` into ``tensor`` on every rank, in place."""
    what = f"broadcast(src={src})"
    _tensor("broadcast", tensor)
    world = _start(what)
    if not 0 <= src < world.size:
        raise ValueError(f"broadcast: src={src} is not a rank of this world of {world.size}")
    if world.comm is None:
        return Work() if async_op else None
    host = host_array(tensor.array)
    work = Work(world.comm.Ibcast(host, root=src), lambda: _store(tensor, host), what)
    if async_op:
        return work
    work.wait()
    return None


def all_gather_into_tensor(output_tensor, input_tensor, group=None, async_op: bool = False):
    """Rank r's ``input_tensor`` into slice r of ``output_tensor`` (size world x input along dim 0)."""
    what = "all_gather_into_tensor"
    _tensor(what, output_tensor)
    _tensor(what, input_tensor)
    world = _start(what)
    want = (world.size * input_tensor.shape[0], *input_tensor.shape[1:]) if input_tensor.ndim else (world.size,)
    if tuple(output_tensor.shape) != want or output_tensor.dtype != input_tensor.dtype:
        raise ValueError(f"{what}: output must have shape {want} and dtype {input_tensor.dtype} for "
                         f"{world.size} rank(s) of input {tuple(input_tensor.shape)}, got "
                         f"{tuple(output_tensor.shape)} {output_tensor.dtype}")
    src = host_array(input_tensor.array)
    if world.comm is None:
        _store(output_tensor, src.reshape(want))
        return Work() if async_op else None
    out = np.empty(want, dtype=src.dtype)
    work = Work(world.comm.Iallgather(src, out), lambda: _store(output_tensor, out), what)
    if async_op:
        return work
    work.wait()
    return None


def all_gather(tensor_list, tensor, group=None, async_op: bool = False):
    """Fill ``tensor_list`` (one tensor per rank, each shaped like ``tensor``) with every rank's ``tensor``."""
    what = "all_gather"
    _tensor(what, tensor)
    world = _start(what)
    if not isinstance(tensor_list, list) or len(tensor_list) != world.size:
        length = len(tensor_list) if hasattr(tensor_list, "__len__") else "?"
        raise ValueError(f"{what}: tensor_list must be a list of {world.size} tensors (one per rank), got "
                         f"{type(tensor_list).__name__} of length {length}")
    for i, t in enumerate(tensor_list):
        _tensor(what, t)
        if tuple(t.shape) != tuple(tensor.shape) or t.dtype != tensor.dtype:
            raise ValueError(f"{what}: tensor_list[{i}] has shape {tuple(t.shape)} {t.dtype}, expected "
                             f"{tuple(tensor.shape)} {tensor.dtype} like the input")
    src = host_array(tensor.array)
    out = np.empty((world.size, *src.shape), dtype=src.dtype)

    def finish():
        for t, piece in zip(tensor_list, out):
            _store(t, piece)

    if world.comm is None:
        out[0] = src
        finish()
        return Work() if async_op else None
    work = Work(world.comm.Iallgather(src, out), finish, what)
    if async_op:
        return work
    work.wait()
    return None


def barrier(group=None, async_op: bool = False):
    """Wait until every rank reaches this call."""
    world = _start("barrier")
    if world.comm is None:
        return Work() if async_op else None
    work = Work(world.comm.Ibarrier(), None, "barrier")
    if async_op:
        return work
    work.wait()
    return None


def _encode(what, obj) -> bytes:
    try:
        return json.dumps(obj, allow_nan=True).encode()
    except (TypeError, ValueError) as e:
        raise TypeError(f"{what}: objects travel as JSON (numbers, strings, lists, dicts, None); "
                        f"{type(obj).__name__} cannot: {e}") from None


def _gather_bytes(world, what, payload: bytes) -> list:
    lengths = np.zeros(world.size, dtype=np.int64)
    mine = np.array([len(payload)], dtype=np.int64)
    _group.wait(world.comm.Iallgather(mine, lengths), what)
    buffer = np.empty(int(lengths.sum()), dtype=np.uint8)
    offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    send = np.frombuffer(payload, dtype=np.uint8)
    _group.wait(world.comm.Iallgatherv(send, [buffer, lengths, offsets, world.MPI.BYTE]), what)
    return [bytes(buffer[o:o + n]) for o, n in zip(offsets, lengths)]


def broadcast_object_list(object_list, src: int = 0, group=None, device=None) -> None:
    """Replace the items of ``object_list`` on every rank by rank ``src``'s (JSON-able values)."""
    what = f"broadcast_object_list(src={src})"
    if not isinstance(object_list, list):
        raise TypeError(f"broadcast_object_list: expected a list, got {type(object_list).__name__}")
    world = _start(what)
    if not 0 <= src < world.size:
        raise ValueError(f"broadcast_object_list: src={src} is not a rank of this world of {world.size}")
    if world.comm is None:
        return
    payload = _encode("broadcast_object_list", object_list) if world.rank == src else b""
    size = np.array([len(payload)], dtype=np.int64)
    _group.wait(world.comm.Ibcast(size, root=src), what)
    buffer = np.frombuffer(payload, dtype=np.uint8).copy() if world.rank == src else np.empty(int(size[0]), np.uint8)
    _group.wait(world.comm.Ibcast(buffer, root=src), what)
    values = json.loads(buffer.tobytes().decode())
    if len(values) != len(object_list):
        raise ValueError(f"broadcast_object_list: rank {src} sent {len(values)} objects, this rank's list has "
                         f"{len(object_list)}; give every rank a list of the same length")
    object_list[:] = values


def all_gather_object(object_list, obj, group=None) -> None:
    """Fill ``object_list`` (length world size) with every rank's ``obj`` (JSON-able values)."""
    what = "all_gather_object"
    world = _start(what)
    if not isinstance(object_list, list) or len(object_list) != world.size:
        raise ValueError(f"{what}: object_list must be a list of length {world.size} (one per rank)")
    payload = _encode(what, obj)
    if world.comm is None:
        object_list[0] = json.loads(payload.decode())
        return
    object_list[:] = [json.loads(p.decode()) for p in _gather_bytes(world, what, payload)]
