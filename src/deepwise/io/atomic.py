"""Atomic file writes: a reader sees the old file or the new one, never half of either.

The recipe: write to a temporary file in the target's own directory (so the final rename stays on one
file system), flush and fsync it so its bytes are on disk, ``os.replace`` it onto the target (atomic on
POSIX and Windows), then fsync the directory so the rename itself survives a power cut. If anything
raises before the rename, the temporary file is deleted and the previous file is untouched. A process
killed outright (SIGKILL, power loss) can leave a ``.<name>.<random>.tmp`` file behind, but the
target is still the complete old version; ``remove_stale_temps`` deletes such leftovers.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import stat

__all__ = ["atomic_open", "atomic_write_bytes", "atomic_write_text", "remove_stale_temps"]

_MODES = ("wb", "w")


def _fsync_directory(directory: str) -> None:
    """Make a rename in ``directory`` durable. Not every platform can open a directory (Windows
    cannot); there the rename is still atomic, only its durability across a crash is left to the OS."""
    flags = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0)
    try:
        fd = os.open(directory, flags)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _create_temp(directory: str, base: str) -> tuple[int, str]:
    """Open a new, uniquely named file next to the target. ``os.open`` with mode 0o666 lets the
    process umask decide the permissions, as it would for a plain ``open(path, "w")``."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0) | getattr(os, "O_CLOEXEC", 0)
    for _ in range(100):
        tmp = os.path.join(directory, f".{base}.{secrets.token_hex(6)}.tmp")
        try:
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:
            continue
    target = os.path.join(directory, base)
    raise FileExistsError(f"atomic write to {target!r}: could not create a temporary file")


@contextlib.contextmanager
def atomic_open(path, mode: str = "wb", encoding: str = "utf-8", newline: str | None = None):
    """Open ``path`` for writing so that it is replaced all at once when the ``with`` block ends.

    ``mode`` is ``"wb"`` (bytes) or ``"w"`` (text, ``encoding`` UTF-8 by default). Parent directories are
    created. An exception inside the block deletes the temporary file and leaves any previous
    ``path`` exactly as it was. A symlink at ``path`` is followed: the file it points to is replaced.
    If ``path`` already exists, the new file keeps its permission bits.

        with atomic_open("model.safetensors") as f:
            f.write(header)
            f.write(payload)
    """
    if mode not in _MODES:
        raise ValueError(f"atomic_open: mode must be one of {_MODES}, got {mode!r} (appending or reading "
                         "cannot be atomic: the whole file is rewritten)")
    target = os.path.realpath(os.fspath(path))
    directory, base = os.path.split(target)
    if not base:
        raise ValueError(f"atomic_open: {os.fspath(path)!r} names a directory, not a file")
    os.makedirs(directory, exist_ok=True)
    fd, tmp = _create_temp(directory, base)
    try:
        if mode == "wb":
            f = os.fdopen(fd, "wb")
        else:
            f = os.fdopen(fd, "w", encoding=encoding, newline=newline)
    except BaseException:
        os.close(fd)
        _remove_quietly(tmp)
        raise
    try:
        with f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        try:
            os.chmod(tmp, stat.S_IMODE(os.stat(target).st_mode))
        except FileNotFoundError:
            pass
        os.replace(tmp, target)
    except BaseException:
        _remove_quietly(tmp)
        raise
    _fsync_directory(directory)


def _remove_quietly(tmp: str) -> None:
    try:
        os.unlink(tmp)
    except FileNotFoundError:
        pass


def atomic_write_bytes(path, data) -> None:
    """Replace ``path`` with ``data`` (bytes or any buffer) atomically; see :func:`atomic_open`."""
    with atomic_open(path, "wb") as f:
        f.write(data)


def atomic_write_text(path, text: str, encoding: str = "utf-8") -> None:
    """Replace ``path`` with ``text`` atomically; see :func:`atomic_open`."""
    with atomic_open(path, "w", encoding=encoding) as f:
        f.write(text)


_TEMP_NAME = re.compile(r"^\..+\.[0-9a-f]{12}\.tmp$")


def remove_stale_temps(directory) -> list[str]:
    """Delete the ``.<name>.<12 hex digits>.tmp`` files ``atomic_open`` leaves in ``directory`` when its
    process is killed mid-write; returns the paths removed. Call it only while no other process can
    be writing there (the Trainer's run folders hold a lock, see ``deepwise.train.run_folder``):
    a live writer's temporary file has the same name pattern."""
    directory = os.fspath(directory)
    removed = []
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return removed
    for name in names:
        path = os.path.join(directory, name)
        if _TEMP_NAME.match(name) and os.path.isfile(path) and not os.path.islink(path):
            _remove_quietly(path)
            removed.append(path)
    return sorted(removed)
