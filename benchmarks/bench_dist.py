"""Data-parallel training over MPI: scaling efficiency, the share of a step spent communicating, and a
ring all-reduce cost model fitted from measured all-reduce times, so a user knows what to expect on
more processes or a cluster.

    python benchmarks/bench_dist.py              # prints a markdown table (needs the mpi extra)
    python benchmarks/bench_dist.py --rounds 5

Weak scaling, as the issue defines it: every process keeps the same per-process batch, so N processes
train N times the samples per step. Efficiency = samples/s of N processes / (N x samples/s of one).
Each configuration runs in its own ``mpiexec -n N`` job with one thread per process, alternating
1 and 2 processes over the rounds (the order flips every round); each number is the median over rounds
of the median step of a job (the slowest rank's).

A step is forward + backward (inside ``no_sync``), the gradient average (``average_gradients``: the
buckets all-reduced, as ``Trainer.fit`` does before each optimizer step) and the SGD step. The
communication share is the time inside the gradient average over the whole step; it includes waiting
for the slower rank, which on a shared 2-core machine is most of it.

The cost model: a ring all-reduce of m bytes over N processes sends 2(N-1) messages of m/N bytes per
process, so t(N, m) = 2(N-1) alpha + 2(N-1)/N m / B. alpha (latency) and B (bandwidth) are fitted to
the fastest all-reduce times measured on 2 processes over message sizes from 1 KiB to 16 MiB (the cost
of the machine's own path, free of the scheduling noise of a shared machine; the medians are shown
beside them); the predicted
efficiency at N is compute / (compute + t(N, gradient bytes)) with compute the one-process step.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))

# name -> (what, per-process batch)
MODELS = {
    "mlp": ("MLP 784-512-512-10", 128),
    "digits-cnn": ("the digits-cnn recipe's CNN, 1x8x8", 64),
    "small-vgg": ("SmallVGG (6 conv + BN), 3x16x16", 16),
}
STEPS, WARMUP = 12, 3
SIZES = [2**k for k in range(10, 25, 2)]  # bytes: 1 KiB .. 16 MiB


# ------------------------------------------------------------------------------ workers (under mpiexec)
def _build(name):
    import deepwise as dw
    from deepwise import nn, recipes
    from deepwise.models.cnn import SmallVGG

    dw.manual_seed(0)
    if name == "mlp":
        return nn.Sequential(nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(), nn.Linear(512, 10)), (784,)
    if name == "digits-cnn":
        recipe = recipes.get("digits-cnn")
        return recipe.model(dict(recipe.defaults)), (1, 8, 8)
    return SmallVGG(in_channels=3, num_classes=10), (3, 16, 16)


def _train_worker():
    import deepwise as dw
    import deepwise.distributed as dist
    import deepwise.nn.functional as F

    dist.init_process_group(backend="mpi")
    rank, world = dist.get_rank(), dist.get_world_size()
    out = {}
    for name, (_, batch) in MODELS.items():
        model, shape = _build(name)
        ddp = dw.nn.parallel.DistributedDataParallel(model)
        opt = dw.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        g = np.random.default_rng(rank)
        x = dw.tensor(g.standard_normal((batch, *shape)).astype(np.float32))
        y = dw.tensor(g.integers(0, 10, batch))
        steps, comms = [], []
        dist.barrier()
        for i in range(WARMUP + STEPS):
            t0 = time.perf_counter()
            opt.zero_grad()
            with ddp.no_sync():
                F.cross_entropy(ddp(x), y).backward()
            t1 = time.perf_counter()
            ddp.average_gradients()
            t2 = time.perf_counter()
            opt.step()
            t3 = time.perf_counter()
            if i >= WARMUP:
                steps.append(t3 - t0)
                comms.append(t2 - t1)
        mine = [statistics.median(steps), statistics.median(comms)]
        everyone = [None] * world
        dist.all_gather_object(everyone, mine)
        slowest = max(everyone, key=lambda e: e[0])
        grad_bytes = sum(p.array.nbytes for p in model.parameters())
        buckets = math.ceil(grad_bytes / (ddp.bucket_cap_mb * 2**20))
        out[name] = {"step_s": slowest[0], "comm_s": slowest[1], "batch": batch, "grad_bytes": grad_bytes,
                     "buckets": buckets}
    if rank == 0:
        sys.stdout.write("RESULT " + json.dumps(out) + "\n")


def _allreduce_worker():
    import deepwise.distributed as dist
    from deepwise.distributed import collectives

    dist.init_process_group(backend="mpi")
    out = {}
    for nbytes in SIZES:
        a = np.ones(nbytes // 4, dtype=np.float32)
        repeats = 60 if nbytes <= 2**16 else 15
        for _ in range(10):
            collectives.reduce_array(a, "sum")
        times = []
        for _ in range(repeats):
            dist.barrier()
            t = time.perf_counter()
            collectives.reduce_array(a, "sum")
            times.append(time.perf_counter() - t)
        everyone = [None] * dist.get_world_size()
        dist.all_gather_object(everyone, [statistics.median(times), min(times)])
        out[str(nbytes)] = [max(e[0] for e in everyone), max(e[1] for e in everyone)]
    if dist.get_rank() == 0:
        sys.stdout.write("RESULT " + json.dumps(out) + "\n")


# ------------------------------------------------------------------------------ the driver
def _job(n, what, timeout=900):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
           "DEEPWISE_BENCH_THREADS": "1"}
    proc = subprocess.run([shutil.which("mpiexec"), "-n", str(n), sys.executable, os.path.abspath(__file__),
                           "--worker", what], capture_output=True, text=True, env=env, timeout=timeout)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"bench_dist: mpiexec -n {n} ({what}) failed with code {proc.returncode}:\n"
                           f"{proc.stderr[-2000:]}")
    return json.loads(lines[0][len("RESULT "):])


def fit_alpha_beta(sizes, times):
    """(alpha seconds, bandwidth bytes/s) of t = 2 alpha + m / B (ring all-reduce on 2 processes): B from
    the least-squares slope over messages of 256 KiB and more (where bandwidth dominates), then alpha
    from the median remainder over messages of 16 KiB and less (where latency dominates)."""
    m = np.asarray(sizes, dtype=np.float64)
    t = np.asarray(times, dtype=np.float64)
    big = m >= 2**18
    slope = np.polyfit(m[big], t[big], 1)[0]
    bandwidth = 1.0 / slope
    small = m <= 2**14
    alpha = max(float(np.median(t[small] - m[small] / bandwidth)) / 2.0, 0.0)
    return alpha, bandwidth


def ring_time(n, nbytes, alpha, bandwidth, messages=1):
    return 2 * (n - 1) * alpha * messages + 2 * (n - 1) / n * nbytes / bandwidth


def measure(rounds: int) -> dict:
    runs = {1: [], 2: []}
    for r in range(rounds):
        for n in ((1, 2) if r % 2 == 0 else (2, 1)):
            runs[n].append(_job(n, "train"))
    reduce_runs = [_job(2, "allreduce") for _ in range(rounds)]
    sizes = [int(k) for k in reduce_runs[0]]
    times = [statistics.median(run[str(s)][0] for run in reduce_runs) for s in sizes]
    fastest = [min(run[str(s)][1] for run in reduce_runs) for s in sizes]
    return {"runs": runs, "sizes": sizes, "times": times, "fastest": fastest}


def table(data: dict) -> str:
    runs, sizes, times, fastest = data["runs"], data["sizes"], data["times"], data["fastest"]
    alpha, bandwidth = fit_alpha_beta(sizes, fastest)
    lines = ["| workload | per-process batch | gradients | 1 proc samples/s | 2 procs samples/s | scaling efficiency "
             "| comm share (2 procs) | model: efficiency at 2 / 4 / 8 / 16 |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |"]
    for name, (what, batch) in MODELS.items():
        one = statistics.median(run[name]["step_s"] for run in runs[1])
        two = statistics.median(run[name]["step_s"] for run in runs[2])
        comm = statistics.median(run[name]["comm_s"] / run[name]["step_s"] for run in runs[2])
        grad_bytes = runs[2][0][name]["grad_bytes"]
        buckets = runs[2][0][name]["buckets"]
        sps1, sps2 = batch / one, 2 * batch / two
        model = [one / (one + ring_time(n, grad_bytes, alpha, bandwidth, buckets + 1)) for n in (2, 4, 8, 16)]
        lines.append(f"| {what} | {batch} | {grad_bytes / 2**20:.2f} MiB | {sps1:,.0f} | {sps2:,.0f} | "
                     f"{sps2 / (2 * sps1):.0%} | {comm:.0%} | {' / '.join(f'{e:.0%}' for e in model)} |")
    lines += ["", "| all-reduce message | 2 procs, median | 2 procs, fastest | alpha-beta model |",
              "| ---: | ---: | ---: | ---: |"]
    for s, t, f in zip(sizes, times, fastest):
        lines.append(f"| {s / 1024:,.0f} KiB | {t * 1e6:,.0f} us | {f * 1e6:,.0f} us | "
                     f"{ring_time(2, s, alpha, bandwidth) * 1e6:,.0f} us |")
    lines += ["", f"Fitted ring all-reduce model: latency alpha = {alpha * 1e6:.1f} us per message, bandwidth "
              f"B = {bandwidth / 1e9:.2f} GB/s; t(N, m) = 2(N-1) alpha + 2(N-1)/N m / B. The model's efficiency "
              "assumes the one-process compute of a step and no overlap of communication with backward."]
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--worker", choices=("train", "allreduce"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker == "train":
        return _train_worker()
    if args.worker == "allreduce":
        return _allreduce_worker()
    if shutil.which("mpiexec") is None:
        print('bench_dist: mpiexec not found; pip install "deepwise[mpi]"', file=sys.stderr)
        return 1
    print(table(measure(args.rounds)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
