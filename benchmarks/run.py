"""Run every benchmark workload and write benchmarks/RESULTS.md.

    python benchmarks/run.py              # all groups
    python benchmarks/run.py core nn      # some groups
    python benchmarks/run.py --rounds 3   # more alternating rounds per framework

A full run also measures data-parallel training over MPI (``bench_dist.py``: 1 and 2 processes, one
thread each) when mpiexec is installed, and model files in and out (``io_export.py``: a 100 MB
PyTorch checkpoint read without pickle, each recipe's ONNX export), and adds them to RESULTS.md.

Each group runs in worker processes, one framework per worker (``DEEPWISE_BENCH_ONLY``), alternating
deepwise and PyTorch for ``--rounds`` rounds; the parent merges the best median of each framework.
``--worker GROUP`` is the worker itself: it runs one group and prints its results as JSON.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from harness import FRAMEWORKS, Result, merge, render, threads  # noqa: E402

GROUPS = ["core", "nn", "cnn", "conv", "rnn", "transformer", "gpt", "latency", "fit"]
_MARK = "DEEPWISE_BENCH_JSON:"


def _worker(group: str) -> None:
    mod = importlib.import_module(f"bench_{group}")
    results = [r.to_json() for r in mod.run()]
    print(_MARK + json.dumps(results), flush=True)


def _spawn(group: str, framework: str, threads: int) -> list[Result]:
    n = str(threads)
    env = dict(os.environ, DEEPWISE_BENCH_ONLY=framework, DEEPWISE_BENCH_THREADS=n, OPENBLAS_NUM_THREADS=n,
               OMP_NUM_THREADS=n, MKL_NUM_THREADS=n)
    if framework == "torch":  # PyTorch as it comes: the worker imports deepwise only to copy weights
        env["DEEPWISE_MALLOC_TUNING"] = "0"
    proc = subprocess.run([sys.executable, os.path.abspath(__file__), "--worker", group], env=env,
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"benchmark worker {group}/{framework} failed (exit {proc.returncode}):\n{proc.stderr}")
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith(_MARK))
    return [Result(**d) for d in json.loads(line[len(_MARK):])]


def _has_torch_side(group: str) -> bool:
    if not getattr(importlib.import_module(f"bench_{group}"), "HAS_TORCH", True):
        return False
    return importlib.util.find_spec("torch") is not None


def _show(r: Result) -> None:
    ratio = "-" if r.ratio is None else f"{r.ratio:.2f}x"
    ms = [("-" if s is None else f"{s * 1e3:9.3f} ms") for s in (r.dw_s, r.torch_s)]
    print(f"{r.group:5s} {r.name:60s} dw {ms[0]}  torch {ms[1]}  ratio {ratio}", flush=True)


def dist_section(rounds: int) -> str:
    """The MPI scaling tables of bench_dist.py, as a RESULTS.md section (a line saying why not, without mpiexec)."""
    import shutil

    import bench_dist

    head = "## Data parallel over MPI (bench_dist.py: 1 thread per process)\n\n"
    if shutil.which("mpiexec") is None:
        return head + 'Not measured: mpiexec not found (pip install "deepwise[mpi]").\n'
    return head + bench_dist.table(bench_dist.measure(rounds)) + "\n"


def io_section() -> str:
    """What io_export.py prints, as a RESULTS.md section (it needs torch to write the checkpoint)."""
    head = "## Model files in and out (io_export.py)\n\n"
    if importlib.util.find_spec("torch") is None:
        return head + "Not measured: PyTorch (which writes the checkpoint read here) is not installed.\n"
    proc = subprocess.run([sys.executable, os.path.join(HERE, "io_export.py")], capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"io_export.py failed (exit {proc.returncode}):\n{proc.stderr}")
    return head + "```\n" + proc.stdout.strip("\n") + "\n```\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("groups", nargs="*", help=f"groups to run (default: {' '.join(GROUPS)})")
    parser.add_argument("--rounds", type=int, default=3, help="alternating worker rounds per framework")
    parser.add_argument("--threads", type=int, nargs="+", default=None,
                        help="thread counts to run (default: all cores, then 1); the first is judged on targets")
    parser.add_argument("--worker", metavar="GROUP", help=argparse.SUPPRESS)
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    if args.worker:
        _worker(args.worker)
        return []
    groups = args.groups or GROUPS
    unknown = sorted(set(groups) - set(GROUPS))
    if unknown:
        parser.error(f"unknown group(s) {', '.join(unknown)}; choose from {', '.join(GROUPS)}")
    cores = threads()
    counts = args.threads or ([cores, 1] if cores > 1 else [1])
    by_threads = {}
    for k, n in enumerate(counts):
        rows = by_threads.setdefault(n, [])
        for g in groups:
            if k > 0 and g == "fit":  # deepwise against itself: one thread count is enough
                continue
            sides = FRAMEWORKS if _has_torch_side(g) else ("deepwise",)
            runs = [_spawn(g, fw, n) for _ in range(args.rounds) for fw in sides]
            for r in merge(runs):
                print(f"[{n} thread{'s' if n != 1 else ''}] ", end="")
                _show(r)
                rows.append(r)
    results = [r for rows in by_threads.values() for r in rows]
    text = render(results, by_threads=by_threads)
    if set(groups) == set(GROUPS):
        text = text.rstrip("\n") + "\n\n" + dist_section(args.rounds) + "\n" + io_section()
    if set(groups) == set(GROUPS) or os.environ.get("DEEPWISE_BENCH_WRITE"):
        with open(os.path.join(HERE, "RESULTS.md"), "w") as fh:
            fh.write(text)
    print(text)
    return results


if __name__ == "__main__":
    main()
