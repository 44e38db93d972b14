"""Run folders (what ``deepwise train`` writes into): one writer at a time, and a way on after any stop.

- ``RunLock(run_dir)``: while held, no other process can train into the folder. It is an OS lock
  (``fcntl.flock`` on POSIX, ``msvcrt.locking`` on Windows) on ``run_dir/.deepwise.lock``, a file that
  also records the holder's pid, so a second ``deepwise train --resume`` of the folder stops at once
  with an error naming the folder and that pid. The OS drops the lock when its process ends, however
  it ends: a lock file left by a killed process is simply taken over. Once held, stale temporary
  files of interrupted atomic writes (``.NAME.HEX.tmp``) are removed. A second ``RunLock`` of
  the folder is refused even within the holding process, unless made with ``nest=True``: then it
  shares this process's hold (``Trainer.fit(checkpoint_dir=d)`` inside ``deepwise train``'s hold of ``d``).
- ``run_state(run_dir)``: ``"new"`` (no ``config.json``), ``"started"`` (a config but no checkpoint
  and no final metrics: the run stopped before its first checkpoint, so it restarts from epoch 0),
  ``"checkpointed"`` (``last.ckpt`` exists: it resumes from there) or ``"finished"``.
- ``load_config(run_dir)``: ``config.json`` read as untrusted JSON (bounded nesting; a missing or
  wrong ``recipe`` field is a clear error naming the file).
"""

from __future__ import annotations

import os

from deepwise.io.atomic import remove_stale_temps
from deepwise.io.checkpoint import CheckpointError, loads_json

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None
    import msvcrt

__all__ = ["LOCK_NAME", "RunLock", "RunLockedError", "load_config", "run_state"]

LOCK_NAME = ".deepwise.lock"
CONFIG_NAME = "config.json"
_MAX_CONFIG_BYTES = 10_000_000
# the run folders this process holds locked (real path -> how many RunLocks hold it): the lock nests
_HELD: dict[str, int] = {}


class RunLockedError(RuntimeError):
    """Another live process holds the run folder's lock."""


def _read_pid(fd: int) -> int | None:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        text = os.read(fd, 64).decode("ascii", "replace").split()
        return int(text[0]) if text and text[0].isdigit() else None
    except (OSError, ValueError):
        return None


def _try_lock(fd: int) -> bool:
    try:
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        else:
            os.lseek(fd, 0, os.SEEK_SET)
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
    except OSError:  # BlockingIOError / PermissionError: someone holds it
        return False
    return True


class RunLock:
    """``with RunLock(run_dir):`` — hold the folder's lock (see the module docstring).

    ``create=False`` refuses a folder that does not exist. ``nest=True``: when this process holds the
    folder's lock already, share that hold (released with it) instead of refusing. After acquiring,
    ``previous_pid`` is the pid the lock file named before (a process that no longer holds it:
    killed, or finished) or None, and ``removed_temps`` lists the stale temporary files deleted."""

    def __init__(self, run_dir, create: bool = True, nest: bool = False):
        self.run_dir = os.fspath(run_dir)
        self.path = os.path.join(self.run_dir, LOCK_NAME)
        self.create = create
        self.nest = nest
        self.previous_pid = None
        self.removed_temps: list[str] = []
        self._fd = None
        self._nested = None

    def acquire(self) -> RunLock:
        if self._fd is not None or self._nested is not None:
            raise RuntimeError(f"RunLock({self.run_dir!r}) is already held by this object")
        key = os.path.realpath(self.run_dir)
        if self.nest and _HELD.get(key):  # this process holds it already: share the hold
            _HELD[key] += 1
            self._nested = key
            return self
        if self.create:
            os.makedirs(self.run_dir, exist_ok=True)
        elif not os.path.isdir(self.run_dir):
            raise FileNotFoundError(f"{self.run_dir} is not a deepwise run folder (no such directory)")
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644)
        if not _try_lock(fd):
            pid = _read_pid(fd)
            os.close(fd)
            holder = f"process {pid}" if pid is not None else "another process"
            raise RunLockedError(f"{self.run_dir} is in use: {holder} is training into it (lock {self.path}); "
                                 "wait for it to finish or stop it, or train into another folder")
        previous = _read_pid(fd)
        self.previous_pid = previous if previous != os.getpid() else None
        if fcntl is None:  # the Windows lock covers byte 0: write the pid after it
            os.lseek(fd, 1, os.SEEK_SET)
            os.write(fd, f"{os.getpid()}\n".encode())
        else:
            os.ftruncate(fd, 0)
            os.lseek(fd, 0, os.SEEK_SET)
            os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        _HELD[key] = 1
        self.removed_temps = remove_stale_temps(self.run_dir)
        return self

    def release(self) -> None:
        if self._nested is not None:
            _HELD[self._nested] -= 1
            self._nested = None
            return
        fd, self._fd = self._fd, None
        if fd is not None:
            _HELD.pop(os.path.realpath(self.run_dir), None)
            os.close(fd)  # closing the file drops the OS lock

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc) -> bool:
        self.release()
        return False


def run_state(run_dir) -> str:
    """``"new"``, ``"started"``, ``"checkpointed"`` or ``"finished"`` (see the module docstring)."""
    run_dir = os.fspath(run_dir)
    if not os.path.exists(os.path.join(run_dir, CONFIG_NAME)):
        return "new"
    if os.path.exists(os.path.join(run_dir, "metrics.json")):
        return "finished"
    if os.path.exists(os.path.join(run_dir, "last.ckpt")):
        return "checkpointed"
    return "started"


def load_config(run_dir) -> dict:
    """``run_dir/config.json`` as a dict with a ``recipe`` name; a clear error naming the file for a
    missing folder or file, invalid or too deeply nested JSON, or a missing ``recipe``."""
    path = os.path.join(os.fspath(run_dir), CONFIG_NAME)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{run_dir} is not a deepwise run folder (no {CONFIG_NAME})")
    if os.path.getsize(path) > _MAX_CONFIG_BYTES:
        raise CheckpointError(f"{path}: {os.path.getsize(path)} bytes, far more than a run's config ever is")
    with open(path, "rb") as fh:
        text = fh.read().decode("utf-8", "replace")
    config = loads_json(text, path, "the run's config")
    if not isinstance(config, dict):
        raise CheckpointError(f"{path}: the run's config is a JSON {type(config).__name__}, expected an object")
    if not isinstance(config.get("recipe"), str):
        raise CheckpointError(f"{path}: the run's config has no 'recipe' name (found keys "
                              f"{sorted(k[:40] for k in config)[:10]})")
    return config
