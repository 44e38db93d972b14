"""Launching real MPI jobs from a test: ``mpiexec -n N python script.py`` on loopback, with a time limit.

Each test writes its worker script, runs it under ``mpiexec`` (the MPICH wheels of the ``mpi`` extra)
and reads what the ranks printed. Without mpiexec or mpi4py the tests skip, saying which is missing.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
import time

import pytest

MPIEXEC = shutil.which("mpiexec")


def _mpi4py():
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        return False
    return True


class MPIJob:
    """The outcome of one job: return code, output of all ranks, and seconds it took."""

    def __init__(self, proc, seconds):
        self.returncode = proc.returncode
        self.stdout = proc.stdout
        self.stderr = proc.stderr
        self.seconds = seconds

    def lines(self, prefix):
        return [line[len(prefix):].strip() for line in self.stdout.splitlines() if line.startswith(prefix)]

    def __repr__(self):
        return f"rc={self.returncode} in {self.seconds:.1f}s\nstdout:\n{self.stdout}\nstderr:\n{self.stderr}"


@pytest.fixture
def mpirun(tmp_path):
    if MPIEXEC is None:
        pytest.skip('mpiexec not found: pip install "deepwise[mpi]" brings MPICH')
    if not _mpi4py():
        pytest.skip('mpi4py not installed: pip install "deepwise[mpi]"')

    def run(n, code, timeout=60, env=None, args=()):
        script = tmp_path / f"job_{time.monotonic_ns()}.py"
        script.write_text(textwrap.dedent(code))
        environ = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
                   **(env or {})}
        start = time.monotonic()
        proc = subprocess.run([MPIEXEC, "-n", str(n), sys.executable, str(script), *args], capture_output=True,
                              text=True, timeout=timeout, env=environ, cwd=tmp_path)
        return MPIJob(proc, time.monotonic() - start)

    return run
