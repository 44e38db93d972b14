"""benchmarks/bench_dist.py's cost model: the alpha-beta fit recovers a known ring all-reduce, and the
table is rendered from measurements (without running MPI)."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest

PATH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_dist.py"
spec = importlib.util.spec_from_file_location("bench_dist", PATH)
bench = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bench)


def test_the_fit_recovers_latency_and_bandwidth_of_a_ring():
    alpha, bandwidth = 20e-6, 2e9
    sizes = bench.SIZES
    times = [bench.ring_time(2, m, alpha, bandwidth) for m in sizes]
    a, b = bench.fit_alpha_beta(sizes, times)
    assert a == pytest.approx(alpha, rel=1e-6) and b == pytest.approx(bandwidth, rel=1e-6)
    # a ring of N sends 2(N-1) messages and 2(N-1)/N of the bytes per process
    assert bench.ring_time(4, 4e6, alpha, bandwidth) == pytest.approx(6 * alpha + 1.5 * 4e6 / bandwidth)


def test_the_table_gives_samples_per_second_and_efficiency():
    one = {name: {"step_s": 0.010, "comm_s": 0.0, "batch": batch, "grad_bytes": 2**20, "buckets": 1}
           for name, (_, batch) in bench.MODELS.items()}
    two = {name: {**v, "step_s": 0.0125, "comm_s": 0.0025} for name, v in one.items()}
    sizes = bench.SIZES
    times = [bench.ring_time(2, m, 5e-6, 1e9) for m in sizes]
    text = bench.table({"runs": {1: [one], 2: [two]}, "sizes": sizes, "times": times, "fastest": times})
    mlp = next(line for line in text.splitlines() if line.startswith("| MLP"))
    cells = [c.strip() for c in mlp.strip("|").split("|")]
    batch = bench.MODELS["mlp"][1]
    assert cells[3] == f"{batch / 0.010:,.0f}" and cells[4] == f"{2 * batch / 0.0125:,.0f}"
    assert cells[5] == "80%" and cells[6] == "20%"
    assert "latency alpha = 5.0 us" in text and "B = 1.00 GB/s" in text
    assert np.isfinite(bench.fit_alpha_beta(sizes, times)).all()
