"""Run a reader on a hostile file in a child process with its memory capped and its time bounded.

``run_bounded(code)`` runs ``code`` (which may set ``result`` to something JSON-able, or raises) in a
fresh interpreter whose address space is capped with ``resource.setrlimit(RLIMIT_AS)`` at what it had
after importing deepwise plus ``extra_mb``, and which is killed after ``timeout`` seconds. It returns a
dict: ``result``, ``error`` (the exception's type name, or None), ``message``, ``rss_mb`` (the peak
resident size growth while ``code`` ran, from ``getrusage``), ``seconds`` and ``timed_out``. A reader
that tries to allocate gigabytes gets a MemoryError there instead of taking the machine down, and the
test sees it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

_PRELUDE = """
import json, resource, sys, time
import numpy as np
import deepwise
from deepwise.data.datasets import cifar, idx
from deepwise.io import checkpoint, safetensors
{preload}

def _vm_bytes():
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[0]) * resource.getpagesize()

_cap = _vm_bytes() + {extra} * 2**20
resource.setrlimit(resource.RLIMIT_AS, (_cap, _cap))
_rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
_t0 = time.perf_counter()
_out = {{"error": None, "message": ""}}
try:
{body}
    _out["result"] = globals().get("result")
except BaseException as exc:
    _out = {{"error": type(exc).__name__, "message": str(exc)[:2000]}}
_out["seconds"] = time.perf_counter() - _t0
_out["rss_mb"] = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - _rss0) / 1024
print("RESULT " + json.dumps(_out))
"""


def run_bounded(code: str, extra_mb: int = 400, timeout: float = 60.0, preload: str = "") -> dict:
    """``preload``: statements run before the cap (imports of big libraries such as torch)."""
    body = textwrap.indent(textwrap.dedent(code).strip() or "pass", "    ")
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    try:
        proc = subprocess.run([sys.executable, "-c", _PRELUDE.format(extra=extra_mb, body=body, preload=preload)],
                              capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return {"error": None, "message": "", "timed_out": True, "seconds": timeout, "rss_mb": float("nan")}
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    assert lines, f"the child process failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}"
    out = json.loads(lines[-1][len("RESULT "):])
    out["timed_out"] = False
    return out
