"""The benchmark harness's pure parts: one-framework workers, merging their results, rendering."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
harness = pytest.importorskip("harness")


def _counter():
    calls = []
    return calls, (lambda: calls.append(1))


@pytest.mark.parametrize("side", ["deepwise", "torch"])
def test_a_worker_runs_only_its_framework(monkeypatch, side):
    monkeypatch.setenv("DEEPWISE_BENCH_ONLY", side)
    dw_calls, dw_step = _counter()
    th_calls, th_step = _counter()
    dw_s, th_s, _ = harness.time_pair(dw_step, th_step, repeats=4, warmup=1, blocks=2, settle=0)
    ran, idle = (dw_calls, th_calls) if side == "deepwise" else (th_calls, dw_calls)
    assert len(ran) == 1 + 1 + 4 and not idle  # memory probe, warm-up, timed calls
    assert (dw_s is None) == (side == "torch") and (th_s is None) == (side == "deepwise")


def test_unknown_framework_is_refused(monkeypatch):
    monkeypatch.setenv("DEEPWISE_BENCH_ONLY", "tensorflow")
    with pytest.raises(ValueError, match="DEEPWISE_BENCH_ONLY"):
        harness.time_pair(lambda: None, lambda: None)


def test_merge_keeps_each_frameworks_best_round_and_largest_memory():
    R = harness.Result
    runs = [
        [R("cnn", "step", 0.030, None, 1.5, "", {"dw_peak": 10})],
        [R("cnn", "step", None, 0.020, 1.5, "", {"torch_peak": 7})],
        [R("cnn", "step", 0.025, None, 1.5, "", {"dw_peak": 12})],
        [R("cnn", "step", None, 0.022, 1.5, "", {"torch_peak": 5})],
    ]
    (m,) = harness.merge(runs)
    assert (m.dw_s, m.torch_s) == (0.025, 0.020)
    assert m.extra == {"dw_peak": 12, "torch_peak": 7}
    assert m.ratio == pytest.approx(1.25)


def test_render_marks_targets_and_writes_memory_and_rates():
    R = harness.Result
    rows = [R("cnn", "slow step", 0.030, 0.010, 1.5, "", {"dw_peak": 2**21, "torch_peak": 2**20}),
            R("cnn", "inference", 0.010, 0.020, 1.5, "", {"items": 100, "unit": "images"})]
    text = harness.render(rows)
    assert "| 3.00x ❌ | <= 1.5x | peak memory 2.0 MiB vs 1.0 MiB |" in text
    assert "0.50x ✅" in text and "deepwise 10,000 images/s, PyTorch 5,000 images/s" in text
    assert "Geometric mean of the ratios: **1.22x** over 2 workloads." in text


def test_render_writes_one_table_per_thread_count_targets_on_the_first():
    R = harness.Result
    text = harness.render([], by_threads={2: [R("rnn", "lm", 0.02, 0.01, 1.5)], 1: [R("rnn", "lm", 0.03, 0.03, 1.5)]})
    first, second = text.index("## 2 threads (targets are judged here)"), text.index("## 1 thread (")
    assert first < text.index("2.00x ❌") < second < text.index("1.00x ✅")
