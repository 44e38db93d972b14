"""The process group: who this process is among the processes ``mpiexec`` started, and how they wait
for each other.

``init_process_group(backend="mpi")`` reads the world from MPI (mpi4py over the MPICH wheels of the
``mpi`` extra). Started without ``mpiexec``, it makes a world of one process, where every collective
is the identity, so the same script runs alone or on many processes.

Failure handling, the part that makes MPI usable: a rank that raises would otherwise leave the others
waiting in their next collective for ever. Once the world has more than one process, an exception that
escapes the program aborts the whole job (``MPI_Abort``), so ``mpiexec`` exits non-zero within
seconds. Every collective waits with a timeout (``timeout=`` seconds, default 300, or the
``DEEPWISE_DIST_TIMEOUT`` environment variable): a rank stuck longer prints which rank, which
operation and how long, and aborts the job.
"""

from __future__ import annotations

import datetime
import os
import sys
import time
import traceback

__all__ = [
    "GroupMember",
    "destroy_process_group",
    "get_rank",
    "get_world_size",
    "init_process_group",
    "is_available",
    "is_initialized",
    "is_main_process",
    "is_mpi_available",
    "launched_by_mpiexec",
]

_INSTALL = 'pip install "deepwise[mpi]"   (mpi4py and the MPICH wheels; no compiler or system MPI needed)'
# environment variables the usual launchers set in each process they start
_ABORT_GRACE_S = 0.25  # after a failing rank's last words, before MPI_Abort: time for mpiexec to forward them
_SIZE_VARS = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "PMIX_SIZE", "MPI_LOCALNRANKS")
DEFAULT_TIMEOUT = 300.0


class _World:
    """The state of this process's group: ``comm`` is an ``mpi4py.MPI.Comm`` (None for a world of one)."""

    def __init__(self):
        self.comm = None
        self.MPI = None
        self.rank = 0
        self.size = 1
        self.initialized = False
        self.timeout = DEFAULT_TIMEOUT
        self.calls = 0
        self.previous_hook = None


_WORLD = _World()


class GroupMember:
    """PyTorch's ``group.WORLD`` name: deepwise has one group, the world; ``group=None`` means it."""

    WORLD = None


def is_available() -> bool:
    """True: ``deepwise.distributed`` is part of every install (MPI itself comes with the ``mpi`` extra)."""
    return True


def is_mpi_available() -> bool:
    """Whether mpi4py can be imported (``pip install "deepwise[mpi]"``)."""
    try:
        import mpi4py  # noqa: F401, PLC0415
    except ImportError:
        return False
    return True


def launched_by_mpiexec() -> int:
    """The world size a launcher (mpiexec/mpirun) announced in this process's environment, or 0."""
    for var in _SIZE_VARS:
        value = os.environ.get(var, "")
        if value.isdigit():
            return int(value)
    return 0


def _seconds(timeout) -> float:
    if timeout is None:
        env = os.environ.get("DEEPWISE_DIST_TIMEOUT")
        if env is None:
            return DEFAULT_TIMEOUT
        timeout = env
    if isinstance(timeout, datetime.timedelta):
        return timeout.total_seconds()
    try:
        value = float(timeout)
    except (TypeError, ValueError):
        raise ValueError(f"init_process_group: timeout must be seconds or a timedelta, got {timeout!r}") from None
    if not value > 0:
        raise ValueError(f"init_process_group: timeout must be positive, got {timeout!r}")
    return value


def init_process_group(backend: str = "mpi", init_method=None, timeout=None, world_size: int = -1,
                       rank: int = -1, **kwargs) -> None:
    """Join the world of processes that ``mpiexec`` started (PyTorch's name).

    ``backend``: "mpi" (the only one; "gloo"/"nccl" programs are told so). ``timeout``: seconds (or a
    ``datetime.timedelta``) a collective may wait for the other ranks before the job is aborted.
    ``world_size`` / ``rank``, when given, are checked against what MPI says. Without ``mpiexec`` (and
    without mpi4py) the world is this one process. Calling it twice is an error, as in PyTorch.
    """
    if _WORLD.initialized:
        raise RuntimeError("init_process_group: the process group is already initialized "
                           "(call destroy_process_group() first)")
    if backend is None:
        backend = "mpi"
    if str(backend).lower() != "mpi":
        raise ValueError(f"init_process_group: deepwise runs its processes over MPI only; got backend={backend!r}. "
                         "Use backend='mpi' and launch with: mpiexec -n N python script.py")
    if init_method not in (None, "env://"):
        raise ValueError(f"init_process_group: init_method={init_method!r} is not used with MPI; mpiexec tells "
                         "each process its rank and the world size")
    seconds = _seconds(timeout)
    announced = launched_by_mpiexec()
    if not is_mpi_available():
        if announced > 1:
            raise RuntimeError(f"init_process_group: this process was started by mpiexec with {announced} "
                               f"processes, but mpi4py is not installed. Install it with: {_INSTALL}")
        _set_world(None, None, 0, 1, seconds, rank, world_size)
        return
    from mpi4py import MPI  # noqa: PLC0415

    comm = MPI.COMM_WORLD.Dup()
    _set_world(comm, MPI, comm.Get_rank(), comm.Get_size(), seconds, rank, world_size)


