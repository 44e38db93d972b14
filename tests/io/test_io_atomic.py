"""atomic_open / atomic_write_bytes: all or nothing, no temp files left behind."""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from deepwise.io import SafetensorsError, atomic_open, atomic_write_bytes, atomic_write_text
from deepwise.io.safetensors import load_file, save_file

SRC = os.path.join(os.path.dirname(__file__), "..", "..", "src")


def test_write_creates_parents_and_exact_bytes(tmp_path):
    target = tmp_path / "a" / "b" / "out.bin"
    payload = bytes(range(256)) * 10
    atomic_write_bytes(target, payload)
    assert target.read_bytes() == payload
    assert os.listdir(target.parent) == ["out.bin"]


def test_overwrite_replaces_content(tmp_path):
    target = tmp_path / "out.bin"
    atomic_write_bytes(target, b"old contents, long" * 100)
    atomic_write_bytes(target, b"new")
    assert target.read_bytes() == b"new"
    assert os.listdir(tmp_path) == ["out.bin"]


def test_text_mode(tmp_path):
    target = tmp_path / "report.json"
    atomic_write_text(target, '{"ü": 1}\n')
    assert target.read_text(encoding="utf-8") == '{"ü": 1}\n'
    with atomic_open(target, "w") as f:
        f.write("line\n")
    assert target.read_bytes() == b"line\n"


def test_bad_mode_is_refused(tmp_path):
    with pytest.raises(ValueError, match="mode must be one of"):
        with atomic_open(tmp_path / "x", "ab"):
            pass
    assert os.listdir(tmp_path) == []


def test_exception_mid_write_keeps_old_file_and_removes_temp(tmp_path):
    target = tmp_path / "weights.bin"
    old = b"the previous, complete file" * 50
    target.write_bytes(old)
    new = b"N" * 10_000
    with pytest.raises(RuntimeError, match="disk on fire"):
        with atomic_open(target) as f:
            f.write(new[: len(new) // 2])
            raise RuntimeError("disk on fire")
    assert target.read_bytes() == old
    assert os.listdir(tmp_path) == ["weights.bin"]


def test_keyboard_interrupt_mid_write_cleans_up(tmp_path):
    target = tmp_path / "w.bin"
    target.write_bytes(b"old")
    with pytest.raises(KeyboardInterrupt):
        with atomic_open(target) as f:
            f.write(b"half")
            raise KeyboardInterrupt
    assert target.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["w.bin"]


def test_failed_rename_keeps_old_file(tmp_path, monkeypatch):
    target = tmp_path / "w.bin"
    target.write_bytes(b"old")

    def broken_replace(src, dst):
        raise OSError("simulated rename failure")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="simulated rename failure"):
        atomic_write_bytes(target, b"new contents")
    monkeypatch.undo()
    assert target.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["w.bin"]


def test_killed_process_leaves_old_file_intact(tmp_path):
    """A writer killed outright (no cleanup runs) half way through: the target is still the old file."""
    target = tmp_path / "ckpt.safetensors"
    save_file({"w": np.arange(6, dtype=np.float32)}, target)
    before = target.read_bytes()
    script = textwrap.dedent(f"""
        import os
        from deepwise.io import atomic_open
        with atomic_open({str(target)!r}) as f:
            f.write(b"x" * 5000)
            f.flush()
            os._exit(3)
    """)
    env = dict(os.environ, PYTHONPATH=os.path.abspath(SRC) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, timeout=60)
    assert proc.returncode == 3, proc.stderr.decode()
    assert target.read_bytes() == before
    np.testing.assert_array_equal(load_file(target)["w"], np.arange(6, dtype=np.float32))
    leftovers = [n for n in os.listdir(tmp_path) if n != target.name]
    # only the abandoned temp file remains beside it, named so it is easy to recognise
    assert len(leftovers) == 1
    assert leftovers[0].startswith(".ckpt.safetensors.") and leftovers[0].endswith(".tmp")


@pytest.mark.skipif(os.name != "posix", reason="POSIX permission bits")
def test_permissions_kept_for_existing_and_umask_for_new(tmp_path):
    existing = tmp_path / "existing.bin"
    existing.write_bytes(b"old")
    os.chmod(existing, 0o640)
    atomic_write_bytes(existing, b"new")
    assert (os.stat(existing).st_mode & 0o777) == 0o640

    umask = os.umask(0o022)
    os.umask(umask)
    fresh = tmp_path / "fresh.bin"
    atomic_write_bytes(fresh, b"x")
    assert (os.stat(fresh).st_mode & 0o777) == (0o666 & ~umask)


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="needs symlinks")
def test_symlink_target_is_replaced(tmp_path):
    real = tmp_path / "real.bin"
    real.write_bytes(b"old")
    link = tmp_path / "link.bin"
    os.symlink(real, link)
    atomic_write_bytes(link, b"new")
    assert os.path.islink(link)
    assert real.read_bytes() == b"new"


def test_save_file_validates_before_touching_the_file(tmp_path):
    target = tmp_path / "model.safetensors"
    save_file({"a": np.ones(3, np.float32)}, target)
    before = target.read_bytes()
    with pytest.raises(SafetensorsError, match="complex64"):
        save_file({"a": np.zeros(2, np.float32), "b": np.zeros(2, np.complex64)}, target)
    assert target.read_bytes() == before
    assert os.listdir(tmp_path) == ["model.safetensors"]
