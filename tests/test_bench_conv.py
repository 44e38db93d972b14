"""The conv benchmark's FLOP counting and the GFLOP/s column beside the sgemm peak."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
harness = pytest.importorskip("harness")
models = pytest.importorskip("models")


def test_conv_layer_flops_count_conv_and_transposed_conv_layers():
    import deepwise as dw

    nn = dw.nn
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 4, 3, stride=2, padding=1, groups=2),
                          nn.ConvTranspose2d(4, 6, 4, stride=2, padding=1))
    flops = models.conv_layer_flops(model, (2, 3, 10, 10), dw)
    assert flops == [2 * 2 * 8 * 10 * 10 * 3 * 9,       # N * O * OH * OW * C * kh * kw multiply-adds
                     2 * 2 * 4 * 5 * 5 * 4 * 9,         # groups=2: each output sees 8 / 2 input channels
                     2 * 2 * 4 * 5 * 5 * 6 * 16]        # transposed: every input pixel meets the whole kernel
    # a step: forward, input gradient and weight gradient, no input gradient for the first layer
    assert models.train_conv_flops(flops) == 3 * sum(flops) - flops[0]
    assert models.train_conv_flops(flops, first_needs_dx=True) == 3 * sum(flops)


def test_sgemm_peak_is_measured_once_per_worker():
    first = harness.sgemm_peak(n=64, repeats=2)
    assert first > 0 and harness.sgemm_peak(n=64, repeats=2) == first
    extra = harness.conv_extra(10**9)
    assert extra["conv_flop"] == 10**9 and extra["sgemm_gflops"] > 0


def test_render_shows_conv_gflops_beside_the_peak_only_in_tables_with_conv_rows():
    R = harness.Result
    conv = R("conv", "net", 0.5, 0.25, 1.2, "", {"conv_flop": 10 * 10**9, "sgemm_gflops": 80.0})
    other = R("rnn", "lm", 0.02, 0.01, 1.5)
    text = harness.render([], by_threads={2: [conv, other], 1: [other]})
    with_conv, without = text.split("## 1 thread")
    assert "conv GFLOP/s dw / torch (sgemm peak)" in with_conv
    assert "| 20.0 / 40.0 (peak 80, dw 25%) |" in with_conv  # 10 GFLOP in 0.5 s and in 0.25 s
    assert "| rnn | lm | 20.000 ms | 10.000 ms | 2.00x ❌ | <= 1.5x | - |" in with_conv
    assert "GFLOP/s" not in without.split("## How to read")[0]