def _set_world(comm, mpi, rank, size, seconds, want_rank, want_size):
    if want_size not in (-1, None) and want_size != size:
        raise ValueError(f"init_process_group: world_size={want_size} was asked for, but mpiexec started "
                         f"{size} process(es)")
    if want_rank not in (-1, None) and want_rank != rank:
        raise ValueError(f"init_process_group: rank={want_rank} was asked for, but MPI says this is rank {rank}")
    _WORLD.comm = comm if size > 1 else None
    _WORLD.MPI = mpi
    _WORLD.rank = rank
    _WORLD.size = size
    _WORLD.timeout = seconds
    _WORLD.calls = 0
    _WORLD.initialized = True
    if size > 1:
        _WORLD.previous_hook = sys.excepthook
        sys.excepthook = _abort_on_exception


def _abort_on_exception(kind, value, tb):
    """An exception escaped the program on one rank: show it, then end every rank of the job.

    The traceback goes out in one write, and the abort waits a moment after it: MPI_Abort tears the
    job down at once, and mpiexec would otherwise drop what it had not yet forwarded of this rank's
    stderr (seen on MPICH: only the traceback's first line arrived)."""
    previous = _WORLD.previous_hook
    if previous is not None and previous is not sys.__excepthook__:
        previous(kind, value, tb)  # a hook of the program's own shows it its way
        text = ""
    else:
        text = "".join(traceback.format_exception(kind, value, tb))
    sys.stderr.write(f"{text}deepwise.distributed: rank {_WORLD.rank} of {_WORLD.size} failed with "
                     f"{kind.__name__}; aborting the whole job\n")
    sys.stderr.flush()
    time.sleep(_ABORT_GRACE_S)
    abort(1)


def abort(code: int = 1) -> None:
    """End every process of the job (MPI_Abort), or this one alone in a world of one."""
    if _WORLD.comm is not None:
        _WORLD.MPI.COMM_WORLD.Abort(code)
    os._exit(code)


def destroy_process_group(group=None) -> None:
    """Leave the process group (PyTorch's name); ``init_process_group`` may be called again after."""
    if not _WORLD.initialized:
        return
    if _WORLD.comm is not None:
        _WORLD.comm.Free()
    if _WORLD.previous_hook is not None:
        sys.excepthook = _WORLD.previous_hook
    _WORLD.__init__()


def is_initialized() -> bool:
    """Whether ``init_process_group`` was called (and ``destroy_process_group`` not since)."""
    return _WORLD.initialized


def _check(what):
    if not _WORLD.initialized:
        raise RuntimeError(f"{what}: call deepwise.distributed.init_process_group(backend='mpi') first")


def get_rank(group=None) -> int:
    """This process's rank, 0 .. world size - 1."""
    _check("get_rank")
    return _WORLD.rank


def get_world_size(group=None) -> int:
    """How many processes the job has."""
    _check("get_world_size")
    return _WORLD.size


def is_main_process() -> bool:
    """True on rank 0, and when no process group is initialized (the process that prints and writes)."""
    return not _WORLD.initialized or _WORLD.rank == 0


def current() -> _World:
    """This process's group state (rank, size, the MPI communicator or None, the timeout)."""
    return _WORLD


def world_size() -> int:
    """The world size, or 1 when no process group is initialized."""
    return _WORLD.size if _WORLD.initialized else 1


def wait(request, what: str) -> None:
    """Wait for a non-blocking MPI request, aborting the job past the group's timeout.

    MPI moves a collective on only while its processes call into MPI, so a waiting rank keeps testing
    the request: busy for the first milliseconds (yielding the core to others between tests, which
    matters when ranks share cores), then with short sleeps, so a long wait (a slow rank, a stall)
    costs little CPU."""
    if request.Test():
        return
    start = time.monotonic()
    yield_ = getattr(os, "sched_yield", None)
    while not request.Test():
        waited = time.monotonic() - start
        if waited < 0.02:
            if yield_ is not None:
                yield_()
        else:
            time.sleep(0.0005)
        if waited > _WORLD.timeout:
            sys.stderr.write(
                f"deepwise.distributed: rank {_WORLD.rank} of {_WORLD.size} waited {waited:.0f} s in {what} "
                f"(collective #{_WORLD.calls}) for the other ranks (timeout {_WORLD.timeout:g} s: "
                "init_process_group(timeout=...) or DEEPWISE_DIST_TIMEOUT); a rank has stalled or "
                "called a different collective. Aborting the job.\n")
            sys.stderr.flush()
            abort(1)
