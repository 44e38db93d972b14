"""Running the deepwise command as a user does: in a subprocess, or on a pseudo-terminal of a given width."""

from __future__ import annotations

import os
import re
import select
import subprocess
import sys
import time

CLI = [sys.executable, "-m", "deepwise.cli"]
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def cli_env(**extra):
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    env.update(OPENBLAS_NUM_THREADS="1", **extra)
    return env


def run(*args, cwd=None, timeout=240, **env):
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=timeout, cwd=cwd,
                          env=cli_env(**env))


def run_in_pty(args, columns, until=None, then=None, timeout=180.0):
    """Run ``deepwise ARGS`` with stdin, stdout and stderr on a pseudo-terminal ``columns`` wide. Once
    ``until()`` is true, ``then(proc)`` is called once (e.g. to press Ctrl-C). Returns (exit code, output)."""
    import fcntl
    import pty
    import struct
    import termios

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))
    proc = subprocess.Popen([*CLI, *args], stdin=slave, stdout=slave, stderr=slave, env=cli_env(), close_fds=True)
    os.close(slave)
    chunks, deadline, done = [], time.time() + timeout, then is None
    try:
        while time.time() < deadline:
            if not done and until():
                then(proc)
                done = True
            ready, _, _ = select.select([master], [], [], 0.1)
            if ready:
                try:
                    data = os.read(master, 65536)
                except OSError:  # the child closed the terminal
                    break
                if not data:
                    break
                chunks.append(data)
        else:
            proc.kill()
            raise AssertionError(f"deepwise {' '.join(args)} did not finish in {timeout} s")
    finally:
        proc.wait(timeout=60)
        os.close(master)
    return proc.returncode, b"".join(chunks).decode("utf-8", "replace").replace("\r\n", "\n")


def screen_lines(text):
    """The pieces of text a terminal shows on a line of their own: split at carriage returns and newlines."""
    return [piece for piece in re.split(r"[\r\n]", _ANSI.sub("", text)) if piece]
